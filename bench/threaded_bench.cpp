// SPDX-License-Identifier: BSL-1.0
// Benchmarks for kaa::threaded: a job goes to a pool thread and its result
// comes back to the loop thread, beside the same trip on a bare
// boost::asio::thread_pool whose completion asio::post()s back to an
// io_context run on the benchmark thread.
//
// Both sides use two worker threads, and the benchmark thread waits the same
// way: kaa's loop.step(timeout) is io_context::run_one_for(timeout) followed
// by a poll and the loop's queues, so the baseline does run_one_for + poll.
// The benchmark thread sleeps while the job runs, so times are real time.
// Every wait has a deadline that fails the benchmark instead of hanging it.
#include <chrono>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"

namespace asio = boost::asio;

namespace {

constexpr std::size_t kThreads = 2;
constexpr std::chrono::seconds kStallLimit{10};

// --- one job at a time: submit, wait for the result on the loop thread -------

void BM_RoundTrip_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    kaa::ThreadPool pool("bench", kThreads);
    const kaa::ThreadOptions opts{.pool = "bench"};
    std::int64_t sum = 0;
    for (auto _ : state) {
        auto ip = kaa::threaded(opts, [] { return 1; });
        auto deadline = std::chrono::steady_clock::now() + kStallLimit;
        while (!ip.finished() && std::chrono::steady_clock::now() < deadline)
            loop.step(kStallLimit);
        if (!ip.finished()) {
            state.SkipWithError("a threaded job did not come back");
            break;
        }
        sum += ip.result();
    }
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_RoundTrip_kaa)->Name("BM_Threaded_RoundTrip/kaa")->UseRealTime();

void BM_RoundTrip_asio(benchmark::State& state) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    asio::thread_pool pool(kThreads);
    std::int64_t sum = 0;
    for (auto _ : state) {
        bool done = false;
        asio::post(pool, [&io, &done, &sum] {
            int value = 1;
            asio::post(io, [&done, &sum, value] {
                sum += value;
                done = true;
            });
        });
        auto deadline = std::chrono::steady_clock::now() + kStallLimit;
        while (!done && std::chrono::steady_clock::now() < deadline) {
            io.run_one_for(kStallLimit);
            io.poll();
        }
        if (!done) {
            state.SkipWithError("a posted job did not come back");
            break;
        }
    }
    pool.join();
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_RoundTrip_asio)->Name("BM_Threaded_RoundTrip/baseline_asio_thread_pool")->UseRealTime();

// --- throughput: 1000 jobs in flight, wait until all came back -----------------

constexpr std::int64_t kInFlight = 1000;

void BM_Throughput_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    kaa::ThreadPool pool("bench", kThreads);
    const kaa::ThreadOptions opts{.pool = "bench"};
    std::vector<kaa::ThreadInProgress<int>> jobs;
    jobs.reserve(kInFlight);
    std::int64_t sum = 0;
    for (auto _ : state) {
        std::int64_t done = 0;
        for (std::int64_t i = 0; i < kInFlight; ++i) {
            jobs.push_back(kaa::threaded(opts, [] { return 1; }));
            jobs.back().connect([&done, &sum](int v) {
                sum += v;
                ++done;
            });
        }
        auto deadline = std::chrono::steady_clock::now() + kStallLimit;
        while (done < kInFlight && std::chrono::steady_clock::now() < deadline)
            loop.step(kStallLimit);
        jobs.clear();
        if (done < kInFlight) {
            state.SkipWithError("threaded jobs did not all come back");
            break;
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kInFlight);
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Throughput_kaa)->Name("BM_Threaded_Throughput1000/kaa")->UseRealTime();

void BM_Throughput_asio(benchmark::State& state) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    asio::thread_pool pool(kThreads);
    std::int64_t sum = 0;
    for (auto _ : state) {
        std::int64_t done = 0;
        for (std::int64_t i = 0; i < kInFlight; ++i) {
            asio::post(pool, [&io, &done, &sum] {
                int value = 1;
                asio::post(io, [&done, &sum, value] {
                    sum += value;
                    ++done;
                });
            });
        }
        auto deadline = std::chrono::steady_clock::now() + kStallLimit;
        while (done < kInFlight && std::chrono::steady_clock::now() < deadline) {
            io.run_one_for(kStallLimit);
            io.poll();
        }
        if (done < kInFlight) {
            state.SkipWithError("posted jobs did not all come back");
            break;
        }
    }
    pool.join();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kInFlight);
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Throughput_asio)
    ->Name("BM_Threaded_Throughput1000/baseline_asio_thread_pool")
    ->UseRealTime();

} // namespace
