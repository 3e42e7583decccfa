// SPDX-License-Identifier: BSL-1.0
#include "kaa/threaded.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include <unistd.h>

#include "kaa/main_loop.hpp"
#include "work_registry.hpp"

namespace kaa {

namespace detail {

// Coalesces a worker's progress updates: the loop gets at most one pending
// update per job, which applies the latest values.
struct ProgressChannel {
    std::atomic<std::int64_t> pos{0};
    std::atomic<std::int64_t> max{0};
    std::atomic<bool> pending{false};
    std::shared_ptr<Progress> target;  // touched on the loop thread only
};

void Job::request_stop() {
    stop_flag_.store(true, std::memory_order_release);
    std::stop_source source{std::nostopstate};
    {
        std::lock_guard lk(stop_mutex_);
        source = stop_;
    }
    // Outside the lock: request_stop() runs the token's stop callbacks here.
    if (source.stop_possible())
        source.request_stop();
}

std::stop_token Job::stop_token() {
    std::lock_guard lk(stop_mutex_);
    if (!stop_.stop_possible()) {
        stop_ = std::stop_source();
        // An abort that came first (it found no source to request): nobody
        // can have registered a stop callback yet, so none runs here.
        if (stop_flag_.load(std::memory_order_acquire))
            stop_.request_stop();
    }
    return stop_.get_token();
}

void post_job_done(std::shared_ptr<Job> job) noexcept;

namespace {
thread_local Job* t_job = nullptr;
thread_local PoolImpl* t_pool = nullptr;
} // namespace

namespace {

// A pool's queued jobs: higher priority first, equal priorities in
// submission order. One FIFO per priority in use, so that taking and adding a
// job is O(1) in the usual case of few distinct priorities, and the pool's
// lock is held for a few instructions instead of a heap's sift (which read a
// Job, a cache miss, at every level).
class JobQueue {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    void push(std::shared_ptr<Job> job) {
        const int prio = job->priority;
        auto it = levels_.end();
        // Usually the priority of the last job, or the only one in use.
        if (last_ < levels_.size() && levels_[last_].priority == prio)
            it = levels_.begin() + static_cast<std::ptrdiff_t>(last_);
        else
            it = std::lower_bound(levels_.begin(), levels_.end(), prio,
                                  [](const Level& l, int p) { return l.priority < p; });
        if (it == levels_.end() || it->priority != prio) {
            prune();
            it = std::lower_bound(levels_.begin(), levels_.end(), prio,
                                  [](const Level& l, int p) { return l.priority < p; });
            it = levels_.insert(it, Level{prio, {}, 0});
        }
        it->jobs.push_back(std::move(job));
        last_ = static_cast<std::size_t>(it - levels_.begin());
        ++size_;
    }

    /// The next job to run; the queue must not be empty.
    std::shared_ptr<Job> pop() {
        Level* l = &levels_.back();
        while (l->head == l->jobs.size())
            --l;  // an empty level (kept for reuse): a lower one has the job
        std::shared_ptr<Job> job = std::move(l->jobs[l->head++]);
        if (l->head == l->jobs.size()) {
            l->jobs.clear();  // keeps the capacity
            l->head = 0;
        } else if (l->head >= 64 && l->head * 2 >= l->jobs.size()) {
            // A backlog that never drains: drop the taken slots now and then.
            l->jobs.erase(l->jobs.begin(), l->jobs.begin() + static_cast<std::ptrdiff_t>(l->head));
            l->head = 0;
        }
        --size_;
        return job;
    }

    /// Removes `job` if queued.
    bool remove(const Job* job) {
        for (Level& l : levels_) {
            auto it = std::find_if(l.jobs.begin() + static_cast<std::ptrdiff_t>(l.head), l.jobs.end(),
                                   [job](const auto& j) { return j.get() == job; });
            if (it != l.jobs.end()) {
                l.jobs.erase(it);
                if (l.head == l.jobs.size()) {
                    l.jobs.clear();
                    l.head = 0;
                }
                --size_;
                return true;
            }
        }
        return false;
    }

