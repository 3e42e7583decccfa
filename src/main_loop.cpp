// SPDX-License-Identifier: BSL-1.0
#include "kaa/main_loop.hpp"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "asio_host.hpp"
#include "handler_slot.hpp"
#include "kaa/log.hpp"
#include "work_registry.hpp"
#include "kaa/virtual_clock.hpp"
#include "virtual_time.hpp"


namespace asio = boost::asio;

namespace kaa {

namespace {

std::atomic<MainLoop*> g_current{nullptr};
// Guards the work posted from other threads (one loop per process: it is the
// loop's remote_mutex) and the loop's lifetime as other threads see it: the
// destructor stops being the current loop under it, so a thread posting
// reaches a live loop or sees none -- never a loop half destroyed.
std::mutex g_remote_mutex;
thread_local MainLoop* t_loop = nullptr;
// Set while the `exception` signal is being emitted on this thread, so that a
// handler that itself throws is printed instead of recursing.
thread_local bool t_reporting = false;

void print_unhandled(std::exception_ptr e, std::string_view where) noexcept {
    try {
        log(LogLevel::error, "unhandled exception",
            "unhandled exception in " + std::string(where) + ": " + describe(e));
    } catch (...) {
        log(LogLevel::error, "unhandled exception", "unhandled exception (out of memory describing it)");
    }
}

} // namespace

using Task = detail::UniqueFunction<void()>;

namespace {

/// Memory for the no-op handler that wakes a blocked loop (Impl::wake()).
/// Posted from threads that are not Asio's, the handler cannot use Asio's
/// per-thread recycling: every wake-up was a malloc on the posting thread
/// and a free on the loop's, on the critical path of a cross-thread round
/// trip. One wake-up is in flight at a time as a rule (the first post into an
/// empty queue sends it).
using WakeSlot = detail::HandlerSlot<128, /*Shared=*/true>;
using WakeAllocator = detail::SlotAllocator<void, WakeSlot>;

} // namespace

struct MainLoop::Impl {
    // A loop made with a VirtualClock: its time, and its copy of the handle.
    // Before `io`: the timers that Asio's shutdown destroys cancel their
    // waits in it (see LoopTimer).
    std::shared_ptr<detail::VirtualTime> vtime;
    std::optional<VirtualClock> vclock;
    // Before `io`: handlers still queued in it are freed into it when the
    // io_context goes.
    WakeSlot wake_slot;
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    // Asio's outstanding work; `guard` is 1 of it (see step()).
    detail::AsioWorkCount asio_work{io};
    std::thread::id thread = std::this_thread::get_id();

    // Work queued for the loop thread, in posting order: `local` from the
    // loop thread itself, `remote_ready` moved over from `remote` by the loop.
    // A task runs in an iteration that starts after it was queued (post()
    // promises a later iteration), so step() runs each queue only up to the
    // mark it took; what the iteration queues waits for the next one.
    // The queues live here, not in step()'s frame, so that a nested step()
    // (InProgress::wait inside a callback) runs what its caller's iteration
    // has not reached yet; otherwise a callback waiting for work queued
    // behind it would wait forever.
    struct Queue {
        std::vector<Task> items; // capacity is kept: steady time-slicing does not allocate
        std::size_t head = 0;    // next task to run
        std::uint64_t base = 0;  // number of items[0]; marks stay valid across compaction

        std::uint64_t end() const noexcept { return base + items.size(); }
        bool empty() const noexcept { return head == items.size(); }

        // Runs the tasks numbered below `mark` that no (nested) iteration ran.
        // Inlined into step(): one frame fewer between a coroutine's switch
        // back and the loop (see CoroutineCore::resume()).
        [[gnu::always_inline]] std::size_t run_until(MainLoop& self, std::uint64_t mark) {
            std::size_t n = 0;
            while (head < items.size() && base + head < mark) {
                Task t = std::move(items[head++]);
                if (head == items.size()) {
                    base += items.size();
                    items.clear();
                    head = 0;
                }
                run_guarded(self, t, "posted callback");
                ++n;
            }
            return n;
        }
    };
    Queue local;
    Queue remote_ready;

    // Work posted from other threads. `remote_pending` lets the loop skip the
    // lock when there is nothing.
    std::mutex& remote_mutex = g_remote_mutex;
    std::vector<Task> remote;
    std::atomic<bool> remote_pending{false};
    // Set while step() blocks in Asio (outside guest mode): a post from
    // another thread wakes Asio only then. A busy loop collects the work at
    // its next step anyway, and a wake-up per batch would cost a handler
    // allocation, Asio's lock and often a futex call. Paired (seq_cst) with
    // remote_pending: step() sets this, then looks at remote_pending; a
    // poster sets remote_pending, then looks at this.
    std::atomic<bool> asio_waiting{false};
    // Posters between deciding to wake Asio (under remote_mutex) and having
    // woken it or handed it their task (after unlocking, so that the woken
    // loop thread does not run straight into the mutex the poster still
    // holds). The destructor waits for them before the io_context goes.
    std::atomic<int> wakers{0};
    // A task handed straight to Asio (see post_remote()) has not started
    // yet; there is at most one. Raised under remote_mutex; while it is up
    // the loop leaves `remote` alone, so that work posted after the direct
    // task runs after it. Next to asio_waiting: a poster reads both.
    std::atomic<bool> direct_pending{false};
    // The task handed to Asio: written under remote_mutex by the poster that
    // raised direct_pending, taken by its handler on the loop thread.
    Task direct_task;

