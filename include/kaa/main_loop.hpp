// SPDX-License-Identifier: BSL-1.0
// The notifier: kaa's main loop, built on boost::asio::io_context.
//
// One MainLoop exists per process at a time; the thread that creates it is
// the *main thread* (the loop thread) for the loop's whole life, and every
// kaa callback runs there. Other threads hand work to it with post().
//
// One iteration (step) is: wait for events unless work is already ready,
// run the Asio handlers that are ready (timers, I/O), run the work posted from
// other threads, run the work that was queued for "the next iteration" (posted
// callbacks, time-sliced coroutines, deferred emissions) -- but not what that
// work queues in turn -- and emit `step`. Waiting and dispatching are separate
// so that a host loop (GLib, Qt) can wait in its own poll and let kaa dispatch:
// attach_host() puts the loop in that *guest mode* (doc/embedding.md; the
// adapters kaa::glib and kaa::qt do it for you).
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>

#include "kaa/version.hpp"

#include "kaa/detail/function.hpp"
#include "kaa/signal.hpp"

namespace boost::asio {
class io_context;
}

namespace kaa {

namespace detail {
struct VirtualTime;
/// The time of a loop made with a VirtualClock; null for a real loop.
const std::shared_ptr<VirtualTime>& virtual_time_of(const MainLoop& loop) noexcept;
/// Registers work to run when the loop shuts down (before `shutdown` is
/// emitted): the coroutine registry and thread pools use it.
void add_shutdown_hook(MainLoop& loop, UniqueFunction<void()> hook);
void shutdown_loop(MainLoop& loop);
/// Registers a probe that MainLoop::run_until_idle() asks whether work the
/// loop cannot see in its own queues or in Asio is still in flight (thread
/// pools register one for their queued and running jobs). Dropped at the
/// loop's shutdown, as shutdown hooks are: register both together.
void add_busy_probe(MainLoop& loop, UniqueFunction<bool()> probe);
/// Number of iterations (step() calls, nested ones included) begun so far;
/// I/O uses it to yield to the loop when a fast stream would keep one
/// iteration busy. 0 without a loop. Loop thread only.
std::uint64_t loop_iteration() noexcept;
} // namespace detail

/// What a host loop gives MainLoop::attach_host(): how kaa reaches it.
struct HostHooks {
    /// Makes the host loop call the guest's dispatch soon (GLib:
    /// g_main_context_wakeup; Qt: an eventfd its notifier watches). Called
    /// from any thread, on the transition "no work posted from other threads"
    /// -> "some", and on the loop thread when work is queued there outside
    /// any dispatch (by a host callback); must be thread-safe and must not
    /// block.
    detail::UniqueFunction<void()> wakeup;
    /// Optional: ends the host loop. MainLoop::stop() calls it on the loop
    /// thread, from a posted task. Without it, stop() does nothing in guest
    /// mode (the host owns the loop).
    detail::UniqueFunction<void()> quit;
    /// Optional: called on the loop thread if the MainLoop is destroyed while
    /// still attached; the host must stop calling into it from then on.
    detail::UniqueFunction<void()> detached;
};

class MainLoop {
public:
    /// The loop's signals. All are emitted on the loop thread.
    struct Signals {
        /// After every iteration of the loop -- but not after the iteration
        /// in which stop() was called: the iterations of the shutdown (and
        /// nested ones begun after stop()) do not emit it. Disconnected at
        /// shutdown (a per-run signal, as in kaa).
        Signal<void()> step;
        /// Once per shutdown: when run() ends (or shutdown(), or the
        /// destructor if the loop was stepped but never run). Its slots are
        /// disconnected after it, together with those of `step`.
        Signal<void()> shutdown;
        /// Right after `shutdown` (kaa's `shutdown-after`). Keeps its slots:
        /// they run at every later shutdown too.
        Signal<void()> shutdown_after;
        /// An exception that escaped a callback (a slot, an InProgress
        /// callback, a timer, posted work, an I/O handler), or a failed
        /// InProgress that nobody observed. A slot connected here handles
        /// them and the loop goes on. With nothing connected, an escaped
        /// exception stops run() and is rethrown by it (step() outside run()
        /// rethrows it too; in guest mode it is printed on stderr), while an
        /// unobserved failure is printed on stderr.
        Signal<void(std::exception_ptr)> exception;
    };

