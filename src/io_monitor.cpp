// SPDX-License-Identifier: BSL-1.0
#include "kaa/io_monitor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "io_core.hpp"
#include "kaa/main_loop.hpp"

namespace asio = boost::asio;

namespace kaa {

namespace detail {

namespace {

/// A duplicate of `fd` registered with Asio. Watching a duplicate means the
/// caller's descriptor is never closed or deregistered by kaa.
asio::posix::stream_descriptor watch_duplicate(int fd, const char* what) {
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        throw IOError(std::error_code(errno, std::system_category()),
                      std::string(what) + ": cannot watch descriptor " + std::to_string(fd));
    asio::posix::stream_descriptor sd(MainLoop::current().context());
    boost::system::error_code ec;
    sd.assign(dup, ec);
    if (ec) {
        ::close(dup);
        throw IOError(ec, std::string(what) + ": cannot watch descriptor " + std::to_string(fd));
    }
    return sd;
}

} // namespace

class MonitorCore : public IoObject, public std::enable_shared_from_this<MonitorCore> {
public:
    explicit MonitorCore(UniqueFunction<bool()> cb) : cb_(std::move(cb)) {}
    ~MonitorCore() override { stop(); }

    void start(int fd, IOCondition cond) {
        check_loop_thread("IOMonitor::register_fd()");
        if (sd_) {
            if (fd == fd_ && cond == cond_)
                return;
            throw UsageError("IOMonitor::register_fd(): the monitor is registered to descriptor " +
                             std::to_string(fd_) + " already; unregister() it first");
        }
        if ((static_cast<unsigned>(cond) & 3u) == 0)
            throw std::invalid_argument("IOMonitor::register_fd(): the condition is empty");
        io_link();
        sd_.emplace(watch_duplicate(fd, "IOMonitor::register_fd()"));
        int flags = ::fcntl(fd, F_GETFL);
        fd_ = fd;
        cond_ = cond;
        ++gen_;
        if (has(IOCondition::read))
            arm(asio::posix::stream_descriptor::wait_read);
        if (has(IOCondition::write))
            arm(asio::posix::stream_descriptor::wait_write);
        // Asio made the descriptor non-blocking for its wait, and the flag
        // belongs to the open file, shared with the caller's descriptor: put
        // it back (waits do not need it).
        if (flags >= 0)
            ::fcntl(fd, F_SETFL, flags);
    }

    void stop() noexcept {
        ++gen_;
        if (sd_) {
            boost::system::error_code ignored;
            sd_->close(ignored);
            sd_.reset();
        }
        fd_ = -1;
    }

    bool active() const noexcept { return sd_.has_value(); }
    int fd() const noexcept { return fd_; }
    void loop_shutdown() noexcept override { stop(); }

private:
    bool has(IOCondition c) const { return (static_cast<unsigned>(cond_) & static_cast<unsigned>(c)) != 0; }

    void arm(asio::posix::stream_descriptor::wait_type w) {
        sd_->async_wait(w, [self = shared_from_this(), gen = gen_, w](const boost::system::error_code& ec) {
            self->fire(gen, w, ec);
        });
    }

    void fire(std::uint64_t gen, asio::posix::stream_descriptor::wait_type w, const boost::system::error_code& ec) {
        if (gen != gen_ || ec == asio::error::operation_aborted)
            return;
        // operation_not_supported: a regular file, which epoll cannot watch
        // and which is always ready.
        (void)ec;
        bool keep = true;
        try {
            keep = cb_();
        } catch (...) {
            report_unhandled(std::current_exception(), "IOMonitor callback");
        }
        if (gen != gen_)
            return; // unregistered or re-registered by the callback
        if (!keep) {
            stop();
            return;
        }
        // Watch again from the next iteration: a condition that still holds
        // fires once per iteration (as select() would), instead of keeping
        // Asio's poll() -- and this iteration -- going forever.
        MainLoop::current().post([weak = weak_from_this(), gen, w] {
            auto self = weak.lock();
            if (self && gen == self->gen_ && self->sd_)
                self->arm(w);
        });
    }

