// SPDX-License-Identifier: BSL-1.0
// Guest mode for Asio: lets a host loop (GLib, Qt) do the waiting for an
// io_context that kaa's MainLoop dispatches without blocking.
//
// Asio has no such mode (chriskohlhoff/asio#17, open since 2014): it waits only
// inside run()/run_one(). On Linux, though, everything it waits for goes
// through one epoll fd -- sockets (edge-triggered), timers (a timerfd in the
// epoll set) and the "interrupter" eventfd that the scheduler triggers when a
// handler is queued while the reactor is idle. So that fd is readable exactly
// when Asio has something to do, and a host can poll it.
//
// One thing keeps that from working out of the box: after poll() has run the
// reactor, the scheduler leaves `task_interrupted_` set (task_cleanup), so a
// handler queued afterwards (an immediate completion, a cancellation, a post
// from another thread) would not interrupt the reactor, and the host would
// sleep with work queued. rearm() undoes that after every guest dispatch.
// Both need private members of Boost 1.81's scheduler and epoll_reactor; the
// one place that reaches them is asio_host.cpp, pinned to that version.
#pragma once

#include <atomic>

#include <boost/asio/io_context.hpp>

namespace kaa::detail {

class AsioHost {
public:
    /// Makes sure the context has its reactor (so that timers and wake-ups
    /// reach the epoll fd) and looks up what rearm() needs.
    explicit AsioHost(boost::asio::io_context& io);

    /// The fd a host polls for readability: Asio's epoll fd.
    int fd() const noexcept { return fd_; }

    /// Call after every non-blocking dispatch, on the loop thread. Returns
    /// true if handlers are queued already (the host must dispatch again
    /// without waiting); otherwise arms the reactor's interrupter so that
    /// the next queued handler makes fd() readable.
    bool rearm() noexcept;

private:
    boost::asio::detail::scheduler* scheduler_;
    int fd_;
};

/// The count of work Asio has outstanding for `io`: started asynchronous
/// operations (socket operations, timer waits), queued handlers and work
/// guards. Reading it is one atomic load, where io_context::poll() takes the
/// scheduler's mutex and sets up a thread context even when there is nothing
/// to run. When the count is only the loop's own work guard, no Asio handler
/// can be ready, and a non-blocking step has nothing to poll for.
/// (Not in guest mode: there the host is told about I/O readiness through the
/// epoll fd, and only a poll consumes those events.)
class AsioWorkCount {
public:
    explicit AsioWorkCount(boost::asio::io_context& io);
    long load() const noexcept { return count_->load(std::memory_order_acquire); }

private:
    const std::atomic<long>* count_;
};

} // namespace kaa::detail
