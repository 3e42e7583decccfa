// SPDX-License-Identifier: BSL-1.0
#include "kaa/task.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::InProgressRef;
using kaa::Task;
using namespace std::chrono_literals;

class TaskTest : public kaa::test::LoopTest {};

Task<int> add_one(InProgress<int> in) {
    int v = co_await in;
    co_return v + 1;
}

Task<> noop() { co_return; }

TEST_F(TaskTest, FirstStepRunsAtOnceAndTheTaskIsAnInProgress) {
    InProgress<int> in;
    InProgress<int> ip = add_one(in);
    EXPECT_FALSE(ip.finished());
    EXPECT_EQ(kaa::active_tasks(), 1u);
    in.finish(41);
    ASSERT_TRUE(ip.finished());
    EXPECT_EQ(ip.result(), 42);
    EXPECT_EQ(kaa::active_tasks(), 0u);
    EXPECT_TRUE(noop().finished());
}

TEST_F(TaskTest, AwaitingAFinishedInProgressDoesNotSuspend) {
    auto t = add_one(kaa::make_finished<int>(1));
    ASSERT_TRUE(t.finished());
    EXPECT_EQ(t.result(), 2);
}

Task<std::string> thrower(InProgress<void> gate) {
    co_await gate;
    throw std::runtime_error("task failed");
}

TEST_F(TaskTest, ExceptionsFailTheInProgress) {
    InProgress<void> gate;
    auto t = thrower(gate);
    gate.finish();
    ASSERT_TRUE(t.failed());
    EXPECT_THROW(t.result(), std::runtime_error);
}

Task<int> awaits_failure(InProgress<int> in) {
    try {
        co_return co_await in;
    } catch (const std::logic_error&) {
        co_return -1;
    }
}

TEST_F(TaskTest, CoAwaitRethrowsTheFailure) {
    InProgress<int> in;
    auto t = awaits_failure(in);
    in.fail(std::logic_error("upstream"));
    EXPECT_EQ(t.result(), -1);
}

Task<int> on_a_thread() {
    int a = co_await kaa::threaded([] { return 40; });
    co_await kaa::delay(1ms);
    co_return a + 2;
}

TEST_F(TaskTest, AwaitsThreadsAndDelays) {
    auto t = on_a_thread();
    ASSERT_TRUE(step_until([&] { return t.finished(); }, 100000));
    EXPECT_EQ(t.result(), 42);
}

// ---- across the boundary ----------------------------------------------------

TEST_F(TaskTest, StackfulAwaitsStackless) {
    InProgress<int> in;
    auto co = kaa::coroutine([&] { return kaa::this_coroutine::await(add_one(in)) * 2; });
    in.finish(1);
    EXPECT_EQ(co.result(), 4);
}

Task<int> awaits_coroutine(kaa::CoroutineInProgress<int> co) { co_return co_await co + 100; }

TEST_F(TaskTest, StacklessAwaitsStackful) {
    InProgress<int> in;
    auto t = awaits_coroutine(kaa::coroutine([&] { return kaa::this_coroutine::await(in); }));
    in.finish(5);
    EXPECT_EQ(t.result(), 105);
}

struct Seen {
    bool aborted = false;
    InProgressRef inprogress, origin;
};

Task<void> task_waiting(InProgress<void> never, Seen* seen) {
    try {
        co_await never;
    } catch (const InProgressAborted& e) {
        *seen = {true, e.inprogress(), e.origin()};
        throw;
    }
}

TEST_F(TaskTest, AbortRaisesAtTheCoAwait) {
    InProgress<void> never;
    Seen seen;
    auto t = task_waiting(never, &seen);
    t.abort();
    EXPECT_TRUE(seen.aborted);
    EXPECT_TRUE(seen.inprogress == never);
    EXPECT_TRUE(seen.origin == t);
    EXPECT_TRUE(t.failed());
    EXPECT_THROW(t.result(), InProgressAborted);
    EXPECT_EQ(kaa::active_tasks(), 0u);
}

TEST_F(TaskTest, AbortCascadesFromStackfulIntoStackless) {
    InProgress<void> never;
    Seen in_task;
    InProgress<void> task(nullptr);
    auto co = kaa::coroutine([&] {
        task = task_waiting(never, &in_task);
        kaa::this_coroutine::await(task);
    });
    co.abort();
    EXPECT_TRUE(in_task.aborted) << "the abort crossed into the Task";
    EXPECT_TRUE(in_task.origin == co);
    EXPECT_TRUE(task.failed());
}

Task<void> task_awaiting_coroutine(InProgress<void> co) { co_await co; }

TEST_F(TaskTest, AbortCascadesFromStacklessIntoStackful) {
    InProgress<void> never;
    bool unwound = false;
    auto co = kaa::coroutine([&] {
        try {
            kaa::this_coroutine::await(never);
        } catch (const InProgressAborted& e) {
            unwound = true;
            throw;
        }
    });
    auto t = task_awaiting_coroutine(co);
    t.abort();
    EXPECT_TRUE(unwound) << "the abort crossed into the stackful coroutine";
    EXPECT_TRUE(co.failed());
    EXPECT_TRUE(t.failed());
}

TEST_F(TaskTest, NoabortShieldsAcrossTheBoundary) {
    auto d = kaa::delay(1ms);
    auto t = task_awaiting_coroutine(d.noabort());
    t.abort();
    EXPECT_TRUE(t.failed());
    EXPECT_FALSE(d.finished());
    ASSERT_TRUE(step_until([&] { return d.finished(); }));
    EXPECT_FALSE(d.failed());
}

Task<void> awaits_after_abort(InProgress<void> never, bool* misuse) {
    bool aborted = false;
    try {
        co_await never;
    } catch (const InProgressAborted&) {
        aborted = true;  // (C++ forbids co_await inside a handler)
    }
    if (aborted) {
        try {
            co_await kaa::delay(1ms);
        } catch (const kaa::SuspendAfterAbort&) {
            *misuse = true;
            throw;
        }
    }
}

TEST_F(TaskTest, CoAwaitAfterAbortIsAnError) {
    InProgress<void> never;
    bool misuse = false;
    auto t = awaits_after_abort(never, &misuse);
    t.abort();
    EXPECT_TRUE(misuse);
    EXPECT_THROW(t.result(), InProgressAborted);
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(kaa::test::holds<kaa::SuspendAfterAbort>(got[0]));
}

TEST(TaskShutdown, SuspendedTasksAreUnwoundAtShutdown) {
    int unwound = 0;
    {
        kaa::MainLoop loop;
        InProgress<void> never;
        Seen seen;
        for (int i = 0; i < 100; ++i) {
            auto t = task_waiting(never, &seen);
            t.connect_exception([&](std::exception_ptr) { ++unwound; });
        }
        EXPECT_EQ(kaa::active_tasks(), 100u);
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_EQ(kaa::active_tasks(), 0u);
    }
    EXPECT_EQ(unwound, 100);
}

} // namespace