    /// Creates the loop and makes the calling thread the main thread.
    /// @throws LoopError if another MainLoop exists.
    MainLoop();
    /// A loop whose timers run on `clock` instead of the real clocks, for
    /// tests (kaa/virtual_clock.hpp): its time jumps to the next deadline
    /// when nothing else can happen. The loop keeps a copy of the handle.
    /// @throws LoopError if another MainLoop exists.
    explicit MainLoop(const VirtualClock& clock);
    /// Shuts the loop down if it is not yet (see run()) and releases it.
    ~MainLoop();
    MainLoop(const MainLoop&) = delete;
    MainLoop& operator=(const MainLoop&) = delete;

    /// The process's loop. @throws LoopError if none exists.
    static MainLoop& current();
    /// The process's loop, or nullptr.
    static MainLoop* current_or_null() noexcept;

    /// Runs iterations until stop(), then shuts down (see shutdown()). Can be
    /// called again later.
    /// @throws whatever escaped a callback while nothing was connected to
    /// the `exception` signal: the loop stopped at the end of that iteration,
    /// shut down, and run() rethrows it (as io_context::run() does).
    /// LoopError if already running or attached to a host loop (run the
    /// host's loop instead); WrongThread off the main thread.
    void run();

    /// Starts the loop on a thread of its own, named "kaa mainloop" (kaa's
    /// `run(threaded=True)`), and returns once that thread runs it. From then
    /// on that thread is the loop thread: every callback runs there, and the
    /// caller is an ordinary thread that hands work to it with post().
    /// stop() from any thread ends it; join() waits for that.
    /// @throws LoopError if the loop is running or attached to a host loop,
    /// or a loop thread runs already; WrongThread off the loop thread.
    void run_in_thread();

    /// After run_in_thread(): waits for the loop thread to end (someone
    /// calls stop()), and makes the calling thread the loop thread again.
    /// Rethrows what run() threw there. No-op if no loop thread was started.
    /// The destructor stops and joins a loop thread that still runs.
    /// @throws WrongThread on the loop thread itself.
    void join();

    /// Runs iterations until nothing is left that could make more work:
    /// nothing queued or posted, no Asio operation or handler outstanding
    /// (timers, delays, I/O, Asio operations of any kind), no threaded job
    /// queued or running (cogen's run mode; for command-line tools and
    /// tests). Does not shut down; call it again, or run(), later. A
    /// coroutine still suspended when it returns waits on an operation
    /// nothing will finish (kaa::active_coroutines() counts them): a deadlock
    /// made visible, never a hang. Work the loop cannot know of -- a thread
    /// of your own that will post() later -- is not waited for. A repeating
    /// timer is live work: it never returns while one is active. So is a
    /// deadline on a VirtualClock loop while the clock jumps (autojump on).
    /// stop() makes it return after the current iteration.
    /// @throws what escaped a callback with nothing connected to `exception`
    /// (as step()); LoopError inside run() or attached to a host;
    /// WrongThread off the loop thread.
    void run_until_idle();

    /// What run() does when it ends, in kaa's order: aborts suspended
    /// coroutines, stops thread pools, delivers what that queued, emits
    /// `shutdown`, disconnects the `step` and `shutdown` slots, emits
    /// `shutdown_after`. For guest mode, where the host's loop, not run(),
    /// is the loop; call it before leaving the host loop for good. The
    /// destructor does it if needed.
    /// @throws WrongThread off the main thread.
    void shutdown();

    /// Makes run() return at the end of the current iteration: no `step`
    /// emission follows it, then the loop shuts down. Safe from any thread
    /// and from callbacks; exception handlers cannot veto it. In guest mode
    /// it calls the host's quit hook instead (on the loop thread, a later
    /// iteration).
    void stop() noexcept;

    /// Runs one iteration, waiting at most `timeout` for events when nothing
    /// is ready (forever if not given; Duration::zero() never waits).
    /// Returns whether any work ran. May be nested (InProgress::wait does).
    /// @throws WrongThread off the main thread.
    bool step(std::optional<Duration> timeout = std::nullopt);

