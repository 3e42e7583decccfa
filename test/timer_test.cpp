// SPDX-License-Identifier: BSL-1.0
#include "kaa/timer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "kaa/main_loop.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using kaa::Duration;

namespace {

class TimerTest : public kaa::test::LoopTest {
protected:
    // Steps until a reference one-shot timer of `d` has fired: any timer with
    // an earlier deadline has had its chance by then.
    void run_past(Duration d) {
        bool fired = false;
        kaa::OneShotTimer reference([&] { fired = true; });
        reference.start(d);
        ASSERT_TRUE(step_until([&] { return fired; }));
    }
};

// ---------------------------------------------------------------------------
// Repeating timers

TEST_F(TimerTest, IsCreatedStopped) {
    kaa::Timer t([] {});
    EXPECT_FALSE(t.active());
    EXPECT_EQ(t.interval(), std::nullopt);
}

TEST_F(TimerTest, RepeatsUntilTheCallbackReturnsFalse) {
    int calls = 0;
    kaa::Timer t([&] { return ++calls < 3; });
    t.start(1ms);
    EXPECT_TRUE(t.active());
    EXPECT_EQ(t.interval(), Duration(1ms));
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(t.interval(), std::nullopt);
    run_past(5ms);
    EXPECT_EQ(calls, 3) << "a timer stopped by returning false must not fire again";
}

TEST_F(TimerTest, VoidCallbackKeepsRepeatingUntilStopped) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 5; }));
    EXPECT_TRUE(t.active());
    t.stop();
    EXPECT_FALSE(t.active());
    EXPECT_EQ(t.interval(), std::nullopt);
    run_past(5ms);
    EXPECT_EQ(calls, 5);
    t.stop(); // no-op when stopped
    EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, TimersFireInDeadlineOrder) {
    std::vector<int> order;
    kaa::OneShotTimer slow([&] { order.push_back(3); });
    kaa::OneShotTimer fast([&] { order.push_back(1); });
    kaa::OneShotTimer middle([&] { order.push_back(2); });
    slow.start(5ms);
    fast.start(1ms);
    middle.start(3ms);
    ASSERT_TRUE(step_until([&] { return order.size() == 3; }));
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(TimerTest, ShorterRepeatingTimerFiresFirst) {
    std::vector<char> order;
    kaa::Timer slow([&] {
        order.push_back('s');
        return false;
    });
    kaa::Timer fast([&] {
        order.push_back('f');
        return std::count(order.begin(), order.end(), 'f') < 3;
    });
    slow.start(4ms);
    fast.start(1ms);
    ASSERT_TRUE(step_until([&] { return !slow.active() && !fast.active(); }));
    // Both deadlines are armed together and Asio runs expired waits earliest
    // deadline first, so the first event is deterministic; the rest depends
    // on how late the loop runs (missed ticks are dropped), only counts are.
    ASSERT_FALSE(order.empty());
    EXPECT_EQ(order.front(), 'f');
    EXPECT_EQ(std::count(order.begin(), order.end(), 's'), 1);
    EXPECT_EQ(std::count(order.begin(), order.end(), 'f'), 3);
}

TEST_F(TimerTest, StartNowCallsSynchronouslyThenSchedules) {
    int calls = 0;
    kaa::Timer t([&] {
        ++calls;
        return false; // ignored for the synchronous call
    });
    t.start(1ms, true);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(t.active()) << "the return value of the now-call must not affect scheduling";
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    EXPECT_EQ(calls, 2);
}

TEST_F(TimerTest, StartWhileActiveRestartsWithTheNewInterval) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    t.start(1h);
    t.start(1ms);
    EXPECT_EQ(t.interval(), Duration(1ms));
    ASSERT_TRUE(step_until([&] { return calls == 2; }));
    t.stop();
}

TEST_F(TimerTest, RestartFromInsideItsOwnCallback) {
    int calls = 0;
    std::vector<std::optional<Duration>> seen;
    std::function<bool()> body;
    kaa::Timer t([&] { return body(); });
    body = [&] {
        ++calls;
        seen.push_back(t.interval());
        if (calls == 1) {
            t.start(2ms);
            return false; // the restart wins over the return value
        }
        return calls < 3;
    };
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(seen, (std::vector<std::optional<Duration>>{Duration(1ms), Duration(2ms), Duration(2ms)}));
}

TEST_F(TimerTest, StopFromInsideItsOwnCallback) {
    int calls = 0;
    std::function<void()> body;
    kaa::Timer t([&] { body(); });
    body = [&] {
        ++calls;
        t.stop();
        EXPECT_FALSE(t.active());
    };
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    run_past(5ms);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, DestroyingTheTimerStopsIt) {
    int calls = 0;
    auto t = std::make_unique<kaa::Timer>([&] { ++calls; });
    t->start(1ms);
    t.reset();
    run_past(5ms);
    EXPECT_EQ(calls, 0);
}

