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

#include "kaa/detail/function.hpp"
#include "kaa/signal.hpp"

namespace boost::asio {
class io_context;
}

namespace kaa {

namespace detail {
/// Registers work to run when the loop shuts down (before `shutdown` is
/// emitted): the coroutine registry and thread pools use it.
void add_shutdown_hook(MainLoop& loop, UniqueFunction<void()> hook);
void shutdown_loop(MainLoop& loop);
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
        /// After every iteration of the loop.
        Signal<void()> step;
        /// Once when run() ends (and from the destructor if the loop was
        /// stepped but never run). Connected slots are disconnected after it.
        Signal<void()> shutdown;
        /// An exception that escaped a callback (a slot, an InProgress
        /// callback, a timer, posted work) or a failed InProgress that nobody
        /// observed. With nothing connected, it is printed on stderr.
        Signal<void(std::exception_ptr)> exception;
    };

    /// Creates the loop and makes the calling thread the main thread.
    /// @throws LoopError if another MainLoop exists.
    MainLoop();
    /// Shuts the loop down if it is not yet (see run()) and releases it.
    ~MainLoop();
    MainLoop(const MainLoop&) = delete;
    MainLoop& operator=(const MainLoop&) = delete;

    /// The process's loop. @throws LoopError if none exists.
    static MainLoop& current();
    /// The process's loop, or nullptr.
    static MainLoop* current_or_null() noexcept;

    /// Runs iterations until stop(), then shuts down: emits `shutdown`, aborts
    /// suspended coroutines and stops thread pools. Can be called again later.
    /// @throws LoopError if already running or attached to a host loop (run
    /// the host's loop instead); WrongThread off the main thread.
    void run();

    /// What run() does when it ends: aborts suspended coroutines, stops
    /// thread pools, delivers what that queued and emits `shutdown`. For guest
    /// mode, where the host's loop, not run(), is the loop; call it before
    /// leaving the host loop for good. The destructor does it if needed.
    /// @throws WrongThread off the main thread.
    void shutdown();

    /// Makes run() return after the current iteration. Safe from any thread
    /// and from callbacks; exception handlers cannot veto it. In guest mode it
    /// calls the host's quit hook instead (on the loop thread, a later
    /// iteration).
    void stop() noexcept;

    /// Runs one iteration, waiting at most `timeout` for events when nothing
    /// is ready (forever if not given; Duration::zero() never waits).
    /// Returns whether any work ran. May be nested (InProgress::wait does).
    /// @throws WrongThread off the main thread.
    bool step(std::optional<Duration> timeout = std::nullopt);

    /// True inside run().
    bool is_running() const noexcept;
    /// True on the loop's thread.
    bool is_main_thread() const noexcept;

    /// Runs `fn` on the loop thread on a later iteration (never inside this
    /// call). Safe from any thread; wakes the loop. An exception escaping
    /// `fn` goes to the `exception` signal.
    void post(detail::UniqueFunction<void()> fn);

    Signals& signals() noexcept;

    /// Hands an exception that nobody handled to the `exception` signal, or to
    /// stderr when nothing is connected. Safe from any thread.
    void handle_exception(std::exception_ptr e, std::string_view where) noexcept;

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
    /// @throws WrongThread off the main thread; LoopError inside run() or if
    ///         a host is attached already.
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
    std::unique_ptr<Impl> impl_;
};

/// The process's loop (MainLoop::current()).
inline MainLoop& main_loop() { return MainLoop::current(); }

/// True on the loop thread, or when no loop exists.
bool is_main_thread() noexcept;

} // namespace kaa
