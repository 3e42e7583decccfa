// SPDX-License-Identifier: BSL-1.0
// Benchmarks for kaa's stackful coroutines, each beside the floor it is built
// on (a hand-made Boost.Context fiber on a pooled stack, the bare switch) and
// beside boost::asio::spawn, the off-the-shelf stackful coroutine it competes
// with (Boost 1.81's spawn runs on Boost.Context's fiber, without
// Boost.Coroutine).
//
// Naming as in core_bench.cpp: `<operation>/kaa` is paired with every
// `<operation>/baseline_<what>`. One kaa::MainLoop per benchmark run.
//
// What the floors do, so that each row compares like with like:
//  * baseline_fiber: boost::context::fiber on a stack from a free list kept
//    here (mmap'ed once, reused; no guard page), resumed directly.
//  * baseline_fiber_post: the same fiber resumed through the event loop: it
//    asio::post()s its own resumption to a bare io_context and suspends; the
//    benchmark polls the io_context (kaa's yield() posts to the loop's queue
//    and step() runs it).
//  * baseline_asio_spawn: asio::spawn on an io_context with
//    asio::detached; suspensions are asio::post(yield).
//  * baseline_boost_fiber: Boost.Fiber with its defaults (round-robin
//    scheduler, fixedsize 128 KiB stacks); a time slice is
//    boost::this_fiber::yield(), the main fiber joins or yields to the others.
#include <sys/mman.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>
#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/mutex.hpp>
#include <boost/fiber/operations.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"

namespace asio = boost::asio;
namespace ctx = boost::context;

namespace {

// ---------------------------------------------------------------------------
// The floor's stacks: a free list of fixed-size mmap'ed stacks (no guard
// page, only touched pages resident), as a hand-made runtime would keep.

class StackFreeList {
public:
    explicit StackFreeList(std::size_t size) : size_(size) {}
    ~StackFreeList() { trim(); }
    StackFreeList(const StackFreeList&) = delete;
    StackFreeList& operator=(const StackFreeList&) = delete;

    ctx::stack_context allocate() {
        if (!free_.empty()) {
            ctx::stack_context sc = free_.back();
            free_.pop_back();
            return sc;
        }
        void* m = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (m == MAP_FAILED)
            throw std::bad_alloc();
        ctx::stack_context sc;
        sc.size = size_;
        sc.sp = static_cast<char*>(m) + size_;
        return sc;
    }
    void deallocate(ctx::stack_context& sc) noexcept { free_.push_back(sc); }
    void trim() noexcept {
        for (ctx::stack_context& sc : free_)
            ::munmap(static_cast<char*>(sc.sp) - sc.size, sc.size);
        free_.clear();
    }

private:
    std::size_t size_;
    std::vector<ctx::stack_context> free_;
};

// The StackAllocator that boost::context::fiber copies into its record.
struct PooledStack {
    StackFreeList* list;
    ctx::stack_context allocate() { return list->allocate(); }
    void deallocate(ctx::stack_context& sc) noexcept { list->deallocate(sc); }
};

// Same usable size as kaa's default stack; only touched pages count anyway.
constexpr std::size_t kFloorStack = 128 * 1024;

// ---------------------------------------------------------------------------
// Coroutine lifecycle, never suspending: create, run to the end, read the
// result.

void BM_Lifecycle_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        auto ip = kaa::coroutine([] { return 1; });
        sum += ip.result();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a coroutine did not finish synchronously");
}
BENCHMARK(BM_Lifecycle_kaa)->Name("BM_Coroutine_Lifecycle/kaa");