TEST_F(TimerTest, DestroyingTheTimerFromItsOwnCallback) {
    int calls = 0;
    std::unique_ptr<kaa::Timer> t;
    t = std::make_unique<kaa::Timer>([&] {
        ++calls;
        t.reset();
    });
    t->start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    EXPECT_EQ(t, nullptr);
    run_past(5ms);
    EXPECT_EQ(calls, 1);
}

TEST_F(TimerTest, MoveAssignmentStopsTheOverwrittenTimer) {
    int a = 0, b = 0;
    kaa::Timer ta([&] { ++a; });
    kaa::Timer tb([&] {
        ++b;
        return false;
    });
    ta.start(1ms);
    tb.start(1ms);
    ta = std::move(tb);
    ASSERT_TRUE(step_until([&] { return !ta.active(); }));
    run_past(5ms);
    EXPECT_EQ(a, 0);
    EXPECT_EQ(b, 1);
    EXPECT_THROW(tb.start(1ms), kaa::EmptyHandle); // NOLINT(bugprone-use-after-move)
}

TEST_F(TimerTest, MissedTicksAreDroppedNotBurst) {
    // The first call overruns many intervals. Phase-locked rescheduling puts
    // the next deadline after now, so the step that ran the slow call does not
    // run a burst of catch-up calls.
    int calls = 0;
    kaa::Timer t([&] {
        if (++calls == 1) {
            auto until = kaa::Clock::now() + 50ms;
            while (kaa::Clock::now() < until) {
            }
        }
        return calls < 4;
    });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls >= 1; }));
    EXPECT_LT(calls, 10) << "a slow callback must not be followed by a catch-up burst";
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    EXPECT_EQ(calls, 4);
}

// ---------------------------------------------------------------------------
// Interval zero and iteration boundaries

TEST_F(TimerTest, ZeroIntervalFiresOncePerIteration) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    t.start(Duration::zero());
    for (int i = 1; i <= 5; ++i) {
        loop.step(Duration::zero());
        EXPECT_EQ(calls, i);
    }
    t.stop();
    step_n(3);
    EXPECT_EQ(calls, 5);
}

TEST_F(TimerTest, ZeroIntervalTimerKeepsTheLoopFromBlocking) {
    int calls = 0;
    kaa::Timer t([&] { return ++calls < 3; });
    t.start(Duration::zero());
    // step() without a timeout would block forever if the timer did not count
    // as ready work.
    loop.step();
    loop.step();
    loop.step();
    EXPECT_EQ(calls, 3);
    EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, TimerStartedFromPostedWorkDoesNotFireInThatIteration) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    loop.post([&] { t.start(Duration::zero()); });
    loop.step(Duration::zero());
    EXPECT_TRUE(t.active());
    EXPECT_EQ(calls, 0);
    loop.step(Duration::zero());
    EXPECT_EQ(calls, 1);
    t.stop();
}

TEST_F(TimerTest, TimerStartedFromAnAsioHandlerDoesNotFireInThatIteration) {
    int calls = 0;
    kaa::OneShotTimer t([&] { ++calls; });
    boost::asio::post(loop.context(), [&] { t.start(Duration::zero()); });
    loop.step(Duration::zero());
    EXPECT_TRUE(t.active());
    EXPECT_EQ(calls, 0);
    loop.step(Duration::zero());
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, TimerStartedFromATimerCallbackDoesNotFireInThatIteration) {
    int inner_calls = 0;
    int steps = 0, started_in = -1, fired_in = -1;
    loop.signals().step.connect([&] { ++steps; });
    kaa::OneShotTimer inner([&] {
        ++inner_calls;
        fired_in = steps;
    });
    kaa::OneShotTimer outer([&] {
        started_in = steps;
        inner.start(Duration::zero());
    });
    outer.start(1ms);
    ASSERT_TRUE(step_until([&] { return inner_calls == 1; }));
    EXPECT_GT(fired_in, started_in);
}

// ---------------------------------------------------------------------------
// One-shot timers

TEST_F(TimerTest, OneShotFiresOnceAndIsInactiveDuringItsCallback) {
    int calls = 0;
    bool active_inside = true;
    std::function<void()> body;
    kaa::OneShotTimer t([&] { body(); });
    body = [&] {
        ++calls;
        active_inside = t.active();
    };
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    EXPECT_FALSE(active_inside) << "a one-shot timer unregisters before invoking";
    EXPECT_FALSE(t.active());
    run_past(5ms);
    EXPECT_EQ(calls, 1);
}

TEST_F(TimerTest, OneShotRestartsFromInsideItsCallback) {
    int calls = 0;
    std::function<bool()> body;
    kaa::OneShotTimer t([&] { return body(); });
    body = [&] {
        if (++calls < 3)
            t.start(1ms);
        return false; // ignored by one-shot timers: the restart stands
    };
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 3; }));
    EXPECT_FALSE(t.active());
    run_past(5ms);
    EXPECT_EQ(calls, 3);
}