    UniqueFunction<bool()> cb_;
    std::optional<asio::posix::stream_descriptor> sd_;
    int fd_ = -1;
    IOCondition cond_ = IOCondition::read;
    std::uint64_t gen_ = 0;
};

std::shared_ptr<MonitorCore> make_monitor_core(UniqueFunction<bool()> callback) {
    return std::make_shared<MonitorCore>(std::move(callback));
}

namespace {

/// One wait of readable()/writable().
class ReadyWait : public IoObject, public std::enable_shared_from_this<ReadyWait> {
public:
    ReadyWait(int fd, const char* what) : fd_(fd), sd_(watch_duplicate(fd, what)) { io_link(); }

    void start(asio::posix::stream_descriptor::wait_type w, const std::shared_ptr<State<void>>& state) {
        int flags = ::fcntl(fd_, F_GETFL);
        state_ = state;
        state->set_abort_hook([weak = weak_from_this()](const InProgressAborted&, std::exception_ptr) {
            if (auto self = weak.lock())
                self->close();
            return false;
        });
        sd_.async_wait(w, [self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec == asio::error::operation_aborted)
                return;
            self->close();
            if (auto s = self->state_.lock()) {
                s->clear_abort_hook();
                InProgress<void>(std::move(s)).finish();
            }
        });
        if (flags >= 0)
            ::fcntl(fd_, F_SETFL, flags); // see MonitorCore::start
    }

    void loop_shutdown() noexcept override {
        close();
        if (auto s = state_.lock()) {
            s->clear_abort_hook();
            try {
                InProgress<void>(std::move(s))
                    .fail(ConnectionClosed(std::make_error_code(std::errc::operation_canceled),
                                           "kaa::readable()/writable(): the main loop shut down"));
            } catch (...) {
                report_unhandled(std::current_exception(), "I/O wait shutdown");
            }
        }
    }

private:
    void close() noexcept {
        boost::system::error_code ignored;
        sd_.close(ignored);
    }

    int fd_;
    asio::posix::stream_descriptor sd_;
    std::weak_ptr<State<void>> state_;
};

InProgress<void> ready(int fd, asio::posix::stream_descriptor::wait_type w, const char* what) {
    check_loop_thread(what);
    auto state = make_state<State<void>>();
    std::make_shared<ReadyWait>(fd, what)->start(w, state);
    return InProgress<void>(std::move(state));
}

} // namespace

} // namespace detail

namespace {

// A monitor may go on any thread; its core stops on the loop thread.
void release(std::shared_ptr<detail::MonitorCore> core) noexcept {
    if (core)
        detail::release_on_loop([core = std::move(core)] { core->stop(); });
}

} // namespace

IOMonitor& IOMonitor::operator=(IOMonitor&& other) noexcept {
    if (this != &other) {
        release(std::move(core_));
        core_ = std::move(other.core_);
    }
    return *this;
}

IOMonitor::~IOMonitor() { release(std::move(core_)); }

void IOMonitor::register_fd(int fd, IOCondition cond) {
    if (!core_)
        throw EmptyHandle("IOMonitor::register_fd(): this monitor was moved from");
    core_->start(fd, cond);
}

void IOMonitor::unregister() {
    if (!core_)
        return;
    if (detail::loop_context() == detail::LoopContext::other_thread)
        detail::check_loop_thread("IOMonitor::unregister()");  // throws WrongThread
    core_->stop();
}

bool IOMonitor::active() const noexcept { return core_ && core_->active(); }
int IOMonitor::fd() const noexcept { return core_ ? core_->fd() : -1; }

InProgress<void> readable(int fd) {
    return detail::ready(fd, asio::posix::stream_descriptor::wait_read, "kaa::readable()");
}

InProgress<void> writable(int fd) {
    return detail::ready(fd, asio::posix::stream_descriptor::wait_write, "kaa::writable()");
}

} // namespace kaa
