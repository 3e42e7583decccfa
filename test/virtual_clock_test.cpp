// SPDX-License-Identifier: BSL-1.0
#include "kaa/virtual_clock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using kaa::Duration;

namespace {

// A loop on a fresh virtual clock, with the fixture's report capture.
class VirtualClockTest : public ::testing::Test {
protected:
    void TearDown() override {
        EXPECT_TRUE(reports.empty()) << "unexpected reports on the exception signal:\n"
                                     << reports.describe_all();
        reports.disconnect();
    }

    Duration elapsed() const { return clock.elapsed(); }

    kaa::VirtualClock clock;
    kaa::MainLoop loop{clock};
    kaa::test::ExceptionCapture reports{loop};
};

// ---------------------------------------------------------------------------
// The clock itself

TEST(VirtualClockAlone, StartsAtTheGivenWallTimeAndStandsStill) {
    const auto wall = std::chrono::sys_days(std::chrono::year(2030) / 1 / 1) + 8h;
    kaa::VirtualClock clock(wall);
    const auto steady = clock.now();
    EXPECT_EQ(clock.wall_now(), wall);
    EXPECT_EQ(clock.now(), steady);
    EXPECT_EQ(clock.elapsed(), Duration::zero());
    EXPECT_TRUE(clock.autojump());
    EXPECT_EQ(clock.jumps(), 0u);
}

TEST(VirtualClockAlone, AdvanceMovesBothClocksTogether) {
    kaa::VirtualClock clock;
    const auto steady = clock.now();
    const auto wall = clock.wall_now();
    clock.advance(90s);
    EXPECT_EQ(clock.now() - steady, 90s);
    EXPECT_EQ(clock.wall_now() - wall, 90s);
    EXPECT_EQ(clock.jumps(), 0u); // advance() is not a jump
}

TEST(VirtualClockAlone, AdvanceRejectsANegativeDuration) {
    kaa::VirtualClock clock;
    EXPECT_THROW(clock.advance(-1s), std::invalid_argument);
    EXPECT_EQ(clock.elapsed(), Duration::zero());
}

TEST(VirtualClockAlone, CopiesShareOneTime) {
    kaa::VirtualClock a;
    kaa::VirtualClock b = a;
    a.advance(5s);
    EXPECT_EQ(b.elapsed(), 5s);
}

// ---------------------------------------------------------------------------
// Jumps

TEST_F(VirtualClockTest, TheLoopReportsItsClock) {
    ASSERT_NE(loop.virtual_clock(), nullptr);
    EXPECT_EQ(loop.now(), clock.now());
    EXPECT_EQ(loop.wall_now(), clock.wall_now());
    loop.virtual_clock()->advance(1s);
    EXPECT_EQ(clock.elapsed(), 1s);
}

TEST_F(VirtualClockTest, ADelayOfTenMinutesFinishesAfterOneJump) {
    kaa::delay(10min).wait();
    EXPECT_EQ(elapsed(), 10min);
    EXPECT_EQ(clock.jumps(), 1u);
}

TEST_F(VirtualClockTest, TimeStandsStillWhileWorkIsQueued) {
    bool fired = false;
    kaa::call_later(1s, [&] { fired = true; });
    int posted = 0;
    std::function<void()> again = [&] {
        if (++posted < 100)
            loop.post(again);
    };
    loop.post(again);
    while (posted < 100)
        loop.step();
    EXPECT_FALSE(fired);
    EXPECT_EQ(elapsed(), Duration::zero());
    loop.run_until_idle();
    EXPECT_TRUE(fired);
    EXPECT_EQ(elapsed(), 1s);
}

TEST_F(VirtualClockTest, TimersFireInDeadlineOrderAtTheirExactVirtualTimes) {
    std::vector<std::pair<int, Duration>> fired;
    kaa::OneShotTimer c([&] { fired.emplace_back(3, elapsed()); });
    kaa::OneShotTimer a([&] { fired.emplace_back(1, elapsed()); });
    kaa::OneShotTimer b([&] { fired.emplace_back(2, elapsed()); });
    c.start(3h);
    a.start(250ms);
    b.start(90s);
    loop.run_until_idle();
    std::vector<std::pair<int, Duration>> expected{{1, 250ms}, {2, 90s}, {3, 3h}};
    EXPECT_EQ(fired, expected);
    EXPECT_EQ(clock.jumps(), 3u);
}

TEST_F(VirtualClockTest, TimersWithEqualDeadlinesFireInTheOrderTheyWereStarted) {
    std::vector<int> fired;
    std::vector<kaa::ScheduledCall> calls;
    for (int i = 0; i < 5; ++i)
        calls.push_back(kaa::call_later(1s, [&fired, i] { fired.push_back(i); }));
    loop.run_until_idle();
    EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
    EXPECT_EQ(clock.jumps(), 1u);
}

TEST_F(VirtualClockTest, RepeatingTimerTicksAtExactMultiplesOfItsInterval) {
    std::vector<Duration> ticks;
    kaa::Timer t([&] {
        ticks.push_back(elapsed());
        return ticks.size() < 4;
    });
    t.start(1500ms);
    loop.run_until_idle();
    EXPECT_EQ(ticks, (std::vector<Duration>{1500ms, 3000ms, 4500ms, 6000ms}));
}

TEST_F(VirtualClockTest, StepTimeoutIsVirtualTime) {
    EXPECT_FALSE(loop.step(5s));
    EXPECT_EQ(elapsed(), 5s);
}

TEST_F(VirtualClockTest, StepTimeoutShorterThanTheNextDeadlineStopsShortOfIt) {
    bool fired = false;
    kaa::call_later(1min, [&] { fired = true; });
    loop.step(Duration::zero()); // arms the deadline (from the next iteration's queue)
    loop.step(20s);
    EXPECT_FALSE(fired);
    EXPECT_EQ(elapsed(), 20s);
    loop.step(1h);
    EXPECT_TRUE(fired);
    EXPECT_EQ(elapsed(), 1min);
}

TEST_F(VirtualClockTest, ZeroDurationStepsNeverMoveTheTime) {
    bool fired = false;
    kaa::call_later(1s, [&] { fired = true; });
    for (int i = 0; i < 10; ++i)
        loop.step(Duration::zero());
    EXPECT_FALSE(fired);
    EXPECT_EQ(elapsed(), Duration::zero());
}

TEST_F(VirtualClockTest, AZeroIntervalTimerKeepsTheTimeFromJumping) {
    bool later = false;
    kaa::call_later(1s, [&] { later = true; });
    int ticks = 0;
    kaa::Timer busy([&] { ++ticks; });
    busy.start(Duration::zero());
    while (ticks < 50)
        loop.step();
    EXPECT_FALSE(later);
    EXPECT_EQ(elapsed(), Duration::zero());
    busy.stop();
    loop.run_until_idle();
    EXPECT_TRUE(later);
    EXPECT_EQ(elapsed(), 1s);
}

TEST_F(VirtualClockTest, ReadyAsioHandlersRunBeforeTheClockJumps) {
    std::vector<std::string> order;
    kaa::call_later(1s, [&] { order.push_back("timer"); });
    boost::asio::post(loop.context(), [&] { order.push_back("asio"); });
    loop.run_until_idle();
    EXPECT_EQ(order, (std::vector<std::string>{"asio", "timer"}));
}

// ---------------------------------------------------------------------------
// Timeouts and waits

TEST_F(VirtualClockTest, TimeoutExpiresAtItsVirtualDeadline) {
    kaa::InProgress<int> never;
    auto view = never.timeout(5min);
    Duration failed_at{};
    view.connect_finished([&] { failed_at = elapsed(); });
    loop.run_until_idle();
    ASSERT_TRUE(view.finished());
    EXPECT_THROW(view.result(), kaa::TimeoutError);
    EXPECT_EQ(failed_at, 5min);
}

TEST_F(VirtualClockTest, AnOperationFinishingBeforeItsTimeoutWins) {
    auto slow = kaa::delay(1min);
    auto fast = kaa::delay(30s).timeout(45s);
    loop.run_until_idle();
    EXPECT_NO_THROW(fast.result());
    EXPECT_TRUE(slow.finished());
    EXPECT_EQ(elapsed(), 1min);
}

TEST_F(VirtualClockTest, WaitWithATimeoutOnTheLoopThreadGivesUpAtTheVirtualDeadline) {
    kaa::InProgress<int> never;
    EXPECT_FALSE(never.wait_for(30s));
    EXPECT_EQ(elapsed(), 30s);
}

TEST_F(VirtualClockTest, CoroutineWaitingTenVirtualMinutesThroughManyTimers) {
    int woke = 0;
    auto done = kaa::coroutine([&] {
        for (int i = 0; i < 600; ++i) {
            kaa::this_coroutine::await(kaa::delay(1s));
            ++woke;
        }
    });
    loop.run_until_idle();
    EXPECT_TRUE(done.finished());
    EXPECT_EQ(woke, 600);
    EXPECT_EQ(elapsed(), 10min);
    EXPECT_EQ(clock.jumps(), 600u);
}

TEST_F(VirtualClockTest, CoroutineTimeSliceIntervalRunsOnVirtualTime) {
    std::vector<Duration> resumed;
    kaa::CoroutineOptions opts;
    opts.interval = 2s;
    auto done = kaa::coroutine(opts, [&] {
        for (int i = 0; i < 3; ++i) {
            kaa::this_coroutine::yield();
            resumed.push_back(elapsed());
        }
    });
    loop.run_until_idle();
    EXPECT_TRUE(done.finished());
    EXPECT_EQ(resumed, (std::vector<Duration>{2s, 4s, 6s}));
}

// ---------------------------------------------------------------------------
// Wall-clock timers

TEST_F(VirtualClockTest, CallAtRunsAtTheVirtualWallTime) {
    const auto when = clock.wall_now() + 2h;
    std::chrono::system_clock::time_point ran_at{};
    kaa::call_at(when, [&] { ran_at = loop.wall_now(); });
    loop.run_until_idle();
    EXPECT_EQ(ran_at, when);
    EXPECT_EQ(clock.jumps(), 1u);
}

class VirtualWallClockTest : public ::testing::Test {
protected:
    // A fixed start, so that the test does not depend on today's date; the
    // expected firings come from AtTimer::next_after() in the local zone.
    const std::chrono::system_clock::time_point start =
        std::chrono::sys_days(std::chrono::year(2031) / 3 / 14) + 9h + 26min + 53s;
    kaa::VirtualClock clock{start};
    kaa::MainLoop loop{clock};
};

TEST_F(VirtualWallClockTest, AtTimerFiresAtEachScheduledWallTimeWithOneJumpEach) {
    const std::set<int> hours{}, minutes{0, 30}, seconds{0};
    std::vector<std::chrono::system_clock::time_point> fired;
    kaa::AtTimer at([&] {
        fired.push_back(loop.wall_now());
        return fired.size() < 3;
    });
    at.start(hours, minutes, seconds);
    loop.run_until_idle();
    ASSERT_EQ(fired.size(), 3u);
    auto expected = kaa::AtTimer::next_after(start, hours, minutes, seconds);
    for (auto t : fired) {
        EXPECT_EQ(t, expected);
        expected = kaa::AtTimer::next_after(expected, hours, minutes, seconds);
    }
    EXPECT_EQ(clock.jumps(), 3u);
}

// ---------------------------------------------------------------------------
// Autojump off: the test moves the time

TEST_F(VirtualClockTest, WithAutojumpOffOnlyAdvanceMovesTheTime) {
    clock.set_autojump(false);
    bool fired = false;
    kaa::call_later(10s, [&] { fired = true; });
    for (int i = 0; i < 10; ++i)
        loop.step(Duration::zero());
    clock.advance(9s);
    for (int i = 0; i < 10; ++i)
        loop.step(Duration::zero());
    EXPECT_FALSE(fired);
    clock.advance(1s);
    loop.step(Duration::zero());
    EXPECT_TRUE(fired);
    EXPECT_EQ(clock.jumps(), 0u);
}

TEST_F(VirtualClockTest, WithAutojumpOffRunUntilIdleReturnsAtTheNextDeadlineForTheTestToAdvance) {
    clock.set_autojump(false);
    std::vector<Duration> fired;
    kaa::call_later(1s, [&] { fired.push_back(elapsed()); });
    kaa::call_later(3s, [&] { fired.push_back(elapsed()); });
    loop.run_until_idle();
    EXPECT_TRUE(fired.empty());
    clock.advance(2s);
    loop.run_until_idle();
    EXPECT_EQ(fired, (std::vector<Duration>{2s}));
    clock.advance(1s);
    loop.run_until_idle();
    EXPECT_EQ(fired, (std::vector<Duration>{2s, 3s}));
}

TEST_F(VirtualClockTest, AdvanceFromAnotherThreadWakesABlockedLoop) {
    clock.set_autojump(false);
    bool fired = false;
    kaa::call_later(1s, [&] { fired = true; });
    std::thread mover([c = clock]() mutable { c.advance(1s); });
    // Each step blocks until something happens; the advance wakes it.
    EXPECT_TRUE(kaa::test::step_until(
        loop, [&] { return fired; }, 10));
    mover.join();
    EXPECT_EQ(elapsed(), 1s);
}

// ---------------------------------------------------------------------------
// Threaded jobs hold the time back until their results are delivered

TEST_F(VirtualClockTest, TimeDoesNotJumpWhileAThreadedJobRuns) {
    std::vector<std::string> order;
    kaa::call_later(1ms, [&] { order.push_back("timer"); });
    auto job = kaa::threaded([] {
        // Real work, of whatever real length: the loop blocks meanwhile.
        int n = 0;
        for (int i = 0; i < 2000; ++i) {
            std::this_thread::yield();
            ++n;
        }
        return n;
    });
    job.connect([&](int) { order.push_back("job"); });
    loop.run_until_idle();
    EXPECT_EQ(order, (std::vector<std::string>{"job", "timer"}));
    EXPECT_EQ(elapsed(), 1ms);
}

TEST_F(VirtualClockTest, JobsChainedThroughTheirResultsAllRunBeforeTheClockJumps) {
    // Each result starts the next job: between two jobs the only thing in
    // flight is a result on its way to the loop.
    int delivered = 0;
    Duration last_at = -1s;
    kaa::call_later(1us, [] {});
    std::function<void()> next = [&] {
        kaa::threaded([] { return 1; }).connect([&](int) {
            last_at = elapsed();
            if (++delivered < 50)
                next();
        });
    };
    next();
    loop.run_until_idle();
    EXPECT_EQ(delivered, 50);
    EXPECT_EQ(last_at, Duration::zero());
    EXPECT_EQ(elapsed(), 1us);
}

// ---------------------------------------------------------------------------
// Lifetime and misuse

TEST_F(VirtualClockTest, AttachingAVirtualLoopToAHostThrowsLoopError) {
    EXPECT_THROW(loop.attach_host(kaa::HostHooks{}), kaa::LoopError);
}

TEST_F(VirtualClockTest, RunUntilIdleCountsAVirtualDeadlineAsLiveWork) {
    bool fired = false;
    kaa::call_later(1h, [&] { fired = true; });
    loop.run_until_idle();
    EXPECT_TRUE(fired);
    EXPECT_EQ(elapsed(), 1h);
}

TEST(VirtualClockLifetime, TheClockOutlivesItsLoopWhosePendingWaitsAreDropped) {
    kaa::VirtualClock clock;
    bool fired = false;
    {
        kaa::MainLoop loop(clock);
        kaa::call_later(1s, [&] { fired = true; });
        kaa::delay(2s);
        loop.step(Duration::zero());
    }
    EXPECT_FALSE(fired);
    {
        // The same clock again: its time goes on from where it was.
        clock.advance(5s);
        kaa::MainLoop loop(clock);
        kaa::delay(1s).wait();
        EXPECT_EQ(clock.elapsed(), 6s);
    }
}

TEST(VirtualClockLifetime, ALoopMadeAfterAVirtualOneIsReal) {
    {
        kaa::VirtualClock clock;
        kaa::MainLoop loop(clock);
        kaa::delay(1h).wait();
    }
    kaa::MainLoop loop;
    EXPECT_EQ(loop.virtual_clock(), nullptr);
    bool fired = false;
    kaa::call_later(Duration::zero(), [&] { fired = true; });
    loop.run_until_idle();
    EXPECT_TRUE(fired);
}

TEST(VirtualClockLifetime, ATimerOutlivesItsVirtualLoopAndWorksWithTheNextOne) {
    kaa::VirtualClock clock;
    int fired = 0;
    kaa::OneShotTimer t([&] { ++fired; });
    {
        kaa::MainLoop loop(clock);
        t.start(1s);
        loop.step(Duration::zero());
    }
    EXPECT_FALSE(t.active());
    {
        kaa::MainLoop loop(clock);
        t.start(1s);
        loop.run_until_idle();
    }
    EXPECT_EQ(fired, 1);
    EXPECT_EQ(clock.elapsed(), 1s);
}

} // namespace
