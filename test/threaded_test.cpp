// SPDX-License-Identifier: BSL-1.0
#include "kaa/threaded.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/synchronized.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using namespace std::chrono_literals;

class Threaded : public kaa::test::LoopTest {
protected:
    template <class T>
    bool finish_wait(const kaa::InProgress<T>& ip) {
        return step_until([&] { return ip.finished(); }, 100000);
    }
    /// For conditions that no loop event signals (a pool's counters change
    /// on the worker after its last post): zero-timeout steps, bounded by
    /// a count.
    template <class Pred>
    bool poll_until(Pred&& pred) {
        for (int i = 0; i < 10'000'000 && !pred(); ++i) {
            loop.step(kaa::Duration::zero());
            std::this_thread::yield();
        }
        return pred();
    }
};

TEST_F(Threaded, ResultArrivesOnTheLoopThread) {
    auto loop_thread = std::this_thread::get_id();
    std::thread::id worker, callback;
    auto ip = kaa::threaded([&] {
        worker = std::this_thread::get_id();
        return 6 * 7;
    });
    ip.connect([&](int) { callback = std::this_thread::get_id(); });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_EQ(ip.result(), 42);
    EXPECT_NE(worker, loop_thread);
    EXPECT_EQ(callback, loop_thread);
}

TEST_F(Threaded, ExceptionArrivesOnTheLoopThread) {
    auto ip = kaa::threaded([]() -> int { throw std::runtime_error("disk on fire"); });
    std::thread::id callback;
    ip.connect_exception([&](std::exception_ptr) { callback = std::this_thread::get_id(); });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_EQ(callback, std::this_thread::get_id());
    EXPECT_THROW(ip.result(), std::runtime_error);
}

TEST_F(Threaded, VoidAndArguments) {
    std::atomic<int> sum{0};
    auto ip = kaa::threaded([&](int a, int b) { sum = a + b; }, 2, 3);
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_EQ(sum.load(), 5);
}

TEST_F(Threaded, UnknownPoolIsAClearError) {
    try {
        kaa::threaded({.pool = "no-such-pool"}, [] {});
        FAIL();
    } catch (const kaa::UnknownPool& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-pool"), std::string::npos);
    }
}

TEST_F(Threaded, NamedPoolIsFoundByName) {
    kaa::ThreadPool pool("decoders", 2);
    EXPECT_EQ(&kaa::ThreadPool::get("decoders"), &pool);
    EXPECT_THROW(kaa::ThreadPool("decoders", 1), kaa::UsageError);
    auto ip = kaa::threaded({.pool = "decoders"}, [] { return std::string("frame"); });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_EQ(ip.result(), "frame");
}

