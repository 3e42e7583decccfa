// SPDX-License-Identifier: BSL-1.0
#include "kaa/in_progress_all.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <string>
#include <thread>

#include "kaa/coroutine.hpp"
#include "kaa/future.hpp"
#include "kaa/in_progress_callable.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::this_coroutine::await;
using namespace std::chrono_literals;

class Toolkit : public kaa::test::LoopTest {
protected:
    template <class T>
    bool finish_wait(const InProgress<T>& ip) {
        return step_until([&] { return ip.finished(); }, 100000);
    }
    static InProgress<int> abortable_pending() {
        InProgress<int> ip;
        ip.abort_signal().connect([](const InProgressAborted&) {});
        return ip;
    }
};

// ---- any --------------------------------------------------------------------

TEST_F(Toolkit, AnyFinishesWithTheFirstMemberAcrossKinds) {
    kaa::Signal<void(std::string)> sig;
    InProgress<void> never;
    auto co = kaa::coroutine([&] { return await(never), 1; });
    auto job = kaa::threaded([] { return std::string("from a thread"); });
    auto any = kaa::any(co, sig.next(), kaa::delay(1h), job);
    ASSERT_TRUE(finish_wait(any));
    EXPECT_EQ(any.result().index, 3u);
    EXPECT_EQ(any.result().value.index(), 3u) << "different types: a variant, alternative = index";
    EXPECT_EQ(std::get<3>(any.result().value), "from a thread");
    EXPECT_EQ(job.result(), "from a thread");
    EXPECT_FALSE(co.finished()) << "any() does not abort the others when it finishes";
    co.abort();
}

TEST_F(Toolkit, AnyWithAFinishedMemberFinishesAtOnce) {
    InProgress<int> pending;
    auto any = kaa::any(pending, kaa::make_finished<int>(4), kaa::make_finished<int>(5));
    ASSERT_TRUE(any.finished());
    EXPECT_EQ(any.result().index, 1u) << "the lowest index among finished members";
    EXPECT_EQ(any.result().value, 4);
}

TEST_F(Toolkit, AnyFinishesWithTheIndexAndTheMembersValue) {
    InProgress<int> a, b;
    auto any = kaa::any(a, b);
    static_assert(std::is_same_v<decltype(any), InProgress<kaa::AnyResult<int>>>, "one type: its value");
    b.finish(42);
    ASSERT_TRUE(any.finished());
    EXPECT_EQ(any.result().index, 1u);
    EXPECT_EQ(any.result().value, 42);
    a.finish(1);
    std::vector<InProgress<void>> vs(2);
    auto vany = kaa::any(vs);
    vs[0].finish();
    EXPECT_EQ(vany.result().index, 0u);
    InProgress<int> erased;
    auto rany = kaa::any(std::vector<kaa::InProgressRef>{erased});
    erased.finish(3);
    EXPECT_TRUE(rany.result().value == erased) << "type-erased: the member itself";
}

TEST_F(Toolkit, AnyIfSkipsRejectedResultsButTakesTheLastMember) {
    InProgress<int> a, b, c;
    auto odd = kaa::any_if([](const kaa::AnyResult<int>& r) { return r.value % 2 == 1; }, a, b, c);
    a.finish(2);
    EXPECT_FALSE(odd.finished()) << "rejected by the filter";
    b.finish(3);
    ASSERT_TRUE(odd.finished());
    EXPECT_EQ(odd.result().index, 1u);
    EXPECT_EQ(odd.result().value, 3);
    c.finish(5);

    InProgress<int> x, y;
    auto none = kaa::any_if([](const kaa::AnyResult<int>&) { return false; }, x, y);
    x.finish(1);
    EXPECT_FALSE(none.finished());
    y.finish(2);
    ASSERT_TRUE(none.finished()) << "the last member is taken whatever the filter says (kaa)";
    EXPECT_EQ(none.result().index, 1u);

    InProgress<int> f, g;
    auto failing = kaa::any_if([](const kaa::AnyResult<int>&) { return false; }, f, g);
    f.fail(std::runtime_error("not filtered"));
    EXPECT_TRUE(failing.failed()) << "a failure fails it at once";
    EXPECT_THROW(failing.result(), std::runtime_error);
    g.finish(0);
}

