// SPDX-License-Identifier: BSL-1.0
#include "kaa/in_progress.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "kaa/main_loop.hpp"
#include "kaa/signal.hpp"
#include "test_support.hpp"

using kaa::Duration;
using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::InProgressRef;
using kaa::test::holds;
using kaa::test::message_of;

static_assert(!std::is_base_of_v<std::exception, InProgressAborted>,
              "InProgressAborted must escape catch (const std::exception&)");
static_assert(!std::is_base_of_v<std::exception, kaa::TimeoutError>);
static_assert(std::is_base_of_v<InProgressAborted, kaa::TimeoutError>);
static_assert(std::is_base_of_v<kaa::UsageError, kaa::AlreadyFinished>);
static_assert(std::is_base_of_v<kaa::UsageError, kaa::ResultNotReady>);
static_assert(std::is_base_of_v<kaa::UsageError, kaa::NotAbortable>);
static_assert(std::is_base_of_v<kaa::UsageError, kaa::EmptyHandle>);

namespace {

std::exception_ptr boom(const char* what = "boom") { return std::make_exception_ptr(std::runtime_error(what)); }

class InProgressTest : public kaa::test::LoopTest {};

} // namespace

// ---------------------------------------------------------------------------
// finish / fail / result

TEST_F(InProgressTest, FinishThenResult) {
    InProgress<int> ip;
    EXPECT_FALSE(ip.finished());
    EXPECT_FALSE(ip.failed());
    ip.finish(5);
    EXPECT_TRUE(ip.finished());
    EXPECT_FALSE(ip.failed());
    EXPECT_EQ(ip.result(), 5);
    EXPECT_EQ(ip.exception(), nullptr);
}

TEST_F(InProgressTest, FinishVoid) {
    InProgress<void> ip;
    ip.finish();
    EXPECT_TRUE(ip.finished());
    EXPECT_NO_THROW(ip.result());
}

TEST_F(InProgressTest, FinishConstructsInPlaceFromSeveralArguments) {
    InProgress<std::string> ip;
    ip.finish(3, 'x');
    EXPECT_EQ(ip.result(), "xxx");
}

TEST_F(InProgressTest, MoveOnlyResult) {
    InProgress<std::unique_ptr<int>> ip;
    const std::unique_ptr<int>* seen = nullptr;
    ip.connect([&](const std::unique_ptr<int>& p) { seen = &p; });
    ip.finish(std::make_unique<int>(3));
    ASSERT_NE(seen, nullptr);
    EXPECT_EQ(*ip.result(), 3);
    // On an rvalue handle a value that cannot be copied is not moved out
    // behind the caller's back: it comes by reference, as from an lvalue.
    const std::unique_ptr<int>& again = std::move(ip).result();
    EXPECT_EQ(&again, seen);
    EXPECT_EQ(*ip.result(), 3);
}

TEST_F(InProgressTest, FailThenResultRethrows) {
    InProgress<int> ip;
    ip.fail(std::runtime_error("bad"));
    EXPECT_TRUE(ip.finished());
    EXPECT_TRUE(ip.failed());
    try {
        (void)ip.result();
        FAIL() << "result() did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "bad");
    }
}

TEST_F(InProgressTest, FailWithExceptionPtrAndReadException) {
    InProgress<void> ip;
    ip.fail(boom("ptr"));
    auto e = ip.exception();
    EXPECT_TRUE(holds<std::runtime_error>(e));
    EXPECT_EQ(message_of(e), "ptr");
}

TEST_F(InProgressTest, ResultBeforeFinishThrowsResultNotReady) {
    InProgress<int> ip;
    EXPECT_THROW((void)ip.result(), kaa::ResultNotReady);
    EXPECT_THROW((void)ip.exception(), kaa::ResultNotReady);
    InProgress<void> v;
    EXPECT_THROW(v.result(), kaa::ResultNotReady);
}

TEST_F(InProgressTest, FinishTwiceThrowsAlreadyFinished) {
    InProgress<int> ip;
    ip.finish(1);
    EXPECT_THROW(ip.finish(2), kaa::AlreadyFinished);
    EXPECT_THROW(ip.fail(boom()), kaa::AlreadyFinished);
    EXPECT_EQ(ip.result(), 1);
}

TEST_F(InProgressTest, FailTwiceThrowsAlreadyFinished) {
    InProgress<int> ip;
    ip.fail(boom("first"));
    EXPECT_THROW(ip.fail(boom("second")), kaa::AlreadyFinished);
    EXPECT_THROW(ip.finish(3), kaa::AlreadyFinished);
    EXPECT_EQ(message_of(ip.exception()), "first");
}

