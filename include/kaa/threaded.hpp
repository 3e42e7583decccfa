// SPDX-License-Identifier: BSL-1.0
// threaded: blocking work on thread pools, named threads and the main thread,
// with the result delivered as an InProgress on the loop thread.
//
//   auto ip = kaa::threaded([path] { return decode(path); });      // default pool
//   auto ip = kaa::threaded({.pool = "db", .priority = 5}, query);  // a named pool or thread
//   auto ip = kaa::threaded(kaa::main_thread, [] { return widget.text(); });  // from a worker
//
// Guarantees (doc/threads.md):
//  * The callable runs on a worker of the target; its value or exception
//    finishes the ThreadInProgress on the loop thread, where callbacks run.
//  * Among queued jobs of one pool, higher priority runs first; equal
//    priorities run in submission order. A named thread (a pool of size 1)
//    runs its jobs one at a time.
//  * abort() of a queued job removes it: it never runs. abort() of a running
//    job asks it to stop (this_job::aborted(), or the std::stop_token it can
//    take as its first parameter) and fails the InProgress at once; abort()
//    never blocks. A job that still produces a value after that has it
//    discarded (counted in the pool's stats); one that throws something other
//    than InProgressAborted has that exception reported.
//  * A coroutine waiting on a threaded job that is aborted cascades into it.
//  * When the loop shuts down, queued jobs are aborted, running jobs see the
//    abort, and every pool thread is joined.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <source_location>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kaa/detail/work_site.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/progress.hpp"

namespace kaa {

namespace detail {
class PoolImpl;
struct ProgressChannel;
} // namespace detail

/// Statistics of a pool, for tests, benchmarks and diagnostics.
struct ThreadPoolStats {
    std::size_t threads = 0;        ///< threads started and not ended
    std::size_t queued = 0;         ///< jobs waiting for a thread
    std::size_t running = 0;        ///< jobs running, or finished with their outcome not yet posted to the loop
    std::uint64_t completed = 0;    ///< jobs that ran to the end
    std::uint64_t late_results = 0; ///< values discarded because the job was aborted while running
};

/// A pool of worker threads with a priority queue. A pool of size 1 is a
/// "named thread": its jobs run one at a time, in priority order.
class ThreadPool {
public:
    /// Creates a pool of `size` threads (started on demand, up to `size`).
    /// With a non-empty name it is registered, so threaded({.pool = name})
    /// finds it, until the pool is destroyed.
    /// @throws UsageError if the name is taken or size is 0.
    explicit ThreadPool(std::string name, std::size_t size = 1);
    /// Aborts queued jobs, asks running ones to stop, and joins the threads
    /// (see shutdown()).
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    const std::string& name() const noexcept;
    std::size_t size() const noexcept;
    ThreadPoolStats stats() const;

    /// Aborts queued jobs, asks running ones to stop, and joins the threads,
    /// waiting at most `grace` for running jobs; a job still running then is
    /// reported (by name of the pool) and its thread left to finish alone.
    void shutdown(Duration grace = std::chrono::seconds(5));

    /// The process's default pool (std::thread::hardware_concurrency()
    /// threads, at least 2), created on first use.
    static ThreadPool& default_pool();
    /// Sets the default pool's size before its first use.
    /// @throws UsageError once it exists.
    static void set_default_size(std::size_t size);
    /// The registered pool called `name`. @throws UnknownPool.
    static ThreadPool& get(const std::string& name);

    /// Library plumbing.
    detail::PoolImpl& impl() noexcept { return *impl_; }

private:
    std::shared_ptr<detail::PoolImpl> impl_;
};

/// Where and how threaded() runs a callable.
struct ThreadOptions {
    /// A registered pool or named thread; empty = the default pool.
    std::string pool;
    /// Among queued jobs of that pool, higher runs first.
    int priority = 0;
    /// Create a Progress for the job: this_job::progress() inside,
    /// InProgressRef::progress() outside.
    bool progress = false;
    /// The job's name in kaa::live_work() and in reports; empty: derived
    /// from the callable's type.
    std::string name = {};
    /// Where the options were written: the creation site kaa::live_work()
    /// and reports show (options written in the call record the call).
    std::source_location site = std::source_location::current();
};

/// The InProgress of a threaded job.
template <class T>
class ThreadInProgress : public InProgress<T> {
public:
    using InProgress<T>::InProgress;
};

/// Tag for threaded(main_thread, fn).
struct MainThreadTag {
    explicit constexpr MainThreadTag() = default;
};
/// Run on the loop thread (kaa's MAINTHREAD).
inline constexpr MainThreadTag main_thread{};

namespace detail {

/// A threaded job's bookkeeping (library plumbing). It lives inside its
/// InProgress state (JobState), so that a job costs one allocation: the
/// pool's queue, the worker and the delivery hold it through shared_ptrs
/// that share the state's control block.
class Job {
public:
    enum class Phase : std::uint8_t { queued, running, done };