TEST_F(Toolkit, AnyFailsWithTheFirstMembersFailure) {
    InProgress<int> a, b;
    auto any = kaa::any(a, b);
    b.fail(std::runtime_error("b broke"));
    ASSERT_TRUE(any.failed());
    EXPECT_THROW(any.result(), std::runtime_error);
    a.finish(1);  // finishing later is harmless
}

TEST_F(Toolkit, EmptyAnyIsAnError) { EXPECT_THROW(kaa::any(std::vector<kaa::InProgressRef>{}), std::invalid_argument); }

TEST_F(Toolkit, AbortingAnyAbortsOnlyUnsharedMembers) {
    auto alone = abortable_pending();
    auto shared = abortable_pending();
    bool other_waiter = false;
    shared.connect([&](int) { other_waiter = true; });
    auto any = kaa::any(alone, shared);
    any.abort();
    EXPECT_TRUE(any.failed());
    EXPECT_TRUE(alone.failed()) << "nobody else waited on it";
    EXPECT_FALSE(shared.finished()) << "someone else waits on it";
    shared.finish(2);
    EXPECT_TRUE(other_waiter);
}

// ---- all --------------------------------------------------------------------

TEST_F(Toolkit, AllGivesEveryResultAcrossKinds) {
    kaa::Signal<void(int)> sig;
    auto co = kaa::coroutine([] {
        await(kaa::delay(1ms));
        return std::string("co");
    });
    auto job = kaa::threaded([] { return 2.5; });
    auto all = kaa::all(co, job, sig.next(), kaa::delay(1ms));
    sig.emit(7);
    ASSERT_TRUE(finish_wait(all));
    auto [s, d, i, nothing] = all.result();
    EXPECT_EQ(s, "co");
    EXPECT_EQ(d, 2.5);
    EXPECT_EQ(i, 7);
    (void)nothing;
}

TEST_F(Toolkit, AllOfAVector) {
    std::vector<InProgress<int>> jobs;
    for (int i = 0; i < 5; ++i)
        jobs.push_back(kaa::threaded([i] { return i * i; }));
    auto all = kaa::all(jobs);
    ASSERT_TRUE(finish_wait(all));
    EXPECT_EQ(all.result(), (std::vector<int>{0, 1, 4, 9, 16}));
}

TEST_F(Toolkit, EmptyAllFinishesAtOnce) {
    auto all = kaa::all(std::vector<InProgress<int>>{});
    ASSERT_TRUE(all.finished());
    EXPECT_TRUE(all.result().empty());
}

TEST_F(Toolkit, AllFailsWithTheFirstFailureAndAbortsTheRest) {
    auto slow = abortable_pending();
    InProgress<int> failing;
    auto all = kaa::all(slow, failing);
    failing.fail(std::runtime_error("one failed"));
    ASSERT_TRUE(all.failed());
    EXPECT_THROW(all.result(), std::runtime_error);
    EXPECT_TRUE(slow.failed()) << "the member nobody else waits on is aborted";
    EXPECT_THROW(slow.result(), InProgressAborted);
}

TEST_F(Toolkit, AbortingAllCascadesIntoACoroutineMember) {
    InProgress<void> never;
    bool unwound = false;
    auto co = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted&) {
            unwound = true;
            throw;
        }
    });
    auto all = kaa::all(co, kaa::delay(1h));
    all.abort();
    EXPECT_TRUE(unwound);
    EXPECT_TRUE(co.failed());
}

TEST_F(Toolkit, AllAggregatesProgress) {
    kaa::CoroutineOptions opts;
    opts.progress = true;
    InProgress<void> step;
    auto a = kaa::coroutine(opts, [&] {
        auto& p = kaa::this_coroutine::progress();
        p.set(0, 4);
        await(step);
        p.set(2);
        await(step.noabort());
    });
    InProgress<void> plain;  // no Progress: counts 0, then 100 when finished
    auto all = kaa::all(a, plain);
    auto progress = all.progress();
    ASSERT_TRUE(progress);
    EXPECT_EQ(progress->max(), 200) << "each member weighs 100";
    EXPECT_EQ(progress->pos(), 0);
    step.finish();
    EXPECT_EQ(progress->pos(), 100) << "a finished";
    plain.finish();
    EXPECT_EQ(progress->pos(), 200);
    EXPECT_DOUBLE_EQ(progress->percentage(), 100.0);
    EXPECT_TRUE(all.finished());
}