TEST_F(Threaded, NamedThreadRunsSeriallyInPriorityOrder) {
    kaa::ThreadPool db("db", 1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::latch started(1);
    std::vector<std::string> order;  // touched by the single db thread only
    std::atomic<int> concurrent{0}, max_concurrent{0};
    auto job = [&](std::string name) {
        int now = ++concurrent;
        max_concurrent = std::max(max_concurrent.load(), now);
        order.push_back(name);
        --concurrent;
    };
    // The first job holds the thread until everything else is queued.
    auto first = kaa::threaded({.pool = "db"}, [&] {
        started.count_down();
        gate.wait();
    });
    started.wait();
    std::vector<InProgress<void>> ips;
    ips.push_back(kaa::threaded({.pool = "db", .priority = 0}, job, std::string("lo1")));
    ips.push_back(kaa::threaded({.pool = "db", .priority = 0}, job, std::string("lo2")));
    ips.push_back(kaa::threaded({.pool = "db", .priority = 5}, job, std::string("hi5")));
    ips.push_back(kaa::threaded({.pool = "db", .priority = 3}, job, std::string("hi3")));
    ips.push_back(kaa::threaded({.pool = "db", .priority = 0}, job, std::string("lo4")));
    release.set_value();
    ASSERT_TRUE(step_until([&] { return std::all_of(ips.begin(), ips.end(), [](auto& i) { return i.finished(); }); },
                           100000));
    EXPECT_EQ(order, (std::vector<std::string>{"hi5", "hi3", "lo1", "lo2", "lo4"}));
    EXPECT_EQ(max_concurrent.load(), 1);
}

// The queue keeps one FIFO per priority, reuses emptied ones and prunes them
// when many priorities came and went: over two rounds of many priorities
// (with queued jobs aborted in between), the run order stays "higher first,
// equal ones in submission order".
TEST_F(Threaded, ManyPrioritiesRunInStableOrder) {
    kaa::ThreadPool serial("prio", 1);
    std::vector<int> order;  // touched by the single thread only
    for (int round = 0; round < 2; ++round) {
        std::promise<void> release;
        std::shared_future<void> gate = release.get_future().share();
        std::latch started(1);
        auto blocker = kaa::threaded({.pool = "prio"}, [&] {
            started.count_down();
            gate.wait();
        });
        started.wait();
        struct Queued {
            int priority;
            int id;
            InProgress<void> ip;
        };
        std::vector<Queued> queued;
        for (int i = 0; i < 60; ++i) {
            int priority = (i * 7) % 13 - 6 + round * 20;  // 13 priorities, interleaved
            queued.push_back({priority, i, kaa::threaded({.pool = "prio", .priority = priority},
                                                         [&order, i] { order.push_back(i); })});
        }
        for (int i = 0; i < 60; i += 9)
            queued[static_cast<std::size_t>(i)].ip.abort();  // removed: they never run
        std::vector<int> expected;
        std::vector<Queued*> sorted;
        for (auto& q : queued)
            if (q.id % 9 != 0)
                sorted.push_back(&q);
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const Queued* a, const Queued* b) { return a->priority > b->priority; });
        for (auto* q : sorted)
            expected.push_back(q->id);
        EXPECT_EQ(serial.stats().queued, expected.size());
        order.clear();
        release.set_value();
        ASSERT_TRUE(step_until(
            [&] { return std::all_of(queued.begin(), queued.end(), [](auto& q) { return q.ip.finished(); }); },
            100000));
        ASSERT_TRUE(step_until([&] { return blocker.finished(); }, 100000));
        EXPECT_EQ(order, expected) << "round " << round;
    }
}

// Job states are recycled per thread (a bounded cache of one block size;
// larger states are allocated normally): rounds of more jobs in flight than
// the cache holds, with small and large results, all deliver their own value.
TEST_F(Threaded, RecycledJobStatesKeepTheirValues) {
    struct Big {
        std::array<char, 2048> bytes;
    };
    for (int round = 0; round < 3; ++round) {
        std::vector<InProgress<int>> small;
        std::vector<InProgress<std::string>> text;
        std::vector<InProgress<Big>> big;
        for (int i = 0; i < 700; ++i) {
            small.push_back(kaa::threaded([i] { return i * 3; }));
            if (i % 7 == 0) {
                text.push_back(kaa::threaded([i] { return std::string(100, static_cast<char>('a' + i % 26)); }));
                big.push_back(kaa::threaded([i] {
                    Big b;
                    b.bytes.fill(static_cast<char>(i % 100));
                    return b;
                }));
            }
        }
        ASSERT_TRUE(step_until([&] { return small.back().finished() && text.back().finished() && big.back().finished(); },
                               100000));
        ASSERT_TRUE(step_until([&] { return std::all_of(small.begin(), small.end(), [](auto& ip) { return ip.finished(); }); },
                               100000));
        ASSERT_TRUE(step_until([&] { return std::all_of(big.begin(), big.end(), [](auto& ip) { return ip.finished(); }) &&
                                            std::all_of(text.begin(), text.end(), [](auto& ip) { return ip.finished(); }); },
                               100000));
        for (int i = 0; i < 700; ++i)
            ASSERT_EQ(small[static_cast<std::size_t>(i)].result(), i * 3);
        for (std::size_t k = 0; k < text.size(); ++k) {
            int i = static_cast<int>(k) * 7;
            ASSERT_EQ(text[k].result(), std::string(100, static_cast<char>('a' + i % 26)));
            ASSERT_EQ(big[k].result().bytes[2047], static_cast<char>(i % 100));
        }
    }
}

