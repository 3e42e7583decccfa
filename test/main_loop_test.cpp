// SPDX-License-Identifier: BSL-1.0
#include "kaa/main_loop.hpp"

#include <gtest/gtest.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <boost/asio/steady_timer.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using kaa::Duration;
using kaa::MainLoop;
using kaa::test::holds;
using kaa::test::LoopTest;
using kaa::test::message_of;

// ---------------------------------------------------------------------------
// Identity: one loop per process, current(), main thread.

TEST(MainLoopLifetime, NoLoopMeansCurrentThrowsAndCurrentOrNullIsNull) {
    EXPECT_EQ(MainLoop::current_or_null(), nullptr);
    EXPECT_THROW(MainLoop::current(), kaa::LoopError);
    EXPECT_THROW(kaa::main_loop(), kaa::LoopError);
    EXPECT_TRUE(kaa::is_main_thread()) << "with no loop, every thread counts as the main thread";
}

TEST(MainLoopLifetime, SecondLoopThrowsLoopErrorAndANewOneWorksAfterDestruction) {
    {
        MainLoop first;
        EXPECT_EQ(&MainLoop::current(), &first);
        EXPECT_THROW(MainLoop second, kaa::LoopError);
        // The failed construction did not disturb the existing loop.
        EXPECT_EQ(MainLoop::current_or_null(), &first);
        EXPECT_TRUE(first.is_main_thread());
    }
    EXPECT_EQ(MainLoop::current_or_null(), nullptr);
    MainLoop again;
    EXPECT_EQ(&MainLoop::current(), &again);
    bool ran = false;
    again.post([&] { ran = true; });
    again.step(Duration::zero());
    EXPECT_TRUE(ran);
}

TEST(MainLoopLifetime, SecondLoopFromAnotherThreadThrowsLoopError) {
    MainLoop loop;
    std::thread t([] { EXPECT_THROW(MainLoop other, kaa::LoopError); });
    t.join();
    EXPECT_EQ(MainLoop::current_or_null(), &loop);
}

TEST(MainLoopLifetime, ANewLoopOnAnotherThreadMakesThatThreadTheMainThread) {
    {
        MainLoop first;
    }
    std::promise<void> created, release;
    std::shared_future<void> released = release.get_future().share();
    std::thread t([&] {
        MainLoop loop;
        EXPECT_TRUE(loop.is_main_thread());
        created.set_value();
        released.wait();
    });
    created.get_future().wait();
    ASSERT_NE(MainLoop::current_or_null(), nullptr);
    EXPECT_FALSE(MainLoop::current_or_null()->is_main_thread());
    EXPECT_FALSE(kaa::is_main_thread());
    release.set_value();
    t.join();
}

using MainLoopTest = LoopTest;

TEST_F(MainLoopTest, CurrentIsThisLoop) {
    EXPECT_EQ(&MainLoop::current(), &loop);
    EXPECT_EQ(MainLoop::current_or_null(), &loop);
    EXPECT_EQ(&kaa::main_loop(), &loop);
}

TEST_F(MainLoopTest, IsMainThreadOnLoopThreadOnlyNotOnStdThread) {
    EXPECT_TRUE(loop.is_main_thread());
    EXPECT_TRUE(kaa::is_main_thread());
    bool member = true, free_fn = true;
    std::thread t([&] {
        member = loop.is_main_thread();
        free_fn = kaa::is_main_thread();
    });
    t.join();
    EXPECT_FALSE(member);
    EXPECT_FALSE(free_fn);
}

TEST_F(MainLoopTest, IsRunningOnlyInsideRun) {
    EXPECT_FALSE(loop.is_running());
    bool inside = false;
    run_in_loop([&] {
        inside = loop.is_running();
        loop.stop();
    });
    EXPECT_TRUE(inside);
    EXPECT_FALSE(loop.is_running());
}

// ---------------------------------------------------------------------------
// post()

TEST_F(MainLoopTest, PostFromLoopThreadNeverRunsSynchronously) {
    int ran = 0;
    loop.post([&] { ++ran; });
    EXPECT_EQ(ran, 0);
    EXPECT_TRUE(loop.has_ready_work());
    EXPECT_TRUE(loop.step(Duration::zero()));
    EXPECT_EQ(ran, 1);
    EXPECT_FALSE(loop.has_ready_work());
}

TEST_F(MainLoopTest, PostFromInsideACallbackRunsOnALaterIteration) {
    std::vector<int> iteration_of;
    int iteration = 0;
    loop.signals().step.connect([&] { ++iteration; });
    loop.post([&] {
        iteration_of.push_back(iteration);
        loop.post([&] {
            iteration_of.push_back(iteration);
            loop.post([&] { iteration_of.push_back(iteration); });
        });
    });
    step_n(3);
    ASSERT_EQ(iteration_of.size(), 3u);
    EXPECT_EQ(iteration_of[0], 0);
    EXPECT_EQ(iteration_of[1], 1);
    EXPECT_EQ(iteration_of[2], 2);
}