    StateBase* state = nullptr;  // the state this job is part of; loop-confined
    UniqueFunction<void()> body;
    int priority = 0;
    Phase phase = Phase::queued;  // guarded by the pool's mutex
    std::shared_ptr<ProgressChannel> progress;
    std::weak_ptr<PoolImpl> pool;
    // The outcome, set by the worker before it posts the delivery, and the
    // worker's reference to the job while it is on its way to the loop: the
    // posted task is then a plain pointer, which the queues move by byte copy.
    UniqueFunction<void()> publish;
    std::exception_ptr error;
    std::shared_ptr<Job> delivery;
    // From submission until the loop has the outcome (or dropped it): what
    // run_until_idle() and a virtual clock wait for (see settle_undelivered()).
    std::atomic<bool> undelivered{false};
    // For kaa::live_work() and reports: set at submission (loop thread),
    // then `started_at` and `worker` under the pool's mutex.
    WorkSite site;
    std::string name;  // ThreadOptions::name; empty: site.function
    std::int64_t queued_at = 0;
    std::int64_t started_at = 0;
    int worker = 0;  // the running worker's thread id (gettid)

    /// Asks the job to stop (any thread): aborted() turns true, and the stop
    /// token, if the job took one, is requested. Stop callbacks run on the
    /// calling thread, outside any lock.
    void request_stop();
    bool stop_requested() const noexcept { return stop_flag_.load(std::memory_order_acquire); }
    /// The job's stop token. Most jobs never ask for one: its shared state is
    /// allocated on the first call (already requested if the job was).
    std::stop_token stop_token();

private:
    std::atomic<bool> stop_flag_{false};
    std::mutex stop_mutex_;                       // guards stop_'s creation
    std::stop_source stop_{std::nostopstate};     // created by stop_token()
};

/// The state of a threaded job's InProgress, with the job inside it.
template <class R>
class JobState final : public State<R> {
public:
    JobState() noexcept {}  // user-provided: see StateBase()
    Job job;
};

/// Queues `job` (part of `state`) on the pool named by `opts.pool`. Its body
/// runs on a worker and reports through job_succeeded() / job_failed().
void submit_job(std::shared_ptr<StateBase> state, Job& job, const ThreadOptions& opts, const WorkSite& site,
                UniqueFunction<void()> body);
/// Called by a job body with the exception that escaped the callable.
void job_failed(std::exception_ptr e) noexcept;
/// Called by a job body when the callable returned normally.
void job_succeeded(UniqueFunction<void()> publish) noexcept;
std::stop_token current_stop_token();

template <class F, class... A>
decltype(auto) invoke_job(F& fn, std::tuple<A...>& args) {
    if constexpr (std::is_invocable_v<F&, std::stop_token, A...>)
        return std::apply([&](A&... a) -> decltype(auto) { return fn(current_stop_token(), std::move(a)...); },
                          args);
    else
        return std::apply([&](A&... a) -> decltype(auto) { return fn(std::move(a)...); }, args);
}

template <class F, class... A>
struct job_result {
    using type = std::remove_cvref_t<decltype(invoke_job(std::declval<F&>(), std::declval<std::tuple<A...>&>()))>;
};

void post_main_thread(std::shared_ptr<StateBase> state, UniqueFunction<void()> fn);

} // namespace detail

namespace detail {

template <class F, class... A>
auto submit_threaded(const ThreadOptions& opts, const std::source_location& where, F&& fn, A&&... args) {
    using Fn = std::decay_t<F>;
    using R = typename detail::job_result<Fn, std::decay_t<A>...>::type;
    auto state = detail::make_state<detail::JobState<R>>();
    ThreadInProgress<R> ip(state);
    detail::State<R>* s = state.get();
    detail::Job& job = state->job;
    detail::submit_job(
        std::move(state), job, opts, detail::WorkSite{where, detail::type_name_v<Fn>},
        [s, fn = Fn(std::forward<F>(fn)), args = std::make_tuple(std::forward<A>(args)...)]() mutable {
            // The exception leaves the catch block while `error` still holds
            // it, then moves to the loop: its last reference always goes on
            // the loop thread, never on this worker behind the loop's back.
            std::exception_ptr error;
            try {
                if constexpr (std::is_void_v<R>) {
                    detail::invoke_job(fn, args);
                    detail::job_succeeded([s] { s->set_value(); });
                } else {
                    R value = detail::invoke_job(fn, args);
                    detail::job_succeeded([s, v = std::move(value)]() mutable { s->set_value(std::move(v)); });
                }
            } catch (...) {
                error = std::current_exception();
            }
            if (error)
                detail::job_failed(std::move(error));
        });
    return ip;
}

inline const ThreadOptions& default_thread_options() noexcept {
    static const ThreadOptions defaults = [] {
        ThreadOptions o;
        o.site = {};  // no site: the call's own is recorded, if any
        return o;
    }();
    return defaults;
}

} // namespace detail

/// Runs `fn(args...)` on a worker thread (see ThreadOptions) and returns its
/// InProgress at once. If `fn` takes a std::stop_token first, it gets one
/// that is requested when the job is aborted. `opts.site` is the creation
/// site kaa::live_work() shows.
/// @throws UnknownPool for an unknown pool name; LoopError without a loop.
template <class F, class... A>
auto threaded(const ThreadOptions& opts, F&& fn, A&&... args) {
    return detail::submit_threaded(opts, opts.site, std::forward<F>(fn), std::forward<A>(args)...);
}

/// The same on the default pool; the call is the creation site.
template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ThreadOptions> &&
             !std::is_same_v<std::remove_cvref_t<F>, MainThreadTag>)