TEST_F(Threaded, AbortingAQueuedJobRemovesIt) {
    kaa::ThreadPool serial("serial", 1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::latch started(1);
    auto blocker = kaa::threaded({.pool = "serial"}, [&] {
        started.count_down();
        gate.wait();
    });
    started.wait();
    std::atomic<bool> ran{false};
    auto queued = kaa::threaded({.pool = "serial"}, [&] { ran = true; });
    EXPECT_EQ(serial.stats().queued, 1u);
    queued.abort();
    EXPECT_TRUE(queued.failed());
    EXPECT_EQ(serial.stats().queued, 0u);
    release.set_value();
    ASSERT_TRUE(finish_wait(blocker));
    EXPECT_FALSE(ran.load());
}

TEST_F(Threaded, AbortingARunningJobIsCooperative) {
    std::latch started(1);
    std::atomic<bool> saw_abort{false};
    auto ip = kaa::threaded([&] {
        started.count_down();
        while (!kaa::this_job::aborted())
            std::this_thread::yield();
        saw_abort = true;
        return 1;  // produced after the abort: discarded
    });
    started.wait();
    ip.abort();  // never blocks
    EXPECT_TRUE(ip.failed());
    EXPECT_THROW(ip.result(), InProgressAborted);
    auto& pool = kaa::ThreadPool::default_pool();
    auto late_before = pool.stats().late_results;
    ASSERT_TRUE(step_until([&] { return pool.stats().late_results > late_before; }, 100000));
    EXPECT_TRUE(saw_abort.load());
}

TEST_F(Threaded, StopTokenParameter) {
    std::latch started(1);
    auto ip = kaa::threaded([&](std::stop_token st) {
        started.count_down();
        while (!st.stop_requested())
            std::this_thread::yield();
        throw InProgressAborted("obeyed");
    });
    started.wait();
    ip.abort();
    EXPECT_TRUE(ip.failed());
    // The job's own InProgressAborted is the job obeying: not reported.
    auto& pool = kaa::ThreadPool::default_pool();
    ASSERT_TRUE(poll_until([&] { return pool.stats().running == 0; }));
    loop.step(kaa::Duration::zero());
}

// The stop token's shared state is made on demand (most jobs never ask):
// a token asked for after the abort is already requested.
TEST_F(Threaded, StopTokenAskedForAfterTheAbortIsRequested) {
    std::latch started(1);
    std::latch aborted(1);
    std::promise<bool> seen;
    auto ip = kaa::threaded([&] {
        started.count_down();
        aborted.wait();
        std::stop_token st = kaa::this_job::stop_token();
        seen.set_value(st.stop_possible() && st.stop_requested() && kaa::this_job::aborted());
    });
    started.wait();
    ip.abort();
    aborted.count_down();
    EXPECT_TRUE(seen.get_future().get());
    auto& pool = kaa::ThreadPool::default_pool();
    ASSERT_TRUE(poll_until([&] { return pool.stats().running == 0; }));
}

// A token taken before the abort gets it: its stop callbacks run (on the
// aborting thread, inside abort()), and this_job::stop_token() is the same
// token as the parameter.
TEST_F(Threaded, StopCallbackRunsWhenTheAbortComesAfterTheToken) {
    std::latch registered(1);
    std::promise<std::thread::id> called;
    std::atomic<bool> same{false};
    auto ip = kaa::threaded([&](std::stop_token st) {
        same = kaa::this_job::stop_token() == st;
        std::stop_callback cb(st, [&] { called.set_value(std::this_thread::get_id()); });
        registered.count_down();
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lk(m);
        cv.wait(lk, st, [] { return false; });  // returns on the stop request
        throw InProgressAborted("obeyed");
    });
    registered.wait();
    auto fut = called.get_future();
    ip.abort();
    ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(fut.get(), std::this_thread::get_id());
    EXPECT_TRUE(same.load());
    auto& pool = kaa::ThreadPool::default_pool();
    ASSERT_TRUE(poll_until([&] { return pool.stats().running == 0; }));
}

namespace {
// Records the thread that destroys it (moved-from copies record nothing).
struct ThreadProbe {
    std::shared_ptr<std::atomic<std::thread::id>> where;
    explicit ThreadProbe(std::shared_ptr<std::atomic<std::thread::id>> w) : where(std::move(w)) {}
    ThreadProbe(ThreadProbe&&) noexcept = default;
    ~ThreadProbe() {
        if (where)
            where->store(std::this_thread::get_id());
    }
};
} // namespace

// The job lives in its InProgress state: when nobody holds the InProgress
// any more, the worker still hands its reference to the loop with the
// result, so the value is destroyed on the loop thread, not on the worker.
TEST_F(Threaded, AValueNobodyWaitsForIsReleasedOnTheLoopThread) {
    auto where = std::make_shared<std::atomic<std::thread::id>>();
    std::latch go(1);
    kaa::threaded([&go, where] {
        go.wait();
        return ThreadProbe(where);
    });  // the handle goes at once
    go.count_down();
    ASSERT_TRUE(step_until([&] { return where->load() != std::thread::id(); }, 100000));
    EXPECT_EQ(where->load(), std::this_thread::get_id());
}

TEST_F(Threaded, LateExceptionAfterAbortIsReported) {
    std::latch started(1);
    std::atomic<bool> done{false};
    auto ip = kaa::threaded([&] {
        started.count_down();
        while (!kaa::this_job::aborted())
            std::this_thread::yield();
        done = true;
        throw std::runtime_error("cleanup failed");
    });
    started.wait();
    ip.abort();
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }, 100000));
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(got[0]), "cleanup failed");
}

