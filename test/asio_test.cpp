// SPDX-License-Identifier: BSL-1.0
#include "kaa/asio.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using kaa::test::holds;

namespace {

class AsioTest : public kaa::test::LoopTest {
protected:
    asio::io_context& ctx() { return loop.context(); }
};

// An Asio asynchronous operation whose completion the test decides: `start`
// gets the handler (type-erased) and the operation's cancellation slot.
template <class Signature, class Token, class Start>
auto test_op(Token&& token, Start start) {
    return asio::async_initiate<Token, Signature>(
        [start](auto handler) mutable {
            auto slot = asio::get_associated_cancellation_slot(handler);
            start(kaa::detail::UniqueFunction<Signature>(std::move(handler)), slot);
        },
        token);
}

// Completes later (posted), as Asio operations do, with `args`.
template <class Signature, class... A>
auto completes_with(asio::io_context& ctx, A... args) {
    return [&ctx, args...](kaa::detail::UniqueFunction<Signature> h, asio::cancellation_slot) mutable {
        asio::post(ctx, [h = std::move(h), args...]() mutable { h(args...); });
    };
}

// ---------------------------------------------------------------------------
// use_in_progress: an Asio operation returns an InProgress

TEST_F(AsioTest, AnAsioTimerGivenUseInProgressFinishesItsInProgress) {
    asio::steady_timer timer(ctx(), 1ms);
    kaa::InProgress<void> ip = timer.async_wait(kaa::use_in_progress);
    EXPECT_FALSE(ip.finished());
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_FALSE(ip.failed());
}

TEST_F(AsioTest, APostGivenUseInProgressFinishesOnALaterIteration) {
    kaa::InProgress<void> ip = asio::post(ctx(), kaa::use_in_progress);
    EXPECT_FALSE(ip.finished()) << "never inside the initiating call";
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
}

TEST_F(AsioTest, TheArgumentsAfterTheErrorBecomeTheValue) {
    kaa::InProgress<int> one = test_op<void(error_code, int)>(kaa::use_in_progress,
                                                              completes_with<void(error_code, int)>(ctx(), error_code(), 7));
    kaa::InProgress<std::tuple<int, std::string>> two = test_op<void(error_code, int, std::string)>(
        kaa::use_in_progress,
        completes_with<void(error_code, int, std::string)>(ctx(), error_code(), 1, std::string("x")));
    kaa::InProgress<double> no_error =
        test_op<void(double)>(kaa::use_in_progress, completes_with<void(double)>(ctx(), 2.5));
    ASSERT_TRUE(step_until([&] { return one.finished() && two.finished() && no_error.finished(); }));
    EXPECT_EQ(one.result(), 7);
    EXPECT_EQ(two.result(), std::make_tuple(1, std::string("x")));
    EXPECT_EQ(no_error.result(), 2.5);
}

TEST_F(AsioTest, AnErrorCodeFailsWithKaasIoExceptionThatKeepsTheCode) {
    using Sig = void(error_code, std::size_t);
    auto op = [&](error_code ec) {
        return test_op<Sig>(kaa::use_in_progress("test read"), completes_with<Sig>(ctx(), ec, std::size_t{0}));
    };
    auto reset = op(asio::error::connection_reset);
    auto refused = op(asio::error::connection_refused);
    auto eof = op(asio::error::eof);
    auto unresolved = op(asio::error::host_not_found);
    auto other = op(asio::error::timed_out);
    ASSERT_TRUE(step_until([&] { return other.finished(); }));
    EXPECT_TRUE(holds<kaa::ConnectionReset>(reset.exception()));
    EXPECT_TRUE(holds<kaa::ConnectionRefused>(refused.exception()));
    EXPECT_TRUE(holds<kaa::ConnectionClosed>(eof.exception()));
    EXPECT_TRUE(holds<kaa::ResolveError>(unresolved.exception()));
    try {
        other.result();
        FAIL() << "no exception";
    } catch (const kaa::IOError& e) {
        EXPECT_EQ(e.code(), std::errc::timed_out);
        EXPECT_NE(std::string(e.what()).find("test read"), std::string::npos) << e.what();
    }
}

TEST_F(AsioTest, AnExceptionPtrCompletionFailsWithThatException) {
    using Sig = void(std::exception_ptr, int);
    auto failing = test_op<Sig>(kaa::use_in_progress, completes_with<Sig>(ctx(), std::make_exception_ptr(std::out_of_range("x")), 0));
    auto fine = test_op<Sig>(kaa::use_in_progress, completes_with<Sig>(ctx(), std::exception_ptr(), 3));
    ASSERT_TRUE(step_until([&] { return failing.finished() && fine.finished(); }));
    EXPECT_TRUE(holds<std::out_of_range>(failing.exception()));
    EXPECT_EQ(fine.result(), 3);
}

TEST_F(AsioTest, AsTupleKeepsTheErrorCodeInTheValue) {
    using Sig = void(error_code, std::size_t);
    kaa::InProgress<std::tuple<error_code, std::size_t>> partial = test_op<Sig>(
        asio::as_tuple(kaa::use_in_progress), completes_with<Sig>(ctx(), error_code(asio::error::eof), std::size_t{5}));
    ASSERT_TRUE(step_until([&] { return partial.finished(); }));
    auto [ec, n] = partial.result();
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_EQ(n, 5u);
}

TEST_F(AsioTest, AbortEmitsTerminalCancellationAndFailsAtOnce) {
    std::optional<asio::cancellation_type> seen;
    std::optional<kaa::detail::UniqueFunction<void(error_code)>> handler;
    kaa::InProgress<void> ip =
        test_op<void(error_code)>(kaa::use_in_progress, [&](auto h, asio::cancellation_slot slot) {
            ASSERT_TRUE(slot.is_connected());
            slot.assign([&](asio::cancellation_type t) { seen = t; });
            handler.emplace(std::move(h));
        });
    EXPECT_TRUE(ip.abortable());
    ip.abort();
    EXPECT_EQ(seen, asio::cancellation_type::terminal);
    ASSERT_TRUE(ip.failed()) << "the abort does not wait for the operation's completion";
    EXPECT_TRUE(holds<kaa::InProgressAborted>(ip.exception()));
    // The operation's own completion comes late and is discarded.
    (*handler)(asio::error::operation_aborted);
    EXPECT_TRUE(holds<kaa::InProgressAborted>(ip.exception()));
}

TEST_F(AsioTest, AbortingCancelsARealTimerAndItsLateCompletionIsDiscarded) {
    asio::steady_timer timer(ctx(), 1h);
    kaa::InProgress<void> ip = timer.async_wait(kaa::use_in_progress);
    ip.abort();
    EXPECT_TRUE(ip.failed());
    EXPECT_EQ(timer.cancel(), 0u) << "the abort's cancellation took the wait off the timer";
    // The timer's handler then runs with operation_aborted; the outcome stays the abort.
    step_n(3);
    EXPECT_TRUE(holds<kaa::InProgressAborted>(ip.exception()));
}

TEST_F(AsioTest, CancellingTheAsioObjectIsAnIOErrorWithOperationAborted) {
    asio::steady_timer timer(ctx(), 1h);
    kaa::InProgress<void> ip = timer.async_wait(kaa::use_in_progress);
    timer.cancel();
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    try {
        ip.result();
        FAIL() << "no exception";
    } catch (const kaa::IOError& e) {
        EXPECT_EQ(e.code(), std::errc::operation_canceled); // asio::error::operation_aborted
    }
}

TEST_F(AsioTest, AHandlerDestroyedWithoutBeingCalledFailsWithLoopError) {
    kaa::InProgress<void> ip = test_op<void(error_code)>(kaa::use_in_progress, [](auto h, asio::cancellation_slot) {
        auto dropped = std::move(h); // an io_context destroyed with the operation queued does this
    });
    ASSERT_TRUE(ip.failed());
    EXPECT_TRUE(holds<kaa::LoopError>(ip.exception()));
}

TEST_F(AsioTest, AnInitiationThatThrowsLeavesNoReport) {
    auto start = [](auto, asio::cancellation_slot) { throw std::runtime_error("cannot start"); };
    EXPECT_THROW((void)test_op<void(error_code)>(kaa::use_in_progress, start), std::runtime_error);
    // TearDown fails on any report: the dropped handler's LoopError is not one.
}

// ---------------------------------------------------------------------------
// Stackful coroutines wait on Asio operations and awaitables

TEST_F(AsioTest, AStackfulCoroutineAwaitsAnAsioOperation) {
    auto co = kaa::coroutine([&] {
        asio::steady_timer timer(ctx(), 1ms);
        kaa::this_coroutine::await(timer.async_wait(kaa::use_in_progress));
        kaa::this_coroutine::await(asio::post(ctx(), kaa::use_in_progress));
        return 5;
    });
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    EXPECT_EQ(co.result(), 5);
}

TEST_F(AsioTest, AbortingTheCoroutineCancelsTheAsioOperationItWaitsOn) {
    std::optional<asio::cancellation_type> seen;
    std::optional<kaa::detail::UniqueFunction<void(error_code)>> handler;
    bool unwound = false;
    auto co = kaa::coroutine([&] {
        try {
            kaa::this_coroutine::await(test_op<void(error_code)>(kaa::use_in_progress, [&](auto h, asio::cancellation_slot slot) {
                slot.assign([&](asio::cancellation_type t) { seen = t; });
                handler.emplace(std::move(h));
            }));
        } catch (const kaa::InProgressAborted&) {
            unwound = true;
            throw;
        }
    });
    co.abort();
    EXPECT_TRUE(unwound);
    EXPECT_EQ(seen, asio::cancellation_type::terminal) << "the abort cascaded into the Asio operation";
    EXPECT_TRUE(co.failed());
}

#if defined(BOOST_ASIO_HAS_CO_AWAIT)

asio::awaitable<int> answer_after(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
    co_return 42;
}

TEST_F(AsioTest, AStackfulCoroutineAwaitsAnAsioAwaitable) {
    auto co = kaa::coroutine([] { return kaa::this_coroutine::await(answer_after(1ms)) + 1; });
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    EXPECT_EQ(co.result(), 43);
}

TEST_F(AsioTest, AnAwaitableThatThrowsFailsItsInProgressWithThatException) {
    auto thrower = []() -> asio::awaitable<void> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        throw std::invalid_argument("bad");
    };
    kaa::InProgress<void> ip = kaa::spawn(thrower());
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_TRUE(holds<std::invalid_argument>(ip.exception()));
}

