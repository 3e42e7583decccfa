// SPDX-License-Identifier: BSL-1.0
// What every host integration must do, written once: a GoogleTest
// type-parameterised suite that each host's test file instantiates with an
// adapter for its host (kaa::qt::Guest and ThreadedHost in qt_test, the
// GLib guest in glib_test, kaa::ThreadedHost over a hand-made host and over
// a GMainLoop in threaded_host_test). What only one host has -- GLib
// priorities, Qt's quit_on_stop, the threaded mode's stale dispatches --
// stays in that host's file.
//
// An adapter is constructed from the loop (the host exists, kaa is not yet
// attached) and provides:
//
//   void attach();               attach kaa to the host
//   void detach();               let go of it (harmless when not attached)
//   bool run();                  run the host's loop until kaa's loop.stop()
//                                quits it; false if a fail-safe had to end
//                                it (it bounds a hang; it is not a timing
//                                check)
//   void post_host(std::function<void()> fn);
//                                run fn later on the host thread from the
//                                host's own loop, outside any kaa dispatch
//                                (a Qt zero timer, a GLib idle source...)
//   bool on_host_thread() const; the calling thread dispatches the host
//   static constexpr const char* name;   the instance's name in test names
//                                (with HostName as the name generator)
//
// Every test ends the host's loop from a kaa callback (loop.stop() calls the
// host's quit hook).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace kaa::test {

template <class Host>
class HostConformance : public LoopTest {
protected:
    void TearDown() override {
        // Whatever a test left, shutting down must leave nothing running.
        host.detach();
        loop.shutdown();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        LoopTest::TearDown();
    }

    void run() { EXPECT_TRUE(host.run()) << "the host's loop did not end: kaa never called loop.stop()"; }

    Host host{loop};
};

TYPED_TEST_SUITE_P(HostConformance);

/// INSTANTIATE_TYPED_TEST_SUITE_P's name generator: the adapter's `name`.
struct HostName {
    template <class Host>
    static std::string GetName(int) {
        return Host::name;
    }
};

TYPED_TEST_P(HostConformance, TimersFireInOrderOnTheHostThread) {
    using namespace std::chrono_literals;
    auto& loop = this->loop;
    this->host.attach();
    std::vector<int> order;
    bool all_on_host_thread = true;
    auto fired = [&](int n) {
        all_on_host_thread = all_on_host_thread && this->host.on_host_thread();
        order.push_back(n);
        if (order.size() == 4)
            loop.stop();
    };
    kaa::delay(20ms).connect([&] { fired(3); });
    kaa::delay(5ms).connect([&] { fired(1); });
    kaa::delay(10ms).connect([&] { fired(2); });
    kaa::OneShotTimer t([&] { fired(4); });
    t.start(30ms);
    this->run();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
    EXPECT_TRUE(all_on_host_thread);
}

TYPED_TEST_P(HostConformance, CoroutineWaitsOnADelayAThreadedJobAndATimeSlice) {
    using namespace std::chrono_literals;
    auto& loop = this->loop;
    this->host.attach();
    std::thread::id job_thread;
    auto co = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(5ms));
        int v = kaa::this_coroutine::await(kaa::threaded([&] {
            job_thread = std::this_thread::get_id();
            return 41;
        }));
        kaa::this_coroutine::yield();
        return v + 1;
    });
    EXPECT_FALSE(co.finished()) << "it waits for the delay";
    std::optional<int> result;
    bool callback_on_host_thread = false;
    co.connect([&](int v) {
        result = v;
        callback_on_host_thread = this->host.on_host_thread();
        loop.stop();
    });
    this->run();
    EXPECT_EQ(result, 42);
    EXPECT_TRUE(callback_on_host_thread);
    EXPECT_NE(job_thread, std::this_thread::get_id());
}

TYPED_TEST_P(HostConformance, WorkPostedFromWorkersAllArrivesOnTheHostThread) {
    auto& loop = this->loop;
    this->host.attach();
    constexpr int kThreads = 4, kPosts = 500;
    int count = 0;
    bool all_on_host_thread = true;
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t)
        workers.emplace_back([&] {
            for (int i = 0; i < kPosts; ++i)
                loop.post([&] {
                    all_on_host_thread = all_on_host_thread && this->host.on_host_thread();
                    if (++count == kThreads * kPosts)
                        loop.stop();
                });
        });
    this->run();
    for (auto& w : workers)
        w.join();
    EXPECT_EQ(count, kThreads * kPosts);
    EXPECT_TRUE(all_on_host_thread);
}

// Work queued on the loop thread outside any kaa dispatch -- from a host
// callback -- has no fd to announce it; the loop's wake-up hook must.
TYPED_TEST_P(HostConformance, WorkQueuedFromAHostCallbackRuns) {
    auto& loop = this->loop;
    this->host.attach();
    int slices = 0;
    this->host.post_host([&] {
        kaa::coroutine([&] {
            for (; slices < 3; ++slices)
                kaa::this_coroutine::yield();
            loop.post([&] { loop.stop(); });
        });
    });
    this->run();
    EXPECT_EQ(slices, 3);
}