TEST_F(MainLoopTest, PostingOrderIsPreserved) {
    std::vector<int> order;
    for (int i = 0; i < 100; ++i)
        loop.post([&order, i] { order.push_back(i); });
    loop.step(Duration::zero());
    ASSERT_EQ(order.size(), 100u);
    for (int i = 0; i < 100; ++i)
        EXPECT_EQ(order[i], i);
}

TEST_F(MainLoopTest, PostingOrderFromAnotherThreadIsPreserved) {
    std::vector<int> order;
    std::thread t([&] {
        for (int i = 0; i < 1000; ++i)
            loop.post([&order, i] { order.push_back(i); });
    });
    t.join();
    ASSERT_TRUE(step_until([&] { return order.size() == 1000; }));
    for (int i = 0; i < 1000; ++i)
        ASSERT_EQ(order[i], i);
}

// A post that finds the loop blocked is handed to Asio directly; what the
// same thread posts before it has run goes to the loop's queue and must not
// overtake it. Bursts with the loop blocked in between take both paths many
// times.
TEST_F(MainLoopTest, PostingOrderIsPreservedAcrossBlockedAndBusySteps) {
    constexpr int bursts = 200, per_burst = 5;
    std::vector<int> order;
    std::atomic<int> ran{0};
    std::thread t([&] {
        for (int b = 0; b < bursts; ++b) {
            for (int k = 0; k < per_burst; ++k) {
                int i = b * per_burst + k;
                loop.post([&order, &ran, i] {
                    order.push_back(i);
                    ran.fetch_add(1, std::memory_order_release);
                });
            }
            // Let the loop run the burst and block again.
            while (ran.load(std::memory_order_acquire) < (b + 1) * per_burst)
                std::this_thread::yield();
        }
    });
    ASSERT_TRUE(step_until([&] { return ran.load(std::memory_order_acquire) == bursts * per_burst; },
                           100 * bursts * per_burst));
    t.join();
    ASSERT_EQ(order.size(), std::size_t(bursts * per_burst));
    for (int i = 0; i < bursts * per_burst; ++i)
        ASSERT_EQ(order[i], i);
}

// Several threads post to a blocked loop at once: each one's posts run in its
// order, and a blocking step never spins while a post is on its way (the
// bound on steps would catch it).
TEST_F(MainLoopTest, PostsFromSeveralThreadsToABlockedLoopKeepEachThreadsOrder) {
    constexpr int threads = 3, per_thread = 300;
    std::vector<std::pair<int, int>> order;
    std::atomic<int> ran{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (int k = 0; k < per_thread; ++k) {
                loop.post([&order, &ran, t, k] {
                    order.emplace_back(t, k);
                    ran.fetch_add(1, std::memory_order_release);
                });
                if (k % 7 == 0)  // now and then, let the loop catch up and block
                    while (ran.load(std::memory_order_acquire) < k / 2)
                        std::this_thread::yield();
            }
        });
    ASSERT_TRUE(step_until([&] { return ran.load(std::memory_order_acquire) == threads * per_thread; },
                           10 * threads * per_thread));
    for (auto& th : ts)
        th.join();
    std::vector<int> next(threads, 0);
    for (auto [t, k] : order)
        ASSERT_EQ(k, next[t]++) << "thread " << t;
}

TEST_F(MainLoopTest, PostFromAnotherThreadWakesABlockedStepAndRunsOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<bool> ran{false};
    std::thread::id ran_on;
    std::thread t([&] {
        loop.post([&] {
            ran_on = std::this_thread::get_id();
            ran = true;
        });
    });
    // step() without a timeout blocks until something arrives: only the post
    // (and its wake-up) can end it. Bounded, so a lost wake-up hangs visibly
    // in ctest rather than spinning.
    for (int i = 0; i < 100 && !ran; ++i)
        loop.step();
    t.join();
    ASSERT_TRUE(ran);
    EXPECT_EQ(ran_on, loop_thread);
}

TEST_F(MainLoopTest, PostFromAnotherThreadWhileRunning) {
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    std::promise<void> go;
    std::thread t([&] {
        go.get_future().wait();
        loop.post([&] {
            ran_on = std::this_thread::get_id();
            loop.stop();
        });
    });
    run_in_loop([&] { go.set_value(); });
    t.join();
    EXPECT_EQ(ran_on, loop_thread);
}

