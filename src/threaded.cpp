#include "kaa/threaded.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "kaa/main_loop.hpp"

namespace kaa {

namespace detail {

namespace {

// Coalesces a worker's progress updates: the loop gets at most one pending
// update per job, which applies the latest values.
struct ProgressChannel {
    std::atomic<std::int64_t> pos{0};
    std::atomic<std::int64_t> max{0};
    std::atomic<bool> pending{false};
    std::shared_ptr<Progress> target;  // touched on the loop thread only
};

} // namespace

class Job {
public:
    enum class Phase { queued, running, done };

    std::shared_ptr<StateBase> state;  // loop-confined; the worker only keeps it alive
    UniqueFunction<void()> body;
    int priority = 0;
    std::uint64_t seq = 0;
    std::stop_source stop;
    Phase phase = Phase::queued;  // guarded by the pool's mutex
    std::shared_ptr<ProgressChannel> progress;
    std::weak_ptr<PoolImpl> pool;
    // The outcome, set by the worker before it posts the delivery (which
    // then carries only the Job, small enough not to allocate).
    UniqueFunction<void()> publish;
    std::exception_ptr error;
};

namespace {
thread_local Job* t_job = nullptr;
thread_local const std::shared_ptr<Job>* t_job_owner = nullptr;  // the worker's handle to t_job
thread_local PoolImpl* t_pool = nullptr;
} // namespace

class PoolImpl : public std::enable_shared_from_this<PoolImpl> {
public:
    PoolImpl(std::string name, std::size_t size) : name_(std::move(name)), size_(size) {}

    ThreadPool* owner = nullptr;  // the ThreadPool object that owns this impl
    std::atomic<std::uint64_t> noted_epoch{0};  // see note_active()

    const std::string& name() const noexcept { return name_; }
    std::size_t size() const noexcept { return size_; }

    void submit(std::shared_ptr<Job> job) {
        std::unique_lock lk(m_);
        job->seq = next_seq_++;
        heap_.push_back(std::move(job));
        std::push_heap(heap_.begin(), heap_.end(), Before{});
        if (idle_ == 0 && threads_.size() < size_) {
            threads_.emplace_back([self = shared_from_this(), gen = gen_] { self->work(gen); });
        }
        const bool wake = idle_ > 0;  // busy workers take the job when they finish theirs
        lk.unlock();
        if (wake)
            cv_.notify_one();
    }

    /// Removes a queued job; false if it already started.
    bool remove(Job* job) {
        std::lock_guard lk(m_);
        auto it = std::find_if(heap_.begin(), heap_.end(), [job](const auto& j) { return j.get() == job; });
        if (it == heap_.end())
            return false;
        heap_.erase(it);
        std::make_heap(heap_.begin(), heap_.end(), Before{});
        job->phase = Job::Phase::done;
        return true;
    }

    ThreadPoolStats stats() const {
        std::lock_guard lk(m_);
        return ThreadPoolStats{threads_.size() - exited_, heap_.size(), running_.size(), completed_,
                               late_results_.load()};
    }

    void count_late_result() { ++late_results_; }

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
        return std::any_of(heap_.begin(), heap_.end(), [s](const auto& j) { return j->state.get() == s; });
    }

    /// Aborts queued jobs, stops running ones, joins the threads (waiting at
    /// most `grace` for running jobs). The pool can be used again afterwards.
    void quiesce(Duration grace) {
        std::vector<std::shared_ptr<Job>> dropped;
        std::vector<std::thread> threads;
        std::vector<std::stop_source> to_stop;
        std::size_t stuck = 0;
        {
            std::unique_lock lk(m_);
            dropped.swap(heap_);
            for (auto& j : dropped)
                j->phase = Job::Phase::done;
            for (Job* j : running_)
                to_stop.push_back(j->stop);
            stopping_ = true;
            cv_.notify_all();
        }
        // Outside the lock: request_stop() runs the jobs' stop callbacks
        // synchronously, and they may well ask the pool something.
        for (auto& s : to_stop)
            s.request_stop();
        {
            std::unique_lock lk(m_);
            bool drained = cv_done_.wait_for(lk, grace, [&] { return running_.empty(); });
            if (!drained) {
                stuck = running_.size();
                // The stuck threads exit after their job (their generation is
                // over); the pool starts new ones when used again.
                for (auto& t : threads_)
                    t.detach();
                threads_.clear();
                ++gen_;
                cv_.notify_all();
            }
            threads.swap(threads_);
        }
        if (stuck)  // reported outside the lock: the report runs user slots
            report_unhandled(std::make_exception_ptr(WouldDeadlock(
                                 "thread pool '" + name_ + "': " + std::to_string(stuck) +
                                 " job(s) still running after the shutdown grace period; their threads are "
                                 "left to finish alone (check this_job::aborted() or the stop token in long "
                                 "jobs)")),
                             "thread pool shutdown");
        for (auto& t : threads)
            if (t.joinable())
                t.join();
        {
            // Only now: a worker that finished its job after the wait above
            // counts itself as exited later, and stats() would underflow.
            std::lock_guard lk(m_);
            exited_ = 0;
            stopping_ = false;
        }
        // Fail the jobs that never ran (on the loop thread, or inline without
        // a loop), outside the lock: callbacks may submit more work.
        for (auto& j : dropped) {
            auto s = j->state;
            if (s->status() == Status::pending && s->claim())
                s->fail_claimed(std::make_exception_ptr(InProgressAborted("the main loop shut down before the "
                                                                          "job could run")),
                                s, true);
        }
    }

private:
    struct Before {
        bool operator()(const std::shared_ptr<Job>& a, const std::shared_ptr<Job>& b) const {
            return a->priority < b->priority || (a->priority == b->priority && a->seq > b->seq);
        }
    };

