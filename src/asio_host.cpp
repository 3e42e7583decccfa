// SPDX-License-Identifier: BSL-1.0
#include "asio_host.hpp"

#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/version.hpp>

// The members read below are private and their meaning is an implementation
// detail: check them again before allowing another Boost version here (see
// doc/design.md, "Guest mode").
#if BOOST_VERSION != 108100
#error "kaa's Asio guest mode (src/asio_host.cpp) is written against Boost 1.81's scheduler; review it for this Boost"
#endif
#if !defined(BOOST_ASIO_HAS_EPOLL) || !defined(BOOST_ASIO_HAS_TIMERFD) || defined(BOOST_ASIO_HAS_IO_URING) ||      \
    defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "kaa's Asio guest mode needs Asio's epoll reactor with timerfd (Linux, no io_uring backend)"
#endif

namespace asio = boost::asio;
using Scheduler = asio::detail::scheduler;
using Reactor = asio::detail::epoll_reactor;
static_assert(std::is_same_v<asio::detail::reactor, Reactor>);

namespace kaa::detail::asio_access {

// Reading a private member: access checking does not apply to the names in an
// explicit instantiation ([temp.spec.general]/6 in C++20), so instantiating
// Access with a pointer to a private member is allowed, and the friend it
// defines hands that pointer out. `auto` spares us naming the private types.
template <class Tag, auto Member>
struct Access {
    friend constexpr auto member(Tag) noexcept { return Member; }
};

struct SchedulerMutex {
    friend constexpr auto member(SchedulerMutex) noexcept;
};
struct SchedulerTaskInterrupted {
    friend constexpr auto member(SchedulerTaskInterrupted) noexcept;
};
struct SchedulerOpQueue {
    friend constexpr auto member(SchedulerOpQueue) noexcept;
};
struct SchedulerTaskOperation {
    friend constexpr auto member(SchedulerTaskOperation) noexcept;
};
struct SchedulerOutstandingWork {
    friend constexpr auto member(SchedulerOutstandingWork) noexcept;
};
struct ReactorEpollFd {
    friend constexpr auto member(ReactorEpollFd) noexcept;
};

template struct Access<SchedulerMutex, &Scheduler::mutex_>;
template struct Access<SchedulerTaskInterrupted, &Scheduler::task_interrupted_>;
template struct Access<SchedulerOpQueue, &Scheduler::op_queue_>;
template struct Access<SchedulerTaskOperation, &Scheduler::task_operation_>;
template struct Access<SchedulerOutstandingWork, &Scheduler::outstanding_work_>;
template struct Access<ReactorEpollFd, &Reactor::epoll_fd_>;

} // namespace kaa::detail::asio_access

namespace kaa::detail {

using namespace asio_access;

AsioHost::AsioHost(asio::io_context& io) : scheduler_(&asio::use_service<Scheduler>(io)) {
    // The reactor becomes the scheduler's task only when the first I/O object
    // or timer asks for it; a host must be able to poll its fd before that.
    Reactor& reactor = asio::use_service<Reactor>(io);
    scheduler_->init_task();
    fd_ = reactor.*member(ReactorEpollFd{});
}

bool AsioHost::rearm() noexcept {
    Scheduler& s = *scheduler_;
    auto& mutex = s.*member(SchedulerMutex{});
    auto& queue = s.*member(SchedulerOpQueue{});
    asio::detail::scheduler_operation* task = &(s.*member(SchedulerTaskOperation{}));
    asio::detail::conditionally_enabled_mutex::scoped_lock lock(mutex);
    asio::detail::scheduler_operation* front = queue.front();
    // Only the reactor task queued (or nothing, if it is away running, which
    // a single-threaded loop never does between dispatches): idle.
    bool idle = front == nullptr || (front == task && asio::detail::op_queue_access::next(front) == nullptr);
    if (!idle)
        return true;
    // The next post interrupts the reactor (wake_one_thread_and_unlock), which
    // re-registers the interrupter edge-triggered: the epoll fd turns readable.
    s.*member(SchedulerTaskInterrupted{}) = false;
    return false;
}

// Boost 1.81's scheduler counts its outstanding work in an atomic_count,
// which is std::atomic<long> wherever std::atomic exists.
static_assert(std::is_same_v<asio::detail::atomic_count, std::atomic<long>>);

AsioWorkCount::AsioWorkCount(asio::io_context& io)
    : count_(&(asio::use_service<Scheduler>(io).*member(SchedulerOutstandingWork{}))) {}

} // namespace kaa::detail