    template <class Fn>
    void for_each(Fn&& fn) const {
        for (auto l = levels_.rbegin(); l != levels_.rend(); ++l)
            for (std::size_t i = l->head; i < l->jobs.size(); ++i)
                fn(*l->jobs[i]);
    }

    template <class Pred>
    bool any_of(Pred&& pred) const {
        for (const Level& l : levels_)
            for (std::size_t i = l.head; i < l.jobs.size(); ++i)
                if (pred(*l.jobs[i]))
                    return true;
        return false;
    }

    /// Moves every queued job to `out` and empties the queue.
    void take_all(std::vector<std::shared_ptr<Job>>& out) {
        for (Level& l : levels_)
            for (std::size_t i = l.head; i < l.jobs.size(); ++i)
                out.push_back(std::move(l.jobs[i]));
        levels_.clear();
        size_ = 0;
        last_ = 0;
    }

private:
    struct Level {
        int priority;
        std::vector<std::shared_ptr<Job>> jobs;  // jobs[head..] are queued
        std::size_t head;
    };

    // Empty levels stay to be reused, unless many priorities came and went.
    void prune() {
        if (levels_.size() < 8)
            return;
        std::erase_if(levels_, [](const Level& l) { return l.head == l.jobs.size(); });
        last_ = levels_.size();
    }

    std::vector<Level> levels_;  // by ascending priority
    std::size_t size_ = 0;
    std::size_t last_ = 0;       // the level the last push went to
};

} // namespace

// Jobs submitted whose outcome the loop has not taken yet: queued, running,
// finished with the result on its way, or the result posted and not run.
// Counted down on the loop thread when the result is delivered (JobDone),
// not by the worker after posting it: a worker preempted between the two
// would leave a loop that asks "is a job in flight?" blocked waiting for a
// post that has already happened (the result was delivered, the count not
// yet lowered). One loop per process: one count.
constinit std::atomic<std::size_t> g_undelivered{0};

void count_undelivered(Job& job) noexcept {
    job.undelivered.store(true, std::memory_order_relaxed);
    g_undelivered.fetch_add(1, std::memory_order_acq_rel);
}

// The job's outcome reached the loop, was dropped, or will never come (a job
// abandoned at a shutdown): it stops counting. Idempotent.
void settle_undelivered(Job& job) noexcept {
    if (job.undelivered.exchange(false, std::memory_order_acq_rel))
        g_undelivered.fetch_sub(1, std::memory_order_acq_rel);
}

class PoolImpl : public std::enable_shared_from_this<PoolImpl> {
public:
    PoolImpl(std::string name, std::size_t size) : name_(std::move(name)), size_(size) {}

    ThreadPool* owner = nullptr;  // the ThreadPool object that owns this impl
    std::atomic<std::uint64_t> noted_epoch{0};  // see note_active()

    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept { return size_; }

    void submit(std::shared_ptr<Job> job) {
        std::unique_lock lk(m_);
        queue_.push(std::move(job));
        if (idle_ == 0 && threads_.size() < size_) {
            threads_.emplace_back([self = shared_from_this(), gen = gen_] { self->work(gen); });
        }
        // Busy workers take the job when they finish theirs, and so does a
        // worker woken for an earlier job that has not got the lock yet: a
        // loop submitting faster than sleeping workers wake up does not pay
        // a futex call per job.
        const bool wake = idle_ > signaled_;
        if (wake)
            ++signaled_;
        lk.unlock();
        if (wake)
            cv_.notify_one();
    }

    /// Removes a queued job; false if it already started.
    bool remove(Job* job) {
        std::lock_guard lk(m_);
        if (!queue_.remove(job))
            return false;
        job->phase = Job::Phase::done;
        settle_undelivered(*job);
        return true;
    }