TEST_F(InProgressTest, CopiesShareTheOperation) {
    InProgress<int> a;
    InProgress<int> b = a;
    EXPECT_TRUE(a == b);
    b.finish(4);
    EXPECT_EQ(a.result(), 4);
    InProgressRef r = a;
    EXPECT_TRUE(r == a);
    EXPECT_TRUE(r.finished());
}

TEST_F(InProgressTest, EmptyHandleThrowsEmptyHandle) {
    InProgress<int> ip(nullptr);
    EXPECT_FALSE(ip.valid());
    EXPECT_FALSE(static_cast<bool>(ip));
    EXPECT_THROW(ip.finish(1), kaa::EmptyHandle);
    EXPECT_THROW(ip.fail(boom()), kaa::EmptyHandle);
    EXPECT_THROW((void)ip.result(), kaa::EmptyHandle);
    EXPECT_THROW((void)ip.finished(), kaa::EmptyHandle);
    EXPECT_THROW(ip.connect([](int) {}), kaa::EmptyHandle);
    EXPECT_THROW(ip.abort(), kaa::EmptyHandle);
    EXPECT_THROW((void)ip.wait_for(Duration::zero()), kaa::EmptyHandle);

    InProgress<int> moved;
    InProgress<int> target = std::move(moved);
    EXPECT_FALSE(moved.valid()); // NOLINT(bugprone-use-after-move): testing it
    EXPECT_THROW(moved.finish(1), kaa::EmptyHandle);
    EXPECT_TRUE(target.valid());
    InProgressRef ref;
    EXPECT_THROW((void)ref.finished(), kaa::EmptyHandle);
}

TEST_F(InProgressTest, MakeFinishedAndMakeFailed) {
    auto a = kaa::make_finished<int>(3);
    EXPECT_TRUE(a.finished());
    EXPECT_EQ(a.result(), 3);
    auto v = kaa::make_finished<void>();
    EXPECT_TRUE(v.finished());
    auto f = kaa::make_failed<std::string>(boom("made"));
    EXPECT_TRUE(f.failed());
    EXPECT_EQ(message_of(f.exception()), "made");
}

TEST_F(InProgressTest, ExecuteFinishesOrFails) {
    InProgress<int> ok;
    ok.execute([] { return 6; });
    EXPECT_EQ(ok.result(), 6);
    InProgress<int> bad;
    bad.execute([]() -> int { throw std::runtime_error("exec"); });
    EXPECT_EQ(message_of(bad.exception()), "exec");
    InProgress<void> v;
    v.execute([] {});
    EXPECT_TRUE(v.finished());
}

// ---------------------------------------------------------------------------
// Callbacks

TEST_F(InProgressTest, ConnectBeforeFinishCalledOnFinish) {
    InProgress<int> ip;
    int got = 0;
    ip.connect([&](int v) { got = v; });
    EXPECT_EQ(got, 0);
    ip.finish(8);
    EXPECT_EQ(got, 8);
}

TEST_F(InProgressTest, ConnectAfterFinishCalledAtOnceBeforeConnectReturns) {
    InProgress<int> ip;
    ip.finish(9);
    int got = 0;
    ip.connect([&](int v) { got = v; });
    EXPECT_EQ(got, 9);
    // Every late connection gets it, each exactly once (port decision 4).
    int second = 0;
    ip.connect([&](int v) { second += v; });
    EXPECT_EQ(second, 9);
    step_n(2);
    EXPECT_EQ(second, 9);
}

TEST_F(InProgressTest, CallbacksRunInConnectionOrderExactlyOnce) {
    InProgress<int> ip;
    std::vector<int> order;
    for (int i = 0; i < 5; ++i)
        ip.connect([&order, i](int) { order.push_back(i); });
    ip.connect_finished([&] { order.push_back(100); });
    ip.connect_exception([&](std::exception_ptr) { order.push_back(-1); });
    ip.finish(0);
    step_n(2);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 100}));
}

TEST_F(InProgressTest, ResultCallbacksDoNotRunOnFailure) {
    InProgress<int> ip;
    bool ok_ran = false;
    std::exception_ptr seen;
    ip.connect([&](int) { ok_ran = true; });
    ip.connect_exception([&](std::exception_ptr e) { seen = e; });
    ip.fail(boom("cb"));
    EXPECT_FALSE(ok_ran);
    EXPECT_EQ(message_of(seen), "cb");
}

TEST_F(InProgressTest, ConnectExceptionNotCalledOnSuccess) {
    InProgress<int> ip;
    bool called = false;
    ip.connect_exception([&](std::exception_ptr) { called = true; });
    ip.finish(1);
    EXPECT_FALSE(called);
}

