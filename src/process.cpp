// SPDX-License-Identifier: BSL-1.0
#include "kaa/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "io_core.hpp"
#include "kaa/io_channel.hpp"
#include "kaa/main_loop.hpp"

extern char** environ;

namespace asio = boost::asio;

namespace kaa {

std::string ExitStatus::to_string() const {
    if (signal == 0)
        return "exit code " + std::to_string(code);
    std::string out = "killed by signal " + std::to_string(signal);
    if (const char* abbrev = ::sigabbrev_np(signal))
        out += std::string(" (SIG") + abbrev + ")";
    if (core_dumped)
        out += ", core dumped";
    return out;
}

namespace detail {

namespace {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ExitStatus status_from(const siginfo_t& si) {
    switch (si.si_code) {
    case CLD_EXITED:
        return ExitStatus{si.si_status, 0, false};
    case CLD_DUMPED:
        return ExitStatus{-1, si.si_status, true};
    default:
        return ExitStatus{-1, si.si_status, false};
    }
}

// A descriptor owned during start(), closed unless released.
struct OwnedFd {
    int fd = -1;
    OwnedFd() = default;
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() { reset(); }
    void reset() noexcept {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
    int release() noexcept { return std::exchange(fd, -1); }
};

struct Pipe {
    OwnedFd read_end;
    OwnedFd write_end;
    void open(const std::string& program) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            throw ProcessError(errno, program, "kaa::Process: cannot create a pipe for '" + program + "'");
        read_end.fd = fds[0];
        write_end.fd = fds[1];
    }
};

// Cleans up posix_spawn's attribute objects on every path.
struct SpawnSetup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    SpawnSetup() {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
    }
    ~SpawnSetup() {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
};

[[noreturn]] void throw_wrong_thread() {
    throw WrongThread(
        "kaa::Process: use a Process on the loop thread only (post() to it from other threads)");
}

[[noreturn]] void throw_not_started(const char* what) {
    throw UsageError(std::string("kaa::Process::") + what +
                     ": the process was not started; call start() first");
}

} // namespace

class ProcessService;

/// One output pipe (stdout or stderr) of the child.
struct OutputStream {
    IOChannel channel;                           // not open unless Stdio::pipe
    Signal<void(std::string)>* signal = nullptr; // the Process's line signal
    Connection forward;                          // channel readline -> line signal, while it has slots
    int pending_reads = 0;                       // Process::read()/readline() not finished yet
    bool hup_at_exit = false;                    // nobody else held the pipe when the child exited

    bool piped() const noexcept { return channel.core() != nullptr; }
    // Someone takes the data as it comes: the exit waits for them.
    bool consumed() const {
        if (!channel.is_open())
            return false;
        if (pending_reads > 0 || !signal->empty())
            return true;
        auto& sig = channel.signals();
        return !sig.read.empty() || !sig.readline.empty();
    }
};

class ProcessCore : public std::enable_shared_from_this<ProcessCore> {
public:
    ProcessCore(std::vector<std::string> argv, ProcessOptions options)
        : argv_(std::move(argv)), options_(std::move(options)) {
        out_.signal = &signals_.stdout_line;
        err_.signal = &signals_.stderr_line;
    }
    ~ProcessCore();
    ProcessCore(const ProcessCore&) = delete;
    ProcessCore& operator=(const ProcessCore&) = delete;

    Process::Signals signals_;
    const std::vector<std::string> argv_;
    const ProcessOptions options_;
    pid_t pid_ = -1;
    bool started_ = false;
    // Set when the child has been reaped, published (exit_status(),
    // running()) at once; exited() waits for the output (see check_exit).
    std::optional<ExitStatus> status_;
    IOChannel in_;

    void start();
    InProgress<ExitStatus> exited();
    InProgress<ExitStatus> stop(Duration grace);
    bool send_signal(int sig);
    InProgress<std::string> read(OutputStream& s, bool line);
    InProgress<void> write(std::string data);
    void close_stdin();
    // The Process handle is gone.
    void release() noexcept;
    // Loop shutdown (deliver = true) or the io_context going away (false):
    // kill and reap the child, close every pipe.
    void terminate(bool deliver) noexcept;