    std::atomic<bool> stop_requested{false};
    // Atomic: is_running() and friends may be asked from any thread (the
    // loop may run on a thread of its own, run_in_thread()).
    std::atomic<bool> running{false};
    std::atomic<bool> stopped{false};        // is_stopped(): run() ran and ended
    std::atomic<bool> shutting_down{false};  // is_shutting_down(): until the next run()
    bool in_shutdown = false;                // shutdown_loop() is running
    bool destroying = false;
    bool needs_shutdown = false;
    // The first exception that escaped a callback with nothing connected to
    // `exception` (decision 21): the step it happened in rethrows it at its
    // end, and run() after its shutdown. Further ones until then are printed.
    std::exception_ptr escaped;

    // run_in_thread(): the loop's own thread, and what run() threw there.
    std::thread loop_thread;
    std::exception_ptr thread_error;
    std::uint32_t polls = 0;  // iterations that did not wait (see step())
    int depth = 0;
    std::uint64_t iteration = 0; // steps begun (nested ones included)

    std::vector<detail::UniqueFunction<void()>> shutdown_hooks;
    // run_until_idle(): work in flight outside the loop's queues and Asio.
    // Registered with a shutdown hook, dropped at the shutdown like them.
    std::vector<detail::UniqueFunction<bool()>> busy_probes;

    // Guest mode (attach_host). `host` and `asio_ready` belong to the loop
    // thread; `host_wakeup` and `host_waiting` are guarded by remote_mutex,
    // because post() reads them from other threads; `hosted` lets stop()
    // see the mode from any thread.
    std::optional<detail::AsioHost> asio_host;
    HostHooks host;
    bool asio_ready = false;           // rearm() found Asio handlers queued
    bool host_waiting = false;         // a nested step blocks in Asio while attached
    detail::UniqueFunction<void()> host_wakeup;
    std::atomic<bool> hosted{false};

    void host_blocking_wait(MainLoop& self, std::optional<Duration> timeout);

    Signals signals;

    void wake() {
        // A no-op handler makes a blocked run_one() return.
        asio::post(io, asio::bind_allocator(WakeAllocator(&wake_slot), [] {}));
    }

    /// From another thread (see post_remote()): a handler that runs
    /// `direct_task` as the loop's queues would.
    void post_direct(MainLoop& self) {
        asio::post(io, asio::bind_allocator(WakeAllocator(&wake_slot), [im = this, &self] {
            Task t = std::move(im->direct_task);
            // Started: what was posted after it may be collected now, and
            // the next task may be handed over.
            im->direct_pending.store(false, std::memory_order_release);
            run_guarded(self, t, "posted callback");
        }));
    }

    /// One blocking Asio wait. An io_context stopped behind the loop returns
    /// at once having run nothing: only then is it asked whether it was
    /// stopped, restarted, and waited on again.
    std::size_t run_one(std::optional<Duration> timeout) {
        for (;;) {
            std::size_t n = timeout ? io.run_one_for(*timeout) : io.run_one();
            if (n != 0 || !io.stopped())
                return n;
            io.restart();
        }
    }

    void collect_remote() {
        if (!remote_pending.load(std::memory_order_acquire))
            return;
        std::lock_guard lock(remote_mutex);
        // A task handed to Asio before these was posted before them: they
        // wait until it has started (see ready_now()).
        if (direct_pending.load(std::memory_order_acquire))
            return;
        if (remote_ready.items.empty()) {
            // The usual case: hand the whole batch over, and give the
            // posters the ready queue's spare capacity.
            remote_ready.items.swap(remote);
        } else {
            for (Task& t : remote)
                remote_ready.items.push_back(std::move(t));
            remote.clear();
        }
        remote_pending.store(false, std::memory_order_relaxed);
    }

    /// Whether this step has work it can run without waiting. Work posted
    /// from other threads behind a task handed to Asio waits for that task
    /// (collect_remote()), and the loop waits in Asio for it: it is on its
    /// way, and its arrival wakes the loop. (Spinning instead would leave
    /// the poster, preempted between deciding and posting, no CPU.)
    bool ready_now() const noexcept {
        return !local.empty() || !remote_ready.empty() || asio_ready ||
               (remote_pending.load(std::memory_order_acquire) &&
                !direct_pending.load(std::memory_order_acquire));
    }

    /// Whether work is on its way that the loop can see but not yet run: a
    /// threaded job queued or running, or its result posted. The probes are
    /// asked before the queues: a worker posts a job's result before its
    /// pool stops counting the job, so in this order a result in flight is
    /// seen in one place or the other, never missed between them.
    bool work_in_flight() {
        for (auto& probe : busy_probes)
            if (probe())
                return true;
        return remote_pending.load(std::memory_order_acquire) || direct_pending.load(std::memory_order_acquire);
    }

