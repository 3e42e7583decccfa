// SPDX-License-Identifier: BSL-1.0
// Benchmarks for kaa's timers: arming and cancelling a timer, and a zero
// delay awaited by a coroutine, each beside the raw Asio steady_timer it is
// built on; and, on a loop that runs on a kaa::VirtualClock, a coroutine that
// waits ten virtual minutes through many timers (issue #26: "a test that
// waits 10 virtual minutes takes < 1 s of CPU", measured here rather than
// asserted in a test).
//
// Naming as in core_bench.cpp: `<operation>/kaa` beside
// `<operation>/baseline_<what>`.
#include <chrono>
#include <optional>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/timer.hpp"
#include "kaa/virtual_clock.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// --- A timer armed, then cancelled before it fires -------------------------

void BM_Timer_ArmCancel_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    kaa::OneShotTimer timer([] {});
    for (auto _ : state) {
        timer.start(1h);
        loop.step(kaa::Duration::zero()); // the deadline is armed from the next iteration's queue
        timer.stop();
        loop.step(kaa::Duration::zero());
    }
}
BENCHMARK(BM_Timer_ArmCancel_kaa)->Name("BM_Timer_ArmCancel/kaa");

void BM_Timer_ArmCancel_asio(benchmark::State& state) {
    asio::io_context io{1};
    asio::steady_timer timer(io);
    for (auto _ : state) {
        timer.expires_after(1h);
        timer.async_wait([](const boost::system::error_code&) {});
        timer.cancel();
        io.poll();
        io.restart();
    }
}
BENCHMARK(BM_Timer_ArmCancel_asio)->Name("BM_Timer_ArmCancel/baseline_asio_steady_timer");

// --- A coroutine awaiting zero-length delays ---------------------------------

constexpr int delays_per_run = 1000;

void BM_Timer_ZeroDelayAwait_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    for (auto _ : state) {
        auto done = kaa::coroutine([] {
            for (int i = 0; i < delays_per_run; ++i)
                kaa::this_coroutine::await(kaa::delay(kaa::Duration::zero()));
        });
        loop.run_until_idle();
        if (!done.finished()) {
            state.SkipWithError("the coroutine did not finish");
            return;
        }
    }
    state.SetItemsProcessed(state.iterations() * delays_per_run);
}
BENCHMARK(BM_Timer_ZeroDelayAwait_kaa)->Name("BM_Timer_ZeroDelayAwait/kaa");

void BM_Timer_ZeroDelayAwait_asio(benchmark::State& state) {
    asio::io_context io{1};
    asio::steady_timer timer(io);
    for (auto _ : state) {
        int left = delays_per_run;
        auto again = [&](auto& self) -> void {
            if (left-- == 0)
                return;
            timer.expires_after(kaa::Duration::zero());
            timer.async_wait([&](const boost::system::error_code&) { self(self); });
        };
        again(again);
        io.run();
        io.restart();
    }
    state.SetItemsProcessed(state.iterations() * delays_per_run);
}
BENCHMARK(BM_Timer_ZeroDelayAwait_asio)->Name("BM_Timer_ZeroDelayAwait/baseline_asio_steady_timer");

// --- Ten virtual minutes -------------------------------------------------------

// A coroutine that waits 600 one-second delays: ten minutes of virtual time,
// one jump per delay. Beside it, the same coroutine awaiting 600 zero delays
// on a real loop -- the least a timer wait costs there, with no time passing.
constexpr int ten_minutes_in_seconds = 600;

void BM_VirtualClock_TenMinutes_kaa(benchmark::State& state) {
    for (auto _ : state) {
        kaa::VirtualClock clock;
        kaa::MainLoop loop(clock);
        auto done = kaa::coroutine([] {
            for (int i = 0; i < ten_minutes_in_seconds; ++i)
                kaa::this_coroutine::await(kaa::delay(1s));
        });
        loop.run_until_idle();
        if (!done.finished() || clock.elapsed() != 10min) {
            state.SkipWithError("ten virtual minutes did not pass");
            return;
        }
    }
}
BENCHMARK(BM_VirtualClock_TenMinutes_kaa)
    ->Name("BM_VirtualClock_TenMinutes/kaa")
    ->Unit(benchmark::kMicrosecond);

void BM_VirtualClock_TenMinutes_real_zero_delays(benchmark::State& state) {
    for (auto _ : state) {
        kaa::MainLoop loop;
        auto done = kaa::coroutine([] {
            for (int i = 0; i < ten_minutes_in_seconds; ++i)
                kaa::this_coroutine::await(kaa::delay(kaa::Duration::zero()));
        });
        loop.run_until_idle();
        if (!done.finished()) {
            state.SkipWithError("the coroutine did not finish");
            return;
        }
    }
}
BENCHMARK(BM_VirtualClock_TenMinutes_real_zero_delays)
    ->Name("BM_VirtualClock_TenMinutes/baseline_real_loop_zero_delays")
    ->Unit(benchmark::kMicrosecond);

} // namespace