TEST_F(MainLoopTest, ManyThreadsPostingAllRun) {
    constexpr int threads = 4, per_thread = 500;
    int total = 0;
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i)
        ts.emplace_back([&] {
            for (int k = 0; k < per_thread; ++k)
                loop.post([&] { ++total; });
        });
    ASSERT_TRUE(step_until([&] { return total == threads * per_thread; }, 100000));
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(total, threads * per_thread);
}

// The io_context stopped behind the loop's back (through context()) is
// restarted: a blocking step still waits and runs what arrives, a busy loop
// still runs Asio's handlers.
TEST_F(MainLoopTest, AnIoContextStoppedBehindTheLoopIsRestartedBeforeABlockingWait) {
    loop.context().stop();
    bool fired = false;
    boost::asio::post(loop.context(), [&] { fired = true; });
    loop.step(); // would return at once, having run nothing, on a stopped io_context
    EXPECT_TRUE(fired);
    EXPECT_FALSE(loop.context().stopped());
}

TEST_F(MainLoopTest, AnIoContextStoppedFromAnotherThreadDoesNotLoseAPost) {
    // If the stop comes while the loop waits, run_one() returns 0 and the
    // loop restarts Asio and waits again, for the post. (If both come before
    // the wait, the loop runs the post without waiting.)
    std::atomic<bool> ran{false};
    std::thread t([&] {
        loop.context().stop();
        loop.post([&] { ran = true; });
    });
    for (int i = 0; i < 100 && !ran; ++i)
        loop.step();
    t.join();
    EXPECT_TRUE(ran);
}

TEST_F(MainLoopTest, AnIoContextStoppedUnderABusyLoopIsRestartedWithinItsIterations) {
    bool fired = false;
    boost::asio::post(loop.context(), [&] { fired = true; });
    loop.context().stop();
    loop.post([] {}); // ready work: the steps below do not wait
    // Iterations that do not wait look at stopped() every 64th time.
    ASSERT_TRUE(step_until([&] { return fired; }, 200));
}

TEST_F(MainLoopTest, WorkPostedByAnAsioHandlerRunsOnTheNextIteration) {
    int iteration = 0;
    int ran_in = -1;
    loop.signals().step.connect([&] { ++iteration; });
    boost::asio::post(loop.context(), [&] { loop.post([&] { ran_in = iteration; }); });
    loop.step(Duration::zero());
    EXPECT_EQ(ran_in, -1) << "work posted during an iteration must wait for the next one";
    loop.step(Duration::zero());
    EXPECT_EQ(ran_in, 1);
}

TEST_F(MainLoopTest, WorkPostedByCrossThreadWorkRunsOnTheNextIteration) {
    int iteration = 0;
    int ran_in = -1;
    bool remote_ran = false;
    loop.signals().step.connect([&] { ++iteration; });
    std::thread t([&] {
        loop.post([&] {
            remote_ran = true;
            loop.post([&] { ran_in = iteration; });
        });
    });
    t.join();
    ASSERT_TRUE(step_until([&] { return remote_ran; }));
    EXPECT_EQ(ran_in, -1) << "work posted during an iteration must wait for the next one";
    const int posted_in = iteration - 1;
    loop.step(Duration::zero());
    EXPECT_EQ(ran_in, posted_in + 1);
}

TEST_F(MainLoopTest, StepReturnsWhetherWorkRan) {
    EXPECT_FALSE(loop.step(Duration::zero()));
    loop.post([] {});
    EXPECT_TRUE(loop.step(Duration::zero()));
    EXPECT_FALSE(loop.step(Duration::zero()));
}

TEST_F(MainLoopTest, StepWithTimeoutReturnsWhenNothingArrives) {
    // Only asserts that it returns; the duration is not measured.
    EXPECT_FALSE(loop.step(std::chrono::milliseconds(1)));
}

// ---------------------------------------------------------------------------
// run() / stop()

TEST_F(MainLoopTest, StopFromACallbackEndsRun) {
    // A callback that re-posts itself keeps iterations coming; the third
    // iteration's `step` slot stops the loop, so no fourth regular iteration
    // starts (shutdown still delivers what was queued).
    int iterations = 0, ticks = 0, ticks_at_stop = 0;
    bool stopped = false;
    loop.signals().step.connect([&] {
        if (++iterations == 3) {
            loop.stop();
            stopped = true;
            ticks_at_stop = ticks;
        }
    });
    std::function<void()> tick = [&] {
        ++ticks;
        if (!stopped)
            loop.post([&] { tick(); });
    };
    run_in_loop([&] { tick(); });
    EXPECT_TRUE(stopped);
    EXPECT_EQ(ticks_at_stop, 3);
    EXPECT_EQ(ticks, 4) << "the tick queued before stop() is delivered at shutdown";
    EXPECT_FALSE(loop.is_running());
}