    OutputStream& stream(Process::Output which) { return which == Process::err ? err_ : out_; }
    ProcessService* service_ = nullptr;

private:
    const std::string& program() const { return argv_.front(); }
    void watch_output(OutputStream& s);
    void arm_exit_wait();
    void on_pidfd_readable();
    void on_reaped(ExitStatus st);
    void on_lost_child(int err);
    void schedule_exit_check();
    void check_exit();
    void deliver_exit();
    static void close_channel(IOChannel& ch, const char* why) noexcept;

    std::optional<asio::posix::stream_descriptor> pidfd_;
    bool in_close_requested_ = false;
    InProgress<void> last_write_{nullptr};
    OutputStream out_;
    OutputStream err_;
    std::vector<std::shared_ptr<State<ExitStatus>>> exit_waiters_;
    std::shared_ptr<State<ExitStatus>> stop_op_;
    std::optional<asio::steady_timer> kill_timer_;
    bool exit_pending_ = false; // reaped, exited() not finished yet
    bool exit_check_posted_ = false;
    bool exit_delivered_ = false;
    bool handle_alive_ = true;
};

/// Registered with the loop's io_context. It keeps the set of cores so that
/// loop shutdown can end their children, and so that their Asio objects are
/// destroyed while Asio's reactor still exists (a Process may outlive the loop).
class ProcessService final : public asio::execution_context::service {
public:
    static asio::execution_context::id id;

    explicit ProcessService(asio::io_context& io) : asio::execution_context::service(io) {
        // Services shut down in reverse order of creation: making sure the
        // reactor and the timer service exist first means ours goes first.
        asio::posix::stream_descriptor probe(io);
        asio::steady_timer timer_probe(io);
    }

    void add(ProcessCore* core, MainLoop& loop) {
        cores_.insert(core);
        if (!hook_registered_) {
            hook_registered_ = true;
            add_shutdown_hook(loop, [this] {
                hook_registered_ = false;
                terminate_all(true);
            });
        }
    }
    void remove(ProcessCore* core) noexcept { cores_.erase(core); }

private:
    void shutdown() override {
        terminate_all(false);
        for (ProcessCore* core : cores_)
            core->service_ = nullptr;
        cores_.clear();
    }

    void terminate_all(bool deliver) {
        std::vector<std::shared_ptr<ProcessCore>> cores;
        cores.reserve(cores_.size());
        for (ProcessCore* core : cores_) {
            if (auto strong = core->weak_from_this().lock())
                cores.push_back(std::move(strong));
        }
        for (auto& core : cores)
            core->terminate(deliver);
    }