    /// A virtual loop's step about to block: polls for I/O that is ready,
    /// then, if nothing is (and no job is in flight), jumps the time to the
    /// next deadline or the end of the step's timeout, whichever is first.
    /// Returns whether the step has something to do now; false: it blocks
    /// for real (no deadline at all, autojump off, or a job's result to
    /// wait for -- its post wakes the loop).
    template <class Guarded>
    bool virtual_idle(std::optional<Duration> timeout, Guarded& guarded) {
        detail::VirtualTime& vt = *vtime;
        if (vt.due())
            return true;
        if (!vt.autojump.load(std::memory_order_acquire))
            return false;
        if (asio_work.load() > 1) {
            std::size_t n = 0;
            guarded([&] { return n = io.poll(); });
            if (n > 0 || ready_now())
                return true;
        }
        if (work_in_flight())
            return false;
        std::optional<Clock::time_point> target = vt.next_deadline();
        const Clock::time_point now = vt.now();
        // A timeout beyond any deadline a test could mean (Duration::max()
        // included) is no deadline.
        if (timeout && *timeout < std::chrono::hours(24 * 365 * 100) && (!target || now + *timeout < *target))
            target = now + *timeout;
        if (!target)
            return false;
        vt.jump_to(*target);
        return true;
    }

    /// From another thread: queues `fn` on `loop` (the current loop if null)
    /// and wakes it. False, `fn` untouched, if that loop is not (any more) the
    /// current one -- checked under the lock the destructor takes.
    static bool post_remote(MainLoop* loop, Task& fn);

    /// handle_exception() (`escape`) and report() on the loop thread.
    void deliver_exception(std::exception_ptr e, std::string_view where, bool escape) noexcept {
        if (t_reporting) {
            print_unhandled(e, where);
            return;
        }
        if (!signals.exception.empty()) {
            t_reporting = true;
            try {
                signals.exception.emit(e);
            } catch (...) {
                print_unhandled(std::current_exception(), "exception handler");
            }
            t_reporting = false;
            return;
        }
        // Nothing handles it. An escaped exception ends run() (or the bare
        // step() it happened in), as io_context::run() lets it propagate. A
        // host loop (guest mode) owns no run() to rethrow from, and outside
        // any iteration (or once one is pending, or while the loop is being
        // destroyed) there is nobody to rethrow to: printed, never dropped.
        if (escape && !asio_host && !destroying && !escaped && (running || (depth > 0 && !in_shutdown))) {
            escaped = std::move(e);
            if (running)
                stop_requested.store(true, std::memory_order_release);
            return;
        }
        print_unhandled(e, where);
    }