TEST_F(MainLoopTest, StopFromAnotherThreadEndsRun) {
    std::promise<void> running;
    std::thread t([&] {
        running.get_future().wait();
        loop.stop();
    });
    run_in_loop([&] { running.set_value(); });
    t.join();
    EXPECT_FALSE(loop.is_running());
}

TEST_F(MainLoopTest, RunAfterStopRunsAgain) {
    for (int round = 0; round < 3; ++round) {
        bool ran = false;
        run_in_loop([&] {
            ran = true;
            loop.stop();
        });
        EXPECT_TRUE(ran) << "round " << round;
    }
}

TEST_F(MainLoopTest, RunWhileRunningThrowsLoopError) {
    bool threw = false;
    run_in_loop([&] {
        try {
            loop.run();
        } catch (const kaa::LoopError&) {
            threw = true;
        }
        loop.stop();
    });
    EXPECT_TRUE(threw);
}

TEST_F(MainLoopTest, StepAndRunOffTheLoopThreadThrowWrongThread) {
    bool step_threw = false, run_threw = false;
    std::thread t([&] {
        try {
            loop.step(Duration::zero());
        } catch (const kaa::WrongThread&) {
            step_threw = true;
        }
        try {
            loop.run();
        } catch (const kaa::WrongThread&) {
            run_threw = true;
        }
    });
    t.join();
    EXPECT_TRUE(step_threw);
    EXPECT_TRUE(run_threw);
    EXPECT_FALSE(loop.is_running());
}

TEST_F(MainLoopTest, WrongThreadIsAUsageError) {
    static_assert(std::is_base_of_v<kaa::UsageError, kaa::WrongThread>);
    static_assert(std::is_base_of_v<kaa::UsageError, kaa::LoopError>);
    static_assert(std::is_base_of_v<std::logic_error, kaa::UsageError>);
}

TEST_F(MainLoopTest, StepSignalOncePerIteration) {
    int steps = 0;
    loop.signals().step.connect([&] { ++steps; });
    for (int i = 1; i <= 5; ++i) {
        loop.step(Duration::zero());
        EXPECT_EQ(steps, i);
    }
    loop.post([] {});
    loop.post([] {});
    loop.step(Duration::zero());
    EXPECT_EQ(steps, 6) << "two posted callbacks are one iteration";
}

TEST_F(MainLoopTest, StepSignalDuringRunCountsIterations) {
    int steps = 0, posted_runs = 0;
    loop.signals().step.connect([&] { ++steps; });
    // A callback that re-posts itself runs once per iteration.
    std::function<void()> again = [&] {
        if (++posted_runs < 10)
            loop.post([&] { again(); });
        else
            loop.stop();
    };
    run_in_loop([&] { again(); });
    EXPECT_EQ(posted_runs, 10);
    EXPECT_GE(steps, 10);
}

TEST_F(MainLoopTest, ShutdownEmittedOnceWhenRunEndsAndSlotsDisconnected) {
    int shutdowns = 0;
    bool running_during_shutdown = true;
    loop.signals().shutdown.connect([&] {
        ++shutdowns;
        running_during_shutdown = loop.is_running();
    });
    run_in_loop([&] {
        EXPECT_EQ(shutdowns, 0);
        loop.stop();
    });
    EXPECT_EQ(shutdowns, 1);
    EXPECT_EQ(loop.signals().shutdown.count(), 0u) << "shutdown slots are disconnected after emission";
    // A second run does not call the old slot again.
    run_in_loop([&] { loop.stop(); });
    EXPECT_EQ(shutdowns, 1);
}

TEST_F(MainLoopTest, NoStepIsEmittedAfterTheStepInWhichStopWasCalled) {
    std::vector<std::string> order;
    loop.signals().step.connect([&] { order.push_back("step"); });
    loop.signals().shutdown.connect([&] { order.push_back("shutdown"); });
    run_in_loop([&] {
        order.push_back("stop");
        loop.stop();
        // Work the stop leaves behind still runs in the shutdown, but no
        // iteration of it emits `step`.
        loop.post([&] { order.push_back("delivered in the shutdown"); });
    });
    EXPECT_EQ(order, (std::vector<std::string>{"stop", "step", "delivered in the shutdown", "shutdown"}));
}