void BM_Lifecycle_fiber(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    std::int64_t sum = 0;
    for (auto _ : state) {
        int result = 0;
        ctx::fiber f{std::allocator_arg, PooledStack{&stacks}, [&result](ctx::fiber&& caller) {
                         result = 1;
                         return std::move(caller);
                     }};
        f = std::move(f).resume();
        sum += result;
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a fiber did not finish");
}
BENCHMARK(BM_Lifecycle_fiber)->Name("BM_Coroutine_Lifecycle/baseline_fiber");

void BM_Lifecycle_asio_spawn(benchmark::State& state) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t sum = 0;
    for (auto _ : state) {
        // spawn() on an io_context posts the start; poll() runs it to the end.
        asio::spawn(
            io, [&sum](asio::yield_context) { sum += 1; }, asio::detached);
        io.poll();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a spawned coroutine did not finish");
}
BENCHMARK(BM_Lifecycle_asio_spawn)->Name("BM_Coroutine_Lifecycle/baseline_asio_spawn");

void BM_Lifecycle_boost_fiber(benchmark::State& state) {
    std::int64_t sum = 0;
    for (auto _ : state) {
        boost::fibers::fiber f([&sum] { sum += 1; });
        f.join();  // the main fiber blocks; the scheduler runs f to its end
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a fiber did not finish");
}
BENCHMARK(BM_Lifecycle_boost_fiber)->Name("BM_Coroutine_Lifecycle/baseline_boost_fiber");

// ---------------------------------------------------------------------------
// Coroutine lifecycle with one suspension resumed through the loop: create,
// run to a time slice, one loop iteration resumes it, it ends, read the
// result.

void BM_LifecycleYieldOnce_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        auto ip = kaa::coroutine([] {
            kaa::this_coroutine::yield();
            return 1;
        });
        loop.step(kaa::Duration::zero());
        sum += ip.result();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a coroutine did not finish in one step");
}
BENCHMARK(BM_LifecycleYieldOnce_kaa)->Name("BM_Coroutine_LifecycleYieldOnce/kaa");

void BM_LifecycleYieldOnce_fiber_post(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t sum = 0;
    for (auto _ : state) {
        int result = 0;
        ctx::fiber f;
        f = ctx::fiber{std::allocator_arg, PooledStack{&stacks}, [&](ctx::fiber&& caller) {
                           asio::post(io, [&f] { f = std::move(f).resume(); });
                           caller = std::move(caller).resume();
                           result = 1;
                           return std::move(caller);
                       }};
        f = std::move(f).resume();
        io.poll();
        sum += result;
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a fiber did not finish in one poll");
}
BENCHMARK(BM_LifecycleYieldOnce_fiber_post)->Name("BM_Coroutine_LifecycleYieldOnce/baseline_fiber_post");

void BM_LifecycleYieldOnce_asio_spawn(benchmark::State& state) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t sum = 0;
    for (auto _ : state) {
        asio::spawn(
            io,
            [&sum](asio::yield_context yield) {
                asio::post(yield);
                sum += 1;
            },
            asio::detached);
        io.poll();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a spawned coroutine did not finish in one poll");
}
BENCHMARK(BM_LifecycleYieldOnce_asio_spawn)->Name("BM_Coroutine_LifecycleYieldOnce/baseline_asio_spawn");

void BM_LifecycleYieldOnce_boost_fiber(benchmark::State& state) {
    std::int64_t sum = 0;
    for (auto _ : state) {
        boost::fibers::fiber f([&sum] {
            boost::this_fiber::yield();
            sum += 1;
        });
        f.join();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a fiber did not finish");
}
BENCHMARK(BM_LifecycleYieldOnce_boost_fiber)->Name("BM_Coroutine_LifecycleYieldOnce/baseline_boost_fiber");

// ---------------------------------------------------------------------------
// Coroutine lifecycle with one suspension resumed directly: the coroutine
// awaits an InProgress that the benchmark finishes right after (finish()
// resumes the waiter inside the call). Floor: a fiber that suspends once and
// is resumed directly.

void BM_LifecycleAwaitOnce_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        kaa::InProgress<void> gate;
        auto ip = kaa::coroutine([&gate] {
            kaa::this_coroutine::await(gate);
            return 1;
        });
        gate.finish();
        sum += ip.result();
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("finish() did not resume the coroutine to its end");
}
BENCHMARK(BM_LifecycleAwaitOnce_kaa)->Name("BM_Coroutine_LifecycleAwaitOnce/kaa");

void BM_LifecycleAwaitOnce_fiber(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    std::int64_t sum = 0;
    for (auto _ : state) {
        int result = 0;
        ctx::fiber f{std::allocator_arg, PooledStack{&stacks}, [&result](ctx::fiber&& caller) {
                         caller = std::move(caller).resume();
                         result = 1;
                         return std::move(caller);
                     }};
        f = std::move(f).resume();
        f = std::move(f).resume();
        sum += result;
    }
    if (sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a fiber did not finish");
}
BENCHMARK(BM_LifecycleAwaitOnce_fiber)->Name("BM_Coroutine_LifecycleAwaitOnce/baseline_fiber");

// ---------------------------------------------------------------------------
// Time slice (kaa's NotFinished): one long-lived coroutine suspends, one loop
// iteration runs its resumption, it resumes and suspends again. One timed
// iteration = one suspend + one loop iteration + one resume.

void BM_YieldStep_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    std::int64_t count = 0;
    bool stop = false;
    auto co = kaa::coroutine([&] {
        while (!stop) {
            kaa::this_coroutine::yield();
            ++count;
        }
    });
    for (auto _ : state)
        loop.step(kaa::Duration::zero());
    stop = true;
    for (int i = 0; i < 10 && !co.finished(); ++i)
        loop.step(kaa::Duration::zero());
    if (!co.finished() || count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("a step did not resume the coroutine exactly once");
}
BENCHMARK(BM_YieldStep_kaa)->Name("BM_Coroutine_YieldStep/kaa");

void BM_YieldStep_fiber_post(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t count = 0;
    bool stop = false;
    ctx::fiber f;
    f = ctx::fiber{std::allocator_arg, PooledStack{&stacks}, [&](ctx::fiber&& caller) {
                       while (!stop) {
                           asio::post(io, [&f] { f = std::move(f).resume(); });
                           caller = std::move(caller).resume();
                           ++count;
                       }
                       return std::move(caller);
                   }};
    f = std::move(f).resume();
    // poll_one(), not poll(): poll() would also run the resumption that the
    // handler posts, and never return.
    for (auto _ : state)
        io.poll_one();
    stop = true;
    for (int i = 0; i < 10 && f; ++i)
        io.poll_one();
    if (f || count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("a poll_one did not resume the fiber exactly once");
}
BENCHMARK(BM_YieldStep_fiber_post)->Name("BM_Coroutine_YieldStep/baseline_fiber_post");

void BM_YieldStep_asio_spawn(benchmark::State& state) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    std::int64_t count = 0;
    bool stop = false;
    bool done = false;
    asio::spawn(
        io,
        [&](asio::yield_context yield) {
            while (!stop) {
                asio::post(yield);
                ++count;
            }
            done = true;
        },
        asio::detached);
    io.poll_one();  // starts it; it runs to its first post(yield)
    count = 0;
    for (auto _ : state)
        io.poll_one();
    stop = true;
    for (int i = 0; i < 10 && !done; ++i)
        io.poll_one();
    if (!done || count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("a poll_one did not resume the spawned coroutine exactly once");
}
BENCHMARK(BM_YieldStep_asio_spawn)->Name("BM_Coroutine_YieldStep/baseline_asio_spawn");

// The main fiber yields once per iteration: the other fiber resumes, counts
// and yields back (round robin), as one kaa step resumes the coroutine once.
void BM_YieldStep_boost_fiber(benchmark::State& state) {
    std::int64_t count = 0;
    bool stop = false;
    boost::fibers::fiber f([&] {
        while (!stop) {
            boost::this_fiber::yield();
            ++count;
        }
    });
    boost::this_fiber::yield();  // starts it; it runs to its first yield
    count = 0;
    for (auto _ : state)
        boost::this_fiber::yield();
    stop = true;
    f.join();
    if (count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("a yield did not resume the other fiber exactly once");
}
BENCHMARK(BM_YieldStep_boost_fiber)->Name("BM_Coroutine_YieldStep/baseline_boost_fiber");

// ---------------------------------------------------------------------------
// Round trip into a suspended coroutine and back (two switches). kaa has no
// bare switch: its cheapest round trip is a coroutine awaiting a fresh
// InProgress that the caller finishes (finish() resumes it directly; it
// creates the next InProgress and suspends on it). The baselines are the
// floor: boost::context::fiber resume and the raw jump_fcontext that both
// are built on.

void BM_SwitchRoundTrip_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    bool stop = false;
    std::int64_t count = 0;
    kaa::InProgress<void> slot(nullptr);
    auto co = kaa::coroutine([&] {
        while (!stop) {
            slot = kaa::InProgress<void>();
            kaa::this_coroutine::await(slot);
            ++count;
        }
    });
    for (auto _ : state) {
        kaa::InProgress<void> gate = slot;  // the coroutine replaces `slot` inside finish()
        gate.finish();
    }
    stop = true;
    kaa::InProgress<void> gate = slot;
    gate.finish();
    if (!co.finished() || count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("finish() did not resume the coroutine exactly once");
}
BENCHMARK(BM_SwitchRoundTrip_kaa)->Name("BM_Coroutine_SwitchRoundTrip/kaa");

void BM_SwitchRoundTrip_fiber(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    bool stop = false;
    std::int64_t count = 0;
    ctx::fiber f{std::allocator_arg, PooledStack{&stacks}, [&](ctx::fiber&& caller) {
                     while (!stop) {
                         caller = std::move(caller).resume();
                         ++count;
                     }
                     return std::move(caller);
                 }};
    f = std::move(f).resume();
    for (auto _ : state)
        f = std::move(f).resume();
    stop = true;
    f = std::move(f).resume();
    if (f || count != static_cast<std::int64_t>(state.iterations()) + 1)
        state.SkipWithError("the fiber did not run once per resume");
}
BENCHMARK(BM_SwitchRoundTrip_fiber)->Name("BM_Coroutine_SwitchRoundTrip/baseline_fiber_resume");

// The context entry for the raw jump: bounces every jump straight back.
void bounce(ctx::detail::transfer_t t) {
    for (;;) {
        ++*static_cast<std::int64_t*>(t.data);
        t = ctx::detail::jump_fcontext(t.fctx, t.data);
    }
}

void BM_SwitchRoundTrip_jump_fcontext(benchmark::State& state) {
    StackFreeList stacks(kFloorStack);
    ctx::stack_context sc = stacks.allocate();
    std::int64_t count = 0;
    ctx::detail::fcontext_t c = ctx::detail::make_fcontext(sc.sp, sc.size, &bounce);
    for (auto _ : state)
        c = ctx::detail::jump_fcontext(c, &count).fctx;
    // The context is abandoned suspended: nothing on its stack needs unwinding.
    stacks.deallocate(sc);
    if (count != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("the context did not run once per jump");
}
BENCHMARK(BM_SwitchRoundTrip_jump_fcontext)->Name("BM_Coroutine_SwitchRoundTrip/baseline_jump_fcontext");

// ---------------------------------------------------------------------------
// Awaiting an InProgress that already finished: no switch, the value comes
// back at once. The benchmark loop itself runs inside the coroutine.

[[gnu::noinline]] int plain_call(const int& v) { return v; }

void BM_AwaitFinished_kaa(benchmark::State& state) {
    kaa::MainLoop loop;
    kaa::InProgress<int> done;
    done.finish(1);
    std::int64_t sum = 0;
    auto co = kaa::coroutine([&] {
        for (auto _ : state)
            sum += kaa::this_coroutine::await(done);
    });
    if (!co.finished() || sum != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("await on a finished InProgress suspended");
}
BENCHMARK(BM_AwaitFinished_kaa)->Name("BM_Coroutine_AwaitFinished/kaa");

void BM_AwaitFinished_result(benchmark::State& state) {
    kaa::MainLoop loop;
    kaa::InProgress<int> done;
    done.finish(1);
    std::int64_t sum = 0;
    for (auto _ : state)
        sum += done.result();
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_AwaitFinished_result)->Name("BM_Coroutine_AwaitFinished/baseline_result_outside");

void BM_AwaitFinished_call(benchmark::State& state) {
    int value = 1;
    std::int64_t sum = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(value);
        sum += plain_call(value);
    }
    benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_AwaitFinished_call)->Name("BM_Coroutine_AwaitFinished/baseline_function_call");

// ---------------------------------------------------------------------------
// Resident memory per suspended coroutine: 100,000 of them, each waiting on
// something that never happens until the end, VmRSS before and after. The
// counters `rss_per_coroutine` (and `pte_per_coroutine`: page tables, which
// VmRSS does not include) are bytes per coroutine; the time is that of
// creating them all and tearing them down.

constexpr std::size_t kSuspended = 100'000;

// A "Vm...:" line of /proc/self/status, in bytes (-1 if missing).
double status_bytes(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(key) + ":";
    while (std::getline(in, line)) {
        if (line.compare(0, prefix.size(), prefix) == 0)
            return std::stod(line.substr(prefix.size())) * 1024.0;  // "  1234 kB"
    }
    return -1;
}

struct MemorySample {
    double rss = status_bytes("VmRSS");
    double pte = status_bytes("VmPTE");
};

void report_memory(benchmark::State& state, const MemorySample& before, const MemorySample& after) {
    state.counters["rss_per_coroutine"] = (after.rss - before.rss) / static_cast<double>(kSuspended);
    state.counters["pte_per_coroutine"] = (after.pte - before.pte) / static_cast<double>(kSuspended);
}

// Give freed heap memory back, so that the next repetition starts from the
// same resident baseline instead of reusing pages that are already in.
void release_freed_memory() { ::malloc_trim(0); }

void BM_Memory_kaa(benchmark::State& state) {
    for (auto _ : state) {
        kaa::MainLoop loop;
        std::vector<kaa::InProgress<void>> gates;
        std::vector<kaa::InProgress<int>> cos;
        gates.reserve(kSuspended);
        cos.reserve(kSuspended);
        MemorySample before;
        for (std::size_t i = 0; i < kSuspended; ++i) {
            gates.emplace_back();
            cos.push_back(kaa::coroutine([&gate = gates.back()] {
                kaa::this_coroutine::await(gate);
                return 1;
            }));
        }
        MemorySample after;
        report_memory(state, before, after);
        if (kaa::active_coroutines() < kSuspended)
            state.SkipWithError("not all coroutines are suspended");
        for (auto& g : gates)
            g.finish();
        for (auto& c : cos)
            if (!c.finished())
                state.SkipWithError("a coroutine did not end");
        cos.clear();
        gates.clear();
    }
    release_freed_memory();
}
BENCHMARK(BM_Memory_kaa)->Name("BM_Coroutine_Suspended100k/kaa")->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Memory_fiber(benchmark::State& state) {
    // 64 KiB pooled stacks, as a hand-made runtime tuned for many fibers.
    StackFreeList stacks(64 * 1024);
    for (auto _ : state) {
        std::vector<ctx::fiber> fibers;
        fibers.reserve(kSuspended);
        MemorySample before;
        for (std::size_t i = 0; i < kSuspended; ++i) {
            ctx::fiber f{std::allocator_arg, PooledStack{&stacks}, [](ctx::fiber&& caller) {
                             caller = std::move(caller).resume();
                             return std::move(caller);
                         }};
            fibers.push_back(std::move(f).resume());
        }
        MemorySample after;
        report_memory(state, before, after);
        for (auto& f : fibers) {
            f = std::move(f).resume();
            if (f)
                state.SkipWithError("a fiber did not end");
        }
        fibers.clear();
        stacks.trim();
    }
    release_freed_memory();
}
BENCHMARK(BM_Memory_fiber)
    ->Name("BM_Coroutine_Suspended100k/baseline_fiber_64k")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_Memory_asio_spawn(benchmark::State& state) {
    for (auto _ : state) {
        asio::io_context io{1};
        std::vector<asio::steady_timer*> timers(kSuspended, nullptr);
        std::size_t ended = 0;
        MemorySample before;
        for (std::size_t i = 0; i < kSuspended; ++i) {
            asio::spawn(
                io,
                [&io, &timers, &ended, i](asio::yield_context yield) {
                    asio::steady_timer timer(io, asio::steady_timer::time_point::max());
                    timers[i] = &timer;
                    boost::system::error_code ec;
                    timer.async_wait(yield[ec]);
                    ++ended;
                },
                asio::detached);
        }
        io.poll();  // starts them all; each suspends on its timer
        MemorySample after;
        report_memory(state, before, after);
        for (auto* t : timers) {
            if (!t) {
                state.SkipWithError("a spawned coroutine did not start");
                continue;
            }
            t->cancel();
        }
        io.run();
        if (ended != kSuspended)
            state.SkipWithError("a spawned coroutine did not end");
    }
    release_freed_memory();
}
BENCHMARK(BM_Memory_asio_spawn)
    ->Name("BM_Coroutine_Suspended100k/baseline_asio_spawn")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_Memory_boost_fiber(benchmark::State& state) {
    for (auto _ : state) {
        boost::fibers::mutex m;
        boost::fibers::condition_variable cv;
        bool go = false;
        std::size_t ended = 0;
        std::vector<boost::fibers::fiber> fibers;
        fibers.reserve(kSuspended);
        MemorySample before;
        for (std::size_t i = 0; i < kSuspended; ++i) {
            fibers.emplace_back([&] {
                std::unique_lock lock(m);
                cv.wait(lock, [&] { return go; });
                ++ended;
            });
        }
        boost::this_fiber::yield();  // round robin: each runs to its wait first
        MemorySample after;
        report_memory(state, before, after);
        {
            std::unique_lock lock(m);
            go = true;
        }
        cv.notify_all();
        for (auto& f : fibers)
            f.join();
        if (ended != kSuspended)
            state.SkipWithError("a fiber did not end");
    }
    release_freed_memory();
}
BENCHMARK(BM_Memory_boost_fiber)
    ->Name("BM_Coroutine_Suspended100k/baseline_boost_fiber")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Scale: 1,000,000 coroutines suspended at once, with kaa's defaults (128 KiB
// stacks with a guard, overflow detection on). Counters: time to create them
// all and to resume and finish them all (ns per coroutine; they are resumed
// in a shuffled order, as unrelated operations would complete), resident
// bytes and memory mappings per coroutine while all are suspended. The floor
// is the hand-made fiber on pooled 128 KiB stacks without guard pages.
// KAA_BENCH_SCALE_COUNT overrides the count (scripts/bench.sh --quick uses a
// small one).

std::size_t scale_count() {
    if (const char* env = std::getenv("KAA_BENCH_SCALE_COUNT"))
        return std::strtoull(env, nullptr, 10);
    return 1'000'000;
}

// Lines of /proc/self/maps: the process's memory mappings (vm.max_map_count
// bounds them).
double map_count() {
    std::ifstream in("/proc/self/maps");
    std::string line;
    double n = 0;
    while (std::getline(in, line))
        ++n;
    return n;
}

using ScaleClock = std::chrono::steady_clock;

std::vector<std::size_t> shuffled(std::size_t n) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    return order;
}

double ns_per(ScaleClock::duration d, std::size_t n) {
    return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

void BM_Scale_kaa(benchmark::State& state) {
    const std::size_t n = scale_count();
    for (auto _ : state) {
        kaa::MainLoop loop;
        std::vector<kaa::InProgress<void>> gates(n, kaa::InProgress<void>(nullptr));
        std::vector<kaa::InProgress<int>> cos;
        cos.reserve(n);
        MemorySample before;
        double maps_before = map_count();
        auto t0 = ScaleClock::now();
        for (std::size_t i = 0; i < n; ++i) {
            gates[i] = kaa::InProgress<void>();
            cos.push_back(kaa::coroutine([&gate = gates[i]] {
                kaa::this_coroutine::await(gate);
                return 1;
            }));
        }
        auto t1 = ScaleClock::now();
        MemorySample after;
        double maps_after = map_count();
        if (kaa::active_coroutines() < n)
            state.SkipWithError("not all coroutines are suspended");
        const std::vector<std::size_t> order = shuffled(n);
        auto t1b = ScaleClock::now();
        for (std::size_t i : order)
            gates[i].finish();
        auto t2 = ScaleClock::now() - (t1b - t1);
        std::size_t done = 0;
        for (auto& c : cos)
            done += c.finished() ? 1 : 0;
        if (done != n)
            state.SkipWithError("a coroutine did not end");
        state.counters["create_ns_per_coroutine"] = ns_per(t1 - t0, n);
        state.counters["finish_ns_per_coroutine"] = ns_per(t2 - t1, n);
        state.counters["rss_per_coroutine"] = (after.rss - before.rss) / static_cast<double>(n);
        state.counters["maps_per_coroutine"] = (maps_after - maps_before) / static_cast<double>(n);
        cos.clear();
        gates.clear();
    }
    release_freed_memory();
}
// One repetition whatever --benchmark_repetitions says: a million coroutines
// take seconds, and the counters (memory, mappings) do not need a median.
BENCHMARK(BM_Scale_kaa)
    ->Name("BM_Coroutine_Scale1M/kaa")
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

void BM_Scale_fiber(benchmark::State& state) {
    const std::size_t n = scale_count();
    StackFreeList stacks(kFloorStack);
    for (auto _ : state) {
        std::vector<ctx::fiber> fibers;
        fibers.reserve(n);
        MemorySample before;
        double maps_before = map_count();
        auto t0 = ScaleClock::now();
        for (std::size_t i = 0; i < n; ++i) {
            ctx::fiber f{std::allocator_arg, PooledStack{&stacks}, [](ctx::fiber&& caller) {
                             caller = std::move(caller).resume();
                             return std::move(caller);
                         }};
            fibers.push_back(std::move(f).resume());
        }
        auto t1 = ScaleClock::now();
        MemorySample after;
        double maps_after = map_count();
        const std::vector<std::size_t> order = shuffled(n);
        auto t1b = ScaleClock::now();
        std::size_t done = 0;
        for (std::size_t i : order) {
            fibers[i] = std::move(fibers[i]).resume();
            done += fibers[i] ? 0 : 1;
        }
        auto t2 = ScaleClock::now() - (t1b - t1);
        if (done != n)
            state.SkipWithError("a fiber did not end");
        state.counters["create_ns_per_coroutine"] = ns_per(t1 - t0, n);
        state.counters["finish_ns_per_coroutine"] = ns_per(t2 - t1, n);
        state.counters["rss_per_coroutine"] = (after.rss - before.rss) / static_cast<double>(n);
        state.counters["maps_per_coroutine"] = (maps_after - maps_before) / static_cast<double>(n);
        fibers.clear();
        stacks.trim();
    }
    release_freed_memory();
}
BENCHMARK(BM_Scale_fiber)
    ->Name("BM_Coroutine_Scale1M/baseline_fiber")
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

} // namespace
