// SPDX-License-Identifier: BSL-1.0
// kaa::glib: kaa's MainLoop as a guest of a GLib main loop (GTK, GStreamer,
// GApplication), the C++ counterpart of kaa's gobject notifier.
//
//   kaa::MainLoop loop;                   // on the thread that runs GLib's loop
//   kaa::glib::Guest guest(loop);         // attach to the default GMainContext
//   g_main_loop_run(gloop);               // or gtk_main(), g_application_run()
//
// From attach to detach the GLib loop drives kaa: timers, I/O, posted work,
// coroutines and threaded results all run inside GLib's dispatch, on the loop
// thread. GLib waits for kaa's events in its own poll() -- Asio's epoll fd and
// a wake-up -- so an idle application sleeps: no polling timer, no periodic
// wake-up. Two GSources carry the work:
//   * the event source (G_PRIORITY_DEFAULT): Asio's timers and I/O, and work
//     posted from other threads (threaded results, kaa::post from workers);
//   * the continuation source (G_PRIORITY_DEFAULT_IDLE): work the loop thread
//     queued for "the next iteration" -- time-sliced coroutines
//     (this_coroutine::yield), posted callbacks, deferred emissions. It runs
//     below GTK's redraw (G_PRIORITY_HIGH_IDLE + 20) and input, so a busy
//     coroutine cannot starve the UI.
// See doc/embedding.md.
//
// Only the MainLoop's thread may attach, and that thread must be able to own
// the GMainContext: the Guest acquires the context for its lifetime, so the
// GLib loop runs on the kaa loop thread (kaa::is_main_thread() is true in GLib
// callbacks). Destroy the Guest (or call detach()) on the loop thread before
// the MainLoop.
#pragma once

#include <glib.h>

#include <memory>

#include "kaa/main_loop.hpp"
#include "kaa/threaded_host.hpp"

namespace kaa::glib {

/// GSource priorities of the guest's two sources.
struct Priorities {
    /// Timers, I/O and work posted from other threads.
    int events = G_PRIORITY_DEFAULT;
    /// Time slices and callbacks the loop thread queued for a later
    /// iteration. Keep it numerically above GTK's redraw (120) and resize
    /// (110) priorities unless starving the UI is intended.
    int continuations = G_PRIORITY_DEFAULT_IDLE;
};

/// RAII attachment of a MainLoop to a GMainContext. Move-only.
class Guest {
public:
    /// Attaches `loop` to `context` (nullptr: GLib's global default
    /// context).
    /// @throws WrongThread off the loop thread, or if another thread owns the
    ///         context; LoopError if the loop is running or attached already.
    explicit Guest(MainLoop& loop, GMainContext* context = nullptr, Priorities priorities = {});
    /// Attaches `loop` to `main_loop`'s context and makes MainLoop::stop()
    /// quit `main_loop` (g_main_loop_quit). The GMainLoop is referenced while
    /// attached.
    Guest(MainLoop& loop, GMainLoop* main_loop, Priorities priorities = {});
    /// Detaches (see detach()).
    ~Guest();
    Guest(Guest&& other) noexcept;
    Guest& operator=(Guest&& other) noexcept;
    Guest(const Guest&) = delete;
    Guest& operator=(const Guest&) = delete;

    /// Removes the sources, releases the context, and returns the MainLoop to
    /// standalone mode. Pending kaa work stays queued for the loop's next
    /// step() or run(). Idempotent; loop thread only.
    void detach() noexcept;
    /// True until detach() (or the MainLoop's destruction).
    bool attached() const noexcept;
    /// The attached context (nullptr once detached).
    GMainContext* context() const noexcept;

    struct State;

private:
    std::unique_ptr<State> state_;
};

/// Guest(loop, context, priorities), spelled as a call.
[[nodiscard]] Guest attach(MainLoop& loop, GMainContext* context = nullptr, Priorities priorities = {});
/// Guest(loop, main_loop, priorities), spelled as a call.
[[nodiscard]] Guest attach(MainLoop& loop, GMainLoop* main_loop, Priorities priorities = {});

/// kaa::ThreadedHost for GLib (threaded mode): a kaa thread waits, and each
/// dispatch is an idle GSource attached to the context, at
/// `priorities.events` (time slices at `priorities.continuations`). Prefer
/// Guest, which needs no thread; this is for contexts kaa cannot be a guest
/// of. The thread that iterates the context must be the loop thread (a
/// dispatch run elsewhere is reported as WrongThread, and the thread stops
/// handing work over). Not copyable or movable.
class ThreadedHost {
public:
    /// Hands dispatches to `context` (nullptr: GLib's global default
    /// context), which is referenced meanwhile.
    /// @throws WrongThread off the loop thread; LoopError if a host is
    ///         attached already.
    explicit ThreadedHost(MainLoop& loop, GMainContext* context = nullptr, Priorities priorities = {});
    /// The same with `main_loop`'s context, and MainLoop::stop() quits
    /// `main_loop`.
    ThreadedHost(MainLoop& loop, GMainLoop* main_loop, Priorities priorities = {});
    /// Stops and joins the waiting thread and detaches. Loop thread only.
    ~ThreadedHost();
    ThreadedHost(const ThreadedHost&) = delete;
    ThreadedHost& operator=(const ThreadedHost&) = delete;

    MainLoop& loop() const noexcept;

    struct State;

private:
    std::unique_ptr<State> state_;
};

} // namespace kaa::glib
