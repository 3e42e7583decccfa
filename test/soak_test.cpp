// SPDX-License-Identifier: BSL-1.0
// Soak: a deterministic, seeded mix of everything that can happen at once --
// coroutines that wait, time-slice, spawn children, throw and get aborted at
// random points, threaded jobs (some aborted while queued or running, some
// throwing), timers and signal slots (some throwing), any/all and timeouts --
// followed by a shutdown with work in every state. At the end it checks and
// prints the invariants as one line beginning "soak summary:":
//  * every InProgress finished exactly once (its finished-callback ran once);
//  * every exception thrown was observed (a callback, a catch in a waiting
//    coroutine, result()) or reported through the loop's `exception` signal,
//    and nothing else was reported;
//  * no coroutine, Task or coroutine stack is left, and every object that
//    lived on a coroutine stack was destroyed;
//  * operations run, aborts and exceptions add up.
//
// Short by default (CI, seconds). Long form: KAA_SOAK_SCALE=100 (or the
// --long flag, the same) runs 100 times the rounds, hundreds of thousands of
// operations; KAA_SOAK_SEED picks another seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kaa/kaa.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::InProgressRef;
using namespace std::chrono_literals;

// An exception with an identity, so that each one can be accounted for.
struct SoakError : std::runtime_error {
    explicit SoakError(int id) : std::runtime_error("soak error " + std::to_string(id)), id(id) {}
    int id;
};

// Lives on coroutine stacks: its destructor must run however the coroutine ends.
struct OnStack {
    static inline std::atomic<long> alive{0};
    OnStack() { ++alive; }
    OnStack(const OnStack&) = delete;
    ~OnStack() { --alive; }
};

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kOpsPerRound = 1500;
#else
constexpr int kOpsPerRound = 4000;
#endif
constexpr int kRounds = 2;

int scale() {
    for (const auto& a : ::testing::internal::GetArgvs())
        if (a == "--long")
            return 100;
    if (const char* s = std::getenv("KAA_SOAK_SCALE"))
        return std::max(1, std::atoi(s));
    return 1;
}

unsigned seed() {
    if (const char* s = std::getenv("KAA_SOAK_SEED"))
        return static_cast<unsigned>(std::strtoul(s, nullptr, 10));
    return 1;
}

class Soak {
public:
    explicit Soak(unsigned seed) : rng_(seed) {}

    // ---- the totals printed at the end -----------------------------------
    struct Totals {
        long ops = 0, coroutines = 0, children = 0, tasks = 0, jobs = 0, timers = 0, slots = 0, anys = 0,
             alls = 0, timeouts = 0, aborts = 0;
        long tracked = 0, succeeded = 0, failed_abort = 0, failed_error = 0, failed_timeout = 0;
        long callbacks = 0, callbacks_not_once = 0;
        long thrown = 0, observed = 0, reported = 0, unexpected_reports = 0, unaccounted = 0;
        long shutdown_unwound = 0;
    } t;

