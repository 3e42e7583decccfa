// SPDX-License-Identifier: BSL-1.0
// Benchmarks for kaa/asio.hpp: an Asio operation completed through the
// kaa::use_in_progress token beside the same operation with a plain callback
// handler, on the same loop, and kaa::async_wait() beside a plain connect().
//
// Naming as in core_bench.cpp: `<operation>/kaa` and `<operation>/baseline_<what>`.
#include <chrono>
#include <cstdint>
#include <exception>

#include <benchmark/benchmark.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kaa/asio.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"

namespace asio = boost::asio;

namespace {

// --- asio::post: initiate + the iteration that completes it ------------------

void BM_AsioPost_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t done = 0;
    for (auto _ : state) {
        kaa::InProgress<void> ip = asio::post(loop.context(), kaa::use_in_progress);
        loop.step(kaa::Duration::zero());
        done += ip.finished();
    }
    if (done != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the posted operation did not finish in the next iteration");
}
BENCHMARK(BM_AsioPost_kaa)->Name("BM_AsioPost/kaa");

void BM_AsioPost_callback(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t done = 0;
    for (auto _ : state) {
        asio::post(loop.context(), [&done] { ++done; });
        loop.step(kaa::Duration::zero());
    }
    if (done != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the posted handler did not run in the next iteration");
}
BENCHMARK(BM_AsioPost_callback)->Name("BM_AsioPost/baseline_callback");

// --- a zero steady_timer wait: expires_after(0) + async_wait + one iteration --

void BM_AsioZeroTimer_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    asio::steady_timer timer(loop.context());
    std::int64_t done = 0;
    for (auto _ : state) {
        timer.expires_after(std::chrono::seconds(0));
        kaa::InProgress<void> ip = timer.async_wait(kaa::use_in_progress);
        loop.step(kaa::Duration::zero());
        done += ip.finished();
    }
    if (done != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the zero timer did not finish in the next iteration");
}
BENCHMARK(BM_AsioZeroTimer_kaa)->Name("BM_AsioZeroTimer/kaa");

void BM_AsioZeroTimer_callback(benchmark::State& state) {
    kaa::MainLoop loop;
    asio::steady_timer timer(loop.context());
    std::int64_t done = 0;
    for (auto _ : state) {
        timer.expires_after(std::chrono::seconds(0));
        timer.async_wait([&done](const boost::system::error_code& ec) { done += !ec; });
        loop.step(kaa::Duration::zero());
    }
    if (done != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the zero timer's handler did not run in the next iteration");
}
BENCHMARK(BM_AsioZeroTimer_callback)->Name("BM_AsioZeroTimer/baseline_callback");

// --- waiting on an InProgress: async_wait with a callback vs connect() ---------

void BM_WaitOnInProgress_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        kaa::InProgress<int> ip;
        kaa::async_wait(ip, [&sum](std::exception_ptr, int v) { sum += v; });
        ip.finish(1);
        loop.step(kaa::Duration::zero());
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("async_wait's handler did not run");
}
BENCHMARK(BM_WaitOnInProgress_kaa)->Name("BM_WaitOnInProgress_AsyncWait/kaa");

void BM_WaitOnInProgress_connect(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        kaa::InProgress<int> ip;
        ip.connect([&sum](int v) { sum += v; });
        ip.finish(1);
        loop.step(kaa::Duration::zero());
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the callback did not run");
}
BENCHMARK(BM_WaitOnInProgress_connect)->Name("BM_WaitOnInProgress_AsyncWait/baseline_connect");

} // namespace