    ThreadPoolStats stats() const {
        std::lock_guard lk(m_);
        // A job counts as running until its outcome is on its way to the
        // loop: queued == running == 0 and no ready work on the loop means
        // every outcome has been delivered.
        return ThreadPoolStats{threads_.size() - exited_, queue_.size(),
                               running_.size() + handing_over_.load(std::memory_order_acquire), completed_,
                               late_results_.load()};
    }

    void count_late_result() { ++late_results_; }

    static std::string job_name(const Job& j) { return j.name.empty() ? std::string(j.site.function) : j.name; }

    /// "threaded job 'fn' on pool "name" started at file:line".
    std::string job_origin(const Job& j) const {
        std::string text = "threaded job '" + job_name(j) + "' on " +
                           (name_.empty() ? std::string("the default pool") : "pool \"" + name_ + "\"");
        std::string where = site_text(j.site);
        return where.empty() ? text : text + " " + where;
    }

    /// Records for the running and queued jobs (see collect_jobs()).
    void collect(std::vector<WorkRecord>& out, std::vector<const StateBase*>& states) const {
        const std::int64_t now = coarse_now();
        std::lock_guard lk(m_);
        auto add = [&](const Job& j, bool running) {
            WorkRecord r;
            r.kind = WorkKind::job;
            r.name = job_name(j);
            r.callable = std::string(j.site.function);
            r.pool = name_;
            set_site(r, j.site);
            if (running) {
                r.state = "running on thread " + std::to_string(j.worker);
                r.in_state = time_since(j.started_at, now);
            } else {
                r.state = "queued";
                r.in_state = time_since(j.queued_at, now);
            }
            out.push_back(std::move(r));
            states.push_back(j.state);
        };
        for (const std::shared_ptr<Job>* j : running_)
            add(**j, true);
        queue_.for_each([&](const Job& j) { add(j, false); });
    }

    /// Whether a thread of this pool waiting on `s` would wait forever: it
    /// is the state of a job queued here, and the caller is the pool's only
    /// thread. (With more threads, one that is busy or just starting will
    /// get to the job.) The queue is searched under the lock, rather than
    /// following the state's `job` pointer from this thread: the loop clears
    /// that pointer and frees the Job when the job completes.
    bool would_deadlock(const StateBase* s) const {
        std::lock_guard lk(m_);
        if (size_ != 1)
            return false;
        return queue_.any_of([s](const Job& j) { return j.state == s; });
    }

