// SPDX-License-Identifier: BSL-1.0
// ThreadedHost: kaa's "threaded notifier" arrangement, for host loops that
// cannot take kaa as a guest (no way to watch an fd, or a loop you do not
// control). A kaa-owned thread does the *waiting* -- it polls the loop's
// readiness fd (timers, I/O, Asio handlers) and a wake-up fd (posts from other
// threads, stop) -- and hands every *dispatch* to the host loop's thread
// through a function the host supplies:
//
//   kaa::ThreadedHost host(loop, [](kaa::HostTask task) {
//       // queue `task` to run on the host loop's thread, soon; thread-safe
//   });
//
// The loop thread stays the thread that created the MainLoop, which must be
// the host loop's thread: every kaa callback still runs there, inside the
// host loop. The waiting thread never runs kaa callbacks.
//
// Guarantees:
//  * One dispatch at a time: after handing one over, the waiting thread waits
//    until it ran before it polls again, so a still-readable fd never makes it
//    spin, and dispatches never pile up in the host's queue.
//  * Time-sliced work (coroutines that yield, work posted on the loop thread)
//    is continued through `ThreadedHostOptions::invoke_idle`, which should
//    queue at a lower priority than the host's input and redraw events, so
//    that busy coroutines cannot starve the host.
//  * Nothing wakes up while kaa is idle: the thread sleeps in poll() until a
//    deadline, an fd event or a post.
//  * Destruction (on the loop thread) stops and joins the thread and detaches
//    from the loop; a task still queued in the host does nothing when it runs.
//
// kaa::qt::ThreadedHost (kaa/qt.hpp) and kaa::glib (kaa/glib.hpp) wrap this
// for Qt and GLib; see doc/embedding.md.
#pragma once

#include <memory>
#include <thread>

#include "kaa/detail/function.hpp"
#include "kaa/fwd.hpp"

namespace kaa {

class ThreadedHost;

/// A dispatch handed to the host thread: call it there once, or drop it.
/// Move-only. Moving it may happen on any thread; calling and destroying it
/// on the host thread. (Its members tell ThreadSanitizer that the host's
/// queue orders the two threads, which GLib's and Qt's own locks cannot.)
class HostTask {
public:
    HostTask(HostTask&& other) noexcept;
    HostTask& operator=(HostTask&& other) noexcept;
    ~HostTask();
    HostTask(const HostTask&) = delete;
    HostTask& operator=(const HostTask&) = delete;

    /// Runs one iteration of the loop (step(Duration::zero())), on the host
    /// thread. Does nothing once the ThreadedHost is gone.
    void operator()();

    struct Shared;

private:
    friend class ThreadedHost;
    explicit HostTask(std::shared_ptr<Shared> shared) noexcept;
    std::shared_ptr<Shared> shared_;
};

/// Queues a HostTask to run on the host loop's thread. Called from kaa's
/// waiting thread only. It must *queue* the task (run it from the host loop
/// later), never run it inline on the calling thread.
using HostInvoker = detail::UniqueFunction<void(HostTask)>;

/// How a ThreadedHost hands work over and what stop() does.
struct ThreadedHostOptions {
    /// Queues the continuation of time-sliced work, at a low priority (Qt:
    /// Qt::LowEventPriority; GLib: G_PRIORITY_DEFAULT_IDLE). Empty: the main
    /// invoker is used.
    HostInvoker invoke_idle;
    /// Called on the loop thread when loop.stop() is called, typically to
    /// quit the host loop. Empty: stop() does nothing to the host.
    detail::UniqueFunction<void()> quit;
};

/// Runs kaa's waiting in a thread of its own and its dispatching on the host
/// loop's thread (see the header comment). Not copyable or movable.
class ThreadedHost {
public:
    /// Attaches to `loop` and starts the waiting thread.
    /// @throws WrongThread off the loop thread; LoopError if a host (guest or
    /// threaded) is already attached; UsageError if `invoke` is empty;
    /// std::system_error if the thread or its eventfd cannot be created.
    ThreadedHost(MainLoop& loop, HostInvoker invoke, ThreadedHostOptions options = {});
    /// Stops and joins the waiting thread, then detaches from the loop.
    /// Call on the loop thread. Does not shut the loop down. (If the MainLoop
    /// is destroyed first, the thread is stopped then, and this only cleans up.)
    ~ThreadedHost();
    ThreadedHost(const ThreadedHost&) = delete;
    ThreadedHost& operator=(const ThreadedHost&) = delete;

    MainLoop& loop() const noexcept;

private:
    using Shared = HostTask::Shared;
    void wait_and_hand_over();
    void stop_thread() noexcept;

    std::shared_ptr<Shared> shared_;
    HostInvoker invoke_;
    HostInvoker invoke_idle_;
    int host_fd_ = -1;
    std::thread thread_;
};

} // namespace kaa