TEST_F(Threaded, MainThreadCallFromAWorker) {
    auto loop_thread = std::this_thread::get_id();
    auto ip = kaa::threaded([&] {
        auto on_main = kaa::threaded(kaa::main_thread, [&] { return std::this_thread::get_id(); });
        return on_main.wait(10s) == loop_thread;
    });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_TRUE(ip.result());
}

TEST_F(Threaded, MainThreadCallOnTheLoopRunsAtOnce) {
    bool ran = false;
    auto ip = kaa::threaded(kaa::main_thread, [&] {
        ran = true;
        return 3;
    });
    EXPECT_TRUE(ran);
    ASSERT_TRUE(ip.finished());
    EXPECT_EQ(ip.result(), 3);
}

TEST_F(Threaded, BlockingWaitWithTimeoutOnAWorker) {
    InProgress<int> never;  // nothing finishes it
    auto ip = kaa::threaded([never] {
        try {
            never.wait(1ms);
            return std::string("finished?");
        } catch (const kaa::TimeoutError&) {
            return std::string("timed out");
        }
    });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_EQ(ip.result(), "timed out");
}

TEST_F(Threaded, WaitOnTheLoopThreadRunsTheLoop) {
    auto ip = kaa::threaded([] { return 5; });
    EXPECT_EQ(ip.wait(), 5);
}

TEST_F(Threaded, DeadlockOnASerialThreadIsDetected) {
    kaa::ThreadPool serial("serial-dl", 1);
    std::promise<InProgress<int>> inner_promise;
    auto inner_future = inner_promise.get_future();
    auto outer = kaa::threaded({.pool = "serial-dl"}, [&] {
        InProgress<int> inner = inner_future.get();
        return inner.wait();  // queued behind this very job: can never run
    });
    auto inner = kaa::threaded({.pool = "serial-dl"}, [] { return 1; });
    inner_promise.set_value(inner);
    ASSERT_TRUE(finish_wait(outer));
    EXPECT_THROW(outer.result(), kaa::WouldDeadlock);
    ASSERT_TRUE(finish_wait(inner));
    EXPECT_EQ(inner.result(), 1);
}

TEST_F(Threaded, WaitInsideACoroutineIsAnError) {
    InProgress<int> never;
    auto co = kaa::coroutine([&] { return never.wait(); });
    ASSERT_TRUE(co.failed());
    EXPECT_THROW(co.result(), kaa::UsageError);
}

