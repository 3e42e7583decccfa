// SPDX-License-Identifier: BSL-1.0
#include "kaa/threaded_host.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <utility>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "tsan_handoff.hpp"

namespace kaa {

// What the waiting thread, the host thread and the loop's wake-up hook share.
// The hook and tasks still queued in the host hold it too, so it (and the
// eventfd) may outlive the ThreadedHost.
struct HostTask::Shared {
    MainLoop* loop;
    int wake_fd = -1; // eventfd: the loop's wakeup hook and stop write it

    std::mutex mutex;
    std::condition_variable cv;
    bool stop = false;       // set by the destructor
    bool dispatched = false; // the task handed over last has run
    bool more = false;       // after it, the loop had work left without an fd event
    bool urgent = false;     // ... and some of it came from outside (posts, Asio handlers)
    bool broken = false;     // it ran on the wrong thread: hand nothing over any more

    // False once the ThreadedHost is gone: a task the host still had queued
    // then does nothing. Written and read on the host thread (atomic only so
    // that an invoker that wrongly runs tasks elsewhere is reported, not a race).
    std::atomic<bool> attached{true};

    explicit Shared(MainLoop& l) : loop(&l) {
        wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd < 0)
            throw std::system_error(errno, std::generic_category(), "kaa::ThreadedHost: eventfd");
    }
    ~Shared() { ::close(wake_fd); }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;

    void signal() noexcept {
        const std::uint64_t one = 1;
        // EAGAIN only when the counter is saturated: it is readable anyway.
        [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
    }

    void drain() noexcept {
        std::uint64_t value;
        [[maybe_unused]] auto n = ::read(wake_fd, &value, sizeof value);
    }

    // Runs on the host thread: one iteration of the loop, never blocking.
    void dispatch() {
        if (!attached.load(std::memory_order_acquire))
            return;
        bool left = false;
        bool left_urgent = false;
        bool wrong_thread = !loop->is_main_thread();
        if (wrong_thread) {
            loop->handle_exception(
                std::make_exception_ptr(WrongThread(
                    "kaa::ThreadedHost: the host's invoke function ran kaa's dispatch on another thread than "
                    "the loop thread (the thread that created the MainLoop); it must queue the task to the "
                    "host loop's thread, which must be the loop thread")),
                "ThreadedHost dispatch");
        } else {
            loop->step(Duration::zero()); // callbacks' exceptions go to the loop's exception signal
            left = loop->has_ready_work();
            left_urgent = left && loop->has_posted_work();
        }
        {
            std::lock_guard lock(mutex);
            dispatched = true;
            more = left;
            urgent = left_urgent;
            broken = wrong_thread;
        }
        cv.notify_one();
    }
};

HostTask::HostTask(std::shared_ptr<Shared> shared) noexcept : shared_(std::move(shared)) {
    detail::handoff_release();
}

HostTask::HostTask(HostTask&& other) noexcept {
    detail::handoff_acquire();
    shared_ = std::move(other.shared_);
    detail::handoff_release();
}

HostTask& HostTask::operator=(HostTask&& other) noexcept {
    detail::handoff_acquire();
    shared_ = std::move(other.shared_);
    detail::handoff_release();
    return *this;
}

HostTask::~HostTask() { detail::handoff_acquire(); }

void HostTask::operator()() {
    detail::handoff_acquire();
    if (shared_)
        shared_->dispatch();
}

ThreadedHost::ThreadedHost(MainLoop& loop, HostInvoker invoke, ThreadedHostOptions options)
    : invoke_(std::move(invoke)), invoke_idle_(std::move(options.invoke_idle)) {
    if (!loop.is_main_thread())
        throw WrongThread("kaa::ThreadedHost must be created on the loop thread (the thread that created the "
                          "MainLoop), which must be the host loop's thread");
    if (!invoke_)
        throw UsageError("kaa::ThreadedHost needs a function that queues a task to the host loop's thread");
    shared_ = std::make_shared<Shared>(loop);
    HostHooks hooks;
    hooks.wakeup = [s = shared_] { s->signal(); };
    hooks.quit = std::move(options.quit);
    // The loop going away first: stop the thread now, and the destructor
    // must not touch the loop any more.
    hooks.detached = [this] { stop_thread(); };
    host_fd_ = loop.attach_host(std::move(hooks));
    // Work queued before attaching has no fd event or wake-up to announce it.
    if (loop.has_ready_work())
        shared_->signal();
    try {
        thread_ = std::thread([this] { wait_and_hand_over(); });
    } catch (...) {
        loop.detach_host();
        throw;
    }
}

ThreadedHost::~ThreadedHost() {
    const bool loop_alive = thread_.joinable();
    stop_thread();
    if (loop_alive)
        shared_->loop->detach_host();
}

void ThreadedHost::stop_thread() noexcept {
    if (!thread_.joinable())
        return;
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stop = true;
    }
    shared_->signal();
    shared_->cv.notify_all();
    thread_.join();
    shared_->attached.store(false, std::memory_order_release);
}

MainLoop& ThreadedHost::loop() const noexcept { return *shared_->loop; }

void ThreadedHost::wait_and_hand_over() {
    Shared& s = *shared_;
    pollfd fds[2] = {{host_fd_, POLLIN, 0}, {s.wake_fd, POLLIN, 0}};
    bool more = false;   // work was left after the last dispatch
    bool urgent = false; // some of it came from outside: dispatch it at the normal priority
    for (;;) {
        // With time-sliced work left, only look whether events are ready too
        // (they decide the priority of the hand-over); otherwise sleep.
        int n = ::poll(fds, 2, more ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s.loop->handle_exception(
                std::make_exception_ptr(std::system_error(errno, std::generic_category(), "kaa::ThreadedHost: poll")),
                "ThreadedHost thread");
            return;
        }
        if (fds[0].revents & (POLLERR | POLLNVAL)) {
            // The loop's fd is gone or broken: polling it again would spin.
            s.loop->handle_exception(std::make_exception_ptr(LoopError(
                                         "kaa::ThreadedHost: the loop's readiness fd failed; was the host "
                                         "detached behind the ThreadedHost's back?")),
                                     "ThreadedHost thread");
            return;
        }
        if (fds[1].revents != 0)
            s.drain();
        {
            std::lock_guard lock(s.mutex);
            if (s.stop)
                return;
            s.dispatched = false;
        }
        if (n == 0 && !more)
            continue;
        const bool idle = n == 0 && !urgent;
        HostInvoker& invoke = (idle && invoke_idle_) ? invoke_idle_ : invoke_;
        try {
            invoke(HostTask(shared_));
        } catch (...) {
            // Nothing would dispatch any more: say so rather than hang quietly.
            s.loop->handle_exception(std::current_exception(),
                                     "ThreadedHost: the host's invoke function threw; kaa stops dispatching");
            return;
        }
        std::unique_lock lock(s.mutex);
        s.cv.wait(lock, [&] { return s.dispatched || s.stop; });
        if (s.stop || s.broken)
            return;
        more = s.more;
        urgent = s.urgent;
    }
}

} // namespace kaa