    /// True inside run().
    bool is_running() const noexcept;
    /// True once run() ran and ended (until the next run()).
    bool is_stopped() const noexcept;
    /// True from the moment the shutdown begins until the next run().
    bool is_shutting_down() const noexcept;
    /// True on the loop's thread.
    bool is_main_thread() const noexcept;

    /// Runs `fn` on the loop thread on a later iteration (never inside this
    /// call). Safe from any thread; wakes the loop. An exception escaping
    /// `fn` goes to the `exception` signal.
    void post(detail::UniqueFunction<void()> fn);

    Signals& signals() noexcept;

    /// The loop's steady time: the virtual clock's on a virtual loop,
    /// Clock::now() otherwise. What timers and timeouts measure. Any thread.
    Clock::time_point now() const noexcept;
    /// The loop's wall time (what AtTimer and call_at() follow): the virtual
    /// clock's, or std::chrono::system_clock::now(). Any thread.
    std::chrono::system_clock::time_point wall_now() const noexcept;
    /// The clock of a loop made with MainLoop(const VirtualClock&), or null.
    VirtualClock* virtual_clock() noexcept;

    /// Hands an exception that escaped a callback to the `exception` signal.
    /// With nothing connected: inside an iteration of a standalone loop, the
    /// loop stops at the end of the iteration and run() (or that step())
    /// rethrows it; in guest mode, outside any iteration, or when a second
    /// one comes before the first was rethrown, it is printed on stderr with
    /// its type and message. Safe from any thread (delivered on the loop).
    void handle_exception(std::exception_ptr e, std::string_view where) noexcept;

    /// Hands a failure that nobody observed (a failed InProgress destroyed
    /// unread) to the `exception` signal, or to stderr with nothing
    /// connected; never stops the loop. Safe from any thread.
    void report(std::exception_ptr e, std::string_view where) noexcept;

    /// The Asio context behind the loop, for timers and I/O objects. Handlers
    /// that Asio completes run on the loop thread inside step().
    boost::asio::io_context& context() noexcept;

    /// Guest mode: from now on the host loop waits and calls
    /// step(Duration::zero()) to dispatch -- when the returned fd is readable,
    /// when `hooks.wakeup` was called, and whenever has_ready_work() is true.
    /// The loop never blocks in that step, and the fd and the hook together
    /// cover every event (timers, I/O, posted work), so an idle host sleeps.
    /// @returns the fd to poll for readability (Asio's epoll fd; owned by the
    ///          loop, valid until detach_host()).
    /// @throws WrongThread off the main thread; LoopError inside run(), if
    ///         a host is attached already, or on a virtual-clock loop.
    int attach_host(HostHooks hooks);
    /// Back to standalone mode (run()/step() wait themselves). No-op if no
    /// host is attached. Loop thread only (elsewhere it reports WrongThread
    /// through handle_exception and does nothing).
    void detach_host() noexcept;
    /// True between attach_host() and detach_host().
    bool host_attached() const noexcept;

    /// Whether step(Duration::zero()) has work ready without waiting: queued
    /// callbacks or time slices, work posted from other threads, and in guest
    /// mode Asio handlers that are ready. Loop thread only.
    bool has_ready_work() const noexcept;
    /// The high-priority part of has_ready_work(): work posted from other
    /// threads, or Asio handlers ready (guest mode). Hosts dispatch it at
    /// their normal event priority, and the rest (callbacks and time slices
    /// queued by the loop thread itself) at idle priority. Loop thread only.
    bool has_posted_work() const noexcept;

    struct Impl;

private:
    friend void detail::add_shutdown_hook(MainLoop&, detail::UniqueFunction<void()>);
    friend void detail::shutdown_loop(MainLoop&);
    friend std::uint64_t detail::loop_iteration() noexcept;
    friend void detail::add_busy_probe(MainLoop&, detail::UniqueFunction<bool()>);
    friend const std::shared_ptr<detail::VirtualTime>& detail::virtual_time_of(const MainLoop&) noexcept;
    std::unique_ptr<Impl> impl_;
};

/// The process's loop (MainLoop::current()).
inline MainLoop& main_loop() { return MainLoop::current(); }

/// True on the loop thread, or when no loop exists.
bool is_main_thread() noexcept;

} // namespace kaa