TEST_F(Threaded, CoroutineWaitsOnAJob) {
    auto co = kaa::coroutine([] {
        int a = kaa::this_coroutine::await(kaa::threaded([] { return 20; }));
        int b = kaa::this_coroutine::await(kaa::threaded([] { return 22; }));
        return a + b;
    });
    ASSERT_TRUE(finish_wait(co));
    EXPECT_EQ(co.result(), 42);
}

TEST_F(Threaded, AbortedCoroutineCascadesIntoItsJob) {
    std::latch started(1);
    std::atomic<bool> job_saw_abort{false};
    InProgress<int> job(nullptr);
    auto co = kaa::coroutine([&] {
        job = kaa::threaded([&] {
            started.count_down();
            while (!kaa::this_job::aborted())
                std::this_thread::yield();
            job_saw_abort = true;
            return 0;
        });
        return kaa::this_coroutine::await(job);
    });
    started.wait();
    co.abort();
    EXPECT_TRUE(co.failed());
    EXPECT_TRUE(job.failed()) << "the cascade aborted the job";
    auto& pool = kaa::ThreadPool::default_pool();
    ASSERT_TRUE(poll_until([&] { return job_saw_abort.load() && pool.stats().running == 0; }));
}

TEST_F(Threaded, ProgressIsCoalescedOntoTheLoop) {
    std::latch produced(1);
    auto ip = kaa::threaded({.progress = true}, [&] {
        for (int i = 1; i <= 1000; ++i)
            kaa::this_job::set_progress(i, 1000);
        produced.count_down();
    });
    auto progress = ip.progress();
    ASSERT_TRUE(progress);
    std::vector<std::int64_t> seen;
    std::thread::id where;
    progress->changed().connect([&](const kaa::Progress& p) {
        seen.push_back(p.pos());
        where = std::this_thread::get_id();
    });
    ASSERT_TRUE(finish_wait(ip));
    ASSERT_TRUE(step_until([&] { return !seen.empty() && seen.back() == 1000; }, 100000));
    EXPECT_EQ(where, std::this_thread::get_id());
    EXPECT_LE(seen.size(), 1000u);
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST_F(Threaded, ProgressWithoutOptionIsAnError) {
    auto ip = kaa::threaded([] { kaa::this_job::set_progress(1, 2); });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_THROW(ip.result(), kaa::UsageError);
    EXPECT_THROW(kaa::this_job::set_progress(1, 2), kaa::UsageError) << "outside a job";
}

TEST_F(Threaded, SubmittingFromAWorkerIsAnError) {
    auto ip = kaa::threaded([] { kaa::threaded([] {}); });
    ASSERT_TRUE(finish_wait(ip));
    EXPECT_THROW(ip.result(), kaa::WrongThread);
}

TEST(ThreadedShutdown, QueuedJobsAbortedRunningJobsStoppedThreadsJoined) {
    std::atomic<bool> queued_ran{false};
    std::atomic<bool> running_saw_abort{false};
    InProgress<void> running(nullptr), queued(nullptr);
    {
        kaa::MainLoop loop;
        kaa::ThreadPool serial("shutdown-serial", 1);
        std::latch started(1);
        running = kaa::threaded({.pool = "shutdown-serial"}, [&] {
            started.count_down();
            while (!kaa::this_job::aborted())
                std::this_thread::yield();
            running_saw_abort = true;
        });
        started.wait();
        queued = kaa::threaded({.pool = "shutdown-serial"}, [&] { queued_ran = true; });
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_EQ(serial.stats().threads, 0u) << "threads joined at shutdown";
        EXPECT_TRUE(queued.failed());
        EXPECT_THROW(queued.result(), InProgressAborted);
    }
    EXPECT_TRUE(running_saw_abort.load());
    EXPECT_FALSE(queued_ran.load());
}

TEST(Synchronized, OneLockForEveryWayOfTakingIt) {
    kaa::Synchronized<std::vector<int>> items;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                if (i % 2)
                    items.with_lock([&](auto& v) { v.push_back(i); });
                else
                    items.lock()->push_back(i);
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(items.lock()->size(), 4000u);
    // Recursive: a holder may take it again.
    items.with_lock([&](auto&) { EXPECT_EQ(items.lock()->size(), 4000u); });
}

} // namespace