    void work(std::uint64_t gen) {
        t_pool = this;
        // The previous job, released outside the lock (before the next one
        // runs, or before sleeping): a finished worker takes the next job in
        // the critical section where it reports the last one done. Declared
        // before the lock, so that a return releases it after unlocking.
        std::shared_ptr<Job> prev;
        std::unique_lock lk(m_);
        for (;;) {
            if (gen != gen_)
                return;  // abandoned at a shutdown that could not wait for it
            if (prev && heap_.empty() && !stopping_) {
                lk.unlock();
                prev.reset();
                lk.lock();
                continue;
            }
            ++idle_;
            cv_.wait(lk, [&] { return stopping_ || !heap_.empty() || gen != gen_; });
            --idle_;
            if (gen != gen_)
                return;
            if (stopping_) {
                ++exited_;
                return;
            }
            if (heap_.empty())
                continue;
            std::pop_heap(heap_.begin(), heap_.end(), Before{});
            std::shared_ptr<Job> job = std::move(heap_.back());
            heap_.pop_back();
            job->phase = Job::Phase::running;
            running_.push_back(job.get());
            lk.unlock();
            prev.reset();

            t_job = job.get();
            t_job_owner = &job;
            job->body();
            job->body.reset();  // the callable's captures go on this thread
            t_job_owner = nullptr;
            t_job = nullptr;

            lk.lock();
            job->phase = Job::Phase::done;
            running_.erase(std::find(running_.begin(), running_.end(), job.get()));
            ++completed_;
            if (stopping_ && running_.empty())
                cv_done_.notify_all();  // quiesce() waits for the running jobs
            prev = std::move(job);
        }
    }

    std::string name_;
    std::size_t size_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable cv_done_;
    std::vector<std::shared_ptr<Job>> heap_;
    std::vector<Job*> running_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    std::size_t exited_ = 0;
    std::uint64_t next_seq_ = 0;
    std::uint64_t completed_ = 0;
    std::atomic<std::uint64_t> late_results_{0};
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
    // Bumped (under m) when `active` is emptied or the hooked loop changes:
    // a pool noted in the current epoch skips note_active's lock.
    std::atomic<std::uint64_t> epoch{1};
    // Bumped (under m) whenever a named pool registers or unregisters:
    // submit_job's per-thread cache of the last name it resolved is valid
    // while this is unchanged.
    std::atomic<std::uint64_t> names_gen{0};
};

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
        registry().epoch.fetch_add(1, std::memory_order_acq_rel);
    }
    for (auto& w : active)
        if (auto p = w.lock())
            p->quiesce(std::chrono::seconds(5));
}

void note_active(PoolImpl& impl, MainLoop& loop) {
    Registry& r = registry();
    if (impl.noted_epoch.load(std::memory_order_acquire) == r.epoch.load(std::memory_order_acquire))
        return;  // already in `active`, and the loop's shutdown hook is set
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
            r.epoch.fetch_add(1, std::memory_order_acq_rel);
        }
        impl.noted_epoch.store(r.epoch.load(std::memory_order_relaxed), std::memory_order_release);
    }
    if (hook)
        add_shutdown_hook(loop, [] { quiesce_active_pools(); });
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
    const std::uint64_t gen = registry().names_gen.load(std::memory_order_acquire);
    if (cache.pool && cache.gen == gen && cache.name == name)
        return *cache.pool;
    PoolImpl& pool = ThreadPool::get(name).impl();
    cache.gen = gen;
    cache.name = name;
    cache.pool = &pool;
    return pool;
}
} // namespace