    static void run_guarded(MainLoop& self, Task& t, const char* where) {
        try {
            t();
        } catch (...) {
            self.handle_exception(std::current_exception(), where);
        }
    }
};

MainLoop::MainLoop() : impl_(std::make_unique<Impl>()) {
    MainLoop* expected = nullptr;
    if (!g_current.compare_exchange_strong(expected, this))
        throw LoopError("kaa::MainLoop: a main loop already exists; kaa has one loop per process "
                        "(use kaa::main_loop() to reach it)");
    t_loop = this;
    detail::install_dump_trigger(*this);  // KAA_DUMP: the dump on SIGUSR1 (kaa/debug.hpp)
}

MainLoop::MainLoop(const VirtualClock& clock) : MainLoop() {
    impl_->vclock.emplace(clock);
    impl_->vtime = clock.time_;
    impl_->vtime->in_use.store(true, std::memory_order_release);
}

MainLoop::~MainLoop() {
    if (impl_->loop_thread.joinable()) {
        if (impl_->loop_thread.get_id() == std::this_thread::get_id()) {
            // Destroyed from one of its own callbacks: it cannot join itself.
            impl_->loop_thread.detach();
        } else {
            stop();
            try {
                join();
            } catch (...) {
                print_unhandled(std::current_exception(), "the loop's own thread");
            }
        }
    }
    impl_->destroying = true;
    if (impl_->asio_host) {
        auto detached = std::move(impl_->host.detached);
        detach_host();
        if (detached) {
            try {
                detached();
            } catch (...) {
                print_unhandled(std::current_exception(), "host detach hook");
            }
        }
    }
    if (impl_->needs_shutdown) {
        try {
            detail::shutdown_loop(*this);
        } catch (...) {
            print_unhandled(std::current_exception(), "loop shutdown");
        }
    }
    // Drop queued work while the loop is still current: its destructors may
    // release InProgress states that report through the loop. (Moved out
    // first: a destructor may queue more, which must not land in a vector
    // that is being cleared.)
    if (impl_->vtime) {
        impl_->vtime->clear();
        impl_->vtime->in_use.store(false, std::memory_order_release);
    }
    for (Impl::Queue* q : {&impl_->local, &impl_->remote_ready}) {
        std::vector<Task> dropped = std::move(q->items);
        q->items.clear();
        q->head = 0;
    }
    // Stop being the current loop before the rest goes: a thread posting from
    // now on finds no loop (post_to_loop), and slots still connected to the
    // loop's signals may own failed InProgress states whose reports must
    // reach stderr, not a loop whose Impl is half destroyed. Work posted from
    // other threads until then is dropped: a dropped result fails its
    // InProgress (ClaimedCompletion, MainCall), so a blocked waiter wakes up.
    std::vector<Task> remote;
    {
        std::lock_guard lock(g_remote_mutex);
        if (t_loop == this)
            t_loop = nullptr;
        g_current.store(nullptr);
        remote.swap(impl_->remote);
    }
    remote.clear();
    while (impl_->wakers.load(std::memory_order_acquire) != 0)
        std::this_thread::yield();
    // A task handed to Asio that did not run: dropped now, like `remote`
    // (its handler, if queued, goes with the io_context and finds nothing).
    { Task dropped = std::move(impl_->direct_task); }
    impl_->guard.reset();
    impl_.reset();
}

MainLoop& MainLoop::current() {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    if (!l)
        throw LoopError("no kaa::MainLoop exists: create one (kaa::MainLoop loop;) in main() first");
    return *l;
}

MainLoop* MainLoop::current_or_null() noexcept { return g_current.load(std::memory_order_acquire); }

bool MainLoop::is_main_thread() const noexcept { return t_loop == this; }

bool MainLoop::is_running() const noexcept { return impl_->running.load(std::memory_order_acquire); }

bool MainLoop::is_stopped() const noexcept { return impl_->stopped.load(std::memory_order_acquire); }

bool MainLoop::is_shutting_down() const noexcept { return impl_->shutting_down.load(std::memory_order_acquire); }

MainLoop::Signals& MainLoop::signals() noexcept { return impl_->signals; }

Clock::time_point MainLoop::now() const noexcept { return impl_->vtime ? impl_->vtime->now() : Clock::now(); }

std::chrono::system_clock::time_point MainLoop::wall_now() const noexcept {
    return impl_->vtime ? impl_->vtime->wall_now() : std::chrono::system_clock::now();
}

VirtualClock* MainLoop::virtual_clock() noexcept { return impl_->vclock ? &*impl_->vclock : nullptr; }

asio::io_context& MainLoop::context() noexcept { return impl_->io; }

bool MainLoop::has_ready_work() const noexcept {
    // What a step runs without waiting, and what it waits for in Asio.
    return impl_->ready_now() || impl_->remote_pending.load(std::memory_order_acquire) ||
           impl_->direct_pending.load(std::memory_order_acquire);
}

bool MainLoop::has_posted_work() const noexcept {
    return impl_->asio_ready || !impl_->remote_ready.empty() ||
           impl_->remote_pending.load(std::memory_order_acquire) ||
           impl_->direct_pending.load(std::memory_order_acquire);
}

bool MainLoop::host_attached() const noexcept { return impl_->asio_host.has_value(); }

int MainLoop::attach_host(HostHooks hooks) {
    if (t_loop != this)
        throw WrongThread("MainLoop::attach_host() must be called on the loop's thread (the thread that "
                          "created the MainLoop), which must also be the host loop's thread");
    Impl& im = *impl_;
    if (im.running)
        throw LoopError("MainLoop::attach_host(): the loop is inside run(); attach before running the host "
                        "loop, instead of run()");
    if (im.asio_host)
        throw LoopError("MainLoop::attach_host(): a host loop is attached already; detach_host() first");
    if (im.vtime)
        throw LoopError("MainLoop::attach_host(): this loop runs on a VirtualClock, whose time only its own "
                        "iterations move; run it standalone (run(), step(), run_until_idle())");
    im.asio_host.emplace(im.io);
    im.host = std::move(hooks);
    {
        std::lock_guard lock(im.remote_mutex);
        im.host_wakeup = std::move(im.host.wakeup);
    }
    im.hosted.store(true, std::memory_order_release);
    // Standalone steps may have left the reactor un-armed: arm it now, and
    // let the host see whatever is ready already.
    im.asio_ready = im.asio_host->rearm();
    return im.asio_host->fd();
}

void MainLoop::detach_host() noexcept {
    Impl& im = *impl_;
    if (!im.asio_host)
        return;
    if (t_loop != this) {
        handle_exception(std::make_exception_ptr(WrongThread(
                             "MainLoop::detach_host() must be called on the loop's thread; nothing was detached")),
                         "detach_host");
        return;
    }
    detail::UniqueFunction<void()> wakeup;
    {
        std::lock_guard lock(im.remote_mutex);
        wakeup = std::move(im.host_wakeup);
        im.host_wakeup = nullptr;
    }
    im.hosted.store(false, std::memory_order_release);
    HostHooks old = std::move(im.host);
    im.host = HostHooks{};
    im.asio_host.reset();
    im.asio_ready = false;
}

void MainLoop::post(detail::UniqueFunction<void()> fn) {
    if (t_loop == this) {
        Impl& im = *impl_;
        const bool was_empty = im.local.empty();
        im.local.items.push_back(std::move(fn));
        // Guest mode: work queued outside any dispatch (by a host callback:
        // a Qt slot, a GLib handler) has no fd to announce it, so wake the
        // host. Inside a dispatch the host looks at has_ready_work() after
        // step() anyway. The hook is written only on this thread.
        if (was_empty && im.depth == 0 && im.host_wakeup)
            im.host_wakeup();
        return;
    }
    if (!Impl::post_remote(this, fn))
        throw LoopError("MainLoop::post(): this loop is being destroyed; stop posting to it from other "
                        "threads before it goes away (kaa::detail::post_to_loop and InProgress::finish "
                        "find out for themselves)");
}

bool MainLoop::Impl::post_remote(MainLoop* loop, Task& fn) {
    Impl* waking = nullptr;
    MainLoop* direct = nullptr;
    {
        std::lock_guard lock(g_remote_mutex);
        MainLoop* current = g_current.load(std::memory_order_relaxed);
        if (!current || (loop && loop != current))
            return false;
        // The lock is held: the loop cannot go away until it is released.
        Impl& im = *current->impl_;
        bool was_empty = im.remote.empty();
        // The loop blocks in Asio with none of our work queued (it blocks
        // only with remote_ready empty): hand the task to Asio itself, which
        // wakes the loop with it -- no no-op wake-up handler, and the loop
        // does not come through this mutex for it. That is the latency of a
        // threaded() round trip. One at a time: what is posted meanwhile
        // goes to `remote`, which the loop leaves alone until this task has
        // started (collect_remote()), so posts from one thread keep their
        // order. A loop that stopped waiting meanwhile finds the task in
        // Asio at its next poll.
        if (was_empty && !im.host_wakeup && !im.host_waiting &&
            !im.direct_pending.load(std::memory_order_acquire)) {
            if (im.asio_waiting.load(std::memory_order_seq_cst)) {
                im.direct_pending.store(true, std::memory_order_relaxed);
                im.direct_task = std::move(fn);
                im.wakers.fetch_add(1, std::memory_order_relaxed);
                waking = &im;
                direct = current;
            }
        }
        if (!direct) {
            im.remote.push_back(std::move(fn));
            im.remote_pending.store(true, std::memory_order_seq_cst);
            if (!was_empty)
                return true;
            // Guest mode: the host loop dispatches, unless the loop thread is
            // in a nested blocking step (InProgress::wait), which only Asio
            // can wake. Called under the lock: detach_host() clears the hook
            // under it.
            if (im.host_wakeup && !im.host_waiting) {
                im.host_wakeup();
                return true;
            }
            if (!im.host_waiting && !im.asio_waiting.load(std::memory_order_seq_cst))
                return true;
            // Wake Asio after unlocking: `wakers` keeps the io_context alive.
            im.wakers.fetch_add(1, std::memory_order_relaxed);
            waking = &im;
        }
    }
    struct Done {
        Impl& im;
        ~Done() { im.wakers.fetch_sub(1, std::memory_order_release); }
    } done{*waking};
    if (!direct) {
        waking->wake();
        return true;
    }
    try {
        waking->post_direct(*direct);
    } catch (...) {
        // No memory for the handler: the task goes to the front of the
        // queue instead (it was posted before anything there), and a plain
        // wake-up tells the loop, which may be blocked waiting for it.
        std::lock_guard lock(g_remote_mutex);
        Impl& im = *waking;
        if (g_current.load(std::memory_order_relaxed) == direct) {  // else the destructor drops it
            im.remote.insert(im.remote.begin(), std::move(im.direct_task));
            im.remote_pending.store(true, std::memory_order_seq_cst);
            im.direct_pending.store(false, std::memory_order_release);
            try {
                im.wake();
            } catch (...) {
                // Not even that: the loop sees the work at its next wake-up.
            }
        }
    }
    return true;
}

void MainLoop::stop() noexcept {
    if (t_loop != this) {
        // From another thread: only while the loop lives.
        std::lock_guard lock(g_remote_mutex);
        if (g_current.load(std::memory_order_relaxed) != this)
            return;
        if (!impl_->hosted.load(std::memory_order_acquire)) {
            impl_->stop_requested.store(true, std::memory_order_release);
            try {
                impl_->wake();
            } catch (...) {
            }
            return;
        }
        // Hosted: post() below checks the loop's life again.
    }
    if (impl_->hosted.load(std::memory_order_acquire)) {
        // The host owns the loop: ask it to quit, on the loop thread. A flag
        // like run()'s would stay set and make nested waits spin.
        try {
            post([this] {
                if (impl_->host.quit)
                    impl_->host.quit();
            });
        } catch (...) {
            handle_exception(std::current_exception(), "stop");
        }
        return;
    }
    impl_->stop_requested.store(true, std::memory_order_release);
    try {
        impl_->wake();
    } catch (...) {
        // Posting can only fail on allocation; the flag is set, and the loop
        // sees it at its next wake-up.
    }
}

bool MainLoop::step(std::optional<Duration> timeout) {
    if (t_loop != this)
        throw WrongThread("MainLoop::step()/run() must be called on the loop's thread (the thread that "
                          "created the MainLoop); post() work to it instead");
    Impl& im = *impl_;
    im.needs_shutdown = true;
    ++im.iteration;
    ++im.depth;
    struct DepthGuard {
        int& d;
        ~DepthGuard() { --d; }
    } depth_guard{im.depth};

    // A step begun after stop() (a nested wait, the shutdown's deliveries)
    // does not emit `step`: kaa emits none after the step that stopped.
    const bool emits = !im.in_shutdown && !(im.running.load(std::memory_order_relaxed) &&
                                            im.stop_requested.load(std::memory_order_acquire));
    std::size_t ran = 0;
    auto guarded = [&](auto&& fn) {
        try {
            ran += fn();
        } catch (...) {
            handle_exception(std::current_exception(), "asio handler");
        }
    };

    const std::uint64_t local_mark = im.local.end();
    // Someone may stop() the io_context behind the loop (through context());
    // it is restarted here. Asio's stopped() takes the scheduler's mutex, so
    // a wait asks it only when Asio returned without running anything (see
    // Impl::run_one()), and an iteration that does not wait every 64th time,
    // not on every time slice.
    // A pending stop() does not keep step() from waiting: run() checks it
    // before every step, and stop() wakes a waiting step. (Not waiting here
    // made a nested wait() inside a callback that called stop() spin.)
    bool wait = (!timeout || *timeout > Duration::zero()) && !im.ready_now();
    if (im.vtime) [[unlikely]] {
        // The timeout is virtual too: a real wait cannot end it (only a jump
        // or advance() can), so a step that blocks waits for an event.
        if (wait && im.virtual_idle(timeout, guarded))
            wait = false;
        timeout = std::nullopt;
    }
    if (!wait && (++im.polls & 63) == 0 && im.io.stopped())
        im.io.restart();
    if (wait) {
        if (im.asio_host) [[unlikely]]
            im.host_blocking_wait(*this, timeout);
        else {
            im.asio_waiting.store(true, std::memory_order_seq_cst);
            struct Clear {
                std::atomic<bool>& flag;
                ~Clear() { flag.store(false, std::memory_order_relaxed); }
            } clear{im.asio_waiting};
            // Work posted before the flag was up did not wake Asio -- unless
            // it waits behind a direct task (see ready_now()), whose
            // handler will.
            if (!im.remote_pending.load(std::memory_order_seq_cst) ||
                im.direct_pending.load(std::memory_order_acquire))
                guarded([&] { return im.run_one(timeout); });
        }
    }
    // Asio's handlers and I/O readiness. When Asio has nothing outstanding
    // but the loop's own work guard -- no operation started, no handler
    // queued -- a poll could run nothing, and skipping it saves a mutex and
    // Asio's per-call setup on every time slice. A host (guest mode) learns
    // of I/O readiness through the epoll fd, which only a poll drains, so
    // then it always polls.
    if (im.vtime) [[unlikely]] {
        // The virtual deadlines due now, where Asio would run its timers.
        for (auto& handler : im.vtime->take_due()) {
            Task t = std::move(handler);
            Impl::run_guarded(*this, t, "timer");
            ++ran;
        }
    }
    if (wait || im.asio_host || im.asio_work.load() > 1)
        guarded([&] { return im.io.poll(); });
    im.collect_remote();
    ran += im.remote_ready.run_until(*this, im.remote_ready.end());
    ran += im.local.run_until(*this, local_mark);
    if (emits)
        im.signals.step.emit();  // cheap when nothing ever connected to it
    if (im.asio_host) [[unlikely]]
        im.asio_ready = im.asio_host->rearm();
    if (im.escaped && !im.in_shutdown) [[unlikely]]
        std::rethrow_exception(std::exchange(im.escaped, nullptr));
    return ran > 0;
}

void MainLoop::Impl::host_blocking_wait(MainLoop& self, std::optional<Duration> timeout) {
    // A step that may block while a host is attached: a nested wait
    // (InProgress::wait) inside a dispatch. It blocks in Asio, so posts from
    // other threads must wake Asio rather than the host until it returns.
    Impl& im = *this;
    {
        std::lock_guard lock(im.remote_mutex);
        if (!im.remote.empty())
            return;
        im.host_waiting = true;
    }
    struct Reset {
        Impl& im;
        ~Reset() {
            std::lock_guard lock(im.remote_mutex);
            im.host_waiting = false;
        }
    } reset{im};
    try {
        im.run_one(timeout);
    } catch (...) {
        self.handle_exception(std::current_exception(), "asio handler");
    }
}

void MainLoop::run() {
    if (t_loop != this)
        throw WrongThread("MainLoop::run() must be called on the loop's thread (the thread that created "
                          "the MainLoop)");
    Impl& im = *impl_;
    if (im.running)
        throw LoopError("MainLoop::run(): the loop is already running; use step() or "
                        "InProgress::wait() to run nested iterations");
    if (im.asio_host)
        throw LoopError("MainLoop::run(): the loop is attached to a host loop (guest mode); run the host's "
                        "loop (g_main_loop_run, QCoreApplication::exec) instead, or detach_host() first");
    im.running.store(true, std::memory_order_release);
    im.stopped.store(false, std::memory_order_relaxed);
    im.shutting_down.store(false, std::memory_order_relaxed);
    struct RunningGuard {
        MainLoop& loop;
        ~RunningGuard() {
            loop.impl_->running.store(false, std::memory_order_release);
            loop.impl_->stop_requested.store(false);
            loop.impl_->stopped.store(true, std::memory_order_release);
        }
    } running_guard{*this};
    // step() rethrows an exception that escaped with nothing to handle it
    // (it set stop_requested); kaa's order is then: the shutdown, the raise.
    std::exception_ptr error;
    try {
        while (!im.stop_requested.load(std::memory_order_acquire))
            step();
    } catch (...) {
        error = std::current_exception();
    }
    detail::shutdown_loop(*this);
    if (!error)
        error = std::exchange(im.escaped, nullptr);
    if (error)
        std::rethrow_exception(error);
}

void MainLoop::run_until_idle() {
    if (t_loop != this)
        throw WrongThread("MainLoop::run_until_idle() must be called on the loop's thread (the thread that "
                          "created the MainLoop)");
    Impl& im = *impl_;
    if (im.running.load(std::memory_order_relaxed))
        throw LoopError("MainLoop::run_until_idle(): the loop is inside run(); use step() for nested iterations");
    if (im.asio_host)
        throw LoopError("MainLoop::run_until_idle(): the loop is attached to a host loop (guest mode); the "
                        "host's loop decides when it ends");
    // Live work: what a step runs or waits for. Asio's count includes the
    // loop's own guard; every timer, delay, I/O wait and queued handler adds
    // to it. Threaded jobs are the pools' (their probes).
    // Virtual deadlines are live work as Asio's timers are -- while the
    // clock jumps to them; with autojump off only the caller's advance() can
    // reach them, so it gets control back. The pools are asked before the
    // queues (see work_in_flight()).
    auto busy = [&] {
        return im.work_in_flight() || im.ready_now() || im.asio_work.load() > 1 ||
               (im.vtime && im.vtime->pending() &&
                (im.vtime->due() || im.vtime->autojump.load(std::memory_order_acquire)));
    };
    while (!im.stop_requested.load(std::memory_order_acquire) && busy())
        step();
    im.stop_requested.store(false, std::memory_order_release);
}

void MainLoop::run_in_thread() {
    if (t_loop != this)
        throw WrongThread("MainLoop::run_in_thread() must be called on the loop's thread (the thread that "
                          "created the MainLoop, or that last join()ed its thread)");
    Impl& im = *impl_;
    if (im.running.load(std::memory_order_relaxed) || im.loop_thread.joinable())
        throw LoopError("MainLoop::run_in_thread(): the loop is already running; stop() it and join() first");
    if (im.asio_host)
        throw LoopError("MainLoop::run_in_thread(): the loop is attached to a host loop (guest mode); "
                        "detach_host() first");
    // The caller waits until the loop thread runs its first iteration (kaa
    // waits for a 0 s timer), or until run() ended without one (a stop()
    // that came first).
    struct Started {
        std::mutex m;
        std::condition_variable cv;
        bool yes = false;
        void set() {
            {
                std::lock_guard lock(m);
                yes = true;
            }
            cv.notify_all();
        }
    };
    auto started = std::make_shared<Started>();
    // From here the caller is an ordinary thread: what it does with kaa
    // objects goes through post(), like any other thread's.
    t_loop = nullptr;
    try {
        im.loop_thread = std::thread([this, started] {
            pthread_setname_np(pthread_self(), "kaa mainloop");
            t_loop = this;
            impl_->thread = std::this_thread::get_id();
            try {
                post([started] { started->set(); });
                run();
            } catch (...) {
                impl_->thread_error = std::current_exception();
            }
            started->set();
            t_loop = nullptr;
        });
    } catch (...) {
        t_loop = this;
        throw;
    }
    std::unique_lock lock(started->m);
    started->cv.wait(lock, [&] { return started->yes; });
}

void MainLoop::join() {
    Impl& im = *impl_;
    if (!im.loop_thread.joinable())
        return;
    if (im.loop_thread.get_id() == std::this_thread::get_id())
        throw WrongThread("MainLoop::join() on the loop's own thread would wait for itself; call stop() "
                          "there, and join() from the thread that started it");
    im.loop_thread.join();
    t_loop = this;
    im.thread = std::this_thread::get_id();
    if (im.thread_error)
        std::rethrow_exception(std::exchange(im.thread_error, nullptr));
}

void MainLoop::shutdown() {
    if (t_loop != this)
        throw WrongThread("MainLoop::shutdown() must be called on the loop's thread (the thread that created "
                          "the MainLoop)");
    detail::shutdown_loop(*this);
}

void MainLoop::handle_exception(std::exception_ptr e, std::string_view where) noexcept {
    if (t_loop != this) {
        try {
            post([this, e, w = std::string(where)] { handle_exception(e, w); });
        } catch (...) {
            print_unhandled(e, where);
        }
        return;
    }
    impl_->deliver_exception(std::move(e), where, true);
}

void MainLoop::report(std::exception_ptr e, std::string_view where) noexcept {
    if (t_loop != this) {
        try {
            post([this, e, w = std::string(where)] { report(e, w); });
        } catch (...) {
            print_unhandled(e, where);
        }
        return;
    }
    impl_->deliver_exception(std::move(e), where, false);
}

bool is_main_thread() noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    return !l || l->is_main_thread();
}