TEST_F(MainLoopTest, ShutdownDisconnectsStepAndShutdownSlotsThenEmitsShutdownAfterWhichKeepsItsSlots) {
    std::vector<std::string> order;
    loop.signals().step.connect([&] { order.push_back("step"); });
    loop.signals().shutdown.connect([&] {
        order.push_back("shutdown");
        EXPECT_TRUE(loop.is_shutting_down());
    });
    loop.signals().shutdown_after.connect([&] {
        order.push_back("shutdown_after");
        EXPECT_EQ(loop.signals().step.count(), 0u);
        EXPECT_EQ(loop.signals().shutdown.count(), 0u);
    });
    run_in_loop([&] { loop.stop(); });
    EXPECT_EQ(order, (std::vector<std::string>{"step", "shutdown", "shutdown_after"}));
    order.clear();
    run_in_loop([&] { loop.stop(); });
    EXPECT_EQ(order, (std::vector<std::string>{"shutdown_after"})) << "a later run starts without the per-run slots";
    loop.signals().shutdown_after.disconnect_all();
}

TEST_F(MainLoopTest, IsStoppedAndIsShuttingDownFollowTheRun) {
    EXPECT_FALSE(loop.is_stopped());
    EXPECT_FALSE(loop.is_shutting_down());
    bool stopped_inside = true, shutting_inside = true;
    run_in_loop([&] {
        stopped_inside = loop.is_stopped();
        shutting_inside = loop.is_shutting_down();
        loop.stop();
    });
    EXPECT_FALSE(stopped_inside);
    EXPECT_FALSE(shutting_inside);
    EXPECT_TRUE(loop.is_stopped());
    EXPECT_TRUE(loop.is_shutting_down()) << "until the next run(), as in kaa";
    run_in_loop([&] {
        stopped_inside = loop.is_stopped();
        shutting_inside = loop.is_shutting_down();
        loop.stop();
    });
    EXPECT_FALSE(stopped_inside) << "a new run() clears both";
    EXPECT_FALSE(shutting_inside);
}

TEST(MainLoopOwnThread, RunInThreadRunsTheLoopOnAThreadNamedKaaMainloopAndStopFromAnyThreadEndsIt) {
    MainLoop loop;
    const auto caller = std::this_thread::get_id();
    loop.run_in_thread();
    EXPECT_TRUE(loop.is_running()) << "control comes back once the loop runs";
    EXPECT_FALSE(loop.is_main_thread());
    EXPECT_FALSE(kaa::is_main_thread());
    std::promise<std::pair<std::string, std::thread::id>> where;
    loop.post([&] {
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        where.set_value({name, std::this_thread::get_id()});
    });
    auto [name, id] = where.get_future().get();
    EXPECT_EQ(name, "kaa mainloop");
    EXPECT_NE(id, caller);
    // Main-thread work from the caller goes there: an InProgress finished
    // here delivers its callback on the loop thread.
    kaa::InProgress<int> ip;
    std::promise<std::thread::id> callback_on;
    loop.post([&] { ip.connect([&](int) { callback_on.set_value(std::this_thread::get_id()); }); });
    loop.post([&] { ip.finish(1); });
    EXPECT_EQ(callback_on.get_future().get(), id);
    std::thread([&] { loop.stop(); }).join();
    loop.join();
    EXPECT_FALSE(loop.is_running());
    EXPECT_TRUE(loop.is_stopped());
    EXPECT_TRUE(loop.is_main_thread()) << "join() hands the loop back to the caller";
    bool ran = false;
    loop.post([&] { ran = true; });
    loop.step(Duration::zero());
    EXPECT_TRUE(ran);
}

TEST(MainLoopOwnThread, JoinRethrowsWhatEndedTheLoopThread) {
    MainLoop loop;
    loop.run_in_thread();
    loop.post([] { throw std::runtime_error("loop-thread-boom"); });
    try {
        loop.join();
        ADD_FAILURE() << "join() returned normally";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "loop-thread-boom");
    }
}

TEST(MainLoopOwnThread, DestroyingTheLoopStopsAndJoinsItsThread) {
    int shutdowns = 0;
    {
        MainLoop loop;
        loop.signals().shutdown_after.connect([&] { ++shutdowns; });
        loop.run_in_thread();
    }
    EXPECT_EQ(shutdowns, 1);
    EXPECT_EQ(MainLoop::current_or_null(), nullptr);
}

TEST(MainLoopShutdown, NotEmittedAgainByTheDestructorAfterRun) {
    int late = 0;
    {
        MainLoop loop;
        loop.post([&] { loop.stop(); });
        loop.run();
        // Connected after run() ended: the loop was shut down already, so
        // destroying it must not emit `shutdown` a second time.
        loop.signals().shutdown.connect([&] { ++late; });
    }
    EXPECT_EQ(late, 0);
}

TEST(MainLoopShutdown, EmittedByTheDestructorIfSteppedButNeverRun) {
    int shutdowns = 0;
    {
        MainLoop loop;
        loop.signals().shutdown.connect([&] { ++shutdowns; });
        loop.step(Duration::zero());
    }
    EXPECT_EQ(shutdowns, 1);
}

