// SPDX-License-Identifier: BSL-1.0
// Qt embedding: kaa's loop driven by a QCoreApplication/QApplication event
// loop (target kaa::qt, built when Qt 6 or Qt 5 Core is found).
//
//   QCoreApplication app(argc, argv);
//   kaa::MainLoop loop;
//   kaa::qt::Guest guest(loop);   // from here on, app.exec() runs kaa too
//   ...                           // timers, coroutines, threaded jobs, I/O
//   return app.exec();            // loop.stop() ends it (GuestOptions)
//
// Guest mode: Qt's event loop does all the waiting. A QSocketNotifier watches
// the loop's readiness fd (timers, I/O, Asio handlers) and another one an
// eventfd that posts from other threads write; either one runs one
// non-blocking loop iteration. When an iteration leaves time-sliced work
// (coroutines that yield, work posted on the loop thread), the next one is a
// posted event of Qt::LowEventPriority, so it runs after the events already
// queued and cannot starve input, timers or painting. Nothing runs and
// nothing wakes up while kaa has nothing to do.
//
// Threaded mode (kaa::qt::ThreadedHost) keeps the waiting in a kaa thread and
// posts each dispatch to the loop thread as an event: for a thread whose
// event dispatcher cannot watch fds. Guest mode is the better choice.
//
// Both must be created on the loop thread (the thread that created the
// MainLoop), which must run the Qt event loop: the application's thread, or
// a QThread running exec(). kaa callbacks then run inside that event loop.
// Destroy them before the QCoreApplication; destroying one detaches kaa from
// Qt but does not shut the loop down (MainLoop::shutdown() or its destructor
// do). See doc/embedding.md.
#pragma once

#include <memory>

#include "kaa/fwd.hpp"

namespace kaa::qt {

/// How a Guest or ThreadedHost treats the host loop.
struct GuestOptions {
    /// loop.stop() quits the Qt event loop of the loop thread:
    /// QCoreApplication::exit(0) on the application's thread, QThread::exit(0)
    /// on another. With false, stop() leaves Qt running.
    bool quit_on_stop = true;
};

/// Attaches `loop` to the Qt event loop of the calling thread for its
/// lifetime (guest mode, see above). Not copyable or movable.
class Guest {
public:
    /// @throws WrongThread off the loop thread; UsageError without a
    /// QCoreApplication or when the thread has no Qt event dispatcher;
    /// LoopError if a host is already attached to the loop.
    explicit Guest(MainLoop& loop, GuestOptions options = {});
    /// Detaches from the loop and from Qt. Call on the loop thread; a kaa
    /// callback may do it too.
    ~Guest();
    Guest(const Guest&) = delete;
    Guest& operator=(const Guest&) = delete;

    MainLoop& loop() const noexcept;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

/// kaa::ThreadedHost for Qt: a kaa thread waits, and each dispatch is a
/// posted event (Qt::NormalEventPriority for events, Qt::LowEventPriority
/// for time-sliced work) handled on the loop thread. Not copyable or movable.
class ThreadedHost {
public:
    /// @throws the same as Guest's constructor.
    explicit ThreadedHost(MainLoop& loop, GuestOptions options = {});
    /// Stops and joins the waiting thread, then detaches. Call on the loop
    /// thread; a kaa callback may do it too.
    ~ThreadedHost();
    ThreadedHost(const ThreadedHost&) = delete;
    ThreadedHost& operator=(const ThreadedHost&) = delete;

    MainLoop& loop() const noexcept;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace kaa::qt