TEST_F(TimerTest, StartReturnsNothing) {
    // kaa's Timer.start() returned an InProgress; RAII handles say whether a
    // timer runs (active()), and call_later() returns its own handle.
    static_assert(std::is_void_v<decltype(std::declval<kaa::Timer&>().start(1ms))>);
    static_assert(std::is_void_v<decltype(std::declval<kaa::OneShotTimer&>().start(1ms))>);
    kaa::OneShotTimer t([] {});
    t.start(1h);
    EXPECT_TRUE(t.active());
    t.stop();
}

// ---------------------------------------------------------------------------
// Weak timers

TEST_F(TimerTest, WeakTimerWhoseOwnerDiedNeverFires) {
    auto owner = std::make_shared<int>(1);
    int calls = 0;
    kaa::WeakTimer t(owner, [&] { ++calls; });
    t.start(1ms);
    EXPECT_TRUE(t.active());
    owner.reset();
    EXPECT_FALSE(t.active()) << "active() must be false as soon as the owner is gone";
    EXPECT_EQ(t.interval(), std::nullopt);
    run_past(5ms);
    EXPECT_EQ(calls, 0);
}

TEST_F(TimerTest, WeakTimerFiresWhileItsOwnerLivesAndStopsAfter) {
    auto owner = std::make_shared<int>(1);
    std::weak_ptr<int> weak = owner;
    int calls = 0;
    bool owner_alive_inside = false;
    kaa::WeakTimer t(weak, [&] {
        ++calls;
        owner_alive_inside = !weak.expired();
    });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls == 2; }));
    EXPECT_TRUE(owner_alive_inside);
    owner.reset();
    EXPECT_FALSE(t.active());
    run_past(5ms);
    EXPECT_EQ(calls, 2);
}

TEST_F(TimerTest, WeakTimerStartedAfterItsOwnerDiedStaysStopped) {
    auto owner = std::make_shared<int>(1);
    int calls = 0;
    kaa::WeakTimer t(owner, [&] { ++calls; });
    owner.reset();
    t.start(1ms, true);
    EXPECT_EQ(calls, 0);
    EXPECT_FALSE(t.active());
}

TEST_F(TimerTest, WeakOneShotTimer) {
    auto alive = std::make_shared<int>(1);
    auto dead = std::make_shared<int>(2);
    int alive_calls = 0, dead_calls = 0;
    kaa::WeakOneShotTimer a(alive, [&] { ++alive_calls; });
    kaa::WeakOneShotTimer d(dead, [&] { ++dead_calls; });
    a.start(1ms);
    d.start(1ms);
    dead.reset();
    ASSERT_TRUE(step_until([&] { return alive_calls == 1; }));
    run_past(5ms);
    EXPECT_EQ(alive_calls, 1);
    EXPECT_EQ(dead_calls, 0);
    EXPECT_FALSE(a.active());
}

// ---------------------------------------------------------------------------
// Exceptions

TEST_F(TimerTest, ThrowingCallbackIsReportedAndTheTimerKeepsRunning) {
    int calls = 0;
    kaa::Timer t([&] {
        if (++calls == 1)
            throw std::runtime_error("tick failed");
        return calls < 3;
    });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    EXPECT_EQ(calls, 3);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(kaa::test::holds<std::runtime_error>(seen[0]));
    EXPECT_EQ(kaa::test::message_of(seen[0]), "tick failed");
}

TEST_F(TimerTest, ThrowingOneShotIsReportedAndStopped) {
    kaa::OneShotTimer t([] { throw std::logic_error("once"); });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    EXPECT_FALSE(t.active());
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(seen[0]), "once");
}

// ---------------------------------------------------------------------------
// Threads

TEST_F(TimerTest, StartFromAnotherThreadIsMarshalledToTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    int calls = 0;
    kaa::OneShotTimer t([&] {
        ran_on = std::this_thread::get_id();
        ++calls;
    });
    std::thread other([&] { t.start(1ms, false); });
    other.join();
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    EXPECT_EQ(ran_on, loop_thread);
}

TEST_F(TimerTest, StartNowFromAnotherThreadCallsBackOnTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    std::vector<std::thread::id> ran_on;
    kaa::Timer t([&] {
        ran_on.push_back(std::this_thread::get_id());
        return ran_on.size() < 2;
    });
    std::thread other([&] { t.start(1ms, true); });
    other.join();
    ASSERT_TRUE(step_until([&] { return ran_on.size() == 2 && !t.active(); }));
    EXPECT_EQ(ran_on, (std::vector<std::thread::id>{loop_thread, loop_thread}));
}

TEST_F(TimerTest, StopFromAnotherThreadIsMarshalledToTheLoop) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    t.start(1ms);
    ASSERT_TRUE(step_until([&] { return calls >= 1; }));
    std::thread other([&] { t.stop(); });
    other.join();
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    const int at_stop = calls;
    run_past(5ms);
    EXPECT_EQ(calls, at_stop);
}