    void connect_reports(kaa::MainLoop& loop) {
        reports_ = loop.signals().exception.connect([this](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const SoakError& x) {
                mark(x.id, kReported);
            } catch (...) {
                ++t.unexpected_reports;
                ADD_FAILURE() << "unexpected report: " << kaa::describe(e);
            }
        });
    }

    /// One round: `ops` random operations, then drain and check.
    void round(kaa::MainLoop& loop, kaa::ThreadPool& pool, int ops) {
        loop_ = &loop;
        pool_ = &pool;
        for (int i = 0; i < ops; ++i) {
            one_operation();
            ++t.ops;
            if (rng_() % 8 == 0)
                loop.step(kaa::Duration::zero());
            // Bound what is alive at once (memory), as a real program would.
            if (kaa::active_coroutines() > 400)
                finish_some_gates(64);
        }
        drain();
        check_and_release();
    }

    /// Leaves work in every state, then lets the loop's destructor clean up.
    void leave_work_for_shutdown(kaa::ThreadPool& pool) {
        pool_ = &pool;
        InProgress<void> never;
        never.abort_signal().connect([](const InProgressAborted&) {});
        for (int i = 0; i < 50; ++i) {
            kaa::coroutine([this, never, i] {
                OnStack guard;
                try {
                    if (i % 3 == 0)
                        kaa::this_coroutine::await(never);
                    else if (i % 3 == 1)
                        for (;;)
                            kaa::this_coroutine::yield();
                    else
                        kaa::this_coroutine::await(kaa::delay(1h));
                } catch (const InProgressAborted&) {
                    ++t.shutdown_unwound;
                    throw;
                }
            });
        }
        for (int i = 0; i < 8; ++i)
            kaa::threaded({.pool = pool.name()}, [](std::stop_token st) {
                while (!st.stop_requested())
                    std::this_thread::yield();
            });
        auto timer = std::make_shared<kaa::OneShotTimer>([] {});
        timer->start(1h);
        shutdown_timers_.push_back(std::move(timer));
    }

    std::string summary(long seed_used, int rounds) const {
        char buf[1024];
        std::snprintf(buf, sizeof buf,
                      "soak summary: seed=%ld rounds=%d ops=%ld coroutines=%ld (children %ld) tasks=%ld jobs=%ld "
                      "timers=%ld slots=%ld any=%ld all=%ld timeouts=%ld aborts=%ld | inprogress=%ld finished "
                      "once=%ld (succeeded %ld, aborted %ld, failed %ld, timed out %ld) | exceptions thrown=%ld "
                      "observed=%ld reported=%ld unaccounted=%ld unexpected=%ld | shutdown unwound=%ld | left: "
                      "coroutines=%zu tasks=%zu stacks=%zu on-stack objects=%ld",
                      seed_used, rounds, t.ops, t.coroutines, t.children, t.tasks, t.jobs, t.timers, t.slots,
                      t.anys, t.alls, t.timeouts, t.aborts, t.tracked, t.callbacks - t.callbacks_not_once,
                      t.succeeded, t.failed_abort, t.failed_error, t.failed_timeout, t.thrown, t.observed,
                      t.reported, t.unaccounted, t.unexpected_reports, t.shutdown_unwound, kaa::active_coroutines(),
                      kaa::active_tasks(), kaa::detail::coroutine_stack_counts().live, OnStack::alive.load());
        return buf;
    }

    void disconnect() {
        reports_.disconnect();
        shutdown_timers_.clear();
    }