TEST_F(AsioTest, AbortingASpawnedAwaitableCancelsTheOperationItAwaits) {
    bool saw_cancel = false;
    auto sleeper = [&]() -> asio::awaitable<int> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
            saw_cancel = e.code() == asio::error::operation_aborted;
            throw;
        }
        co_return 1;
    };
    kaa::InProgress<int> ip = kaa::spawn(sleeper());
    step_n(2);
    ip.abort();
    EXPECT_TRUE(holds<kaa::InProgressAborted>(ip.exception()));
    ASSERT_TRUE(step_until([&] { return saw_cancel; }));
    EXPECT_TRUE(holds<kaa::InProgressAborted>(ip.exception())) << "the awaitable's late exception is discarded";
}

// ---------------------------------------------------------------------------
// async_wait: an InProgress as an Asio operation

TEST_F(AsioTest, AnAwaitableCoAwaitsAnInProgress) {
    kaa::InProgress<int> job;
    auto user = [&]() -> asio::awaitable<int> { co_return co_await kaa::async_wait(job, asio::use_awaitable) + 1; };
    kaa::InProgress<int> ip = kaa::spawn(user());
    step_n(2);
    EXPECT_FALSE(ip.finished());
    job.finish(41);
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_EQ(ip.result(), 42);
}