TEST_F(TimerTest, DelayFromAnotherThreadFinishesOnTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    kaa::InProgress<void> ip = nullptr;
    std::thread other([&] { ip = kaa::delay(1ms); });
    other.join();
    ip.connect([&] { ran_on = std::this_thread::get_id(); });
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_EQ(ran_on, loop_thread);
}

// ---------------------------------------------------------------------------
// delay()

TEST_F(TimerTest, DelayFinishes) {
    kaa::InProgress<void> ip = kaa::delay(1ms);
    bool done = false;
    ip.connect([&] { done = true; });
    EXPECT_FALSE(ip.finished());
    EXPECT_TRUE(ip.abortable());
    ASSERT_TRUE(step_until([&] { return ip.finished(); }));
    EXPECT_TRUE(done);
    EXPECT_NO_THROW(ip.result());
}

TEST_F(TimerTest, DelayFinishesWithoutAHandle) {
    bool done = false;
    kaa::delay(1ms).connect([&] { done = true; });
    ASSERT_TRUE(step_until([&] { return done; }));
}

TEST_F(TimerTest, DelaysFinishInOrderOfTheirDurations) {
    std::vector<int> order;
    kaa::delay(4ms).connect([&] { order.push_back(4); });
    kaa::delay(1ms).connect([&] { order.push_back(1); });
    kaa::delay(Duration::zero()).connect([&] { order.push_back(0); });
    ASSERT_TRUE(step_until([&] { return order.size() == 3; }));
    EXPECT_EQ(order, (std::vector<int>{0, 1, 4}));
}

TEST_F(TimerTest, AbortedDelayFailsWithInProgressAbortedAndNeverFinishes) {
    kaa::InProgress<void> ip = kaa::delay(1ms);
    bool ok_ran = false;
    std::exception_ptr failure;
    ip.connect([&] { ok_ran = true; });
    ip.connect_exception([&](std::exception_ptr e) { failure = e; });
    ip.abort();
    EXPECT_TRUE(ip.finished());
    EXPECT_TRUE(ip.failed());
    EXPECT_TRUE(kaa::test::holds<kaa::InProgressAborted>(failure));
    run_past(5ms);
    EXPECT_FALSE(ok_ran);
    EXPECT_FALSE(ip.abort()) << "a second abort is harmless";
}

TEST_F(TimerTest, DelayFinishedByHandIsNotFinishedAgain) {
    kaa::InProgress<void> ip = kaa::delay(1ms);
    int calls = 0;
    ip.connect([&] { ++calls; });
    ip.finish();
    run_past(5ms);
    EXPECT_EQ(calls, 1);
}

TEST_F(TimerTest, DelayWaitFromTheLoopThread) {
    kaa::InProgress<void> ip = kaa::delay(1ms);
    EXPECT_NO_THROW(ip.wait());
    EXPECT_TRUE(ip.finished());
}

// ---------------------------------------------------------------------------
// Argument checks and lifetime

TEST_F(TimerTest, RejectsNegativeIntervalsAndEmptyCallbacks) {
    kaa::Timer t([] {});
    EXPECT_THROW(t.start(-1ms), std::invalid_argument);
    EXPECT_FALSE(t.active());
    EXPECT_THROW(kaa::delay(-1ms), std::invalid_argument);
    EXPECT_THROW(kaa::Timer{std::function<void()>{}}, kaa::EmptyHandle);
    void (*null_fn)() = nullptr;
    EXPECT_THROW(kaa::OneShotTimer{null_fn}, kaa::EmptyHandle);
}

TEST(TimerWithoutLoop, StartNeedsALoop) {
    kaa::Timer t([] {});
    EXPECT_THROW(t.start(1ms), kaa::LoopError);
    EXPECT_FALSE(t.active());
    EXPECT_THROW(kaa::delay(1ms), kaa::LoopError);
}

TEST(TimerWithoutLoop, TimerOutlivesItsLoopAndWorksWithTheNextOne) {
    int calls = 0;
    kaa::Timer t([&] { ++calls; });
    {
        kaa::MainLoop loop;
        t.start(1h);
        kaa::InProgress<void> pending = kaa::delay(1h); // released with the loop, not leaked
        EXPECT_TRUE(t.active());
        loop.step(Duration::zero());
    }
    EXPECT_FALSE(t.active()) << "timers stop when their loop is destroyed";
    kaa::MainLoop loop;
    t.start(1ms);
    ASSERT_TRUE(kaa::test::step_until(loop, [&] { return calls == 2; }));
    t.stop();
}

// ---------------------------------------------------------------------------
// AtTimer

using std::chrono::local_days;
using std::chrono::local_seconds;
using Sys = std::chrono::system_clock;

local_seconds at(std::chrono::year_month_day d, int h, int m, int s) {
    return local_days(d) + std::chrono::hours(h) + std::chrono::minutes(m) + std::chrono::seconds(s);
}

constexpr auto June5 = std::chrono::year(2024) / 6 / 5; // a Wednesday