    std::unordered_set<ProcessCore*> cores_;
    bool hook_registered_ = false;
};

asio::execution_context::id ProcessService::id;

ProcessCore::~ProcessCore() {
    out_.forward.disconnect();
    err_.forward.disconnect();
    if (service_)
        service_->remove(this);
}

void ProcessCore::start() {
    if (!in_loop_context())
        throw_wrong_thread();
    MainLoop& loop = MainLoop::current();
    if (started_)
        throw UsageError("kaa::Process::start(): the process was already started; a Process runs one "
                         "child, create another Process to run it again");

    if (!options_.cwd.empty()) {
        struct stat st {};
        int e = 0;
        if (::stat(options_.cwd.c_str(), &st) != 0)
            e = errno;
        else if (!S_ISDIR(st.st_mode))
            e = ENOTDIR;
        if (e != 0)
            throw ProcessError(e, program(),
                               "kaa::Process: cannot start '" + program() + "': working directory '" +
                                   options_.cwd + "'");
    }

    std::vector<char*> args;
    args.reserve(argv_.size() + 1);
    for (const std::string& a : argv_)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    std::vector<std::string> env_storage;
    if (!options_.replace_env) {
        for (char** e = environ; e && *e; ++e) {
            std::string_view entry(*e);
            std::string_view name = entry.substr(0, entry.find('='));
            if (!options_.env.contains(std::string(name)))
                env_storage.emplace_back(entry);
        }
    }
    for (const auto& [name, value] : options_.env)
        env_storage.push_back(name + "=" + value);
    std::vector<char*> envp;
    envp.reserve(env_storage.size() + 1);
    for (std::string& e : env_storage)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    Pipe in_pipe, out_pipe, err_pipe;
    SpawnSetup setup;
    auto check = [&](int rc, const char* what) {
        if (rc != 0)
            throw ProcessError(rc, program(), std::string("kaa::Process: ") + what + " failed");
    };
    auto connect_stdio = [&](Stdio mode, Pipe& pipe, int child_fd) {
        switch (mode) {
        case Stdio::pipe:
            pipe.open(program());
            // dup2 clears close-on-exec on the child's copy only.
            check(posix_spawn_file_actions_adddup2(
                      &setup.actions, child_fd == 0 ? pipe.read_end.fd : pipe.write_end.fd, child_fd),
                  "posix_spawn_file_actions_adddup2");
            break;
        case Stdio::null:
            check(posix_spawn_file_actions_addopen(&setup.actions, child_fd, "/dev/null",
                                                   child_fd == 0 ? O_RDONLY : O_WRONLY, 0),
                  "posix_spawn_file_actions_addopen");
            break;
        case Stdio::inherit:
            break;
        }
    };
    connect_stdio(options_.stdin_mode, in_pipe, 0);
    connect_stdio(options_.stdout_mode, out_pipe, 1);
    connect_stdio(options_.stderr_mode, err_pipe, 2);
    if (!options_.cwd.empty())
        check(posix_spawn_file_actions_addchdir_np(&setup.actions, options_.cwd.c_str()),
              "posix_spawn_file_actions_addchdir_np");
    // Descriptors the application opened without O_CLOEXEC must not leak
    // into the child either.
    check(posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3),
          "posix_spawn_file_actions_addclosefrom_np");

    // The child starts with no blocked signals, and with SIGPIPE and SIGXFSZ
    // at their defaults: runtimes often ignore them, and an ignored
    // disposition survives exec (as Python's subprocess restore_signals).
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    check(posix_spawnattr_setsigmask(&setup.attr, &none), "posix_spawnattr_setsigmask");
    check(posix_spawnattr_setsigdefault(&setup.attr, &defaults), "posix_spawnattr_setsigdefault");
    check(posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
          "posix_spawnattr_setflags");

    // glibc's posix_spawn reports a failed exec (and a failed file action)
    // as its return value, so a missing program is known here, synchronously.
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, program().c_str(), &setup.actions, &setup.attr, args.data(), envp.data());
    if (rc != 0) {
        std::string where = options_.cwd.empty() ? "" : " (in '" + options_.cwd + "')";
        throw ProcessError(rc, program(), "kaa::Process: cannot start '" + program() + "'" + where);
    }
    in_pipe.read_end.reset();
    out_pipe.write_end.reset();
    err_pipe.write_end.reset();

