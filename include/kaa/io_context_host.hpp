// SPDX-License-Identifier: BSL-1.0
// IoContextHost: kaa as a guest on an application's own boost::asio::io_context.
//
// A program built on Asio already has a thread that calls `io.run()`. With
//
//   kaa::MainLoop loop;                   // on the thread that will run io
//   kaa::IoContextHost guest(loop, io);   // kaa's dispatches become io's handlers
//   io.run();                             // runs kaa too; loop.stop() stops io
//
// every kaa callback -- timers, coroutines, threaded results, posted work,
// kaa I/O -- runs as a handler of `io`, on its thread, interleaved in FIFO
// order with the application's own handlers. It is kaa's threaded mode
// (kaa/threaded_host.hpp) with `asio::post(io, task)` as the invoker: a kaa
// thread waits on the loop's readiness and hands each dispatch to `io`.
//
// Guarantees (those of every host, test/host_conformance.hpp, run against it
// in test/io_context_host_test.cpp):
//  * The loop thread must be the thread that runs `io` (the thread that
//    created the MainLoop); a dispatch that arrives on another thread is
//    reported as WrongThread and stops the hand-over.
//  * While attached, `io` does not run out of work (the guest holds a work
//    guard on it), so `io.run()` returns when the application stops `io` or,
//    with `stop_io_on_stop` (the default), when kaa's loop.stop() is called.
//  * Idle means asleep: the waiting thread sleeps in poll() until a deadline,
//    an fd event or a post; `io` gets no handler while kaa has nothing to do.
//  * Destruction (loop thread) stops the waiting thread, releases the work
//    guard and detaches; a dispatch still queued in `io` does nothing. Shut
//    kaa down (loop.shutdown()) after io.run() returns, as with every host.
#pragma once

#include <memory>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "kaa/main_loop.hpp"
#include "kaa/threaded_host.hpp"

namespace kaa {

/// What an IoContextHost does on loop.stop().
struct IoContextHostOptions {
    /// loop.stop() calls io.stop(), which makes io.run() return. With false,
    /// stop() leaves `io` alone and the application ends it.
    bool stop_io_on_stop = true;
};

/// Makes an application's io_context drive kaa (see the header).
class IoContextHost {
public:
    /// Attaches `loop` to `io`. Call on the loop thread, which must be the
    /// thread that runs `io`.
    /// @throws WrongThread off the loop thread; LoopError if a host is attached
    /// already, or inside run(); std::system_error if the waiting thread cannot start.
    IoContextHost(MainLoop& loop, boost::asio::io_context& io, IoContextHostOptions options = {});
    /// Detaches (loop thread). Does not shut the loop down.
    ~IoContextHost();
    IoContextHost(const IoContextHost&) = delete;
    IoContextHost& operator=(const IoContextHost&) = delete;

    boost::asio::io_context& io_context() const noexcept { return io_; }

private:
    boost::asio::io_context& io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::unique_ptr<ThreadedHost> host_;
};

} // namespace kaa