TEST(AtTimerNextAfter, DefaultIsTheNextMinuteBoundary) {
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 34, 56)), at(June5, 12, 35, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 35, 0)), at(June5, 12, 36, 0)) << "strictly after";
}

TEST(AtTimerNextAfter, EmptySetsMeanAnyValue) {
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 0, 0), {}, {}, {}), at(June5, 12, 0, 1));
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 59, 59), {}, {}, {}), at(June5, 13, 0, 0));
}

TEST(AtTimerNextAfter, SeveralValues) {
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 10, 0), {}, {0, 30}), at(June5, 12, 30, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 30, 0), {}, {0, 30}), at(June5, 13, 0, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 12, 30, 0), {8, 20}, {15}, {5, 10}), at(June5, 20, 15, 5));
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 20, 15, 5), {8, 20}, {15}, {5, 10}), at(June5, 20, 15, 10));
}

TEST(AtTimerNextAfter, RollsOverToTheNextDayMonthAndYear) {
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 4, 0, 0), {3}, {15}),
              at(std::chrono::year(2024) / 6 / 6, 3, 15, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(std::chrono::year(2024) / 6 / 30, 23, 59, 0), {0}, {0}),
              at(std::chrono::year(2024) / 7 / 1, 0, 0, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(std::chrono::year(2023) / 12 / 31, 23, 59, 30), {0}, {0}),
              at(std::chrono::year(2024) / 1 / 1, 0, 0, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(at(std::chrono::year(2024) / 2 / 28, 23, 0, 0), {0}, {0}),
              at(std::chrono::year(2024) / 2 / 29, 0, 0, 0))
        << "leap day";
}

TEST(AtTimerNextAfter, Weekdays) {
    // Weekdays count from 0 = Sunday; 2024-06-05 is a Wednesday (3).
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 10, 0, 0), {9}, {0}, {0}, {1}),
              at(std::chrono::year(2024) / 6 / 10, 9, 0, 0))
        << "next Monday";
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 10, 0, 0), {12}, {0}, {0}, {3}), at(June5, 12, 0, 0))
        << "later the same Wednesday";
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 10, 0, 0), {9}, {0}, {0}, {3}),
              at(std::chrono::year(2024) / 6 / 12, 9, 0, 0))
        << "the Wednesday after, a full week on";
    EXPECT_EQ(kaa::AtTimer::next_after(at(June5, 10, 0, 0), {}, {}, {0}, {0, 6}),
              at(std::chrono::year(2024) / 6 / 8, 0, 0, 0))
        << "the weekend starts on Saturday at midnight";
    EXPECT_EQ(kaa::AtTimer::next_after(at(std::chrono::year(2024) / 12 / 31, 10, 0, 0), {8}, {0}, {0}, {5}),
              at(std::chrono::year(2025) / 1 / 3, 8, 0, 0))
        << "Friday in the next year";
}

TEST(AtTimerNextAfter, RejectsOutOfRangeValues) {
    const local_seconds t = at(June5, 0, 0, 0);
    EXPECT_THROW(kaa::AtTimer::next_after(t, {24}), std::invalid_argument);
    EXPECT_THROW(kaa::AtTimer::next_after(t, {}, {60}), std::invalid_argument);
    EXPECT_THROW(kaa::AtTimer::next_after(t, {}, {-1}), std::invalid_argument);
    EXPECT_THROW(kaa::AtTimer::next_after(t, {}, {}, {60}), std::invalid_argument);
    EXPECT_THROW(kaa::AtTimer::next_after(t, {}, {}, {0}, {7}), std::invalid_argument);
    try {
        kaa::AtTimer::next_after(t, {25});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("hour 25"), std::string::npos) << e.what();
    }
}

// The system_clock overload goes through the process's time zone.
class AtTimerInZone : public ::testing::Test {
protected:
    void use_zone(const char* tz) {
        const char* old = std::getenv("TZ");
        saved_ = old ? std::optional<std::string>(old) : std::nullopt;
        setenv("TZ", tz, 1);
        tzset();
    }
    void TearDown() override {
        if (saved_)
            setenv("TZ", saved_->c_str(), 1);
        else
            unsetenv("TZ");
        tzset();
    }

private:
    std::optional<std::string> saved_;
};

Sys::time_point utc(std::chrono::year_month_day d, int h, int m, int s) {
    return std::chrono::sys_days(d) + std::chrono::hours(h) + std::chrono::minutes(m) +
           std::chrono::seconds(s);
}