    OwnedFd pidfd;
    pidfd.fd = pidfd_open(pid);
    if (pidfd.fd < 0) {
        int e = errno;
        // Without a pidfd kaa cannot watch the child; do not leave it behind.
        ::kill(pid, SIGKILL);
        int ignored = 0;
        while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
        }
        throw ProcessError(e, program(),
                           "kaa::Process: pidfd_open() failed for '" + program() +
                               "' (kaa::Process needs Linux 5.3 or later)");
    }
    ::fcntl(pidfd.fd, F_SETFD, FD_CLOEXEC);

    asio::io_context& io = loop.context();
    auto* service = &asio::use_service<ProcessService>(io);
    started_ = true;
    pid_ = pid;
    pidfd_.emplace(io, pidfd.release());
    service_ = service;
    service->add(this, loop);
    arm_exit_wait();
    try {
        if (options_.stdin_mode == Stdio::pipe) {
            in_ = IOChannel(in_pipe.write_end.fd);
            in_pipe.write_end.release();
        }
        if (options_.stdout_mode == Stdio::pipe) {
            out_.channel = IOChannel(out_pipe.read_end.fd);
            out_pipe.read_end.release();
            watch_output(out_);
        }
        if (options_.stderr_mode == Stdio::pipe) {
            err_.channel = IOChannel(err_pipe.read_end.fd);
            err_pipe.read_end.release();
            watch_output(err_);
        }
    } catch (...) {
        // The child runs, but kaa cannot talk to it: end it (the pidfd wait
        // reaps it) and report.
        pidfd_send_signal(pidfd_->native_handle(), SIGKILL);
        close_channel(in_, "kaa::Process::start() failed");
        close_channel(out_.channel, "kaa::Process::start() failed");
        close_channel(err_.channel, "kaa::Process::start() failed");
        throw;
    }
}

void ProcessCore::watch_output(OutputStream& s) {
    // The line signal is fed from the channel's readline signal while it has
    // slots: connecting to the channel is what makes it read (lazily, as
    // kaa), and it delivers what is already buffered first.
    auto forward = [&s] {
        if (s.forward.connected() || !s.channel.is_open())
            return;
        s.forward = s.channel.signals().readline.connect([&s](const std::string& line) {
            std::string text = line;
            if (!text.empty() && text.back() == '\n')
                text.pop_back();
            s.signal->emit(std::move(text));
        });
    };
    s.signal->changed().connect([weak = weak_from_this(), &s, forward](SignalChange change) {
        auto self = weak.lock();
        if (!self)
            return;
        if (change == SignalChange::connected) {
            forward();
        } else if (s.signal->empty()) {
            s.forward.disconnect();
            self->schedule_exit_check();
        }
    });
    // Slots connected before start().
    if (!s.signal->empty())
        forward();
    // The end of the stream may be what an exit waits for.
    s.channel.signals().closed.connect([weak = weak_from_this()] {
        if (auto self = weak.lock())
            self->schedule_exit_check();
    });
}

void ProcessCore::arm_exit_wait() {
    pidfd_->async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                           if (!ec)
                               self->on_pidfd_readable();
                       });
}

void ProcessCore::on_pidfd_readable() {
    if (status_ || !pidfd_)
        return;
    siginfo_t si{};
    int r;
    do {
        r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_->native_handle()), &si,
                     WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        on_lost_child(errno);
        return;
    }
    if (si.si_pid == 0) {
        // A child's pidfd polls readable once it has exited, so this is not
        // expected; wait again rather than guess.
        arm_exit_wait();
        return;
    }
    on_reaped(status_from(si));
}

void ProcessCore::on_lost_child(int err) {
    // ECHILD: something else reaped the child (a SIGCHLD handler calling
    // waitpid(-1), or SIGCHLD set to SIG_IGN); its status is gone.
    auto keep = shared_from_this();
    status_ = ExitStatus{-1, 0, false};
    exit_delivered_ = true;
    pidfd_.reset();
    kill_timer_.reset();
    close_channel(in_, "the child is gone");
    auto e = std::make_exception_ptr(
        ProcessError(err, program(),
                     "kaa::Process: the exit status of '" + program() +
                         "' is lost: something else reaped the child (do not set SIGCHLD to SIG_IGN or "
                         "call waitpid(-1))"));
    auto waiters = std::move(exit_waiters_);
    exit_waiters_.clear();
    if (auto stop = std::move(stop_op_))
        waiters.push_back(std::move(stop));
    for (auto& w : waiters)
        if (w->status() == Status::pending)
            InProgress<ExitStatus>(w).fail(e);
}

