// SPDX-License-Identifier: BSL-1.0
// Benchmarks for kaa's foundation: InProgress, Signal and MainLoop::post, each
// beside the raw mechanism it is built on or competes with.
//
// Naming: every kaa figure is `<operation>/kaa[/<args>]` and its baselines are
// `<operation>/baseline_<what>[/<args>]`; scripts/bench.sh pairs them by
// replacing the `kaa` path component. Batch benchmarks report items, so the
// table shows time per item.
//
// Only one kaa::MainLoop may exist per process, so each benchmark that needs
// one creates it for its own run and destroys it before returning.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/signals2/signal.hpp>

#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/signal.hpp"

namespace asio = boost::asio;

namespace {

// Cross-thread wake-up used identically by the kaa and the baseline ping-pong,
// so that it cancels out of the ratio. The waiter spins briefly (a round trip
// on an idle machine is a few microseconds), then sleeps on a condition
// variable with a deadline so that a broken loop fails the benchmark instead
// of hanging it.
class Baton {
public:
    void signal() {
        seq_.fetch_add(1, std::memory_order_seq_cst);
        if (sleeping_.load(std::memory_order_seq_cst)) {
            std::lock_guard lock(mutex_);
            cv_.notify_one();
        }
    }

    /// Waits until signal() has been called `target` times in all; false on
    /// timeout.
    bool wait(std::uint64_t target, std::chrono::steady_clock::time_point deadline) {
        for (int i = 0; i < 2000; ++i) {
            if (seq_.load(std::memory_order_acquire) >= target)
                return true;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        std::unique_lock lock(mutex_);
        sleeping_.store(true, std::memory_order_seq_cst);
        bool ok =
            cv_.wait_until(lock, deadline, [&] { return seq_.load(std::memory_order_seq_cst) >= target; });
        sleeping_.store(false, std::memory_order_relaxed);
        return ok;
    }

private:
    std::atomic<std::uint64_t> seq_{0};
    std::atomic<bool> sleeping_{false};
    std::mutex mutex_;
    std::condition_variable cv_;
};

// A ping-pong that stalls this long means the loop is broken, not slow.
constexpr std::chrono::seconds stall_limit{10};

// --- InProgress: create + connect one callback + finish + destroy -----------

void BM_InProgress_CreateConnectFinish_kaa(benchmark::State& state) {
    kaa::MainLoop loop; // callbacks run synchronously on the loop thread
    std::int64_t sum = 0;
    for (auto _ : state) {
        kaa::InProgress<int> ip;
        ip.connect([&sum](int v) { sum += v; });
        ip.finish(1);
    }
    benchmark::DoNotOptimize(sum);
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a callback did not run");
}
BENCHMARK(BM_InProgress_CreateConnectFinish_kaa)->Name("BM_InProgress_CreateConnectFinish/kaa");

void BM_InProgress_CreateConnectFinish_vector_function(benchmark::State& state) {
    std::int64_t sum = 0;
    for (auto _ : state) {
        std::vector<std::function<void(int)>> callbacks;
        callbacks.push_back([&sum](int v) { sum += v; });
        // Keep the compiler from eliding the allocation: kaa's state is
        // allocated behind an opaque call too.
        benchmark::DoNotOptimize(callbacks.data());
        for (auto& f : callbacks)
            f(1);
    }
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_InProgress_CreateConnectFinish_vector_function)
    ->Name("BM_InProgress_CreateConnectFinish/baseline_vector_function");

// --- Signal<void(int)>::emit to N slots ---------------------------------------

void BM_Signal_Emit_kaa(benchmark::State& state) {
    const auto slots = state.range(0);
    std::int64_t sum = 0;
    kaa::Signal<void(int)> signal;
    for (std::int64_t i = 0; i < slots; ++i)
        signal.connect([&sum](int v) { sum += v; });
    for (auto _ : state)
        signal.emit(1);
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Signal_Emit_kaa)->Name("BM_Signal_Emit/kaa")->ArgName("slots")->Arg(1)->Arg(10);

void BM_Signal_Emit_vector_function(benchmark::State& state) {
    const auto slots = state.range(0);
    std::int64_t sum = 0;
    std::vector<std::function<void(int)>> signal;
    for (std::int64_t i = 0; i < slots; ++i)
        signal.push_back([&sum](int v) { sum += v; });
    for (auto _ : state) {
        benchmark::DoNotOptimize(signal.data());
        for (auto& f : signal)
            f(1);
    }
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Signal_Emit_vector_function)
    ->Name("BM_Signal_Emit/baseline_vector_function")
    ->ArgName("slots")
    ->Arg(1)
    ->Arg(10);

// Raw Boost.Signals2 (default combiner): shows how much of kaa's figure is
// Signals2's own cost.
void BM_Signal_Emit_signals2(benchmark::State& state) {
    const auto slots = state.range(0);
    std::int64_t sum = 0;
    boost::signals2::signal<void(int)> signal;
    for (std::int64_t i = 0; i < slots; ++i)
        signal.connect([&sum](int v) { sum += v; });
    for (auto _ : state)
        signal(1);
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Signal_Emit_signals2)
    ->Name("BM_Signal_Emit/baseline_signals2")
    ->ArgName("slots")
    ->Arg(1)
    ->Arg(10);

// --- post from the loop thread: N posts + the iteration that runs them -------

void BM_Post_FromLoopThread_kaa(benchmark::State& state) {
    const auto batch = state.range(0);
    kaa::MainLoop loop;
    std::int64_t count = 0;
    for (auto _ : state) {
        for (std::int64_t i = 0; i < batch; ++i)
            loop.post([&count] { ++count; });
        loop.step(kaa::Duration::zero());
    }
    if (count != static_cast<std::int64_t>(state.iterations()) * batch)
        state.SkipWithError("posted work did not run in the next iteration");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * batch);
}
BENCHMARK(BM_Post_FromLoopThread_kaa)->Name("BM_Post_FromLoopThread/kaa")->ArgName("batch")->Arg(1)->Arg(64);

// The same on a bare io_context configured like kaa's (concurrency hint 1, a
// work guard), posting from outside run() as a loop's own callbacks would
// between iterations.
void BM_Post_FromLoopThread_asio(benchmark::State& state) {
    const auto batch = state.range(0);
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t count = 0;
    for (auto _ : state) {
        for (std::int64_t i = 0; i < batch; ++i)
            asio::post(io, [&count] { ++count; });
        io.poll();
    }
    if (count != static_cast<std::int64_t>(state.iterations()) * batch)
        state.SkipWithError("posted work did not run in poll()");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * batch);
}
BENCHMARK(BM_Post_FromLoopThread_asio)
    ->Name("BM_Post_FromLoopThread/baseline_asio_post")
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(64);

