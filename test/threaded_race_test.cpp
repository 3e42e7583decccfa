// SPDX-License-Identifier: BSL-1.0
// Races between workers and the loop: completion against abort, results
// against loop shutdown, blocking waits against their wake-ups, many workers
// posting at once. Each test repeats its race many times and asserts only
// what must hold for every interleaving; run under ThreadSanitizer too.
#include "kaa/threaded.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__)
constexpr int kIterations = 100;
#else
constexpr int kIterations = 1000;
#endif

class ThreadedRace : public kaa::test::LoopTest {
protected:
    // Until the pool is idle and its results are delivered. A worker leaving
    // the running state does not wake the loop, so this polls with
    // non-blocking iterations (bounded by count, never by time).
    bool settle(kaa::ThreadPool& pool) {
        for (int i = 0; i < 50000000; ++i) {
            auto s = pool.stats();
            if (s.queued == 0 && s.running == 0 && !loop.has_ready_work())
                return true;
            loop.step(kaa::Duration::zero());
            std::this_thread::yield();
        }
        return false;
    }
};

TEST_F(ThreadedRace, CompletionAgainstAbortIsDeliveredOrCountedLateNeverBoth) {
    kaa::ThreadPool pool("race-abort", 2);
    std::vector<std::shared_ptr<std::atomic<bool>>> returned;
    std::vector<InProgress<int>> ips;
    std::vector<int> delivered(kIterations, 0);
    for (int i = 0; i < kIterations; ++i) {
        auto ret = std::make_shared<std::atomic<bool>>(false);
        returned.push_back(ret);
        auto ip = kaa::threaded({.pool = "race-abort"}, [ret, i] {
            for (int spin = 0; spin < (i % 7) * 50; ++spin)
                std::atomic_signal_fence(std::memory_order_seq_cst);
            ret->store(true);
            return i;
        });
        ip.connect([&delivered, i](int v) {
            EXPECT_EQ(v, i);
            ++delivered[static_cast<std::size_t>(i)];
        });
        ips.push_back(ip);
        // Abort at varying distances from the submission: queued, running,
        // or with the result already posted.
        if (i % 3 == 0)
            loop.step(kaa::Duration::zero());
        auto& victim = ips[static_cast<std::size_t>(i / 2)];
        if (!victim.finished())
            victim.abort();
    }
    ASSERT_TRUE(settle(pool));
    std::uint64_t lost_or_late = 0;
    for (int i = 0; i < kIterations; ++i) {
        auto& ip = ips[static_cast<std::size_t>(i)];
        ASSERT_TRUE(ip.finished()) << i;
        if (ip.failed()) {
            EXPECT_THROW(ip.result(), InProgressAborted);
            EXPECT_EQ(delivered[static_cast<std::size_t>(i)], 0) << i;
            if (returned[static_cast<std::size_t>(i)]->load())
                ++lost_or_late;
        } else {
            EXPECT_EQ(delivered[static_cast<std::size_t>(i)], 1) << i;
            EXPECT_TRUE(returned[static_cast<std::size_t>(i)]->load());
        }
    }
    EXPECT_EQ(pool.stats().late_results, lost_or_late)
        << "every value produced by an aborted job is counted as late, exactly once";
}

TEST_F(ThreadedRace, AbortedCoroutineWhoseJobResultIsInFlight) {
    kaa::ThreadPool pool("race-inflight", 1);
    for (int i = 0; i < kIterations / 10; ++i) {
        InProgress<int> job(nullptr);
        auto before = pool.stats();
        auto co = kaa::coroutine([&] {
            job = kaa::threaded({.pool = "race-inflight"}, [] { return 1; });
            return kaa::this_coroutine::await(job);
        });
        // The worker finishes and posts its result; the loop has not run it.
        while (pool.stats().completed == before.completed)
            std::this_thread::yield();
        co.abort();
        EXPECT_TRUE(co.failed());
        EXPECT_TRUE(job.failed()) << "the cascade reached the job";
        ASSERT_TRUE(settle(pool));
        EXPECT_EQ(pool.stats().late_results, before.late_results + 1);
    }
}