private:
    // Bits of an error id's fate.
    static constexpr unsigned char kThrown = 1, kObserved = 2, kReported = 4;

    int new_error() {
        std::lock_guard lk(errors_m_);
        errors_.push_back(0);
        return static_cast<int>(errors_.size() - 1);
    }
    void mark(int id, unsigned char bit) {
        std::lock_guard lk(errors_m_);
        errors_[static_cast<std::size_t>(id)] |= bit;
    }
    [[noreturn]] void throw_error(int id) {
        mark(id, kThrown);
        throw SoakError(id);
    }
    void observe(std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const SoakError& x) {
            mark(x.id, kObserved);
        } catch (...) {
        }
    }

    unsigned pick(unsigned n) { return n ? static_cast<unsigned>(rng_() % n) : 0; }

    // Every InProgress the soak makes is tracked: its finished-callback must
    // run exactly once.
    template <class T>
    InProgress<T> track(InProgress<T> ip) {
        std::size_t id = finished_calls_.size();
        finished_calls_.push_back(0);
        ip.connect_finished([this, id] { ++finished_calls_[id]; });
        tracked_.push_back(ip);
        live_.push_back(ip);
        ++t.tracked;
        return ip;
    }

    // A random tracked operation that has not finished (or an empty handle).
    InProgressRef random_live() {
        while (!live_.empty()) {
            std::size_t i = pick(static_cast<unsigned>(live_.size()));
            if (!live_[i].finished())
                return live_[i];
            live_[i] = live_.back();
            live_.pop_back();
        }
        return InProgressRef();
    }
    InProgress<int> random_gate() {
        while (!gates_.empty()) {
            std::size_t i = pick(static_cast<unsigned>(gates_.size()));
            if (!gates_[i].finished())
                return gates_[i];
            gates_[i] = gates_.back();
            gates_.pop_back();
        }
        return new_gate();
    }
    InProgress<int> new_gate() {
        InProgress<int> g = track(InProgress<int>());
        g.abort_signal().connect([](const InProgressAborted&) {});  // abortable
        gates_.push_back(g);
        return g;
    }
    void finish_gate(const InProgress<int>& g) {
        if (g.finished())
            return;
        if (pick(6) == 0)
            g.fail(SoakErrorPtr());
        else
            g.finish(static_cast<int>(pick(100)));
    }
    std::exception_ptr SoakErrorPtr() {
        int id = new_error();
        mark(id, kThrown);
        return std::make_exception_ptr(SoakError(id));
    }
    void finish_some_gates(int n) {
        for (int i = 0; i < n && !gates_.empty(); ++i)
            finish_gate(random_gate());
        loop_->step(kaa::Duration::zero());
    }

    // Something a coroutine or Task can wait on.
    InProgress<int> random_waitable(int depth) {
        switch (pick(depth < 2 ? 8 : 6)) {
        case 0:
        case 1:
            return random_gate();
        case 2: {
            auto d = kaa::delay(std::chrono::microseconds(pick(300)));
            InProgress<int> out = track(InProgress<int>());
            d.connect_both([out] { out.finish(1); }, [out](std::exception_ptr e) { out.fail(e); });
            out.abort_signal().connect([d](const InProgressAborted&) {
                if (!d.finished())
                    d.abort();
            });
            return out;
        }
        case 3: {
            ++t.anys;
            auto a = random_gate(), b = random_gate();
            auto any = track(kaa::any(a, b));
            InProgress<int> out = track(InProgress<int>());
            any.connect_both([out](const kaa::AnyResult<int>& r) { out.finish(static_cast<int>(r.index)); },
                             [out](std::exception_ptr e) { out.fail(e); });
            out.abort_signal().connect([any](const InProgressAborted&) {
                if (!any.finished())
                    any.abort();
            });
            return out;
        }
        case 4: {
            ++t.timeouts;
            auto g = random_gate();
            auto view = track(g.timeout(std::chrono::microseconds(pick(400)), pick(2) == 0));
            return view;
        }
        case 5: {
            ++t.jobs;
            return track(job());
        }
        case 6: {
            ++t.children;
            return track(coroutine(depth + 1));
        }
        default: {
            ++t.alls;
            auto a = random_gate();
            auto b = random_waitable(depth + 1);
            auto all = track(kaa::all(a, b));
            InProgress<int> out = track(InProgress<int>());
            all.connect_both([out](const std::tuple<int, int>& v) { out.finish(std::get<0>(v) + std::get<1>(v)); },
                             [out](std::exception_ptr e) { out.fail(e); });
            out.abort_signal().connect([all](const InProgressAborted&) {
                if (!all.finished())
                    all.abort();
            });
            return out;
        }
        }
    }

    InProgress<int> coroutine(int depth) {
        ++t.coroutines;
        // The script is drawn now (deterministic), the body follows it.
        struct Script {
            std::vector<InProgress<int>> waits;  // empty handle = time slice
            int throw_at = -1;                    // before which step it throws
            bool catch_errors = false;
            int error_id = -1;
            bool spawn_inside = false;  // starts a child from its body and waits for it
        };
        Script sc;
        int steps = static_cast<int>(pick(4));
        for (int i = 0; i < steps; ++i)
            sc.waits.push_back(pick(4) == 0 ? InProgress<int>(nullptr) : random_waitable(depth));
        if (pick(8) == 0) {
            sc.throw_at = static_cast<int>(pick(static_cast<unsigned>(steps + 1)));
            sc.error_id = new_error();
        }
        sc.catch_errors = pick(2) == 0;
        sc.spawn_inside = depth < 2 && pick(6) == 0;
        kaa::CoroutineOptions opts;
        opts.interval = pick(10) == 0 ? std::chrono::microseconds(50) : kaa::Duration::zero();
        return kaa::coroutine(opts, [this, sc = std::move(sc)]() mutable {
            OnStack guard;
            int sum = 0;
            if (sc.spawn_inside) {
                ++t.children;
                ++t.coroutines;
                sum += kaa::this_coroutine::await(track(kaa::coroutine([] {
                    OnStack child_guard;
                    kaa::this_coroutine::yield();
                    return 1;
                })));
            }
            for (int i = 0; i <= static_cast<int>(sc.waits.size()); ++i) {
                if (i == sc.throw_at)
                    throw_error(sc.error_id);
                if (i == static_cast<int>(sc.waits.size()))
                    break;
                InProgress<int> w = std::move(sc.waits[static_cast<std::size_t>(i)]);
                if (!w.valid()) {
                    kaa::this_coroutine::yield();
                    continue;
                }
                try {
                    sum += kaa::this_coroutine::await(w);
                } catch (const SoakError& e) {
                    mark(e.id, kObserved);
                    if (!sc.catch_errors)
                        throw;
                } catch (const InProgressAborted&) {
                    // Aborted here, or what it waited on was aborted (or timed
                    // out): both end this coroutine.
                    throw;
                }
            }
            return sum;
        });
    }

    kaa::Task<int> task(InProgress<int> a, InProgress<int> b) {
        int x = co_await a;
        int y = co_await b;
        co_return x + y;
    }

    InProgress<int> job() {
        int mode = static_cast<int>(pick(6));
        int id = mode == 0 ? new_error() : -1;
        return kaa::threaded({.pool = pool_->name()}, [this, mode, id](std::stop_token st) {
            for (int spin = 0; spin < 200; ++spin)
                std::atomic_signal_fence(std::memory_order_seq_cst);
            if (mode == 0)
                throw_error(id);
            if (mode == 1) {
                // Long-ish: runs until aborted or a bounded count.
                for (int i = 0; i < 20000 && !st.stop_requested(); ++i)
                    std::atomic_signal_fence(std::memory_order_seq_cst);
                kaa::this_job::check_aborted();
            }
            return mode;
        });
    }

    void one_operation() {
        switch (pick(12)) {
        case 0:
        case 1:
            new_gate();
            break;
        case 2:
        case 3:
            finish_gate(random_gate());
            break;
        case 4:
        case 5:
            track(coroutine(0));
            break;
        case 6: {
            ++t.tasks;
            track(InProgress<int>(task(random_waitable(1), random_waitable(1))));
            break;
        }
        case 7:
            ++t.jobs;
            track(job());
            break;
        case 8: {
            // A timer that later finishes a gate, aborts something, or throws.
            ++t.timers;
            auto timer = std::make_shared<kaa::OneShotTimer>(
                [this, g = random_gate(), victim = random_live(), what = pick(3), id = new_error()] {
                    if (what == 0)
                        finish_gate(g);
                    else if (what == 1 && victim.valid() && !victim.finished() && victim.abortable())
                        abort(victim);
                    else
                        throw_error(id);  // reported by the loop
                });
            timer->start(std::chrono::microseconds(pick(500)));
            timers_.push_back(std::move(timer));
            break;
        }
        case 9: {
            // A signal with slots, one of which throws.
            ++t.slots;
            kaa::Signal<void(int)> sig;
            int hits = 0;
            sig.connect([&hits](int) { ++hits; });
            int id = new_error();
            sig.connect([this, id](int) { throw_error(id); });
            sig.connect([&hits](int) { ++hits; });
            sig.emit(1);
            EXPECT_EQ(hits, 2) << "the slots after a throwing one still run";
            break;
        }
        default: {
            InProgressRef victim = random_live();
            if (victim.valid() && victim.abortable())
                abort(victim);
            break;
        }
        }
    }

    void abort(const InProgressRef& ip) {
        try {
            ip.abort();
            ++t.aborts;
        } catch (const kaa::AlreadyFinished&) {
            // claimed, being finished: not an abort
        }
    }

    void drain() {
        for (int round = 0; round < 100000; ++round) {
            for (auto& g : gates_)
                if (!g.finished())
                    g.finish(0);
            bool all_done = std::all_of(tracked_.begin(), tracked_.end(), [](auto& ip) { return ip.finished(); });
            if (all_done && pool_->stats().running == 0 && pool_->stats().queued == 0 && !loop_->has_ready_work())
                return;
            loop_->step(std::chrono::milliseconds(1));
        }
        ADD_FAILURE() << "the soak did not drain";
    }

    void check_and_release() {
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        EXPECT_EQ(kaa::active_tasks(), 0u);
        EXPECT_EQ(kaa::detail::coroutine_stack_counts().live, 0u);
        EXPECT_EQ(OnStack::alive.load(), 0);
        for (std::size_t i = 0; i < finished_calls_.size(); ++i) {
            ++t.callbacks;
            if (finished_calls_[i] != 1) {
                ++t.callbacks_not_once;
                ADD_FAILURE() << "operation " << i << " finished-callback ran " << finished_calls_[i] << " times";
            }
        }
        for (auto& ip : tracked_) {
            if (!ip.failed()) {
                ++t.succeeded;
                continue;
            }
            if (kaa::test::holds<kaa::TimeoutError>(ip.state()->error()))
                ++t.failed_timeout;
            else if (ip.state()->aborted() || kaa::test::holds<InProgressAborted>(ip.state()->error()))
                ++t.failed_abort;
            else
                ++t.failed_error;
            // Half the failures are looked at; the others are dropped and
            // must be reported when the last handle goes.
            if (pick(2) == 0)
                observe(ip.exception());
        }
        // Timeouts are errors too; the soak reads them all (they carry no id).
        for (auto& ip : tracked_)
            if (ip.failed() && kaa::test::holds<kaa::TimeoutError>(ip.state()->error()))
                (void)ip.exception();
        tracked_.clear();
        live_.clear();
        gates_.clear();
        timers_.clear();
        finished_calls_.clear();
        for (int i = 0; i < 4; ++i)
            loop_->step(kaa::Duration::zero());
        std::lock_guard lk(errors_m_);
        for (std::size_t id = 0; id < errors_.size(); ++id) {
            unsigned char f = errors_[id];
            if (!(f & kThrown))
                continue;  // drawn but never thrown (its job was aborted first, say)
            ++t.thrown;
            if (f & kObserved)
                ++t.observed;
            else if (f & kReported)
                ++t.reported;
            else {
                ++t.unaccounted;
                ADD_FAILURE() << "soak error " << id << " was neither observed nor reported";
            }
        }
        errors_.clear();
    }

    std::mt19937 rng_;
    kaa::MainLoop* loop_ = nullptr;
    kaa::ThreadPool* pool_ = nullptr;
    std::vector<InProgressRef> tracked_;
    std::vector<InProgressRef> live_;
    std::vector<InProgress<int>> gates_;
    std::vector<std::shared_ptr<kaa::OneShotTimer>> timers_;
    std::vector<std::shared_ptr<kaa::OneShotTimer>> shutdown_timers_;
    std::deque<int> finished_calls_;
    std::mutex errors_m_;
    std::vector<unsigned char> errors_;
    kaa::Connection reports_;
};

