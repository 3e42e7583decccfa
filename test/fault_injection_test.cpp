// SPDX-License-Identifier: BSL-1.0
// Fault injection: exceptions from the kinds of user code not covered by the
// per-feature suites (destructors on coroutine stacks, main-thread calls,
// progress slots), a coroutine stack that cannot be allocated, and thread-pool
// jobs that do not stop at shutdown. Already covered elsewhere: signal slots
// and deferred slots (signal_test), InProgress callbacks and abort handlers
// (in_progress_test), timer callbacks (timer_test), posted work and Asio
// handlers (main_loop_test), coroutine bodies before and after a suspension
// (coroutine_test), Task bodies (task_test), threaded jobs (threaded_test).
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "kaa/kaa.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::this_coroutine::await;
using namespace std::chrono_literals;

class FaultInjection : public kaa::test::LoopTest {};

// ---- destructors during unwinding -------------------------------------------

TEST_F(FaultInjection, DestructorOnAnAbortedCoroutineStackStartsWorkWhoseCallbackThrows) {
    // While an abort unwinds the coroutine, a destructor on its stack finishes
    // an operation whose callback throws, and starts a new coroutine: legal,
    // and the callback's exception is reported, not lost or fatal.
    InProgress<void> never;
    InProgress<int> side;
    side.connect([](int) { throw std::runtime_error("callback during unwinding"); });
    int destructors = 0;
    InProgress<int> started(nullptr);
    struct Cleanup {
        InProgress<int>& side;
        InProgress<int>& started;
        int& destructors;
        ~Cleanup() {
            ++destructors;
            side.finish(1);
            started = kaa::coroutine([] { return 2; });
        }
    };
    auto co = kaa::coroutine([&] {
        Cleanup c{side, started, destructors};
        await(never);
    });
    co.abort();
    EXPECT_EQ(destructors, 1);
    EXPECT_TRUE(co.failed());
    EXPECT_THROW(co.result(), InProgressAborted);
    ASSERT_TRUE(started.valid());
    EXPECT_EQ(started.result(), 2);
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(got[0]), "callback during unwinding");
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

struct ThrowsOnScopeExit {
    ~ThrowsOnScopeExit() noexcept(false) { throw std::runtime_error("destructor threw"); }
};

TEST_F(FaultInjection, ThrowingDestructorAtNormalScopeExitFailsTheCoroutine) {
    InProgress<void> gate;
    auto co = kaa::coroutine([&] {
        ThrowsOnScopeExit t;
        await(gate);
        return 1;
    });
    gate.finish();
    ASSERT_TRUE(co.failed());
    EXPECT_EQ(kaa::test::message_of(co.exception()), "destructor threw");
    EXPECT_EQ(kaa::detail::coroutine_stack_counts().live, 0u);
}

TEST_F(FaultInjection, ThrowingDestructorAtNormalScopeExitFailsTheTask) {
    InProgress<void> gate;
    auto body = [](InProgress<void> g) -> kaa::Task<int> {
        ThrowsOnScopeExit t;
        co_await g;
        co_return 1;
    };
    auto task = body(gate);
    gate.finish();
    ASSERT_TRUE(task.failed());
    EXPECT_EQ(kaa::test::message_of(task.exception()), "destructor threw");
    EXPECT_EQ(kaa::active_tasks(), 0u);
}

// ---- other callbacks ----------------------------------------------------------

