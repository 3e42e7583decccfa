// SPDX-License-Identifier: BSL-1.0
// co_await in a kaa::Task against the stackful wait (this_coroutine::await),
// on a finished and on an unfinished InProgress, in one run.
//
// Pairing (bench/README.md): BM_X/kaa is the Task; its sibling
// BM_X/baseline_stackful is the same wait from a stackful coroutine.
#include <benchmark/benchmark.h>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/task.hpp"

namespace {

constexpr int kWaits = 256;  // awaits per coroutine, so creation does not dominate

kaa::Task<int> task_await_finished(kaa::InProgress<int> ip) {
    int sum = 0;
    for (int i = 0; i < kWaits; ++i)
        sum += co_await ip;
    co_return sum;
}

void BM_AwaitFinished_task(benchmark::State& state) {
    kaa::MainLoop loop;
    auto done = kaa::make_finished<int>(1);
    for (auto _ : state) {
        auto t = task_await_finished(done);
        benchmark::DoNotOptimize(t.result());
    }
    state.SetItemsProcessed(state.iterations() * kWaits);
}
BENCHMARK(BM_AwaitFinished_task)->Name("BM_AwaitFinished/kaa");

void BM_AwaitFinished_stackful(benchmark::State& state) {
    kaa::MainLoop loop;
    auto done = kaa::make_finished<int>(1);
    for (auto _ : state) {
        auto c = kaa::coroutine([&] {
            int sum = 0;
            for (int i = 0; i < kWaits; ++i)
                sum += kaa::this_coroutine::await(done);
            return sum;
        });
        benchmark::DoNotOptimize(c.result());
    }
    state.SetItemsProcessed(state.iterations() * kWaits);
}
BENCHMARK(BM_AwaitFinished_stackful)->Name("BM_AwaitFinished/baseline_stackful");

// Unfinished: the coroutine waits on a fresh InProgress that the benchmark
// finishes; the wake-up resumes it directly inside finish().
struct Gate {
    kaa::InProgress<int> ip{nullptr};
};

kaa::Task<int> task_await_unfinished(Gate* gate) {
    int sum = 0;
    for (int i = 0; i < kWaits; ++i) {
        gate->ip = kaa::InProgress<int>();
        sum += co_await gate->ip;
    }
    co_return sum;
}

void BM_AwaitUnfinished_task(benchmark::State& state) {
    kaa::MainLoop loop;
    Gate gate;
    for (auto _ : state) {
        auto t = task_await_unfinished(&gate);
        for (int i = 0; i < kWaits; ++i)
            gate.ip.finish(1);
        benchmark::DoNotOptimize(t.result());
    }
    state.SetItemsProcessed(state.iterations() * kWaits);
}
BENCHMARK(BM_AwaitUnfinished_task)->Name("BM_AwaitUnfinished/kaa");

void BM_AwaitUnfinished_stackful(benchmark::State& state) {
    kaa::MainLoop loop;
    Gate gate;
    for (auto _ : state) {
        auto c = kaa::coroutine([&] {
            int sum = 0;
            for (int i = 0; i < kWaits; ++i) {
                gate.ip = kaa::InProgress<int>();
                sum += kaa::this_coroutine::await(gate.ip);
            }
            return sum;
        });
        for (int i = 0; i < kWaits; ++i)
            gate.ip.finish(1);
        benchmark::DoNotOptimize(c.result());
    }
    state.SetItemsProcessed(state.iterations() * kWaits);
}
BENCHMARK(BM_AwaitUnfinished_stackful)->Name("BM_AwaitUnfinished/baseline_stackful");

} // namespace

BENCHMARK_MAIN();