TEST_F(InProgressTest, ConnectBoth) {
    InProgress<int> ok;
    int value = 0;
    std::exception_ptr err;
    ok.connect_both([&](int v) { value = v; }, [&](std::exception_ptr e) { err = e; });
    ok.finish(2);
    EXPECT_EQ(value, 2);
    EXPECT_EQ(err, nullptr);

    InProgress<void> bad;
    bool ok_ran = false;
    bad.connect_both([&] { ok_ran = true; }, [&](std::exception_ptr e) { err = e; });
    bad.fail(boom("both"));
    EXPECT_FALSE(ok_ran);
    EXPECT_EQ(message_of(err), "both");
}

TEST_F(InProgressTest, ConnectFinishedBothWays) {
    InProgress<int> a, b;
    int calls = 0;
    a.connect_finished([&] { ++calls; });
    b.connect_finished([&] { ++calls; });
    a.finish(1);
    b.fail(boom());
    EXPECT_EQ(calls, 2);
    // connect_finished does not observe the failure.
    b = InProgress<int>(nullptr);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "boom");
}

TEST_F(InProgressTest, ThrowingCallbackIsReportedAndLaterCallbacksStillRun) {
    InProgress<int> ip;
    bool later = false;
    ip.connect([](int) { throw std::runtime_error("cb-throws"); });
    ip.connect([&](int) { later = true; });
    ip.finish(1);
    EXPECT_TRUE(later);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "cb-throws");
}