TEST_F(AsioTest, AnAwaitableSeesTheInProgressFailureRethrown) {
    std::string caught;
    auto user = [&]() -> asio::awaitable<void> {
        try {
            co_await kaa::async_wait(kaa::make_failed<int>(std::make_exception_ptr(std::runtime_error("nope"))),
                                     asio::use_awaitable);
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
    };
    kaa::InProgress<void> ip = kaa::spawn(user());
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_EQ(caught, "nope");
}

TEST_F(AsioTest, AKaaCoroutineAndAnAwaitableWaitOnEachOther) {
    auto inner = kaa::coroutine([] {
        kaa::this_coroutine::await(kaa::delay(1ms));
        return std::string("from kaa");
    });
    auto outer = [&]() -> asio::awaitable<std::string> {
        std::string s = co_await kaa::async_wait(inner, asio::use_awaitable);
        co_return s + ", through Asio";
    };
    auto co = kaa::coroutine([&] { return kaa::this_coroutine::await(outer()); });
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    EXPECT_EQ(co.result(), "from kaa, through Asio");
}

#endif // BOOST_ASIO_HAS_CO_AWAIT

TEST_F(AsioTest, AsyncWaitWithACallbackNeverCallsBackInsideTheCall) {
    std::optional<int> got;
    kaa::async_wait(kaa::make_finished<int>(3), [&](std::exception_ptr e, int v) {
        EXPECT_FALSE(e);
        got = v;
    });
    EXPECT_FALSE(got) << "an Asio handler never runs inside its initiating function";
    ASSERT_TRUE(step_until([&] { return got.has_value(); }));
    EXPECT_EQ(got, 3);
}

TEST_F(AsioTest, AsioCancellationAbortsTheInProgressNobodyElseWaitsOn) {
    asio::cancellation_signal cancel;
    std::exception_ptr got;
    bool called = false;
    kaa::InProgress<void> nap = kaa::delay(1h);
    kaa::async_wait(nap, asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                        called = true;
                        got = e;
                    }));
    cancel.emit(asio::cancellation_type::terminal);
    EXPECT_TRUE(nap.failed()) << "the abort cascaded into the delay";
    EXPECT_TRUE(holds<kaa::InProgressAborted>(nap.exception()));
    ASSERT_TRUE(step_until([&] { return called; }));
    EXPECT_TRUE(holds<kaa::InProgressAborted>(got));
}