TEST_F(ThreadedRace, ManyWorkersFinishingAtOnceAreAllDeliveredInOrder) {
    constexpr int kThreads = 4;
    constexpr int kEach = kIterations;
    std::vector<std::vector<InProgress<int>>> ips(kThreads);
    std::vector<std::vector<int>> seen(kThreads);
    auto loop_thread = std::this_thread::get_id();
    for (int t = 0; t < kThreads; ++t)
        for (int i = 0; i < kEach; ++i) {
            InProgress<int> ip;
            ip.connect([&seen, t, loop_thread](int v) {
                EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                seen[static_cast<std::size_t>(t)].push_back(v);
            });
            ips[static_cast<std::size_t>(t)].push_back(ip);
        }
    std::latch go(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            go.arrive_and_wait();
            for (int i = 0; i < kEach; ++i)
                ips[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)].finish(i);
        });
    ASSERT_TRUE(step_until([&] {
        for (auto& s : seen)
            if (s.size() != static_cast<std::size_t>(kEach))
                return false;
        return true;
    }, 1000000));
    for (auto& th : threads)
        th.join();
    for (auto& s : seen)
        for (int i = 0; i < kEach; ++i)
            ASSERT_EQ(s[static_cast<std::size_t>(i)], i) << "a thread's results arrive in its order";
}

TEST_F(ThreadedRace, BlockingWaitWithTimeoutEitherGetsTheValueOrTimesOut) {
    kaa::ThreadPool pool("race-wait", 2);
    int values = 0, timeouts = 0;
    for (int i = 0; i < kIterations / 4; ++i) {
        InProgress<int> op;
        auto waiter = kaa::threaded({.pool = "race-wait"}, [op, i] {
            try {
                return op.wait(std::chrono::microseconds(i % 50));
            } catch (const kaa::TimeoutError&) {
                return -1;
            }
        });
        if (i % 2)
            loop.step(kaa::Duration::zero());
        op.finish(i);
        ASSERT_TRUE(step_until([&] { return waiter.finished(); }, 1000000));
        int v = waiter.result();
        if (v == -1)
            ++timeouts;
        else {
            EXPECT_EQ(v, i);
            ++values;
        }
    }
    EXPECT_EQ(values + timeouts, kIterations / 4);
}

TEST_F(ThreadedRace, WorkerWaitingOnAJobOfItsOwnPoolWhileItCompletes) {
    // A pool thread waiting on another job of the same pool asks whether that
    // job could ever run (deadlock detection) while the loop completes it.
    kaa::ThreadPool pool("race-deadlock-check", 2);
    for (int i = 0; i < kIterations / 2; ++i) {
        auto target = std::make_shared<std::promise<InProgress<int>>>();
        auto waiter = kaa::threaded({.pool = "race-deadlock-check"}, [f = target->get_future().share()] {
            return f.get().wait() + 1;
        });
        auto job = kaa::threaded({.pool = "race-deadlock-check"}, [i] { return i; });
        target->set_value(job);
        ASSERT_TRUE(step_until([&] { return waiter.finished(); }, 1000000));
        EXPECT_EQ(waiter.result(), i + 1);
    }
}

TEST_F(ThreadedRace, AbortWakesAJobBlockedInWait) {
    kaa::ThreadPool pool("race-abort-wait", 1);
    for (int i = 0; i < kIterations / 20; ++i) {
        InProgress<int> never;
        std::latch started(1);
        std::atomic<bool> saw_abort{false};
        auto job = kaa::threaded({.pool = "race-abort-wait"}, [&, never] {
            started.count_down();
            try {
                return never.wait();
            } catch (const InProgressAborted&) {
                saw_abort = true;
                throw;
            }
        });
        started.wait();
        job.abort();
        EXPECT_TRUE(job.failed());
        ASSERT_TRUE(settle(pool));
        EXPECT_TRUE(saw_abort.load()) << "the job's blocking wait sees the abort";
    }
}

TEST_F(ThreadedRace, FinishFromAWorkerAgainstAbortOnTheLoop) {
    // A plain InProgress (abortable through its abort signal) finished by a
    // worker while the loop aborts it: exactly one wins. The loser learns it
    // synchronously (the worker: AlreadyFinished; the loop: abort() returns
    // false); the outcome is the value or the abort, and exactly one
    // callback runs.
    int values = 0, aborts = 0;
    for (int i = 0; i < kIterations; ++i) {
        InProgress<int> ip;
        ip.abort_signal().connect([](const InProgressAborted&) {});
        int callbacks = 0;
        ip.connect_finished([&] { ++callbacks; });
        std::latch go(2);
        std::atomic<bool> worker_lost{false};
        std::thread worker([&] {
            go.arrive_and_wait();
            try {
                ip.finish(i);
            } catch (const kaa::AlreadyFinished&) {
                worker_lost = true;
            }
        });
        go.arrive_and_wait();
        bool loop_lost = !ip.abort();
        worker.join();
        ASSERT_TRUE(step_until([&] { return ip.finished() && callbacks == 1; }, 100000)) << i;
        EXPECT_NE(worker_lost.load(), loop_lost) << "exactly one side wins, iteration " << i;
        if (ip.failed()) {
            EXPECT_THROW(ip.result(), InProgressAborted);
            ++aborts;
        } else {
            EXPECT_EQ(ip.result(), i);
            ++values;
        }
        EXPECT_EQ(callbacks, 1);
    }
    EXPECT_EQ(values + aborts, kIterations);
}