TEST_F(InProgressTest, ThrowingFirstOfManyCallbacksAndLateCallbackThrowing) {
    InProgress<int> ip;
    ip.finish(1);
    // A late connect runs at once; its exception is reported, not thrown.
    EXPECT_NO_THROW(ip.connect([](int) { throw std::runtime_error("late-throws"); }));
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(InProgressTest, CallbackMayConnectMoreAndDropTheLastHandle) {
    std::optional<InProgress<int>> holder;
    holder.emplace();
    InProgress<int> keep = *holder;
    int nested = 0, second = 0;
    holder->connect([&](int) {
        holder->connect([&](int w) { nested = w; });
        holder.reset();
    });
    holder->connect([&](int v) { second = v; });
    keep.finish(4);
    EXPECT_EQ(nested, 4);
    EXPECT_EQ(second, 4);
}

TEST_F(InProgressTest, CallbackOwnsTheOnlyHandle) {
    // The callback holds the last handle; it is released when the callbacks
    // are done, not while they run.
    int got = 0;
    {
        InProgress<int> ip;
        ip.connect([ip, &got](int v) mutable {
            got = v;
            ip = InProgress<int>(nullptr);
        });
        ip.finish(3);
    }
    EXPECT_EQ(got, 3);
}

// ---------------------------------------------------------------------------
// Threads

TEST_F(InProgressTest, FinishFromAnotherThreadDeliversOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    InProgress<int> ip;
    std::thread::id cb_thread;
    int got = 0;
    ip.connect([&](int v) {
        cb_thread = std::this_thread::get_id();
        got = v;
    });
    std::thread t([&] { ip.finish(11); });
    t.join();
    EXPECT_EQ(got, 0) << "delivery happens on the loop, not in the finishing thread";
    ASSERT_TRUE(step_until([&] { return got != 0; }));
    EXPECT_EQ(got, 11);
    EXPECT_EQ(cb_thread, loop_thread);
    EXPECT_TRUE(ip.finished());
}

TEST_F(InProgressTest, FailFromAnotherThreadDeliversOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    InProgress<void> ip;
    std::thread::id cb_thread;
    std::exception_ptr seen;
    ip.connect_exception([&](std::exception_ptr e) {
        cb_thread = std::this_thread::get_id();
        seen = e;
    });
    std::thread t([&] { ip.fail(boom("thread")); });
    t.join();
    ASSERT_TRUE(step_until([&] { return seen != nullptr; }));
    EXPECT_EQ(cb_thread, loop_thread);
    EXPECT_EQ(message_of(seen), "thread");
}

TEST_F(InProgressTest, SecondFinishFromAnotherThreadThrowsSynchronouslyThere) {
    InProgress<int> ip;
    bool second_threw = false, fail_threw = false;
    std::thread t([&] {
        ip.finish(1);
        try {
            ip.finish(2);
        } catch (const kaa::AlreadyFinished&) {
            second_threw = true;
        }
        try {
            ip.fail(boom());
        } catch (const kaa::AlreadyFinished&) {
            fail_threw = true;
        }
    });
    t.join();
    EXPECT_TRUE(second_threw);
    EXPECT_TRUE(fail_threw);
    EXPECT_THROW(ip.finish(3), kaa::AlreadyFinished) << "claimed, though not yet delivered";
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_EQ(ip.result(), 1);
}

TEST_F(InProgressTest, RacingFinishersExactlyOneWins) {
    InProgress<int> ip;
    std::atomic<int> winners{0}, losers{0};
    std::vector<std::thread> ts;
    for (int i = 1; i <= 4; ++i)
        ts.emplace_back([&, i] {
            try {
                ip.finish(i);
                ++winners;
            } catch (const kaa::AlreadyFinished&) {
                ++losers;
            }
        });
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(winners, 1);
    EXPECT_EQ(losers, 3);
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
}

TEST_F(InProgressTest, ConnectFromAnotherThreadRunsOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    InProgress<int> ip;
    ip.finish(5);
    std::thread::id cb_thread;
    int got = 0;
    std::thread t([&] {
        ip.connect([&](int v) {
            cb_thread = std::this_thread::get_id();
            got = v;
        });
    });
    t.join();
    ASSERT_TRUE(step_until([&] { return got != 0; }));
    EXPECT_EQ(cb_thread, loop_thread);
}

// ---------------------------------------------------------------------------
// Chaining: finish(other)

TEST_F(InProgressTest, ChainSuccess) {
    InProgress<int> up, down;
    int got = 0;
    down.connect([&](int v) { got = v; });
    down.finish(up);
    EXPECT_FALSE(down.finished());
    up.finish(12);
    EXPECT_TRUE(down.finished());
    EXPECT_EQ(got, 12);
    EXPECT_EQ(down.result(), 12);
}

TEST_F(InProgressTest, ChainVoid) {
    InProgress<void> up, down;
    bool got = false;
    down.connect([&] { got = true; });
    down.finish(up);
    up.finish();
    EXPECT_TRUE(got);
}

TEST_F(InProgressTest, ChainFailure) {
    InProgress<int> up, down;
    std::exception_ptr seen;
    down.connect_exception([&](std::exception_ptr e) { seen = e; });
    down.finish(up);
    up.fail(boom("up"));
    EXPECT_TRUE(down.failed());
    EXPECT_EQ(message_of(seen), "up");
}

TEST_F(InProgressTest, ChainToAlreadyFinished) {
    auto up = kaa::make_finished<int>(13);
    InProgress<int> down;
    down.finish(up);
    EXPECT_TRUE(down.finished());
    EXPECT_EQ(down.result(), 13);

    auto bad = kaa::make_failed<int>(boom("pre"));
    InProgress<int> down2;
    down2.finish(bad);
    EXPECT_EQ(message_of(down2.exception()), "pre");
}

TEST_F(InProgressTest, ChainWithItselfIsAUsageError) {
    InProgress<int> ip;
    EXPECT_THROW(ip.finish(ip), kaa::UsageError);
    // The failed attempt did not claim it.
    ip.finish(1);
    EXPECT_EQ(ip.result(), 1);
}

TEST_F(InProgressTest, ChainWhenAlreadyFinishedThrows) {
    InProgress<int> up;
    auto done = kaa::make_finished<int>(1);
    EXPECT_THROW(done.finish(up), kaa::AlreadyFinished);
    InProgress<int> down;
    down.finish(up);
    EXPECT_THROW(down.finish(2), kaa::AlreadyFinished) << "a chained operation is spoken for";
    up.finish(3);
    EXPECT_EQ(down.result(), 3);
}

TEST_F(InProgressTest, ChainWithEmptyHandleThrowsAndLeavesThisUsable) {
    InProgress<int> ip;
    InProgress<int> empty(nullptr);
    EXPECT_THROW(ip.finish(empty), kaa::EmptyHandle);
    EXPECT_NO_THROW(ip.finish(2)) << "a rejected chain must not leave the operation claimed";
}

TEST_F(InProgressTest, ChainFromAnotherThread) {
    const auto loop_thread = std::this_thread::get_id();
    InProgress<int> up, down;
    std::thread::id cb_thread;
    int got = 0;
    down.connect([&](int v) {
        cb_thread = std::this_thread::get_id();
        got = v;
    });
    std::thread t([&] {
        down.finish(up);
        up.finish(21);
    });
    t.join();
    ASSERT_TRUE(step_until([&] { return got != 0; }));
    EXPECT_EQ(got, 21);
    EXPECT_EQ(cb_thread, loop_thread);
}

// ---------------------------------------------------------------------------
// abort()

TEST_F(InProgressTest, NotAbortableByDefault) {
    InProgress<int> ip;
    EXPECT_FALSE(ip.abortable());
    EXPECT_THROW(ip.abort(), kaa::NotAbortable);
    EXPECT_FALSE(ip.finished());
    ip.finish(1);
}

TEST_F(InProgressTest, ConnectingToAbortSignalMakesItAbortable) {
    InProgress<int> ip;
    auto c = ip.abort_signal().connect([](const InProgressAborted&) {});
    EXPECT_TRUE(ip.abortable());
    c.disconnect();
    EXPECT_FALSE(ip.abortable());
}

TEST_F(InProgressTest, SetAbortableExplicitly) {
    InProgress<int> ip;
    ip.set_abortable(true);
    EXPECT_TRUE(ip.abortable());
    ip.abort();
    EXPECT_TRUE(ip.failed());
    InProgress<int> no;
    no.abort_signal().connect([](const InProgressAborted&) {});
    no.set_abortable(false);
    EXPECT_THROW(no.abort(), kaa::NotAbortable);
    no.finish(0);
}

TEST_F(InProgressTest, AbortOnFinishedWorkIsHarmlessAndReturnsFalse) {
    InProgress<int> ip;
    ip.abort_signal().connect([](const InProgressAborted&) {});
    ip.finish(1);
    bool aborted = true;
    EXPECT_NO_THROW(aborted = ip.abort());
    EXPECT_FALSE(aborted);
    EXPECT_EQ(ip.result(), 1);
    EXPECT_FALSE(kaa::make_failed<int>(boom("failed-first")).abort()) << "a failed operation too";
    EXPECT_EQ(reports.take().size(), 1u);  // the unobserved "failed-first"
}

TEST_F(InProgressTest, AbortReturnsTrueOnlyForTheCallThatAborted) {
    InProgress<int> ip;
    ip.set_abortable(true);
    EXPECT_TRUE(ip.abort());
    EXPECT_FALSE(ip.abort());
    // An abort handler aborting again during the abort: decided already.
    InProgress<int> again;
    bool inner = true;
    again.abort_signal().connect([&](const InProgressAborted&) { inner = again.abort(); });
    EXPECT_TRUE(again.abort());
    EXPECT_FALSE(inner);
}

TEST_F(InProgressTest, AbortOfAChainedOperationReturnsFalse) {
    // Claimed by finish(other): its outcome is decided upstream.
    InProgress<int> up, down;
    down.set_abortable(true);
    down.finish(up);
    EXPECT_FALSE(down.abort());
    up.finish(2);
    EXPECT_EQ(down.result(), 2);
}

TEST_F(InProgressTest, FinishReturnsTheInProgress) {
    InProgress<int> ip = InProgress<int>().finish(7);
    EXPECT_EQ(ip.result(), 7);
    InProgress<int> up;
    InProgress<int> down;
    EXPECT_TRUE(&down.finish(up) == &down);
    up.finish(3);
    EXPECT_EQ(down.result(), 3);
    EXPECT_TRUE(InProgress<void>().finish().finished());
}

TEST_F(InProgressTest, AbortTravelsDownAChainExceptionCallbacksThenAbortSignal) {
    InProgress<int> a, b;
    a.set_abortable(true);
    b.finish(a);
    std::vector<std::string> order;
    InProgressRef seen_ip, seen_origin;
    b.connect_exception([&](std::exception_ptr e) {
        order.push_back(holds<InProgressAborted>(e) ? "b-exception:aborted" : "b-exception:other");
    });
    b.abort_signal().connect([&](const InProgressAborted& e) {
        order.push_back("b-abort-signal");
        seen_ip = e.inprogress();
        seen_origin = e.origin();
    });
    EXPECT_TRUE(a.abort());
    EXPECT_EQ(order, (std::vector<std::string>{"b-exception:aborted", "b-abort-signal"}));
    EXPECT_TRUE(seen_ip == a);
    EXPECT_TRUE(seen_origin == a);
    try {
        (void)b.result();
        FAIL();
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.inprogress() == a) << "the downstream fails naming the aborted upstream";
        EXPECT_TRUE(e.origin() == a);
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(InProgressTest, AbortedFailureNamesItselfWithoutKeepingItselfAlive) {
    std::weak_ptr<kaa::detail::StateBase> weak;
    std::exception_ptr held;
    {
        InProgress<int> ip;
        ip.set_abortable(true);
        weak = ip.state();
        ip.abort();
        held = ip.exception();
    }
    ASSERT_FALSE(weak.expired()) << "the exception read from the failure holds the operation";
    try {
        std::rethrow_exception(held);
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.inprogress().valid());
        EXPECT_TRUE(e.inprogress().state() == weak.lock());
        EXPECT_TRUE(e.origin().state() == weak.lock());
    }
    held = nullptr;
    EXPECT_TRUE(weak.expired()) << "the stored failure does not keep the operation alive (no cycle)";
}

TEST_F(InProgressTest, AbortFromAnotherThreadOfAnUnabortableOperationIsReportedOnTheLoop) {
    InProgress<int> ip;
    bool returned = false;
    std::thread t([&] { returned = ip.abort(); });
    t.join();
    EXPECT_TRUE(returned) << "posted: the outcome is decided on the loop";
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(holds<kaa::NotAbortable>(seen[0]));
    EXPECT_FALSE(ip.finished());
    ip.finish(0);
    std::thread late([&] { returned = ip.abort(); });
    late.join();
    EXPECT_FALSE(returned) << "finished before the call: false, nothing posted";
}

TEST_F(InProgressTest, AbortFailsWithInProgressAbortedNamingIt) {
    InProgress<int> ip;
    int handler_calls = 0;
    InProgressRef handler_ip, handler_origin;
    ip.abort_signal().connect([&](const InProgressAborted& e) {
        ++handler_calls;
        handler_ip = e.inprogress();
        handler_origin = e.origin();
    });
    ip.abort();
    EXPECT_EQ(handler_calls, 1);
    EXPECT_TRUE(handler_ip == ip);
    EXPECT_TRUE(handler_origin == ip);
    ASSERT_TRUE(ip.failed());
    try {
        (void)ip.result();
        FAIL();
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.inprogress() == ip);
        EXPECT_TRUE(e.origin() == ip);
    }
}