/// A kaa::MainLoop running on a thread of its own (a loop belongs to the
/// thread that creates it, so it is created there). loop() is null if it
/// could not be created; the thread always signals, so the constructor
/// cannot hang on a loop that failed to come up.
class LoopOnThread {
public:
    LoopOnThread()
        : thread_([this] {
              try {
                  kaa::MainLoop l;
                  loop_ = &l;
                  started_.signal();
                  l.run();
              } catch (...) {
                  loop_ = nullptr;
                  started_.signal();
              }
          }) {
        started_.wait(1, std::chrono::steady_clock::now() + std::chrono::hours(1));
    }
    LoopOnThread(const LoopOnThread&) = delete;
    LoopOnThread& operator=(const LoopOnThread&) = delete;
    ~LoopOnThread() { stop(); }

    kaa::MainLoop* loop() const { return loop_; }

    /// Stops the loop and joins its thread.
    void stop() {
        if (!thread_.joinable())
            return;
        if (loop_)
            loop_->stop();
        thread_.join();
    }

private:
    Baton started_;
    kaa::MainLoop* loop_ = nullptr;
    std::thread thread_;  // last: started after the members it uses
};

// --- post from another thread: ping-pong round trip ---------------------------
//
// The benchmark thread posts one item to a loop run by a second thread; the
// item signals the benchmark thread back, which then posts the next one. One
// iteration is one full round trip.