TEST(Soak, MixedOperationsKeepEveryInvariant) {
    const unsigned s = seed();
    const int rounds = kRounds * scale();
    Soak soak(s);
    {
        kaa::MainLoop loop;
        soak.connect_reports(loop);
        {
            kaa::ThreadPool pool("soak", 2);
            for (int r = 0; r < rounds; ++r)
                soak.round(loop, pool, kOpsPerRound);
            // Work in every state when the loop goes away: suspended
            // coroutines, queued and running jobs, a pending timer.
            soak.leave_work_for_shutdown(pool);
            loop.post([&] { loop.stop(); });
            loop.run();
        }
        soak.disconnect();
    }
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_EQ(kaa::detail::coroutine_stack_counts().live, 0u);
    EXPECT_EQ(OnStack::alive.load(), 0);
    EXPECT_EQ(soak.t.shutdown_unwound, 50);
    EXPECT_EQ(soak.t.unaccounted, 0);
    EXPECT_EQ(soak.t.unexpected_reports, 0);
    EXPECT_EQ(soak.t.callbacks_not_once, 0);
    EXPECT_EQ(soak.t.succeeded + soak.t.failed_abort + soak.t.failed_error + soak.t.failed_timeout, soak.t.tracked);
    EXPECT_EQ(soak.t.observed + soak.t.reported, soak.t.thrown);
    std::string line = soak.summary(s, rounds);
    bool ok = !::testing::Test::HasFailure();
    std::printf("%s: %s\n", line.c_str(), ok ? "all accounted for" : "FAILED");
    std::fflush(stdout);
}

} // namespace