TEST_F(InProgressTest, AbortedIsNotCaughtAsStdException) {
    InProgress<int> ip;
    ip.set_abortable(true);
    ip.abort();
    bool by_std = false, by_name = false;
    try {
        try {
            (void)ip.result();
        } catch (const std::exception&) {
            by_std = true;
        }
    } catch (const InProgressAborted&) {
        by_name = true;
    }
    EXPECT_FALSE(by_std);
    EXPECT_TRUE(by_name);
}

TEST_F(InProgressTest, AbortHandlersRunBeforeExceptionCallbacks) {
    InProgress<int> ip;
    std::vector<std::string> order;
    ip.connect_exception([&](std::exception_ptr e) {
        order.push_back(holds<InProgressAborted>(e) ? "exception:aborted" : "exception:other");
        EXPECT_TRUE(ip.finished());
    });
    ip.abort_signal().connect([&](const InProgressAborted&) {
        order.push_back("abort");
        EXPECT_FALSE(ip.finished()) << "abort handlers run before the operation fails";
    });
    ip.abort();
    EXPECT_EQ(order, (std::vector<std::string>{"abort", "exception:aborted"}));
}

TEST_F(InProgressTest, ResultCallbacksOfAnAbortedOperationNeverRun) {
    InProgress<int> ip;
    bool ok_ran = false, finished_ran = false;
    ip.connect([&](int) { ok_ran = true; });
    ip.connect_finished([&] { finished_ran = true; });
    ip.set_abortable(true);
    ip.abort();
    step_n(2);
    EXPECT_FALSE(ok_ran);
    EXPECT_TRUE(finished_ran);
    EXPECT_THROW(ip.finish(1), kaa::AlreadyFinished);
}