TEST_F(ThreadedRace, CompletionFromAWorkerAgainstATimeout) {
    // The view of a timeout finishes with the value or TimeoutError, once;
    // with abort_on_timeout the guarded operation is then aborted, or its
    // late value is refused on the worker (AlreadyFinished), never lost
    // silently.
    int values = 0, timeouts = 0;
    for (int i = 0; i < kIterations / 4; ++i) {
        InProgress<int> op;
        op.abort_signal().connect([](const InProgressAborted&) {});
        auto view = op.timeout(std::chrono::microseconds(i % 40), i % 2 == 0);
        int callbacks = 0;
        view.connect_finished([&] { ++callbacks; });
        std::atomic<int> worker_outcome{0};
        std::thread worker([&] {
            try {
                op.finish(i);
                worker_outcome = 1;
            } catch (const kaa::AlreadyFinished&) {
                worker_outcome = 2;
            }
        });
        ASSERT_TRUE(step_until([&] { return view.finished() && op.finished(); }, 100000)) << i;
        worker.join();
        EXPECT_EQ(callbacks, 1);
        if (view.failed()) {
            EXPECT_TRUE(kaa::test::holds<kaa::TimeoutError>(view.exception()));
            ++timeouts;
            if (i % 2 == 0 && op.failed()) {
                EXPECT_EQ(worker_outcome.load(), 2) << "the aborted operation refused the late value";
            }
            if (!op.failed())
                EXPECT_EQ(op.result(), i);
            else
                (void)op.exception();
        } else {
            EXPECT_EQ(view.result(), i);
            EXPECT_EQ(worker_outcome.load(), 1);
            ++values;
        }
    }
    EXPECT_EQ(values + timeouts, kIterations / 4);
}

TEST(ThreadedRaceShutdown, JobBlockedOnTheLoopDoesNotHoldUpShutdown) {
    // At shutdown the loop thread stops the pools; a job blocked in wait()
    // for something only the loop would finish must wake up (with the abort)
    // instead of holding the shutdown for the grace period.
    for (int i = 0; i < 3; ++i) {
        kaa::MainLoop loop;
        kaa::test::ExceptionCapture reports(loop);
        kaa::ThreadPool pool("shutdown-waiter", 1);
        std::latch started(1);
        std::atomic<bool> woke{false};
        InProgress<int> never;
        auto on_main = InProgress<int>(nullptr);
        auto job = kaa::threaded({.pool = "shutdown-waiter"}, [&, never] {
            // A main-thread call the loop never gets to run before shutdown,
            // and an operation nobody finishes.
            auto call = kaa::threaded(kaa::main_thread, [] { return 1; });
            started.count_down();
            try {
                if (i % 2)
                    call.wait();
                never.wait();
            } catch (const InProgressAborted&) {
                woke = true;
            } catch (const kaa::LoopError&) {
                woke = true;
            }
        });
        started.wait();
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_TRUE(woke.load());
        EXPECT_EQ(pool.stats().threads, 0u);
        EXPECT_TRUE(reports.empty()) << reports.describe_all();
    }
}

TEST(ThreadedRaceShutdown, ResultPostedFromAWorkerWhenTheLoopGoesAwayIsDeliveredOrFails) {
    for (int i = 0; i < 20; ++i) {
        InProgress<int> ip;
        std::optional<kaa::MainLoop> loop(std::in_place);
        std::thread([ip] { ip.finish(5); }).join();  // queued to the loop
        std::optional<std::thread> blocked;
        std::atomic<int> outcome{0};
        if (i == 1)
            blocked.emplace([ip, &outcome] {
                try {
                    ip.wait(20s);
                    outcome = 1;
                } catch (const kaa::TimeoutError&) {
                    outcome = 3;
                } catch (...) {
                    outcome = 2;
                }
            });
        loop.reset();  // the posted finish never ran
        if (blocked)
            blocked->join();
        ASSERT_TRUE(ip.finished()) << "an operation whose result was dropped with the loop stays pending forever";
        EXPECT_TRUE(ip.failed());
        EXPECT_THROW(ip.result(), kaa::LoopError);
        if (i == 1) {
            EXPECT_EQ(outcome.load(), 2) << "the blocked waiter wakes with the failure";
        }
    }
}

} // namespace