TEST_F(AsioTest, AsioCancellationOnlyStopsWaitingWhenSomeoneElseWaits) {
    asio::cancellation_signal cancel;
    std::exception_ptr got;
    bool called = false;
    kaa::InProgress<int> shared;
    shared.abort_signal(); // abortable
    std::optional<int> other;
    shared.connect([&](int v) { other = v; });
    kaa::async_wait(shared, asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, int) {
                        called = true;
                        got = e;
                    }));
    cancel.emit(asio::cancellation_type::terminal);
    ASSERT_TRUE(step_until([&] { return called; }));
    EXPECT_TRUE(holds<kaa::InProgressAborted>(got));
    EXPECT_FALSE(shared.finished()) << "the other waiter's operation goes on";
    shared.finish(9);
    EXPECT_EQ(other, 9);
}

TEST_F(AsioTest, TotalCancellationIsNotHonouredBecauseAnAbortHasEffects) {
    asio::cancellation_signal cancel;
    bool called = false;
    kaa::InProgress<void> nap = kaa::delay(1ms);
    kaa::async_wait(nap, asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                        called = true;
                        EXPECT_FALSE(e);
                    }));
    cancel.emit(asio::cancellation_type::total);
    EXPECT_FALSE(nap.finished());
    ASSERT_TRUE(step_until([&] { return called; }));
}

TEST_F(AsioTest, AsyncWaitOnAnInProgressEveryoneDroppedEndsWithLoopError) {
    std::exception_ptr got;
    bool called = false;
    kaa::async_wait(kaa::InProgress<int>(), [&](std::exception_ptr e, int) {
        called = true;
        got = e;
    });
    ASSERT_TRUE(step_until([&] { return called; }));
    EXPECT_TRUE(holds<kaa::LoopError>(got));
}

TEST_F(AsioTest, AsyncWaitOffTheLoopThreadThrowsWrongThread) {
    kaa::InProgress<int> ip;
    bool threw = false;
    std::thread([&] {
        try {
            kaa::async_wait(ip, [](std::exception_ptr, int) {});
        } catch (const kaa::WrongThread&) {
            threw = true;
        }
    }).join();
    EXPECT_TRUE(threw);
}

} // namespace