TEST_F(InProgressTest, AbortWithOriginKeepsIt) {
    InProgress<int> origin, ip;
    ip.set_abortable(true);
    ip.abort(InProgressAborted("cascade", InProgressRef(), origin));
    try {
        (void)ip.result();
        FAIL();
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.inprogress() == ip) << "inprogress always names the aborted operation";
        EXPECT_TRUE(e.origin() == origin);
        EXPECT_EQ(e.message(), "cascade");
    }
    origin.finish(0);
}

TEST_F(InProgressTest, AbortWithTimeoutErrorKeepsItsType) {
    InProgress<int> ip;
    ip.set_abortable(true);
    ip.abort(kaa::TimeoutError("too slow"));
    EXPECT_TRUE(holds<kaa::TimeoutError>(ip.exception()));
}

TEST_F(InProgressTest, AbortFromAnotherThreadIsPostedToTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    InProgress<int> ip;
    std::thread::id handler_thread;
    ip.abort_signal().connect([&](const InProgressAborted&) { handler_thread = std::this_thread::get_id(); });
    std::thread t([&] { ip.abort(); });
    t.join();
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_EQ(handler_thread, loop_thread);
    EXPECT_TRUE(holds<InProgressAborted>(ip.exception()));
}

TEST_F(InProgressTest, AbortHandlerCannotVetoTheAbort) {
    // kaa's handlers could return False to veto; here a slot returns
    // nothing, and even one that throws does not stop the abort.
    InProgress<int> ip;
    ip.abort_signal().connect([](const InProgressAborted&) { throw std::runtime_error("veto?"); });
    EXPECT_TRUE(ip.abort());
    EXPECT_TRUE(ip.failed());
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(InProgressTest, ThrowingAbortHandlerIsReportedAndAbortCompletes) {
    InProgress<int> ip;
    ip.abort_signal().connect([](const InProgressAborted&) { throw std::runtime_error("abort-handler"); });
    ip.abort();
    EXPECT_TRUE(ip.failed());
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "abort-handler");
}