void ProcessCore::on_reaped(ExitStatus st) {
    auto keep = shared_from_this();
    status_ = st;
    pidfd_.reset();
    kill_timer_.reset();
    // Writing to a dead child is pointless: pending writes fail now.
    close_channel(in_, "the child exited before reading all of its stdin");
    // Everything the child wrote is in the pipes now. The exit is delivered
    // after the readers have had it: for each pipe that someone reads, once
    // the channel has seen the end of the stream -- unless another process
    // (a grandchild) still holds the pipe open, which must not hold the exit
    // status up. POLLHUP on a pipe's read end means no writer is left.
    for (OutputStream* s : {&out_, &err_}) {
        if (!s->channel.is_open())
            continue;
        pollfd pfd{s->channel.native_handle(), 0, 0};
        s->hup_at_exit = ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0;
    }
    exit_pending_ = true;
    check_exit();
}

// Checked from the loop, not inline: a reader that just got its data usually
// asks for more from the same callback (a coroutine's read loop), and must
// not see the exit overtake the rest of the output.
void ProcessCore::schedule_exit_check() {
    if (!exit_pending_ || exit_check_posted_)
        return;
    exit_check_posted_ = true;
    post_to_loop([self = shared_from_this()] {
        self->exit_check_posted_ = false;
        self->check_exit();
    });
}

void ProcessCore::check_exit() {
    if (!exit_pending_)
        return;
    for (OutputStream* s : {&out_, &err_}) {
        if (!s->consumed())
            continue;
        if (s->hup_at_exit) {
            // The end of file is certain to come, right after the data.
            if (!s->channel.at_eof())
                return;
        } else {
            // A grandchild holds the pipe: wait only until the channel has
            // taken what is in the pipe now. Nothing signals that moment, so
            // look again on the next iteration.
            int queued = 0;
            if (::ioctl(s->channel.native_handle(), FIONREAD, &queued) == 0 && queued > 0) {
                schedule_exit_check();
                return;
            }
        }
    }
    deliver_exit();
}

void ProcessCore::deliver_exit() {
    if (exit_delivered_)
        return;
    auto keep = shared_from_this();
    exit_pending_ = false;
    exit_delivered_ = true;
    const ExitStatus st = *status_;
    if (!handle_alive_) {
        close_channel(out_.channel, "the Process was destroyed");
        close_channel(err_.channel, "the Process was destroyed");
    }
    if (auto stop = std::move(stop_op_))
        InProgress<ExitStatus>(stop).finish(st);
    signals_.exited.emit(st);
    auto waiters = std::move(exit_waiters_);
    exit_waiters_.clear();
    for (auto& w : waiters)
        if (w->status() == Status::pending)
            InProgress<ExitStatus>(w).finish(st);
}

void ProcessCore::close_channel(IOChannel& ch, const char* why) noexcept {
    if (!ch.is_open())
        return;
    try {
        ch.core()->close(why);
    } catch (...) {
        report_unhandled(std::current_exception(), "kaa::Process closing a pipe");
    }
}

InProgress<ExitStatus> ProcessCore::exited() {
    InProgress<ExitStatus> ip;
    if (exit_delivered_ && status_) {
        ip.finish(*status_);
        return ip;
    }
    exit_waiters_.push_back(ip.typed_ptr());
    ip.typed().set_abort_hook(
        [weak = weak_from_this(), raw = ip.state().get()](const InProgressAborted&, std::exception_ptr) {
            if (auto self = weak.lock())
                std::erase_if(self->exit_waiters_, [raw](const auto& w) { return w.get() == raw; });
            return false;
        });
    return ip;
}