TEST(MainLoopShutdown, NotEmittedIfNeverStepped) {
    int shutdowns = 0;
    {
        MainLoop loop;
        loop.signals().shutdown.connect([&] { ++shutdowns; });
    }
    EXPECT_EQ(shutdowns, 0);
}

TEST(MainLoopShutdown, ShutdownHooksRunOncePerRun) {
    int hooks = 0;
    {
        MainLoop loop;
        kaa::detail::add_shutdown_hook(loop, [&] { ++hooks; });
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_EQ(hooks, 1);
    }
    EXPECT_EQ(hooks, 1) << "the destructor must not shut down a loop that run() already shut down";
}

// ---------------------------------------------------------------------------
// Exceptions escaping callbacks

TEST_F(MainLoopTest, ThrowingPostedCallbackGoesToExceptionSignalAndLoopKeepsRunning) {
    bool later_ran = false;
    run_in_loop([&] {
        loop.post([] { throw std::runtime_error("boom"); });
        loop.post([&] {
            later_ran = true;
            loop.post([&] { loop.stop(); });
        });
    });
    EXPECT_TRUE(later_ran);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(holds<std::runtime_error>(seen[0]));
    EXPECT_EQ(message_of(seen[0]), "boom");
}

TEST_F(MainLoopTest, ThrowingCrossThreadPostedCallbackIsReported) {
    std::thread t([&] { loop.post([] { throw std::invalid_argument("remote"); }); });
    t.join();
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(holds<std::invalid_argument>(seen[0]));
}

TEST_F(MainLoopTest, ThrowingAsioHandlerIsReported) {
    boost::asio::post(loop.context(), [] { throw std::runtime_error("asio"); });
    loop.step(Duration::zero());
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "asio");
}

TEST_F(MainLoopTest, HandleExceptionFromAnotherThreadArrivesOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id seen_on;
    loop.signals().exception.connect([&](std::exception_ptr) { seen_on = std::this_thread::get_id(); });
    std::thread t([&] { loop.handle_exception(std::make_exception_ptr(std::runtime_error("x")), "test"); });
    t.join();
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    EXPECT_EQ(seen_on, loop_thread);
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(MainLoopTest, AnExceptionEscapingWithNothingConnectedStopsRunWhichRethrowsItAfterShutdown) {
    // Decision 21 (kaa, io_context::run()): no `exception` handler means the
    // exception ends run(); the shutdown still runs first.
    reports.disconnect();
    std::vector<std::string> order;
    int later_steps = 0;
    loop.signals().shutdown.connect([&] { order.push_back("shutdown"); });
    loop.post([&] {
        loop.signals().step.connect([&] { ++later_steps; });
        loop.post([&] { order.push_back("next iteration"); });
        throw std::runtime_error("fatal-boom");
    });
    try {
        loop.run();
        ADD_FAILURE() << "run() returned normally";
    } catch (const std::runtime_error& e) {
        order.push_back(std::string("rethrown: ") + e.what());
    }
    // As after stop(): the shutdown delivers what was queued, then the raise.
    EXPECT_EQ(order, (std::vector<std::string>{"next iteration", "shutdown", "rethrown: fatal-boom"}));
    EXPECT_EQ(later_steps, 1) << "the step in which it escaped still ends normally";
    EXPECT_FALSE(loop.is_running());
    EXPECT_TRUE(loop.is_stopped());
    // The loop works again afterwards.
    bool ran = false;
    run_in_loop([&] {
        ran = true;
        loop.stop();
    });
    EXPECT_TRUE(ran);
}

TEST_F(MainLoopTest, AnExceptionEscapingWithAHandlerConnectedLeavesTheLoopRunning) {
    int after = 0;
    loop.post([] { throw std::runtime_error("handled"); });
    loop.post([&] { loop.post([&] {
        ++after;
        loop.stop();
    }); });
    loop.run();
    EXPECT_EQ(after, 1);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "handled");
}

TEST_F(MainLoopTest, AStepOutsideRunRethrowsWhatEscapedWithNothingConnected) {
    reports.disconnect();
    loop.post([] { throw 42; });
    bool later_ran = false;
    loop.post([&] { later_ran = true; });
    try {
        loop.step(Duration::zero());
        ADD_FAILURE() << "step() returned normally";
    } catch (int v) {
        EXPECT_EQ(v, 42);
    }
    EXPECT_TRUE(later_ran) << "the rest of the iteration ran before the rethrow";
    EXPECT_FALSE(loop.step(Duration::zero())) << "rethrown once";
}