void submit_job(std::shared_ptr<StateBase> state, const ThreadOptions& opts, UniqueFunction<void()> body) {
    MainLoop& loop = MainLoop::current();
    if (!loop.is_main_thread())
        throw WrongThread("kaa::threaded(): submit jobs from the loop thread (a job that needs more work "
                          "done can return it, or use threaded(kaa::main_thread, ...) to get there)");
    PoolImpl& impl = resolve_pool(opts.pool);
    auto job = std::make_shared<Job>();
    job->state = state;
    job->body = std::move(body);
    job->priority = opts.priority;
    job->pool = impl.weak_from_this();
    if (opts.progress) {
        auto p = std::make_shared<Progress>();
        state->progress = p;
        job->progress = std::make_shared<ProgressChannel>();
        job->progress->target = p;
    }
    state->job = job.get();
    state->set_abort_hook([job](const InProgressAborted&, std::exception_ptr) {
        if (auto pool = job->pool.lock()) {
            if (!pool->remove(job.get()))
                job->stop.request_stop();  // running: it sees the abort cooperatively
        }
        return false;  // the InProgress fails now; abort() never waits for the thread
    });
    note_active(impl, loop);
    impl.submit(std::move(job));
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
// A job's outcome, posted to the loop by the worker: the value's publisher
// or the exception wait in the Job, so the posted task is one pointer pair
// and fits the queue's inline buffer. Run on the loop, it finishes the
// InProgress (or counts a late result); dropped unrun (the loop went away),
// it fails it, so that a thread blocked on it wakes up. Either way the value
// and the exception are released on the loop thread, not on the worker.
class JobDone {
public:
    explicit JobDone(std::shared_ptr<Job> job) noexcept : job_(std::move(job)) {}
    JobDone(JobDone&& o) noexcept : job_(std::move(o.job_)) {}
    JobDone& operator=(JobDone&&) = delete;
    ~JobDone() {
        if (!job_)
            return;
        UniqueFunction<void()> publish = std::move(job_->publish);
        std::exception_ptr error = std::move(job_->error);
        auto& s = job_->state;
        if (s->status() == Status::pending && s->claim())
            s->fail_claimed(std::make_exception_ptr(LoopError("the main loop went away before this "
                                                              "job result could run")),
                            s);
    }

    void operator()() {
        std::shared_ptr<Job> job = std::move(job_);
        UniqueFunction<void()> publish = std::move(job->publish);
        std::exception_ptr error = std::move(job->error);
        std::shared_ptr<StateBase> s = job->state;
        if (!error) {
            if (s->status() == Status::pending && s->claim()) {
                s->job = nullptr;
                publish();
                s->complete(Status::succeeded, s);
            } else if (auto p = job->pool.lock()) {
                p->count_late_result();
            }
            return;
        }
        if (s->status() == Status::pending && s->claim()) {
            s->job = nullptr;
            s->fail_claimed(std::move(error), s);
            return;
        }
        // Aborted while running: an InProgressAborted is the job obeying;
        // anything else is an error nobody would see otherwise.
        try {
            std::rethrow_exception(error);
        } catch (const InProgressAborted&) {
        } catch (...) {
            report_unhandled(std::current_exception(), "threaded job (failed after it was aborted)");
        }
    }

private:
    std::shared_ptr<Job> job_;
};
} // namespace

void job_succeeded(UniqueFunction<void()> publish) noexcept {
    try {
        t_job->publish = std::move(publish);
        post_to_loop(JobDone(*t_job_owner));
    } catch (...) {
        report_unhandled(std::current_exception(), "threaded job result");
    }
}

void job_failed(std::exception_ptr e) noexcept {
    try {
        t_job->error = std::move(e);
        post_to_loop(JobDone(*t_job_owner));
    } catch (...) {
        report_unhandled(std::current_exception(), "threaded job result");
    }
}

std::stop_token current_stop_token() { return t_job ? t_job->stop.get_token() : std::stop_token(); }


void post_main_thread(std::shared_ptr<StateBase> state, UniqueFunction<void()> fn) {
    if (!MainLoop::current_or_null())
        throw LoopError("threaded(kaa::main_thread, ...): no kaa::MainLoop exists to run it");
    detail::post_to_loop(MainCall(std::move(state), std::move(fn)));
}

bool job_would_deadlock(const StateBase& s) { return t_pool && t_pool->would_deadlock(&s); }

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
        r.names_gen.fetch_add(1, std::memory_order_acq_rel);
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
        r.names_gen.fetch_add(1, std::memory_order_acq_rel);
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

bool aborted() noexcept { return detail::t_job && detail::t_job->stop.stop_requested(); }

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