    /// Aborts queued jobs, stops running ones, joins the threads (waiting at
    /// most `grace` for running jobs). The pool can be used again afterwards.
    void quiesce(Duration grace) {
        std::vector<std::shared_ptr<Job>> dropped;
        std::vector<std::thread> threads;
        std::vector<std::shared_ptr<Job>> to_stop;
        std::size_t stuck = 0;
        std::string stuck_jobs;
        {
            std::unique_lock lk(m_);
            queue_.take_all(dropped);
            for (auto& j : dropped) {
                j->phase = Job::Phase::done;
                settle_undelivered(*j);
            }
            for (const std::shared_ptr<Job>* j : running_)
                to_stop.push_back(*j);
            stopping_ = true;
            cv_.notify_all();
        }
        // Outside the lock: request_stop() runs the jobs' stop callbacks
        // synchronously, and they may well ask the pool something.
        for (auto& j : to_stop)
            j->request_stop();
        {
            std::unique_lock lk(m_);
            bool drained = cv_done_.wait_for(lk, grace, [&] { return running_.empty(); });
            if (!drained) {
                stuck = running_.size();
                // Their results come late, if at all: nothing waits for them.
                for (const std::shared_ptr<Job>* j : running_) {
                    settle_undelivered(**j);
                    stuck_jobs += "\n  " + job_origin(**j);
                }
                // The stuck threads exit after their job (their generation is
                // over); the pool starts new ones when used again.
                for (auto& t : threads_)
                    t.detach();
                threads_.clear();
                ++gen_;
                signaled_ = 0;
                cv_.notify_all();
            }
            threads.swap(threads_);
        }
        if (stuck)  // reported outside the lock: the report runs user slots
            report_unhandled(std::make_exception_ptr(WouldDeadlock(
                                 "thread pool '" + name_ + "': " + std::to_string(stuck) +
                                 " job(s) still running after the shutdown grace period; their threads are "
                                 "left to finish alone (check this_job::aborted() or the stop token in long "
                                 "jobs):" + stuck_jobs)),
                             "thread pool shutdown");
        for (auto& t : threads)
            if (t.joinable())
                t.join();
        {
            // Only now: a worker that finished its job after the wait above
            // counts itself as exited later, and stats() would underflow.
            std::lock_guard lk(m_);
            exited_ = 0;
            signaled_ = 0;
            stopping_ = false;
        }
        // Fail the jobs that never ran (on the loop thread, or inline without
        // a loop), outside the lock: callbacks may submit more work.
        for (auto& j : dropped) {
            j->body.reset();  // the callable's captures, as if the job had run
            StateBase* raw = j->state;
            std::shared_ptr<StateBase> s(std::move(j), raw);
            if (s->status() == Status::pending && s->claim())
                s->fail_claimed(std::make_exception_ptr(InProgressAborted("the main loop shut down before the "
                                                                          "job could run")),
                                s, true);
        }
    }

private:
    void work(std::uint64_t gen) {
        t_pool = this;
        // The finished job, whose outcome is posted to the loop outside the
        // lock (before the next job runs, or before sleeping): a finished
        // worker takes the next job in the critical section where it reports
        // the last one done. The worker hands its reference over with the
        // outcome, so the state (value, Progress) is always released on the
        // loop thread. Declared before the lock, so that a return posts it
        // after unlocking.
        struct Finished {
            std::shared_ptr<Job> job;
            std::atomic<std::size_t>& handing_over;
            void post() noexcept {
                if (job) {
                    post_job_done(std::move(job));
                    handing_over.fetch_sub(1, std::memory_order_release);
                }
            }
            ~Finished() { post(); }
        } prev{nullptr, handing_over_};
        // Once per thread: gettid() is a system call, too dear per job.
        const int tid = static_cast<int>(::gettid());
        std::unique_lock lk(m_);
        for (;;) {
            if (gen != gen_)
                return;  // abandoned at a shutdown that could not wait for it
            if (prev.job && queue_.empty() && !stopping_) {
                lk.unlock();
                prev.post();
                lk.lock();
                continue;
            }
            ++idle_;
            while (!stopping_ && queue_.empty() && gen == gen_) {
                cv_.wait(lk);
                // Whether or not this thread was the one notified, one
                // wake-up less is on its way (see submit()).
                if (signaled_ > 0)
                    --signaled_;
            }
            --idle_;
            if (gen != gen_)
                return;
            if (stopping_) {
                ++exited_;
                return;
            }
            if (queue_.empty())
                continue;
            std::shared_ptr<Job> job = queue_.pop();
            job->phase = Job::Phase::running;
            job->started_at = coarse_now();
            job->worker = tid;
            running_.push_back(&job);  // quiesce() may stop it
            lk.unlock();
            prev.post();

            t_job = job.get();
            job->body();
            job->body.reset();  // the callable's captures go on this thread
            t_job = nullptr;

            lk.lock();
            job->phase = Job::Phase::done;
            running_.erase(std::find(running_.begin(), running_.end(), &job));
            ++completed_;
            if (stopping_ && running_.empty())
                cv_done_.notify_all();  // quiesce() waits for the running jobs
            prev.job = std::move(job);
            handing_over_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    std::string name_;
    std::size_t size_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable cv_done_;
    JobQueue queue_;
    // The running jobs: each worker's handle, valid while listed here.
    std::vector<const std::shared_ptr<Job>*> running_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;      // workers waiting for a job
    std::size_t signaled_ = 0;  // notifications sent that no worker woke up for yet
    std::size_t exited_ = 0;
    std::uint64_t completed_ = 0;
    std::atomic<std::uint64_t> late_results_{0};
    // Finished jobs whose outcome a worker has yet to post (see work()).
    std::atomic<std::size_t> handing_over_{0};
    std::uint64_t gen_ = 0;
    bool stopping_ = false;
};

namespace {

struct Registry {
    std::mutex m;
    std::map<std::string, std::weak_ptr<PoolImpl>> pools;
    // Pools that ran jobs since the last loop shutdown; quiesced at shutdown.
    std::vector<std::weak_ptr<PoolImpl>> active;
    MainLoop* hooked = nullptr;
    std::size_t default_size = 0;
    bool default_created = false;
};

// Read on every submit_job, so they live outside Registry (a function-local
// static: an out-of-line call and a guard check per use) as constant-
// initialised globals.
// Bumped (under the registry's m) when `active` is emptied or the hooked
// loop changes: a pool noted in the current epoch skips note_active's lock.
constinit std::atomic<std::uint64_t> g_epoch{1};
// Bumped (under the registry's m) whenever a named pool registers or
// unregisters: submit_job's per-thread cache of the last name it resolved is
// valid while this is unchanged.
constinit std::atomic<std::uint64_t> g_names_gen{0};

Registry& registry() {
    static Registry r;
    return r;
}

void quiesce_active_pools() {
    std::vector<std::weak_ptr<PoolImpl>> active;
    {
        std::lock_guard lk(registry().m);
        active.swap(registry().active);
        registry().hooked = nullptr;
        g_epoch.fetch_add(1, std::memory_order_acq_rel);
    }
    for (auto& w : active)
        if (auto p = w.lock())
            p->quiesce(std::chrono::seconds(5));
}

// Whether a job has its outcome still to be delivered on the loop:
// run_until_idle()'s probe (and a virtual clock's, which must not jump then).
bool busy_pools() { return g_undelivered.load(std::memory_order_acquire) != 0; }

void note_active(PoolImpl& impl) {
    if (impl.noted_epoch.load(std::memory_order_acquire) == g_epoch.load(std::memory_order_acquire))
        return;  // already in `active`, and the loop's shutdown hook is set
    Registry& r = registry();
    MainLoop& loop = MainLoop::current();
    std::shared_ptr<PoolImpl> pool = impl.shared_from_this();
    bool hook = false;
    {
        std::lock_guard lk(r.m);
        auto& act = r.active;
        if (std::none_of(act.begin(), act.end(), [&](const auto& w) { return w.lock() == pool; }))
            act.push_back(pool);
        if (r.hooked != &loop) {
            r.hooked = &loop;
            hook = true;
            g_epoch.fetch_add(1, std::memory_order_acq_rel);
        }
        impl.noted_epoch.store(g_epoch.load(std::memory_order_relaxed), std::memory_order_release);
    }
    if (hook) {
        add_shutdown_hook(loop, [] { quiesce_active_pools(); });
        add_busy_probe(loop, [] { return busy_pools(); });  // with the hook: until the shutdown
    }
}

std::string registered_names() {
    std::string names;
    for (auto& [name, w] : registry().pools)
        if (!w.expired())
            names += (names.empty() ? "'" : ", '") + name + "'";
    return names.empty() ? "none" : names;
}

} // namespace

namespace {
// The pool a job goes to. The last named lookup is cached per thread (jobs
// are submitted from the loop thread), so that a stream of jobs to one pool
// does not take the registry's mutex for each.
PoolImpl& resolve_pool(const std::string& name) {
    if (name.empty())
        return ThreadPool::default_pool().impl();
    struct Cache {
        std::uint64_t gen = ~std::uint64_t(0);
        std::string name;
        PoolImpl* pool = nullptr;
    };
    static thread_local Cache cache;
    const std::uint64_t gen = g_names_gen.load(std::memory_order_acquire);
    if (cache.pool && cache.gen == gen && cache.name == name)
        return *cache.pool;
    PoolImpl& pool = ThreadPool::get(name).impl();
    cache.gen = gen;
    cache.name = name;
    cache.pool = &pool;
    return pool;
}
} // namespace

void submit_job(std::shared_ptr<StateBase> state, Job& job, const ThreadOptions& opts, const WorkSite& site,
                UniqueFunction<void()> body) {
    // One thread-local and one atomic load; MainLoop::current() throws the
    // LoopError that says how to create a loop.
    if (loop_context() != LoopContext::loop_thread) [[unlikely]] {
        MainLoop::current();
        throw WrongThread("kaa::threaded(): submit jobs from the loop thread (a job that needs more work "
                          "done can return it, or use threaded(kaa::main_thread, ...) to get there)");
    }
    PoolImpl& impl = resolve_pool(opts.pool);
    job.site = site;
    if (!opts.name.empty()) [[unlikely]]
        job.name = opts.name;
    job.queued_at = coarse_now();
    job.state = state.get();
    job.body = std::move(body);
    job.priority = opts.priority;
    job.pool = impl.weak_from_this();
    if (opts.progress) {
        auto p = std::make_shared<Progress>();
        state->progress = p;
        job.progress = std::make_shared<ProgressChannel>();
        job.progress->target = p;
    }
    state->job = &job;
    // The hook lives in the state, which holds the job: a plain pointer.
    state->set_abort_hook([j = &job](const InProgressAborted&, std::exception_ptr) {
        if (auto pool = j->pool.lock()) {
            if (pool->remove(j))
                j->body.reset();  // it never runs: its captures go now, on this thread
            else
                j->request_stop();  // running: it sees the abort cooperatively
        }
        return false;  // the InProgress fails now; abort() never waits for the thread
    });
    note_active(impl);
    // Shares the state's control block: one allocation per job.
    count_undelivered(job);
    try {
        impl.submit(std::shared_ptr<Job>(std::move(state), &job));
    } catch (...) {
        settle_undelivered(job);  // never queued (no thread could be started)
        throw;
    }
}

namespace {
// Work posted to the loop that finishes `s` there: a main-thread call, or a
// job's result. Dropped unrun (the loop went away with it still queued), it
// fails the InProgress, so that a thread blocked on it wakes up.
class MainCall {
public:
    MainCall(std::shared_ptr<StateBase> s, UniqueFunction<void()> fn) : s_(std::move(s)), fn_(std::move(fn)) {}
    MainCall(MainCall&& o) noexcept : s_(std::move(o.s_)), fn_(std::move(o.fn_)) {}
    MainCall& operator=(MainCall&&) = delete;
    ~MainCall() {
        if (s_ && s_->status() == Status::pending && s_->claim())
            s_->fail_claimed(std::make_exception_ptr(LoopError("the main loop went away before this "
                                                               "main-thread call or job result could run")),
                             s_);
    }
    void operator()() {
        s_.reset();
        fn_();
    }

private:
    std::shared_ptr<StateBase> s_;
    UniqueFunction<void()> fn_;
};
} // namespace

namespace {
// A job's outcome, posted to the loop by the worker: the value's publisher,
// the exception and the worker's reference wait in the Job, so the posted
// task is one pointer, which the queues move by byte copy. Run on the loop,
// it finishes the InProgress (or counts a late result); dropped unrun (the
// loop went away), it fails it, so that a thread blocked on it wakes up.
// Either way the value and the exception are released on the loop thread,
// not on the worker.
class JobDone {
public:
    using trivially_relocatable = void;  // a pointer: the loop's queues move it by byte copy
    /// `job->delivery` holds the reference this task hands to the loop.
    explicit JobDone(Job* job) noexcept : job_(job) {}
    JobDone(JobDone&& o) noexcept : job_(std::exchange(o.job_, nullptr)) {}
    JobDone& operator=(JobDone&&) = delete;
    ~JobDone() {
        if (!job_)
            return;
        settle_undelivered(*job_);
        Outcome out = take(*job_);
        const std::shared_ptr<StateBase>& s = out.state;
        if (s->status() == Status::pending && s->claim())
            s->fail_claimed(std::make_exception_ptr(LoopError("the main loop went away before this "
                                                              "job result could run")),
                            s);
    }

    void operator()() {
        Job& job = *std::exchange(job_, nullptr);
        // First: a callback below may wait() in a nested iteration, which
        // must not take this job for one still in flight.
        settle_undelivered(job);
        auto [publish, error, s] = take(job);  // `s` keeps `job` too
        if (!error) {
            if (s->status() == Status::pending && s->claim()) {
                s->job = nullptr;
                publish();
                s->complete(Status::succeeded, s);
            } else if (auto p = job.pool.lock()) {
                p->count_late_result();
            }
            return;
        }
        if (s->status() == Status::pending && s->claim()) {
            s->job = nullptr;
            if (auto p = job.pool.lock())
                s->set_origin(p->job_origin(job));  // named if nobody observes the failure
            s->fail_claimed(std::move(error), s);
            return;
        }
        // Aborted while running: an InProgressAborted is the job obeying;
        // anything else is an error nobody would see otherwise.
        try {
            std::rethrow_exception(error);
        } catch (const InProgressAborted&) {
        } catch (...) {
            auto p = job.pool.lock();
            std::string who = p ? p->job_origin(job) : std::string("threaded job");
            report_unhandled(std::current_exception(), (who + " (failed after it was aborted)").c_str());
        }
    }

private:
    /// What the worker left in the job, moved out on the loop thread, so
    /// that it is released there. (Members go in reverse order: the state,
    /// and with it perhaps the job, first.)
    struct Outcome {
        UniqueFunction<void()> publish;
        std::exception_ptr error;
        std::shared_ptr<StateBase> state;
    };
    static Outcome take(Job& job) noexcept {
        return {std::move(job.publish), std::move(job.error),
                std::shared_ptr<StateBase>(std::move(job.delivery), job.state)};
    }

    Job* job_;
};
} // namespace

// The body stores the outcome in the job; the worker posts it (PoolImpl::work).
void job_succeeded(UniqueFunction<void()> publish) noexcept { t_job->publish = std::move(publish); }

void job_failed(std::exception_ptr e) noexcept { t_job->error = std::move(e); }

void post_job_done(std::shared_ptr<Job> job) noexcept {
    Job* j = job.get();
    j->delivery = std::move(job);
    try {
        post_to_loop(JobDone(j));
    } catch (...) {
        report_unhandled(std::current_exception(), "threaded job result");
    }
}

std::stop_token current_stop_token() { return t_job ? t_job->stop_token() : std::stop_token(); }


void post_main_thread(std::shared_ptr<StateBase> state, UniqueFunction<void()> fn) {
    if (!MainLoop::current_or_null())
        throw LoopError("threaded(kaa::main_thread, ...): no kaa::MainLoop exists to run it");
    detail::post_to_loop(MainCall(std::move(state), std::move(fn)));
}

bool job_would_deadlock(const StateBase& s) { return t_pool && t_pool->would_deadlock(&s); }

void collect_jobs(std::vector<WorkRecord>& out, std::vector<const StateBase*>& states) {
    std::vector<std::shared_ptr<PoolImpl>> pools;
    {
        Registry& r = registry();
        std::lock_guard lk(r.m);
        for (auto& w : r.active)
            if (auto p = w.lock())
                pools.push_back(std::move(p));
        for (auto& [name, w] : r.pools)
            if (auto p = w.lock(); p && std::find(pools.begin(), pools.end(), p) == pools.end())
                pools.push_back(std::move(p));
    }
    for (auto& p : pools)
        p->collect(out, states);
}

} // namespace detail

// ---------------------------------------------------------------------------

ThreadPool::ThreadPool(std::string name, std::size_t size) {
    if (size == 0)
        throw UsageError("ThreadPool '" + name + "': size must be at least 1");
    impl_ = std::make_shared<detail::PoolImpl>(std::move(name), size);
    impl_->owner = this;
    if (!impl_->name().empty()) {
        auto& r = detail::registry();
        std::lock_guard lk(r.m);
        auto& slot = r.pools[impl_->name()];
        if (!slot.expired())
            throw UsageError("ThreadPool: a pool named '" + impl_->name() + "' already exists");
        slot = impl_;
        detail::g_names_gen.fetch_add(1, std::memory_order_acq_rel);
    }
}

ThreadPool::~ThreadPool() {
    shutdown();
    if (!impl_->name().empty()) {
        auto& r = detail::registry();
        std::lock_guard lk(r.m);
        auto it = r.pools.find(impl_->name());
        if (it != r.pools.end() && it->second.lock() == impl_)
            r.pools.erase(it);
        detail::g_names_gen.fetch_add(1, std::memory_order_acq_rel);
    }
}

const std::string& ThreadPool::name() const noexcept { return impl_->name(); }
std::size_t ThreadPool::size() const noexcept { return impl_->size(); }
ThreadPoolStats ThreadPool::stats() const { return impl_->stats(); }
void ThreadPool::shutdown(Duration grace) { impl_->quiesce(grace); }

ThreadPool& ThreadPool::default_pool() {
    static ThreadPool* pool = [] {
        auto& r = detail::registry();
        std::size_t n;
        {
            std::lock_guard lk(r.m);
            n = r.default_size ? r.default_size : std::max(2u, std::thread::hardware_concurrency());
            r.default_created = true;
        }
        // Leaked on purpose: its threads are joined at each loop shutdown,
        // and a static destructor would run after the loop is gone.
        return new ThreadPool("", n);
    }();
    return *pool;
}

void ThreadPool::set_default_size(std::size_t size) {
    auto& r = detail::registry();
    std::lock_guard lk(r.m);
    if (r.default_created)
        throw UsageError("ThreadPool::set_default_size(): the default pool already exists; set its size "
                         "before the first threaded() call");
    if (size == 0)
        throw UsageError("ThreadPool::set_default_size(): size must be at least 1");
    r.default_size = size;
}

ThreadPool& ThreadPool::get(const std::string& name) {
    auto& r = detail::registry();
    std::lock_guard lk(r.m);
    auto it = r.pools.find(name);
    std::shared_ptr<detail::PoolImpl> impl = it == r.pools.end() ? nullptr : it->second.lock();
    if (!impl)
        throw UnknownPool("threaded(): no thread pool named '" + name + "' (registered: " +
                          detail::registered_names() + "); create a kaa::ThreadPool(\"" + name +
                          "\", size) first");
    return *impl->owner;
}

namespace this_job {

bool aborted() noexcept { return detail::t_job && detail::t_job->stop_requested(); }

std::stop_token stop_token() { return detail::current_stop_token(); }

void check_aborted() {
    if (aborted())
        throw InProgressAborted("threaded job aborted");
}

void set_progress(std::int64_t pos, std::int64_t max) {
    detail::Job* job = detail::t_job;
    if (!job)
        throw UsageError("this_job::set_progress(): not inside a threaded job");
    if (!job->progress)
        throw UsageError("this_job::set_progress(): the job has no Progress; submit it with "
                         "ThreadOptions{.progress = true}");
    auto& ch = *job->progress;
    ch.pos.store(pos, std::memory_order_relaxed);
    ch.max.store(max, std::memory_order_relaxed);
    if (!ch.pending.exchange(true, std::memory_order_acq_rel)) {
        detail::post_to_loop([c = job->progress] {
            c->pending.store(false, std::memory_order_release);
            c->target->set(c->pos.load(std::memory_order_relaxed), c->max.load(std::memory_order_relaxed));
        });
    }
}

} // namespace this_job

} // namespace kaa