TEST_F(Toolkit, AllProgressNeverMovesBack) {
    // Summing positions and maxima made the bar go backwards when a member
    // reported its total late ("1 of 4", then "2 of 9"); each member weighs
    // the same now, and the combined position never shrinks.
    kaa::CoroutineOptions opts;
    opts.progress = true;
    InProgress<void> go_a, go_b, end;
    auto a = kaa::coroutine(opts, [&] {
        auto& p = kaa::this_coroutine::progress();
        p.set(1, 4);
        await(go_a);
        p.set(1, 8);  // its own total grew: its own fraction shrinks
        await(end.noabort());
    });
    auto b = kaa::coroutine(opts, [&] {
        await(go_b);
        kaa::this_coroutine::progress().set(1, 5);  // its total, reported late
        await(end.noabort());
    });
    auto all = kaa::all(a, b);
    auto progress = all.progress();
    std::vector<double> seen{progress->percentage()};
    progress->changed().connect([&](const kaa::Progress& p) { seen.push_back(p.percentage()); });
    go_b.finish();
    go_a.finish();
    end.finish();
    ASSERT_TRUE(all.finished());
    EXPECT_DOUBLE_EQ(seen.front(), 12.5);
    EXPECT_DOUBLE_EQ(seen.back(), 100.0);
    for (std::size_t i = 1; i < seen.size(); ++i)
        EXPECT_GE(seen[i], seen[i - 1]) << "step " << i;
}

// ---- timeout ----------------------------------------------------------------

TEST_F(Toolkit, TimeoutWithoutAbortLeavesTheOperation) {
    auto op = abortable_pending();
    auto to = op.timeout(1ms);
    ASSERT_TRUE(finish_wait(to));
    EXPECT_THROW(to.result(), kaa::TimeoutError);
    EXPECT_FALSE(op.finished());
    op.finish(3);
    EXPECT_EQ(op.result(), 3);
}

TEST_F(Toolkit, TimeoutWithAbortAbortsTheOperation) {
    auto op = abortable_pending();
    auto to = op.timeout(1ms, true);
    ASSERT_TRUE(finish_wait(to));
    try {
        to.result();
        FAIL();
    } catch (const kaa::TimeoutError& e) {
        EXPECT_TRUE(e.inprogress() == op);
    }
    EXPECT_TRUE(op.failed());
    EXPECT_THROW(op.result(), kaa::TimeoutError) << "the guarded operation is aborted with the timeout";
}

TEST_F(Toolkit, OperationFinishingFirstWins) {
    InProgress<int> op;
    auto to = op.timeout(1h);
    op.finish(9);
    ASSERT_TRUE(to.finished());
    EXPECT_EQ(to.result(), 9);
}

TEST_F(Toolkit, TimeoutAbortOnANonAbortableOperationIsRejectedAtTheCall) {
    InProgress<int> plain;
    EXPECT_THROW(plain.timeout(1ms, true), kaa::NotAbortable);
}

TEST_F(Toolkit, TimeoutAbortOnAClaimedOperationIsRejectedToo) {
    auto op = abortable_pending();
    EXPECT_THROW(op.noabort().timeout(1ms, true), kaa::NotAbortable) << "a noabort() view";
    InProgress<int> chained;
    chained.abort_signal().connect([](const InProgressAborted&) {});
    chained.finish(op);  // claimed: its outcome is decided by op
    EXPECT_THROW(chained.timeout(1ms, true), kaa::NotAbortable);
    op.finish(1);
}