InProgress<ExitStatus> ProcessCore::stop(Duration grace) {
    if (grace < Duration::zero())
        throw std::invalid_argument("kaa::Process::stop(): the grace period must not be negative");
    if (stop_op_)
        return InProgress<ExitStatus>(stop_op_);
    InProgress<ExitStatus> ip;
    if (status_) {
        // Exited: finished at once, or with the exit if that still waits
        // for the output.
        if (exit_delivered_)
            ip.finish(*status_);
        else
            stop_op_ = ip.typed_ptr();
        return ip;
    }
    stop_op_ = ip.typed_ptr();
    ip.typed().set_abort_hook([weak = weak_from_this()](const InProgressAborted&, std::exception_ptr) {
        if (auto self = weak.lock()) {
            self->kill_timer_.reset();
            self->stop_op_.reset();
        }
        return false;
    });
    send_signal(SIGTERM);
    kill_timer_.emplace(pidfd_->get_executor());
    kill_timer_->expires_after(grace);
    kill_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec)
            return;
        if (auto self = weak.lock()) {
            if (!self->status_)
                self->send_signal(SIGKILL);
        }
    });
    return ip;
}

bool ProcessCore::send_signal(int sig) {
    if (status_ || !pidfd_)
        return false;
    if (pidfd_send_signal(pidfd_->native_handle(), sig) != 0) {
        if (errno == ESRCH)
            return false;
        throw std::system_error(errno, std::generic_category(),
                                "kaa::Process::send_signal(" + std::to_string(sig) + ") to '" + program() +
                                    "'");
    }
    return true;
}

InProgress<std::string> ProcessCore::read(OutputStream& s, bool line) {
    if (!s.piped())
        throw UsageError(std::string("kaa::Process::") + (line ? "readline" : "read") +
                         "(): " + (&s == &err_ ? "stderr" : "stdout") +
                         " is not a pipe; start the process with ProcessOptions::" +
                         (&s == &err_ ? "stderr_mode" : "stdout_mode") + " = kaa::Stdio::pipe");
    InProgress<std::string> ip = line ? s.channel.readline() : s.channel.read();
    if (!ip.finished()) {
        // Counted as a reader the exit waits for, until it finishes. The
        // callback is internal bookkeeping: it must not look like somebody
        // waiting, or an abort cascading from a coroutine would spare the read.
        ++s.pending_reads;
        ip.state()->add_callback(
            [weak = weak_from_this(), &s](StateBase&) {
                if (auto self = weak.lock()) {
                    --s.pending_reads;
                    self->schedule_exit_check();
                }
            },
            false);
    }
    return ip;
}

InProgress<void> ProcessCore::write(std::string data) {
    if (!in_.core())
        throw UsageError("kaa::Process::write(): stdin is not a pipe; start the process with "
                         "ProcessOptions::stdin_mode = kaa::Stdio::pipe");
    if (in_close_requested_)
        throw UsageError(
            "kaa::Process::write(): stdin was closed with close_stdin(); write before closing it");
    last_write_ = in_.write(std::move(data));
    return last_write_;
}

void ProcessCore::close_stdin() {
    if (!in_.core() || in_close_requested_)
        return;
    in_close_requested_ = true;
    if (last_write_ && !last_write_.finished()) {
        // Writes go out in order: once the last one is done (or failed), so
        // are the others.
        last_write_.state()->add_callback(
            [weak = weak_from_this()](StateBase&) {
                if (auto self = weak.lock())
                    close_channel(self->in_, "close_stdin()");
            },
            false);
    } else {
        close_channel(in_, "close_stdin()");
    }
    last_write_ = nullptr;
}

void ProcessCore::release() noexcept {
    auto keep = shared_from_this();
    handle_alive_ = false;
    signals_.stdout_line.disconnect_all();
    signals_.stderr_line.disconnect_all();
    signals_.exited.disconnect_all();
    // A copy of a channel handle may outlive this core: nothing of it may
    // stay connected there.
    out_.forward.disconnect();
    err_.forward.disconnect();
    if (started_ && !status_ && pidfd_)
        pidfd_send_signal(pidfd_->native_handle(), SIGKILL);
    // Pending reads and writes fail with ConnectionClosed. The pidfd wait
    // (if the child still runs) keeps this core alive until the child is
    // reaped; its exited() operations then finish.
    close_channel(out_.channel, "the Process was destroyed");
    close_channel(err_.channel, "the Process was destroyed");
    close_channel(in_, "the Process was destroyed");
    if (exit_pending_)
        check_exit();
}