auto threaded(F&& fn, std::source_location site = std::source_location::current()) {
    return detail::submit_threaded(detail::default_thread_options(), site, std::forward<F>(fn));
}

/// The same with arguments: no creation site is recorded (write
/// threaded({}, fn, args...) to have one).
template <class F, class A0, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ThreadOptions> &&
             !std::is_same_v<std::remove_cvref_t<F>, MainThreadTag> &&
             !std::is_same_v<std::remove_cvref_t<A0>, std::source_location>)
auto threaded(F&& fn, A0&& arg0, A&&... args) {
    return detail::submit_threaded(detail::default_thread_options(), std::source_location(), std::forward<F>(fn),
                                   std::forward<A0>(arg0), std::forward<A>(args)...);
}

/// Runs `fn(args...)` on the loop thread (kaa's MainThreadCallable). Called
/// on the loop thread it runs at once and returns a finished InProgress;
/// from another thread it is queued to the loop and the InProgress finishes
/// there -- a worker typically wait()s on it.
template <class F, class... A>
auto threaded(MainThreadTag, F&& fn, A&&... args) {
    using R = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>...>>;
    InProgress<R> ip;
    auto run = [ip, fn = std::decay_t<F>(std::forward<F>(fn)),
                args = std::make_tuple(std::forward<A>(args)...)]() mutable {
        ip.execute([&]() -> R { return std::apply(fn, std::move(args)); });
    };
    if (detail::in_loop_context())
        run();
    else
        detail::post_main_thread(ip.state(), std::move(run));
    return ip;
}

namespace this_job {

/// True once the running threaded job was aborted: return (or throw
/// InProgressAborted) soon. False outside a job.
bool aborted() noexcept;
/// The stop token of the running job (never requested outside a job).
std::stop_token stop_token();
/// Throws InProgressAborted if the job was aborted: a one-line check point.
void check_aborted();
/// Reports progress from the job; updates reach the job's Progress on the
/// loop thread, coalesced (a fast worker posts at most one pending update).
/// @throws UsageError outside a job or for a job without ThreadOptions::progress.
void set_progress(std::int64_t pos, std::int64_t max);

} // namespace this_job

} // namespace kaa