TEST_F(MainLoopTest, ASecondExceptionEscapingBeforeTheFirstIsRethrownIsPrintedNotDropped) {
    reports.disconnect();
    loop.post([] { throw std::runtime_error("first-one"); });
    loop.post([] { throw std::runtime_error("second-one"); });
    testing::internal::CaptureStderr();
    std::string rethrown;
    try {
        loop.step(Duration::zero());
    } catch (const std::runtime_error& e) {
        rethrown = e.what();
    }
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(rethrown, "first-one");
    EXPECT_NE(err.find("std::runtime_error"), std::string::npos) << err;
    EXPECT_NE(err.find("second-one"), std::string::npos) << err;
}

TEST_F(MainLoopTest, AnUnobservedFailureWithNothingConnectedIsPrintedAndDoesNotStopTheLoop) {
    reports.disconnect();
    int iterations = 0;
    std::function<void()> more = [&] {
        if (++iterations < 3)
            loop.post([&] { more(); });
        else
            loop.stop();
    };
    testing::internal::CaptureStderr();
    run_in_loop([&] {
        { kaa::make_failed<int>(std::make_exception_ptr(std::runtime_error("dropped-unread"))); }
        more();
    });
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(iterations, 3);
    EXPECT_NE(err.find("dropped-unread"), std::string::npos) << err;
}

TEST_F(MainLoopTest, ThrowingExceptionHandlerIsPrintedNotRecursed) {
    int handler_calls = 0;
    loop.signals().exception.connect([&](std::exception_ptr) {
        ++handler_calls;
        throw std::logic_error("handler-fails");
    });
    loop.post([] { throw std::runtime_error("first"); });
    testing::internal::CaptureStderr();
    loop.step(Duration::zero());
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(handler_calls, 1);
    EXPECT_NE(err.find("handler-fails"), std::string::npos) << err;
    EXPECT_EQ(reports.take().size(), 1u);
    // The loop still works and reports again through the handler.
    loop.post([] { throw std::runtime_error("second"); });
    testing::internal::CaptureStderr();
    loop.step(Duration::zero());
    testing::internal::GetCapturedStderr();
    EXPECT_EQ(handler_calls, 2);
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(MainLoopTest, StopCannotBeVetoedByExceptionHandlers) {
    // A handler that swallows everything (kaa's "return False") and a
    // callback that keeps throwing: stop() still ends run().
    loop.signals().exception.connect([](std::exception_ptr) {});
    int throws = 0;
    std::function<void()> thrower = [&] {
        ++throws;
        loop.post([&] { thrower(); });
        if (throws == 3)
            loop.stop();
        throw std::runtime_error("again");
    };
    run_in_loop([&] { thrower(); });
    EXPECT_GE(throws, 3);
    reports.take();
}

TEST_F(MainLoopTest, ExceptionFromShutdownSlotDoesNotPreventShutdown) {
    bool second = false;
    loop.signals().shutdown.connect([] { throw std::runtime_error("shutdown-slot"); });
    loop.signals().shutdown.connect([&] { second = true; });
    run_in_loop([&] { loop.stop(); });
    EXPECT_TRUE(second);
    EXPECT_EQ(reports.take().size(), 1u);
}

// ---------------------------------------------------------------------------
// Nesting

TEST_F(MainLoopTest, NestedWaitInPostedWorkSeesWorkQueuedAfterIt) {
    // The waiting callback and the one that finishes its operation are in the
    // same batch: the nested iterations must run the rest of the batch.
    kaa::InProgress<int> ip;
    int got = 0;
    loop.post([&] { got = ip.wait(); });
    loop.post([&] { ip.finish(7); });
    loop.step(Duration::zero());
    EXPECT_EQ(got, 7);
}

TEST_F(MainLoopTest, NestedWaitInCrossThreadWorkSeesLaterCrossThreadWork) {
    kaa::InProgress<int> ip;
    int got = 0;
    std::thread t([&] {
        loop.post([&] { got = ip.wait(); });
        ip.finish(9); // posts the delivery right behind the waiter
    });
    t.join();
    ASSERT_TRUE(step_until([&] { return got != 0; }, 10));
    EXPECT_EQ(got, 9);
}

TEST_F(MainLoopTest, NestedStepsRunEachTaskOnce) {
    std::vector<int> order;
    loop.post([&] {
        order.push_back(1);
        loop.step(Duration::zero()); // nested: runs 2 and 3
        order.push_back(10);
    });
    loop.post([&] { order.push_back(2); });
    loop.post([&] { order.push_back(3); });
    loop.step(Duration::zero());
    loop.step(Duration::zero());
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 10}));
}

// ---------------------------------------------------------------------------
// Destruction

TEST(MainLoopDestruction, QueuedWorkIsDroppedNotRun) {
    int ran = 0;
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> weak = token;
    {
        MainLoop loop;
        loop.post([&ran, token = std::move(token)] { ++ran; });
    }
    EXPECT_EQ(ran, 0);
    EXPECT_TRUE(weak.expired());
}