TEST_F(AtTimerInZone, SystemClockInUtc) {
    use_zone("UTC");
    EXPECT_EQ(kaa::AtTimer::next_after(utc(June5, 12, 34, 59) + 500ms), utc(June5, 12, 35, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(utc(June5, 12, 35, 0) + 500ms), utc(June5, 12, 36, 0))
        << "strictly after, to the second";
    EXPECT_EQ(kaa::AtTimer::next_after(utc(June5, 10, 0, 0), {9}, {0}, {0}, {1}),
              utc(std::chrono::year(2024) / 6 / 10, 9, 0, 0));
}

TEST_F(AtTimerInZone, RepeatedLocalHourAtTheEndOfSummerTime) {
    if (!std::ifstream("/usr/share/zoneinfo/Europe/Berlin"))
        GTEST_SKIP() << "no tzdata for Europe/Berlin";
    use_zone("Europe/Berlin");
    // 2024-10-27: 03:00 CEST goes back to 02:00 CET, so 02:30 local happens at
    // 00:30 UTC and again at 01:30 UTC.
    const auto day = std::chrono::year(2024) / 10 / 27;
    EXPECT_EQ(kaa::AtTimer::next_after(utc(day, 0, 0, 0), {2}, {30}), utc(day, 0, 30, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(utc(day, 0, 30, 0), {2}, {30}), utc(day, 1, 30, 0));
    EXPECT_EQ(kaa::AtTimer::next_after(utc(day, 1, 30, 0), {2}, {30}),
              utc(std::chrono::year(2024) / 10 / 28, 1, 30, 0));
}

TEST_F(AtTimerInZone, SkippedLocalHourAtTheStartOfSummerTime) {
    if (!std::ifstream("/usr/share/zoneinfo/Europe/Berlin"))
        GTEST_SKIP() << "no tzdata for Europe/Berlin";
    use_zone("Europe/Berlin");
    // 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 local never
    // happens, so the timer fires once the clock has passed it, that day.
    const auto day = std::chrono::year(2024) / 3 / 31;
    const auto t = kaa::AtTimer::next_after(utc(day, 0, 0, 0), {2}, {30});
    EXPECT_GE(t, utc(day, 1, 0, 0));
    EXPECT_LT(t, utc(day, 2, 0, 0));
}

TEST_F(TimerTest, AtTimerStateAndValidation) {
    int calls = 0;
    kaa::AtTimer t([&] { ++calls; });
    EXPECT_FALSE(t.active());
    EXPECT_EQ(t.next(), std::nullopt);
    EXPECT_THROW(t.start({24}), std::invalid_argument);
    EXPECT_THROW(t.start({}, {}, {}, {7}), std::invalid_argument);
    EXPECT_FALSE(t.active());

    const auto before = Sys::now();
    t.start({}, {0, 30}, {0});
    EXPECT_TRUE(t.active());
    ASSERT_TRUE(t.next().has_value());
    EXPECT_GT(*t.next(), before);
    EXPECT_EQ(t.minutes(), (std::set<int>{0, 30}));
    EXPECT_TRUE(t.hours().empty());
    t.stop();
    EXPECT_FALSE(t.active());
    EXPECT_EQ(t.next(), std::nullopt);
    EXPECT_EQ(calls, 0);
}

TEST_F(TimerTest, OneShotAtTimerFiresOnceAtTheNextSecond) {
    // Every second matches, so this waits for at most one wall-clock second.
    int calls = 0;
    std::optional<Sys::time_point> scheduled;
    kaa::OneShotAtTimer t([&] { ++calls; });
    t.start({}, {}, {});
    scheduled = t.next();
    ASSERT_TRUE(scheduled.has_value());
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    EXPECT_GE(loop.wall_now(), *scheduled) << "an AtTimer never fires before its wall-clock time";
    EXPECT_FALSE(t.active());
    EXPECT_EQ(t.next(), std::nullopt);
}

TEST_F(TimerTest, AtTimerRepeatsAtDistinctSecondsUntilFalse) {
    std::vector<Sys::time_point> scheduled;
    std::function<bool()> body;
    kaa::AtTimer t([&] { return body(); });
    body = [&] {
        scheduled.push_back(*t.next());
        return scheduled.size() < 2;
    };
    t.start({}, {}, {});
    ASSERT_TRUE(step_until([&] { return !t.active(); }));
    ASSERT_EQ(scheduled.size(), 2u);
    EXPECT_GT(scheduled[1], scheduled[0]);
}

// ---------------------------------------------------------------------------
// Fire-and-forget calls and temporaries

template <class T>
concept CanStartATemporary = requires(T&& t) { std::move(t).start(Duration{}); };
template <class T>
concept CanStartAVariable = requires(T& t) { t.start(Duration{}); };
template <class T>
concept CanStartATemporaryAtTimer = requires(T&& t) { std::move(t).start(); };

TEST(TimerCompileTime, StartingATemporaryTimerIsACompileError) {
    // `kaa::OneShotTimer(cb).start(1s)` would stop again at the end of the
    // statement: it must not compile (call_later() is the form to use).
    static_assert(!CanStartATemporary<kaa::Timer>);
    static_assert(!CanStartATemporary<kaa::OneShotTimer>);
    static_assert(!CanStartATemporary<kaa::WeakTimer>);
    static_assert(!CanStartATemporary<kaa::WeakOneShotTimer>);
    static_assert(!CanStartATemporaryAtTimer<kaa::AtTimer>);
    static_assert(!CanStartATemporaryAtTimer<kaa::OneShotAtTimer>);
    static_assert(CanStartAVariable<kaa::Timer>);
    static_assert(CanStartAVariable<kaa::OneShotTimer>);
    EXPECT_FALSE(CanStartATemporary<kaa::OneShotTimer>);
    EXPECT_TRUE(CanStartAVariable<kaa::OneShotTimer>);
}

TEST_F(TimerTest, CallLaterRunsOnceWithoutAHandleBeingKept) {
    int calls = 0;
    kaa::call_later(1ms, [&] { ++calls; });  // the handle is dropped at once
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    run_past(5ms);
    EXPECT_EQ(calls, 1);
}

TEST_F(TimerTest, CallLaterWithZeroDelayRunsOnALaterIteration) {
    int calls = 0;
    loop.post([&] {
        kaa::call_later(Duration::zero(), [&] { ++calls; });
        EXPECT_EQ(calls, 0) << "never inside the call";
    });
    loop.step(Duration::zero());
    EXPECT_EQ(calls, 0) << "not in the iteration that scheduled it";
    ASSERT_TRUE(step_until([&] { return calls == 1; }, 3));
}

TEST_F(TimerTest, CallLaterHandleCancelsThePendingCall) {
    int calls = 0;
    kaa::ScheduledCall call = kaa::call_later(1ms, [&] { ++calls; });
    EXPECT_TRUE(call.active());
    EXPECT_TRUE(call.cancel());
    EXPECT_FALSE(call.active());
    run_past(5ms);
    EXPECT_EQ(calls, 0);
    EXPECT_FALSE(call.cancel()) << "cancelling twice is harmless";
}

TEST_F(TimerTest, CallLaterHandleAfterTheCallRanIsInactiveAndCancelsNothing) {
    int calls = 0;
    kaa::ScheduledCall call = kaa::call_later(1ms, [&] { ++calls; });
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    EXPECT_FALSE(call.active());
    EXPECT_FALSE(call.cancel());
    EXPECT_FALSE(kaa::ScheduledCall().active()) << "an empty handle";
    EXPECT_FALSE(kaa::ScheduledCall().cancel());
}

TEST_F(TimerTest, CallLaterFromAnotherThreadWakesTheLoopAndRunsThere) {
    std::thread::id ran_on;
    std::thread worker([&] { kaa::call_later(1ms, [&] { ran_on = std::this_thread::get_id(); }); });
    worker.join();
    ASSERT_TRUE(step_until([&] { return ran_on != std::thread::id(); }));
    EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_F(TimerTest, CallLaterRejectsANegativeDelayAndAnEmptyCallback) {
    EXPECT_THROW(kaa::call_later(-1ms, [] {}), std::invalid_argument);
    EXPECT_THROW(kaa::call_later(1ms, std::function<void()>()), kaa::EmptyHandle);
}

TEST(TimerNoLoop, CallLaterWithoutALoopThrowsLoopError) {
    EXPECT_THROW(kaa::call_later(1ms, [] {}), kaa::LoopError);
    EXPECT_THROW(kaa::call_at(std::chrono::system_clock::now(), [] {}), kaa::LoopError);
}

TEST(TimerNoFixture, CallLaterPendingWhenTheLoopGoesNeverRunsAndReleasesItsCallback) {
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    bool ran = false;
    {
        kaa::MainLoop loop;
        kaa::call_later(std::chrono::hours(1), [&ran, token] { ran = true; });
        token.reset();
        loop.step(Duration::zero());
        EXPECT_FALSE(watch.expired()) << "the pending call holds its callback";
    }
    EXPECT_FALSE(ran);
    EXPECT_TRUE(watch.expired()) << "the loop's destruction released the callback";
}

TEST_F(TimerTest, CallAtRunsOnceTheWallClockHasReachedTheTime) {
    const Sys::time_point when = loop.wall_now() + 20ms;
    std::optional<Sys::time_point> ran_at;
    kaa::call_at(when, [&] { ran_at = loop.wall_now(); });
    ASSERT_TRUE(step_until([&] { return ran_at.has_value(); }));
    EXPECT_GE(*ran_at, when);
}

TEST_F(TimerTest, CallAtATimeThatHasPassedRunsOnTheNextIteration) {
    int calls = 0;
    kaa::ScheduledCall call = kaa::call_at(Sys::now() - std::chrono::hours(1), [&] { ++calls; });
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(call.active());
    ASSERT_TRUE(step_until([&] { return calls == 1; }, 5));
    EXPECT_FALSE(call.active());
}

// ---------------------------------------------------------------------------
// Timed definitions (kaa.timed)

TEST_F(TimerTest, TimedRepeatsUntilTheFunctionReturnsFalse) {
    int calls = 0;
    kaa::Timed<bool(int)> countdown({.interval = 1ms}, [&](int limit) { return ++calls < limit; });
    EXPECT_TRUE(countdown(3));
    EXPECT_TRUE(countdown.active());
    ASSERT_TRUE(step_until([&] { return !countdown.active(); }));
    EXPECT_EQ(calls, 3);
}

TEST_F(TimerTest, TimedManyPolicyStartsATimerPerCall) {
    std::vector<int> seen;
    kaa::Timed<bool(int)> once_each({.interval = 1ms}, [&](int v) {
        seen.push_back(v);
        return false;
    });
    EXPECT_TRUE(once_each(1));
    EXPECT_TRUE(once_each(2));
    ASSERT_TRUE(step_until([&] { return seen.size() == 2; }));
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<int>{1, 2}));
}

TEST_F(TimerTest, TimedOncePolicyIgnoresCallsWhileItsTimerIsActive) {
    std::vector<int> seen;
    kaa::Timed<bool(int)> poll({.interval = 1ms, .policy = kaa::TimedPolicy::once}, [&](int v) {
        seen.push_back(v);
        return seen.size() < 2;
    });
    EXPECT_TRUE(poll(1));
    EXPECT_FALSE(poll(2)) << "ignored while the first timer is active; its argument is dropped";
    ASSERT_TRUE(step_until([&] { return !poll.active(); }));
    EXPECT_EQ(seen, (std::vector<int>{1, 1}));
    EXPECT_TRUE(poll(3)) << "accepted again once the timer stopped";
    ASSERT_TRUE(step_until([&] { return !poll.active(); }));
    EXPECT_EQ(seen.back(), 3);
}

TEST_F(TimerTest, TimedRestartPolicyReplacesTheTimerWithTheNewArguments) {
    std::vector<int> seen;
    kaa::Timed<void(int)> show({.interval = 1ms, .policy = kaa::TimedPolicy::restart, .one_shot = true},
                               [&](int v) { seen.push_back(v); });
    EXPECT_TRUE(show(1));
    EXPECT_TRUE(show(2));
    ASSERT_TRUE(step_until([&] { return !show.active(); }));
    run_past(5ms);
    EXPECT_EQ(seen, (std::vector<int>{2})) << "the first call's timer was stopped";
}

TEST_F(TimerTest, TimedOneShotCallsTheFunctionOncePerCall) {
    int calls = 0;
    kaa::Timed<void()> ping({.interval = 1ms, .one_shot = true}, [&] { ++calls; });
    ping();
    ASSERT_TRUE(step_until([&] { return calls == 1; }));
    run_past(5ms);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(ping.active());
}

TEST_F(TimerTest, TimedStopStopsEveryTimerItStarted) {
    int calls = 0;
    kaa::Timed<void()> forever({.interval = 1ms}, [&] { ++calls; });
    forever();
    forever();
    forever.stop();
    EXPECT_FALSE(forever.active());
    run_past(5ms);
    EXPECT_EQ(calls, 0);
}

TEST_F(TimerTest, TimedRejectsAnInvalidPolicyWhenTheDefinitionIsMade) {
    auto bad = [] {
        kaa::Timed<void()> t({.interval = 1ms, .policy = static_cast<kaa::TimedPolicy>(42)}, [] {});
    };
    EXPECT_THROW(bad(), std::invalid_argument);
    EXPECT_THROW((kaa::Timed<void()>({.interval = -1ms}, [] {})), std::invalid_argument);
}

TEST_F(TimerTest, TimedCalledFromAnotherThreadThrowsWrongThread) {
    kaa::Timed<void()> t({.interval = 1ms}, [] {});
    bool threw = false;
    std::thread worker([&] {
        try {
            t();
        } catch (const kaa::WrongThread&) {
            threw = true;
        }
    });
    worker.join();
    EXPECT_TRUE(threw);
    EXPECT_FALSE(t.active());
}

// A member definition: the policy and the timers belong to each object, and
// go with it.
class Blinker {
public:
    explicit Blinker(std::vector<std::string>& log, std::string name) : log_(log), name_(std::move(name)) {}
    kaa::Timed<bool(int)> blink{{.interval = 1ms, .policy = kaa::TimedPolicy::once}, [this](int times) {
                                    log_.push_back(name_);
                                    return ++count_ < times;
                                }};

private:
    std::vector<std::string>& log_;
    std::string name_;
    int count_ = 0;
};

TEST_F(TimerTest, TimedMemberDefinitionsArePerObject) {
    std::vector<std::string> log;
    Blinker a(log, "a");
    auto b = std::make_unique<Blinker>(log, "b");
    EXPECT_TRUE(a.blink(2));
    EXPECT_TRUE(b->blink(1000)) << "the once policy of `a` does not hold back `b`";
    EXPECT_FALSE(a.blink(2));
    ASSERT_TRUE(step_until([&] { return !a.blink.active(); }));
    b.reset();  // stops b's timer with the object
    const auto count_b = std::count(log.begin(), log.end(), "b");
    run_past(5ms);
    EXPECT_EQ(std::count(log.begin(), log.end(), "a"), 2);
    EXPECT_EQ(std::count(log.begin(), log.end(), "b"), count_b) << "nothing ran after the object was gone";
}

} // namespace