void ProcessCore::terminate(bool deliver) noexcept {
    auto keep = shared_from_this();
    try {
        if (started_ && !status_ && pidfd_) {
            const int fd = pidfd_->native_handle();
            pidfd_send_signal(fd, SIGKILL);
            // Asio made the pidfd non-blocking, which makes waitid() on it
            // non-blocking too (Linux >= 5.10): wait with poll() first.
            pollfd pfd{fd, POLLIN, 0};
            while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
            }
            siginfo_t si{};
            int r;
            do {
                r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &si, WEXITED | WNOHANG);
            } while (r < 0 && errno == EINTR);
            if (r == 0 && si.si_pid == 0)
                r = -1, errno = ECHILD;
            if (!deliver)
                status_ = r == 0 ? status_from(si) : ExitStatus{-1, 0, false};
            else if (r == 0)
                on_reaped(status_from(si));
            else
                on_lost_child(errno);
        }
        kill_timer_.reset();
        pidfd_.reset();
        if (deliver) {
            // Pending reads fail with ConnectionClosed; the exit does not
            // wait for output any more.
            close_channel(out_.channel, "the main loop shut down");
            close_channel(err_.channel, "the main loop shut down");
            close_channel(in_, "the main loop shut down");
            if (exit_pending_)
                deliver_exit();
        }
    } catch (...) {
        if (deliver)
            report_unhandled(std::current_exception(), "kaa::Process shutdown");
    }
}

} // namespace detail

Process::Process(std::vector<std::string> argv, ProcessOptions options) {
    if (argv.empty() || argv.front().empty())
        throw std::invalid_argument("kaa::Process: the argument vector is empty; argv[0] names the program");
    core_ = std::make_shared<detail::ProcessCore>(std::move(argv), std::move(options));
}

Process::Process(Process&&) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        if (core_)
            core_->release();
        core_ = std::move(other.core_);
    }
    return *this;
}

Process::~Process() {
    if (!core_)
        return;
    if (detail::in_loop_context()) {
        core_->release();
        return;
    }
    try {
        detail::post_to_loop([core = std::move(core_)] { core->release(); });
    } catch (...) {
        // Only allocation can fail here; the child is then reaped at loop shutdown.
    }
}

detail::ProcessCore& Process::core() const {
    if (!core_)
        throw EmptyHandle("kaa::Process: this Process was moved from; use the Process it was moved to");
    if (!detail::in_loop_context())
        detail::throw_wrong_thread();
    return *core_;
}

InProgress<ExitStatus> Process::start() {
    core().start();
    return core_->exited();
}

InProgress<ExitStatus> Process::exited() const {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("exited()");
    return c.exited();
}

InProgress<ExitStatus> Process::stop(Duration grace) {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("stop()");
    return c.stop(grace);
}

bool Process::send_signal(int sig) {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("send_signal()");
    return c.send_signal(sig);
}

InProgress<std::string> Process::read(Output from) {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("read()");
    return c.read(c.stream(from), false);
}

InProgress<std::string> Process::readline(Output from) {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("readline()");
    return c.read(c.stream(from), true);
}

InProgress<void> Process::write(std::string data) {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("write()");
    return c.write(std::move(data));
}

void Process::close_stdin() {
    auto& c = core();
    if (!c.started_)
        detail::throw_not_started("close_stdin()");
    c.close_stdin();
}

IOChannel Process::stdin_channel() const { return core().in_; }
IOChannel Process::stdout_channel() const { return core().stream(out).channel; }
IOChannel Process::stderr_channel() const { return core().stream(err).channel; }

bool Process::running() const {
    auto& c = core();
    return c.started_ && !c.status_;
}

pid_t Process::pid() const { return core().pid_; }

std::optional<ExitStatus> Process::exit_status() const { return core().status_; }

const std::vector<std::string>& Process::argv() const { return core().argv_; }

Process::Signals& Process::signals() { return core().signals_; }

} // namespace kaa