TEST(MainLoopDestruction, StepSlotHoldingAFailedOperationIsReportedSafely) {
    // A slot still connected to a loop signal keeps a failed, unobserved
    // InProgress; it is released while the loop is being destroyed.
    testing::internal::CaptureStderr();
    {
        MainLoop loop;
        auto ip = kaa::make_failed<int>(std::make_exception_ptr(std::runtime_error("late")));
        loop.signals().step.connect([ip] {});
    }
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("late"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------
// run_until_idle()

class RunUntilIdleTest : public kaa::test::LoopTest {};

TEST_F(RunUntilIdleTest, ReturnsAtOnceWithNothingToDo) {
    loop.run_until_idle();
    EXPECT_FALSE(loop.is_running());
}

TEST_F(RunUntilIdleTest, ReturnsOnceCoroutinesTimersJobsAndPostsHaveEnded) {
    using namespace std::chrono_literals;
    std::vector<std::string> order;
    auto co = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(2ms));
        order.push_back("delay");
        int v = kaa::this_coroutine::await(kaa::threaded([] { return 4; }));
        order.push_back("job " + std::to_string(v));
        kaa::this_coroutine::yield();
        loop.post([&] { order.push_back("posted"); });
    });
    kaa::OneShotTimer timer([&] { order.push_back("timer"); });
    timer.start(5ms);
    loop.run_until_idle();
    EXPECT_TRUE(co.finished());
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_FALSE(timer.active());
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, (std::vector<std::string>{"delay", "job 4", "posted", "timer"}));
    EXPECT_FALSE(loop.has_ready_work());
}

// A job's outcome is counted from the worker until the loop has delivered
// it: run_until_idle() neither returns while it is on its way nor waits for
// a count only the worker would drop (which once hung it: nothing woke the
// loop when the worker did).
TEST_F(RunUntilIdleTest, ReturnsAfterEveryJobsOutcomeIsDeliveredAndNeverHangsOnOne) {
    for (int round = 0; round < 200; ++round) {
        auto job = kaa::threaded([round] { return round; });
        loop.run_until_idle();
        ASSERT_TRUE(job.finished()) << "round " << round;
        ASSERT_EQ(job.result(), round);
    }
}

TEST_F(RunUntilIdleTest, WaitsForAnAsioOperationWithAPlainHandler) {
    using namespace std::chrono_literals;
    boost::asio::steady_timer t(loop.context(), 3ms);
    bool fired = false;
    t.async_wait([&](const boost::system::error_code& ec) { fired = !ec; });
    loop.run_until_idle();
    EXPECT_TRUE(fired);
}

TEST_F(RunUntilIdleTest, WaitsForAJobThatPostsBackBeforeItEnds) {
    std::atomic<int> posted{0};
    int ran = 0;
    auto job = kaa::threaded([&] {
        for (int i = 0; i < 100; ++i)
            loop.post([&] { ++ran; });
        posted = 100;
    });
    loop.run_until_idle();
    EXPECT_TRUE(job.finished());
    EXPECT_EQ(ran, 100);
}

TEST_F(RunUntilIdleTest, ACoroutineWaitingOnNothingIsLeftSuspendedNotHungOn) {
    kaa::InProgress<int> never;
    auto stuck = kaa::coroutine([&] { return kaa::this_coroutine::await(never); });
    loop.run_until_idle();
    EXPECT_EQ(kaa::active_coroutines(), 1u) << "a deadlock made visible";
    stuck.abort();
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(RunUntilIdleTest, ARepeatingTimerIsLiveWorkUntilItStops) {
    using namespace std::chrono_literals;
    int ticks = 0;
    kaa::Timer t([&] { return ++ticks < 3; });
    t.start(1ms);
    loop.run_until_idle();
    EXPECT_EQ(ticks, 3);
    EXPECT_FALSE(t.active());
}

TEST_F(RunUntilIdleTest, StopEndsItEarly) {
    using namespace std::chrono_literals;
    kaa::Timer t([] {});
    t.start(1ms);
    int ticks = 0;
    kaa::Timer stopper([&] {
        if (++ticks == 2)
            loop.stop();
    });
    stopper.start(1ms);
    loop.run_until_idle();
    EXPECT_EQ(ticks, 2);
    EXPECT_TRUE(t.active());
}

TEST_F(RunUntilIdleTest, InsideRunItIsRefused) {
    bool threw = false;
    run_in_loop([&] {
        try {
            loop.run_until_idle();
        } catch (const kaa::LoopError&) {
            threw = true;
        }
        loop.stop();
    });
    EXPECT_TRUE(threw);
}