void BM_Post_CrossThreadPingPong_kaa(benchmark::State& state) {
    Baton pong;
    LoopOnThread loop_thread;
    kaa::MainLoop* loop = loop_thread.loop();
    if (!loop) {
        state.SkipWithError("could not create a MainLoop on the loop thread");
        return;
    }
    std::uint64_t round_trips = 0;
    for (auto _ : state) {
        loop->post([&pong] { pong.signal(); });
        if (!pong.wait(++round_trips, std::chrono::steady_clock::now() + stall_limit)) {
            state.SkipWithError("ping-pong stalled");
            break;
        }
    }
}
BENCHMARK(BM_Post_CrossThreadPingPong_kaa)->Name("BM_Post_CrossThreadPingPong/kaa")->UseRealTime();

void BM_Post_CrossThreadPingPong_asio(benchmark::State& state) {
    Baton pong;
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::thread loop_thread([&] { io.run(); });
    std::uint64_t round_trips = 0;
    for (auto _ : state) {
        asio::post(io, [&pong] { pong.signal(); });
        if (!pong.wait(++round_trips, std::chrono::steady_clock::now() + stall_limit)) {
            state.SkipWithError("ping-pong stalled");
            break;
        }
    }
    guard.reset();
    io.stop();
    loop_thread.join();
}
BENCHMARK(BM_Post_CrossThreadPingPong_asio)
    ->Name("BM_Post_CrossThreadPingPong/baseline_asio_post")
    ->UseRealTime();

// --- post from another thread, throughput: a batch to the running loop ---------
// The cost of a post from a thread that is not the loop's (the issue's "post
// from another thread"), as opposed to the ping-pong above, whose time is
// mostly the loop thread's wake-up. The benchmark thread posts a batch of
// 256 to the running loop and waits until the last has run.

constexpr std::int64_t kCrossThreadBatch = 256;

/// The measured loop of both sides: `post(f)` hands `f` to a loop running on
/// another thread; each iteration posts a batch and waits until its last
/// item ran. `count` and `done` belong to the caller and must outlive that
/// loop's thread (a stalled batch may still run after this returns).
/// Returns the number of batches posted.
template <class Post>
std::uint64_t post_batches(benchmark::State& state, std::int64_t& count, Baton& done, Post&& post) {
    std::uint64_t batches = 0;
    for (auto _ : state) {
        for (std::int64_t i = 1; i < kCrossThreadBatch; ++i)
            post([&count] { ++count; });
        post([&count, &done] {
            ++count;
            done.signal();
        });
        if (!done.wait(++batches, std::chrono::steady_clock::now() + stall_limit)) {
            state.SkipWithError("cross-thread batch stalled");
            break;
        }
    }
    return batches;
}

/// After the loop's thread is gone: every post ran; items per second.
void check_batches(benchmark::State& state, std::int64_t count, std::uint64_t batches) {
    if (count != static_cast<std::int64_t>(batches) * kCrossThreadBatch)
        state.SkipWithError("posted work went missing");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kCrossThreadBatch);
}

void BM_Post_CrossThreadBatch_kaa(benchmark::State& state) {
    Baton done;
    std::int64_t count = 0; // the loop thread's; declared before the loop that runs the posts
    LoopOnThread loop_thread;
    kaa::MainLoop* loop = loop_thread.loop();
    if (!loop) {
        state.SkipWithError("could not create a MainLoop on the loop thread");
        return;
    }
    std::uint64_t batches = post_batches(state, count, done, [loop](auto f) { loop->post(std::move(f)); });
    loop_thread.stop(); // every post has run once the loop thread is gone
    check_batches(state, count, batches);
}
BENCHMARK(BM_Post_CrossThreadBatch_kaa)->Name("BM_Post_CrossThreadBatch/kaa")->UseRealTime();

void BM_Post_CrossThreadBatch_asio(benchmark::State& state) {
    Baton done;
    std::int64_t count = 0;
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::thread loop_thread([&] { io.run(); });
    std::uint64_t batches = post_batches(state, count, done, [&io](auto f) { asio::post(io, std::move(f)); });
    guard.reset();
    io.stop();
    loop_thread.join();
    check_batches(state, count, batches);
}
BENCHMARK(BM_Post_CrossThreadBatch_asio)
    ->Name("BM_Post_CrossThreadBatch/baseline_asio_post")
    ->UseRealTime();

} // namespace