TYPED_TEST_P(HostConformance, CoroutineAbortedFromAHostCallback) {
    using namespace std::chrono_literals;
    auto& loop = this->loop;
    this->host.attach();
    bool saw_abort = false;
    auto co = kaa::coroutine([&] {
        try {
            kaa::this_coroutine::await(kaa::delay(1h));
        } catch (const kaa::InProgressAborted&) {
            saw_abort = true;
            throw;
        }
    });
    std::exception_ptr failure;
    co.connect_exception([&](std::exception_ptr e) {
        failure = e;
        loop.stop();
    });
    this->host.post_host([&] { co.abort(); });
    this->run();
    EXPECT_TRUE(saw_abort);
    EXPECT_TRUE(kaa::test::holds<kaa::InProgressAborted>(failure));
}

// Two coroutines time-slice for as long as the host is not seen to run its
// own callbacks: if their slices starved the host, it would never tick and
// they would reach their bound.
TYPED_TEST_P(HostConformance, TimeSlicedCoroutinesDoNotStarveTheHost) {
    auto& loop = this->loop;
    this->host.attach();
    constexpr int bound = 1'000'000;
    int host_ticks = 0;
    int slices = 0;
    auto co = kaa::coroutine([&] {
        while (host_ticks < 50 && slices < bound) {
            ++slices;
            kaa::this_coroutine::yield();
        }
    });
    auto busy = kaa::coroutine([&] { // a second one, so that two interleave
        while (!co.finished())
            kaa::this_coroutine::yield();
    });
    std::function<void()> tick = [&] {
        ++host_ticks;
        if (co.finished() && busy.finished())
            loop.stop();
        else
            this->host.post_host(tick);
    };
    this->host.post_host(tick);
    this->run();
    EXPECT_TRUE(co.finished());
    EXPECT_GE(host_ticks, 50);
    EXPECT_LT(slices, bound) << "the coroutines' time slices kept the host from running";
}

// A blocking wait inside a kaa callback (InProgress::wait runs nested
// iterations) completes while a host dispatches.
TYPED_TEST_P(HostConformance, NestedWaitInsideACallback) {
    auto& loop = this->loop;
    this->host.attach();
    std::optional<int> got;
    loop.post([&] {
        got = kaa::threaded([] { return 7; }).wait();
        loop.stop();
    });
    this->run();
    EXPECT_EQ(got, 7);
}

// shutdown() while attached -- what run() does at its end; under a host the
// application calls it -- ends coroutines, stops jobs and joins the pool;
// after detach() the loop runs standalone again.
TYPED_TEST_P(HostConformance, ShutdownAndDetachLeaveNothingRunning) {
    using namespace std::chrono_literals;
    auto& loop = this->loop;
    this->host.attach();
    auto sleeper = kaa::coroutine([&] { kaa::this_coroutine::await(kaa::delay(1h)); });
    std::mutex m;
    std::condition_variable_any cv;
    auto job = kaa::threaded([&](std::stop_token st) {
        loop.post([&] { loop.stop(); }); // running: let the test go on
        std::unique_lock lock(m);
        cv.wait(lock, st, [] { return false; }); // until shutdown asks it to stop
    });
    kaa::Timer repeating([] {});
    repeating.start(1h);
    this->run();
    EXPECT_EQ(kaa::active_coroutines(), 1u);

    loop.shutdown();
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_TRUE(sleeper.failed());
    EXPECT_TRUE(job.finished()) << "the running job saw the stop request and returned";
    EXPECT_EQ(kaa::ThreadPool::default_pool().stats().running, 0u);
    EXPECT_EQ(kaa::ThreadPool::default_pool().stats().threads, 0u) << "the pool's threads are joined";

    this->host.detach();
    EXPECT_FALSE(loop.host_attached());
    // Posts after the detach go to the standalone loop, not to the host.
    std::thread([&] { loop.post([] {}); }).join();
    EXPECT_TRUE(loop.step(kaa::Duration::zero()));
    repeating.stop();
}

REGISTER_TYPED_TEST_SUITE_P(HostConformance, TimersFireInOrderOnTheHostThread,
                            CoroutineWaitsOnADelayAThreadedJobAndATimeSlice,
                            WorkPostedFromWorkersAllArrivesOnTheHostThread, WorkQueuedFromAHostCallbackRuns,
                            CoroutineAbortedFromAHostCallback, TimeSlicedCoroutinesDoNotStarveTheHost,
                            NestedWaitInsideACallback, ShutdownAndDetachLeaveNothingRunning);

} // namespace kaa::test