namespace detail {

bool in_loop_context() noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    return !l || t_loop == l;
}

LoopContext loop_context() noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    if (!l)
        return LoopContext::no_loop;
    return t_loop == l ? LoopContext::loop_thread : LoopContext::other_thread;
}

void post_to_loop(UniqueFunction<void()> fn) {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    if (l && t_loop == l) {
        l->post(std::move(fn));
        return;
    }
    // Another thread (or no loop): the loop may be going away right now.
    if (!MainLoop::Impl::post_remote(nullptr, fn))
        fn();  // no loop (any more): at once, as documented
}

void report_unhandled(std::exception_ptr e, const char* where) noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    if (!l) {
        print_unhandled(e, where);
        return;
    }
    l->handle_exception(std::move(e), where);
}

void report_unobserved(std::exception_ptr e, const char* where) noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    if (!l) {
        print_unhandled(e, where);
        return;
    }
    l->report(std::move(e), where);
}

std::uint64_t loop_iteration() noexcept {
    MainLoop* l = g_current.load(std::memory_order_acquire);
    return l ? l->impl_->iteration : 0;
}

const std::shared_ptr<VirtualTime>& virtual_time_of(const MainLoop& loop) noexcept { return loop.impl_->vtime; }

void add_busy_probe(MainLoop& loop, UniqueFunction<bool()> probe) {
    loop.impl_->busy_probes.push_back(std::move(probe));
}