TEST_F(FaultInjection, MainThreadCallThrowingReachesTheWaitingWorker) {
    kaa::ThreadPool pool("fault-main-call", 1);
    auto job = kaa::threaded({.pool = "fault-main-call"}, [] {
        auto call = kaa::threaded(kaa::main_thread, []() -> int { throw std::runtime_error("on the loop"); });
        try {
            call.wait();
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    });
    ASSERT_TRUE(step_until([&] { return job.finished(); }));
    EXPECT_EQ(job.result(), "on the loop");
}

TEST_F(FaultInjection, ThrowingProgressSlotIsReportedAndTheJobFinishes) {
    kaa::ThreadPool pool("fault-progress", 1);
    auto job = kaa::threaded({.pool = "fault-progress", .progress = true}, [] {
        kaa::this_job::set_progress(1, 2);
        return 3;
    });
    job.progress()->changed().connect([](const kaa::Progress&) { throw std::runtime_error("progress slot"); });
    ASSERT_TRUE(step_until([&] { return job.finished() && !loop.has_ready_work(); }));
    EXPECT_EQ(job.result(), 3);
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(got[0]), "progress slot");
}

// ---- stack allocation failure ---------------------------------------------------

// Stack sizes that no other test uses: the pool keeps released stacks for
// reuse by size, so only a size never used before is sure to be mapped.
constexpr std::size_t kOddStack = 96 * 1024;
constexpr std::size_t odd_stack(int n) { return kOddStack + static_cast<std::size_t>(n) * 4096; }