TEST_F(Toolkit, FromFutureStopsWaitingWhenAborted) {
    std::promise<int> never;
    auto ip = kaa::from_future(never.get_future());
    ip.abort();
    EXPECT_TRUE(ip.failed());
    auto& pool = kaa::ThreadPool::default_pool();
    for (int i = 0; i < 10'000'000 && pool.stats().running != 0; ++i) {
        loop.step(kaa::Duration::zero());
        std::this_thread::yield();
    }
    EXPECT_EQ(pool.stats().running, 0u) << "the job saw the abort instead of blocking in get()";
}

TEST_F(Toolkit, AbortingTheTimeoutView) {
    auto op = abortable_pending();
    auto to = op.timeout(1h, true);
    to.abort();
    EXPECT_TRUE(to.failed());
    EXPECT_TRUE(op.failed()) << "with abort=true, aborting the view aborts the operation";
    auto op2 = abortable_pending();
    auto to2 = op2.timeout(1h);
    to2.abort();
    EXPECT_FALSE(op2.finished()) << "without, the operation goes on";
}

TEST_F(Toolkit, AnyWithATimeoutInACoroutine) {
    InProgress<int> slow;
    auto co = kaa::coroutine([&] {
        try {
            return await(slow.timeout(1ms));
        } catch (const kaa::TimeoutError&) {
            return -1;
        }
    });
    ASSERT_TRUE(finish_wait(co));
    EXPECT_EQ(co.result(), -1);
}

// ---- bridges ----------------------------------------------------------------

// A callback-style API, as a C library or an old toolkit would offer it.
void legacy_fetch(std::string url, std::function<void(int, std::string)> done,
                  std::function<void(std::exception_ptr)> error) {
    kaa::main_loop().post([url, done, error] {
        if (url.empty())
            error(std::make_exception_ptr(std::invalid_argument("empty url")));
        else
            done(200, "body of " + url);
    });
}

TEST_F(Toolkit, CallbackApiMadeAwaitable) {
    auto co = kaa::coroutine([] {
        kaa::InProgressCallable<int, std::string> done;
        legacy_fetch("a", done, done.on_error());
        auto [code, body] = await(done);
        return std::to_string(code) + " " + body;
    });
    ASSERT_TRUE(finish_wait(co));
    EXPECT_EQ(co.result(), "200 body of a");

    kaa::InProgressCallable<int, std::string> failed;
    legacy_fetch("", failed, failed.on_error());
    ASSERT_TRUE(finish_wait(failed));
    EXPECT_THROW(failed.result(), std::invalid_argument);
}

TEST_F(Toolkit, InProgressCallableTranslatesCalls) {
    kaa::InProgressCallable<> none;
    none();
    EXPECT_TRUE(none.finished());
    kaa::InProgressCallable<int> one;
    one(5);
    EXPECT_EQ(one.result(), 5);
    EXPECT_THROW(one(6), kaa::AlreadyFinished);
}

TEST_F(Toolkit, SignalAwaited) {
    kaa::Signal<void(int)> sig;
    auto co = kaa::coroutine([&] { return await(sig.next()) * 2; });
    sig.emit(21);
    EXPECT_EQ(co.result(), 42);
}

TEST_F(Toolkit, ExecuteFinishesWithResultOrException) {
    EXPECT_EQ(kaa::execute([] { return 3; }).result(), 3);
    auto bad = kaa::execute([]() -> int { throw std::range_error("x"); });
    EXPECT_THROW(bad.result(), std::range_error);
}

TEST_F(Toolkit, ToFuture) {
    InProgress<int> ip;
    auto f = kaa::to_future(ip);
    std::thread waiter([&] { EXPECT_EQ(f.get(), 8); });
    ip.finish(8);
    waiter.join();
    InProgress<void> failing;
    auto f2 = kaa::to_future(failing);
    failing.fail(std::runtime_error("no"));
    EXPECT_THROW(f2.get(), std::runtime_error);
}

TEST_F(Toolkit, FromFuture) {
    std::promise<std::string> p;
    auto ip = kaa::from_future(p.get_future());
    std::thread producer([&] { p.set_value("made elsewhere"); });
    ASSERT_TRUE(finish_wait(ip));
    producer.join();
    EXPECT_EQ(ip.result(), "made elsewhere");
}

} // namespace