void add_shutdown_hook(MainLoop& loop, UniqueFunction<void()> hook) {
    loop.impl_->shutdown_hooks.push_back(std::move(hook));
    // Work that needs unwinding exists even if the loop never stepped.
    loop.impl_->needs_shutdown = true;
}

void shutdown_loop(MainLoop& loop) {
    MainLoop::Impl& im = *loop.impl_;
    if (im.in_shutdown)
        return;  // a shutdown slot asking for one: this is it
    im.needs_shutdown = false;
    dump_at_shutdown(loop);  // KAA_DUMP: what is still alive, before it is aborted
    im.in_shutdown = true;
    im.busy_probes.clear();
    im.shutting_down.store(true, std::memory_order_release);
    struct InShutdown {
        bool& flag;
        ~InShutdown() { flag = false; }
    } in_shutdown{im.in_shutdown};
    // Hooks (coroutine registry, thread pools) run first so that the work
    // they abort can still report through `exception`.
    // Hooks are one-shot: whoever needs the next shutdown registers again.
    // That includes work started *during* the shutdown (a coroutine that an
    // aborted one starts to clean up, a job submitted by delivered work):
    // its hook must run in this shutdown too, or it would outlive the loop.
    auto run_hooks_and_deliver = [&] {
        for (int round = 0; round < 16 && !im.shutdown_hooks.empty(); ++round) {
            auto hooks = std::move(im.shutdown_hooks);
            im.shutdown_hooks.clear();
            for (auto& hook : hooks) {
                try {
                    hook();
                } catch (...) {
                    loop.handle_exception(std::current_exception(), "shutdown hook");
                }
            }
            // Deliver what the hooks queued (abort notifications, results),
            // within a bound: work that keeps re-queuing itself must not hold
            // shutdown up.
            for (int i = 0; i < 64 && loop.step(Duration::zero()); ++i) {
            }
        }
    };
    run_hooks_and_deliver();
    for (int i = 0; i < 64 && loop.step(Duration::zero()); ++i) {
    }
    run_hooks_and_deliver();
    // Kaa's order: `shutdown`, then the per-run slots go (those of `step`
    // and `shutdown`: a later run() starts without them), then
    // `shutdown_after`, which keeps its slots for every later shutdown.
    im.signals.shutdown.emit();
    im.signals.shutdown.disconnect_all();
    im.signals.step.disconnect_all();
    im.signals.shutdown_after.emit();
    run_hooks_and_deliver();
    // The steps above marked the loop as stepped again; it is shut down now,
    // and the destructor must not do it a second time (unless work keeps
    // registering hooks past the bound above).
    im.needs_shutdown = !im.shutdown_hooks.empty();
}

} // namespace detail

} // namespace kaa