// ---------------------------------------------------------------------------
// noabort()

TEST_F(InProgressTest, NoabortViewFinishesWithTheOriginal) {
    InProgress<int> ip;
    auto view = ip.noabort();
    EXPECT_FALSE(view == ip);
    EXPECT_FALSE(view.finished());
    ip.finish(17);
    EXPECT_EQ(view.result(), 17);
}

TEST_F(InProgressTest, NoabortViewCannotBeAborted) {
    InProgress<int> ip;
    ip.abort_signal().connect([](const InProgressAborted&) {});
    auto view = ip.noabort();
    EXPECT_FALSE(view.abortable());
    EXPECT_THROW(view.abort(), kaa::NotAbortable);
    EXPECT_FALSE(ip.finished()) << "aborting the view must not reach the original";
    ip.finish(1);
    EXPECT_EQ(view.result(), 1);
}

TEST_F(InProgressTest, AbortingTheOriginalFailsTheView) {
    InProgress<int> ip;
    ip.set_abortable(true);
    auto view = ip.noabort();
    std::exception_ptr seen;
    view.connect_exception([&](std::exception_ptr e) { seen = e; });
    ip.abort();
    EXPECT_TRUE(view.failed());
    EXPECT_TRUE(holds<InProgressAborted>(seen));
}