TEST_F(FaultInjection, StackAllocationFailureIsATypedErrorAndLeavesNothing) {
    auto before = kaa::detail::coroutine_stack_counts();
    kaa::detail::fail_next_stack_maps(1);
    bool ran = false;
    try {
        kaa::coroutine(kaa::CoroutineOptions{.name = "no-stack", .stack_size = kOddStack}, [&] { ran = true; });
        FAIL() << "no exception";
    } catch (const kaa::StackAllocationError& e) {
        EXPECT_EQ(e.code(), std::errc::not_enough_memory);
        EXPECT_NE(std::string(e.what()).find("stack_size"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(ran);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_EQ(kaa::detail::coroutine_stack_counts().live, before.live);
    // The loop and the next coroutine are fine.
    auto ok = kaa::coroutine(kaa::CoroutineOptions{.stack_size = kOddStack}, [] {
        kaa::this_coroutine::yield();
        return 5;
    });
    ASSERT_TRUE(step_until([&] { return ok.finished(); }));
    EXPECT_EQ(ok.result(), 5);
    EXPECT_EQ(kaa::detail::coroutine_stack_counts().live, before.live);
}

TEST_F(FaultInjection, StackAllocationFailureInAChildIsCatchableByTheParent) {
    auto parent = kaa::coroutine([] {
        kaa::detail::fail_next_stack_maps(1);
        try {
            kaa::coroutine(kaa::CoroutineOptions{.stack_size = odd_stack(1)}, [] { return 1; });
        } catch (const kaa::StackAllocationError&) {
            return -1;
        }
        return 0;
    });
    EXPECT_EQ(parent.result(), -1);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(FaultInjection, SingletonWhoseFirstStartFailedStartsAgain) {
    int entered = 0;
    kaa::Coroutine<int()> def({.stack_size = odd_stack(2), .policy = kaa::Policy::singleton}, [&] {
        ++entered;
        return 7;
    });
    kaa::detail::fail_next_stack_maps(1);
    EXPECT_THROW(def(), kaa::StackAllocationError);
    auto ip = def();  // not the instance that never started
    EXPECT_EQ(ip.result(), 7);
    EXPECT_EQ(entered, 1);
}

TEST_F(FaultInjection, SynchronizedQueueGoesOnWhenAStartFails) {
    // Risk (c) of the shutdown review: a queued start that throws must not
    // stall the queue, and a failed first start must not leave it busy.
    InProgress<void> gate;
    std::vector<int> ran;
    kaa::Coroutine<void(int)> def({.stack_size = odd_stack(3), .policy = kaa::Policy::synchronized}, [&](int i) {
        ran.push_back(i);
        if (i == 0)
            await(gate);
    });
    kaa::detail::fail_next_stack_maps(1);
    EXPECT_THROW(def(-1), kaa::StackAllocationError);  // failed first start
    auto a = def(0);                                    // runs: the group is free
    auto b = def(1);                                    // queued
    auto c = def(2);                                    // queued
    kaa::detail::fail_next_stack_maps(1);               // b's start will fail
    gate.finish();
    EXPECT_TRUE(a.finished());
    ASSERT_TRUE(b.failed());
    EXPECT_TRUE(kaa::test::holds<kaa::StackAllocationError>(b.exception()));
    EXPECT_TRUE(c.finished());
    EXPECT_FALSE(c.failed());
    EXPECT_EQ(ran, (std::vector<int>{0, 2}));
}

TEST_F(FaultInjection, LongSynchronizedQueueReleasedOnACoroutineStackDoesNotRecurse) {
    // Thousands of queued calls that end without suspending, released from a
    // coroutine (a 128 KiB stack): one frame per call would overflow it.
    InProgress<void> gate;
    int ran = 0;
    kaa::Coroutine<void(int)> def({.policy = kaa::Policy::synchronized}, [&](int i) {
        ++ran;
        if (i == 0)
            await(gate);
    });
    def(0);
    constexpr int kQueued = 3000;
    for (int i = 1; i <= kQueued; ++i)
        def(i);
    auto finisher = kaa::coroutine([&] { gate.finish(); });
    EXPECT_TRUE(finisher.finished());
    EXPECT_EQ(ran, kQueued + 1);
}

// ---- thread-pool jobs that do not stop ------------------------------------------

TEST_F(FaultInjection, JobThatIgnoresTheStopIsReportedAfterTheGraceAndLeftToFinish) {
    kaa::ThreadPool pool("fault-stuck", 1);
    std::atomic<bool> release{false}, done{false};
    std::latch started(1);
    auto job = kaa::threaded({.pool = "fault-stuck"}, [&] {
        started.count_down();
        while (!release.load())  // ignores this_job::aborted()
            std::this_thread::yield();
        done = true;
    });
    started.wait();
    // Risk (d): the report runs user slots; one that asks the pool something
    // must not deadlock on the pool's lock.
    std::size_t running_seen = 99;
    auto conn = loop.signals().exception.connect([&](std::exception_ptr) { running_seen = pool.stats().running; });
    pool.shutdown(10ms);
    conn.disconnect();
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(kaa::test::holds<kaa::WouldDeadlock>(got[0]));
    std::string msg = kaa::test::message_of(got[0]);
    EXPECT_NE(msg.find("'fault-stuck'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("still running after the shutdown grace period"), std::string::npos) << msg;
    EXPECT_EQ(running_seen, 1u);
    release = true;
    for (int i = 0; i < 100000000 && !done.load(); ++i)
        std::this_thread::yield();
    EXPECT_TRUE(done.load());
    ASSERT_TRUE(step_until([&] { return job.finished(); }, 100000));
    // The pool works again afterwards.
    auto again = kaa::threaded({.pool = "fault-stuck"}, [] { return 4; });
    ASSERT_TRUE(step_until([&] { return again.finished(); }, 100000));
    EXPECT_EQ(again.result(), 4);
}

TEST_F(FaultInjection, StopCallbackOfARunningJobMayUseThePool) {
    // Risk (d): request_stop() runs stop callbacks synchronously; the pool
    // must not hold its lock then.
    kaa::ThreadPool pool("fault-stop-callback", 1);
    std::latch registered(1);
    std::atomic<std::size_t> seen{99};
    auto job = kaa::threaded({.pool = "fault-stop-callback"}, [&](std::stop_token st) {
        std::atomic<bool> stop{false};
        std::stop_callback cb(st, [&] {
            seen = pool.stats().running;
            stop = true;
        });
        registered.count_down();
        while (!stop.load())
            std::this_thread::yield();
    });
    registered.wait();
    pool.shutdown(10s);
    EXPECT_EQ(seen.load(), 1u);
    EXPECT_EQ(pool.stats().threads, 0u);
    ASSERT_TRUE(step_until([&] { return job.finished(); }, 100000));
}

} // namespace