TEST_F(InProgressTest, AbortingTheOriginalDoesNotReportTheUnobservedView) {
    // "Failures caused by abort() are never reported: the aborter knows."
    {
        InProgress<int> ip;
        ip.set_abortable(true);
        auto view = ip.noabort();
        ip.abort();
        EXPECT_TRUE(view.failed());
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

// ---------------------------------------------------------------------------
// Unhandled failures

TEST_F(InProgressTest, UnobservedFailureIsReportedOnceWhenTheLastHandleGoes) {
    {
        InProgress<int> ip;
        InProgress<int> copy = ip;
        ip.fail(boom("unobserved"));
        ip = InProgress<int>(nullptr);
        EXPECT_TRUE(reports.empty()) << "a handle is still alive";
    }
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(holds<std::runtime_error>(seen[0]));
    EXPECT_EQ(message_of(seen[0]), "unobserved");
}

TEST_F(InProgressTest, UnobservedFailureWithNothingConnectedIsPrinted) {
    reports.disconnect();
    testing::internal::CaptureStderr();
    { kaa::make_failed<int>(boom("to-stderr")); }
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("to-stderr"), std::string::npos) << err;
    EXPECT_NE(err.find("std::runtime_error"), std::string::npos) << err;
}

TEST_F(InProgressTest, UnobservedFailureDroppedOnAnotherThreadIsReportedOnTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id seen_on;
    loop.signals().exception.connect([&](std::exception_ptr) { seen_on = std::this_thread::get_id(); });
    auto ip = kaa::make_failed<int>(boom("dropped-elsewhere"));
    std::thread t([ip = std::move(ip)]() mutable { ip = InProgress<int>(nullptr); });
    t.join();
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    EXPECT_EQ(seen_on, loop_thread);
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(InProgressTest, NotReportedWhenResultWasRead) {
    {
        auto ip = kaa::make_failed<int>(boom());
        EXPECT_THROW((void)ip.result(), std::runtime_error);
    }
    EXPECT_TRUE(reports.empty());
}

TEST_F(InProgressTest, NotReportedWhenExceptionWasRead) {
    {
        auto ip = kaa::make_failed<int>(boom());
        (void)ip.exception();
    }
    EXPECT_TRUE(reports.empty());
}

TEST_F(InProgressTest, NotReportedWhenAnExceptionCallbackRan) {
    {
        InProgress<int> ip;
        ip.connect_exception([](std::exception_ptr) {});
        ip.fail(boom());
    }
    {
        InProgress<int> late;
        late.fail(boom());
        late.connect_exception([](std::exception_ptr) {}); // connected after: runs at once
    }
    {
        InProgress<int> both;
        both.connect_both([](int) {}, [](std::exception_ptr) {});
        both.fail(boom());
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(InProgressTest, ReportedWhenOnlyResultCallbacksWereConnected) {
    {
        InProgress<int> ip;
        ip.connect([](int) {});
        ip.fail(boom("only-result-cb"));
    }
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(InProgressTest, NotReportedWhenChainedToAnObservedOperation) {
    {
        InProgress<int> up, down;
        down.finish(up);
        down.connect_exception([](std::exception_ptr) {});
        up.fail(boom());
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(InProgressTest, DownstreamOfAChainIsReportedOnceWhenUnobserved) {
    {
        InProgress<int> up, down;
        down.finish(up);
        up.fail(boom("downstream"));
        up = InProgress<int>(nullptr);
        EXPECT_TRUE(reports.empty()) << "the upstream handed the failure on";
    }
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u) << "exactly once, for the downstream end";
    EXPECT_EQ(message_of(seen[0]), "downstream");
}

TEST_F(InProgressTest, NotReportedWhenAborted) {
    {
        InProgress<int> ip;
        ip.set_abortable(true);
        ip.abort();
    }
    {
        InProgress<void> handlers;
        handlers.abort_signal().connect([](const InProgressAborted&) {});
        handlers.abort();
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(InProgressTest, SuccessIsNeverReported) {
    { kaa::make_finished<int>(1); }
    { InProgress<int> pending; }
    EXPECT_TRUE(reports.empty());
}

// ---------------------------------------------------------------------------
// wait

TEST_F(InProgressTest, WaitOnTheLoopThreadRunsNestedIterations) {
    InProgress<int> ip;
    loop.post([&] { ip.finish(31); });
    EXPECT_EQ(ip.wait(), 31);
    EXPECT_TRUE(ip.wait_for(Duration::zero())) << "finished: returns at once";
}

TEST_F(InProgressTest, WaitForOnTheLoopThreadAcrossSeveralIterations) {
    InProgress<void> ip;
    int hops = 0;
    std::function<void()> hop = [&] {
        if (++hops == 5)
            ip.finish();
        else
            loop.post([&] { hop(); });
    };
    loop.post([&] { hop(); });
    EXPECT_TRUE(ip.wait_for(std::nullopt));
    EXPECT_EQ(hops, 5);
}

TEST_F(InProgressTest, WaitRethrowsTheFailure) {
    InProgress<int> ip;
    loop.post([&] { ip.fail(boom("waited")); });
    EXPECT_THROW((void)ip.wait(), std::runtime_error);
}

TEST_F(InProgressTest, WaitWithTimeoutThrowsTimeoutErrorWhenNothingFinishesIt) {
    InProgress<int> ip;
    EXPECT_FALSE(ip.wait_for(std::chrono::milliseconds(5)));
    bool threw = false;
    try {
        (void)ip.wait(std::chrono::milliseconds(5));
    } catch (const kaa::TimeoutError& e) {
        threw = true;
        EXPECT_TRUE(e.inprogress() == ip);
    }
    EXPECT_TRUE(threw);
    EXPECT_FALSE(ip.finished()) << "a timed-out wait does not affect the operation";
    ip.finish(1);
}

TEST_F(InProgressTest, WaitFromAThreadWhileTheLoopRuns) {
    InProgress<int> ip;
    std::atomic<int> got{0};
    std::thread t([&] {
        got = ip.wait();
        loop.stop();
    });
    run_in_loop([&] { ip.finish(41); });
    t.join();
    EXPECT_EQ(got, 41);
}

TEST_F(InProgressTest, WaitFromAThreadBeforeTheFinishIsPosted) {
    // The thread is certainly blocked (or about to) before the loop finishes
    // the operation: the finish is only posted once the thread says so.
    InProgress<std::string> ip;
    std::promise<void> waiting;
    std::string got;
    std::thread t([&] {
        waiting.set_value();
        got = ip.wait();
    });
    waiting.get_future().wait();
    loop.post([&] { ip.finish("hello"); });
    loop.step(Duration::zero());
    t.join();
    EXPECT_EQ(got, "hello");
}

TEST_F(InProgressTest, WaitFromAThreadWithTimeoutThrowsTimeoutError) {
    InProgress<int> ip;
    bool threw = false;
    std::thread t([&] {
        try {
            (void)ip.wait(std::chrono::milliseconds(5));
        } catch (const kaa::TimeoutError&) {
            threw = true;
        }
    });
    t.join();
    EXPECT_TRUE(threw);
    ip.finish(0);
}

TEST_F(InProgressTest, WaitFromAThreadForAThreadFinish) {
    InProgress<int> ip;
    std::atomic<int> got{0};
    std::thread waiter([&] { got = ip.wait(); });
    std::thread finisher([&] { ip.finish(55); });
    finisher.join();
    // The result is delivered by the loop; the waiter returns once it is.
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    waiter.join();
    EXPECT_EQ(got, 55);
}

TEST(InProgressNoLoop, WaitWithoutALoopOnAPendingOperationThrowsLoopError) {
    InProgress<int> ip;
    EXPECT_THROW((void)ip.wait(), kaa::LoopError);
    ip.finish(2);
    EXPECT_EQ(ip.wait(), 2);
}

TEST(InProgressNoLoop, CallbacksRunSynchronouslyWithoutALoop) {
    InProgress<int> ip;
    int got = 0;
    ip.connect([&](int v) { got = v; });
    std::thread t([&] { ip.finish(3); });
    t.join();
    EXPECT_EQ(got, 3);
}
