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
#include <deque>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

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

// Output is read ahead into a buffer until it holds this much while nobody
// consumes it (no slot connected, no read pending); then the pipe fills and
// the child blocks, as it would with any pipe nobody reads.
constexpr std::size_t read_ahead_limit = 256 * 1024;
constexpr std::size_t read_chunk = 64 * 1024;

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

// write() to a pipe whose reader may be gone, without letting SIGPIPE kill
// the application and without changing its signal dispositions: SIGPIPE is
// blocked on this thread for the call, and one it raised is consumed.
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t size) noexcept {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t old_mask;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sigset_t pending;
    sigpending(&pending);
    const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t n;
    do {
        n = ::write(fd, data, size);
    } while (n < 0 && errno == EINTR);
    const int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    errno = saved;
    return n;
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

void set_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0)
        ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

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

/// One output pipe (stdout or stderr) and what waits for its data.
struct OutputStream {
    struct PendingRead {
        std::shared_ptr<State<std::string>> state;
        bool line = false;
    };

    Signal<void(std::string)>* signal = nullptr;
    std::optional<asio::posix::stream_descriptor> sd;
    bool piped = false;
    bool eof = false;     // no more data will come: end of file, or closed
    bool waiting = false; // an async_wait is armed (only after EAGAIN: Asio's epoll is edge-triggered)
    bool service_posted = false;
    std::string buffer; // unconsumed data is buffer[head, size)
    std::size_t head = 0;
    std::deque<PendingRead> reads;

    std::size_t available() const noexcept { return buffer.size() - head; }
    void consume(std::size_t n) {
        head += n;
        if (head == buffer.size()) {
            buffer.clear();
            head = 0;
        } else if (head > 4096 && head > buffer.size() / 2) {
            buffer.erase(0, head);
            head = 0;
        }
    }
    std::string take(std::size_t n) {
        std::string out = buffer.substr(head, n);
        consume(n);
        return out;
    }
    // A result for a read (line or not), or nullopt if it must wait.
    std::optional<std::string> take_for(bool line) {
        if (line) {
            std::size_t nl = buffer.find('\n', head);
            if (nl != std::string::npos)
                return take(nl + 1 - head);
        } else if (available() > 0) {
            return take(available());
        }
        if (eof)
            return take(available()); // a last line without "\n", or "" at end of file
        return std::nullopt;
    }
    bool wants_data() const {
        return sd && !eof && (!reads.empty() || !signal->empty() || available() < read_ahead_limit);
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
    std::optional<ExitStatus> status_;

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
    struct PendingWrite {
        std::string data;
        std::size_t done = 0;
        std::shared_ptr<State<void>> state;
    };

    const std::string& program() const { return argv_.front(); }
    void arm_exit_wait();
    void on_pidfd_readable();
    void on_exit(ExitStatus st);
    void on_lost_child(int err);
    void finish_exit_waiters();

    void pump(OutputStream& s, bool drain);
    void deliver(OutputStream& s);
    void schedule_service(OutputStream& s);
    void close_output(OutputStream& s, bool deliver_rest);
    void fail_reads(OutputStream& s, int err, const char* why);

    void flush_writes();
    void arm_write_wait();
    void fail_writes(int err, const std::string& why);
    void close_stdin_now();

    std::optional<asio::posix::stream_descriptor> pidfd_;
    std::optional<asio::posix::stream_descriptor> in_;
    bool in_piped_ = false;
    bool in_waiting_ = false;
    bool in_close_requested_ = false;
    std::deque<PendingWrite> writes_;
    OutputStream out_;
    OutputStream err_;
    std::vector<std::shared_ptr<State<ExitStatus>>> exit_waiters_;
    std::shared_ptr<State<ExitStatus>> stop_op_;
    std::optional<asio::steady_timer> kill_timer_;
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
    if (options_.stdin_mode == Stdio::pipe) {
        set_nonblocking(in_pipe.write_end.fd);
        in_.emplace(io, in_pipe.write_end.release());
        in_piped_ = true;
    }
    for (auto [mode, pipe, s] : {std::tuple{options_.stdout_mode, &out_pipe, &out_},
                                 std::tuple{options_.stderr_mode, &err_pipe, &err_}}) {
        if (mode != Stdio::pipe)
            continue;
        set_nonblocking(pipe->read_end.fd);
        s->sd.emplace(io, pipe->read_end.release());
        s->piped = true;
        // A slot connected while data waits in the buffer gets it on the
        // next iteration.
        s->signal->changed().connect([weak = weak_from_this(), s](SignalChange change) {
            if (change != SignalChange::connected)
                return;
            if (auto self = weak.lock())
                self->schedule_service(*s);
        });
        // First read on the next iteration, so that slots connected right
        // after start() see everything.
        schedule_service(*s);
    }
    service_ = service;
    service->add(this, loop);
    arm_exit_wait();
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
    on_exit(status_from(si));
}

void ProcessCore::on_lost_child(int err) {
    // ECHILD: something else reaped the child (a SIGCHLD handler calling
    // waitpid(-1), or SIGCHLD set to SIG_IGN); its status is gone.
    auto keep = shared_from_this();
    status_ = ExitStatus{-1, 0, false};
    pidfd_.reset();
    kill_timer_.reset();
    auto e = std::make_exception_ptr(ProcessError(err, program(),
                                                  "kaa::Process: the exit status of '" + program() +
                                                      "' is lost: something else reaped the child (do not "
                                                      "set SIGCHLD to SIG_IGN or call waitpid(-1))"));
    auto waiters = std::move(exit_waiters_);
    exit_waiters_.clear();
    if (auto stop = std::move(stop_op_))
        waiters.push_back(std::move(stop));
    for (auto& w : waiters)
        if (w->status() == Status::pending)
            InProgress<ExitStatus>(w).fail(e);
}

void ProcessCore::on_exit(ExitStatus st) {
    auto keep = shared_from_this();
    status_ = st;
    pidfd_.reset();
    kill_timer_.reset();
    // Everything the child wrote is in the pipes now: deliver it before the
    // exit. (Output a grandchild writes later still arrives afterwards.)
    pump(out_, true);
    pump(err_, true);
    if (!handle_alive_) {
        close_output(out_, false);
        close_output(err_, false);
    }
    if (in_) {
        fail_writes(EPIPE, "the child exited before reading it");
        close_stdin_now();
    }
    if (auto stop = std::move(stop_op_))
        InProgress<ExitStatus>(stop).finish(st);
    signals_.exited.emit(st);
    finish_exit_waiters();
}

void ProcessCore::finish_exit_waiters() {
    auto waiters = std::move(exit_waiters_);
    exit_waiters_.clear();
    for (auto& w : waiters)
        if (w->status() == Status::pending)
            InProgress<ExitStatus>(w).finish(*status_);
}

InProgress<ExitStatus> ProcessCore::exited() {
    InProgress<ExitStatus> ip;
    if (status_) {
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
    if (status_)
        return make_finished<ExitStatus>(*status_);
    if (stop_op_)
        return InProgress<ExitStatus>(stop_op_);
    InProgress<ExitStatus> ip;
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

// Reads while someone wants the data (or, with `drain`, until the pipe is
// empty), delivering as it goes. Arms a wait only after EAGAIN: Asio's epoll
// reactor is edge-triggered, so a wait armed on a pipe that still holds data
// might never complete.
void ProcessCore::pump(OutputStream& s, bool drain) {
    // A drain reads what the pipe holds now, and once more to see end of
    // file; it must not chase a grandchild that keeps writing.
    int drain_reads = 1;
    if (drain && s.sd) {
        int queued = 0;
        if (::ioctl(s.sd->native_handle(), FIONREAD, &queued) == 0 && queued > 0)
            drain_reads += (queued + static_cast<int>(read_chunk) - 1) / static_cast<int>(read_chunk);
    }
    while (s.sd && !s.eof && (drain ? drain_reads-- > 0 : s.wants_data())) {
        const std::size_t old = s.buffer.size();
        s.buffer.resize(old + read_chunk);
        ssize_t n = ::read(s.sd->native_handle(), s.buffer.data() + old, read_chunk);
        const int e = errno;
        s.buffer.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
        if (n > 0) {
            deliver(s);
            continue;
        }
        if (n < 0 && e == EINTR)
            continue;
        if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
            if (!s.waiting) {
                s.waiting = true;
                s.sd->async_wait(asio::posix::stream_descriptor::wait_read,
                                 [self = shared_from_this(), &s](const boost::system::error_code& ec) {
                                     s.waiting = false;
                                     if (!ec)
                                         self->pump(s, false);
                                 });
            }
            return;
        }
        // End of file (or a read error, which ends the stream the same way).
        close_output(s, true);
        return;
    }
    deliver(s);
}

// Hands buffered data to pending reads (in call order), then complete lines
// to the line signal; at end of file the rest goes too.
void ProcessCore::deliver(OutputStream& s) {
    while (!s.reads.empty()) {
        std::optional<std::string> got = s.take_for(s.reads.front().line);
        if (!got)
            break;
        auto state = std::move(s.reads.front().state);
        s.reads.pop_front();
        InProgress<std::string>(std::move(state)).finish(std::move(*got));
    }
    while (s.reads.empty() && !s.signal->empty() && s.available() > 0) {
        std::size_t nl = s.buffer.find('\n', s.head);
        std::string line;
        if (nl != std::string::npos) {
            line = s.buffer.substr(s.head, nl - s.head);
            s.consume(nl + 1 - s.head);
        } else if (s.eof) {
            line = s.take(s.available());
        } else {
            break;
        }
        s.signal->emit(std::move(line));
    }
}

void ProcessCore::schedule_service(OutputStream& s) {
    if (s.service_posted || !s.piped)
        return;
    s.service_posted = true;
    post_to_loop([self = shared_from_this(), &s] {
        s.service_posted = false;
        if (s.waiting || !s.sd)
            self->deliver(s);
        else
            self->pump(s, false);
    });
}

void ProcessCore::close_output(OutputStream& s, bool deliver_rest) {
    s.eof = true;
    s.sd.reset(); // cancels an armed wait; its handler sees operation_aborted
    if (deliver_rest)
        deliver(s);
}

void ProcessCore::fail_reads(OutputStream& s, int err, const char* why) {
    auto reads = std::move(s.reads);
    s.reads.clear();
    if (reads.empty())
        return;
    auto e = std::make_exception_ptr(ProcessError(err, program(), std::string("kaa::Process: ") + why));
    for (auto& r : reads)
        if (r.state->status() == Status::pending)
            InProgress<std::string>(r.state).fail(e);
}

InProgress<std::string> ProcessCore::read(OutputStream& s, bool line) {
    if (!s.piped)
        throw UsageError(std::string("kaa::Process::") + (line ? "readline" : "read") +
                         "(): " + (&s == &err_ ? "stderr" : "stdout") +
                         " is not a pipe; start the process with ProcessOptions::" +
                         (&s == &err_ ? "stderr_mode" : "stdout_mode") + " = kaa::Stdio::pipe");
    if (s.reads.empty()) {
        if (std::optional<std::string> got = s.take_for(line)) {
            schedule_service(s); // the buffer may have dropped below the read-ahead limit
            return make_finished<std::string>(std::move(*got));
        }
    }
    InProgress<std::string> ip;
    s.reads.push_back({ip.typed_ptr(), line});
    ip.typed().set_abort_hook(
        [weak = weak_from_this(), &s, raw = ip.state().get()](const InProgressAborted&, std::exception_ptr) {
            if (auto self = weak.lock())
                std::erase_if(s.reads, [raw](const auto& r) { return r.state.get() == raw; });
            return false;
        });
    schedule_service(s);
    return ip;
}

InProgress<void> ProcessCore::write(std::string data) {
    if (!in_piped_)
        throw UsageError("kaa::Process::write(): stdin is not a pipe; start the process with "
                         "ProcessOptions::stdin_mode = kaa::Stdio::pipe");
    if (in_close_requested_)
        throw UsageError(
            "kaa::Process::write(): stdin was closed with close_stdin(); write before closing it");
    if (!in_)
        return make_failed<void>(std::make_exception_ptr(
            ProcessError(EPIPE, program(),
                         "kaa::Process::write(): the child's stdin is closed (it closed it or "
                         "exited)")));
    InProgress<void> ip;
    writes_.push_back({std::move(data), 0, ip.typed_ptr()});
    ip.typed().set_abort_hook(
        [weak = weak_from_this(), raw = ip.state().get()](const InProgressAborted&, std::exception_ptr) {
            if (auto self = weak.lock())
                std::erase_if(self->writes_, [raw](const PendingWrite& w) { return w.state.get() == raw; });
            return false;
        });
    if (writes_.size() == 1 && !in_waiting_)
        flush_writes();
    return ip;
}

void ProcessCore::flush_writes() {
    auto keep = shared_from_this();
    while (in_ && !writes_.empty()) {
        PendingWrite& w = writes_.front();
        if (w.done < w.data.size()) {
            ssize_t n =
                write_without_sigpipe(in_->native_handle(), w.data.data() + w.done, w.data.size() - w.done);
            if (n < 0) {
                const int e = errno;
                if (e == EAGAIN || e == EWOULDBLOCK) {
                    arm_write_wait();
                    return;
                }
                fail_writes(e, e == EPIPE ? "the child closed its stdin" : "writing to its stdin failed");
                close_stdin_now();
                return;
            }
            w.done += static_cast<std::size_t>(n);
            if (w.done < w.data.size()) {
                // Part of it is out: it can no longer be taken back.
                w.state->clear_abort_hook();
                w.state->set_abortable(false);
                continue;
            }
        }
        auto state = std::move(w.state);
        writes_.pop_front();
        state->clear_abort_hook();
        InProgress<void>(std::move(state)).finish();
    }
    if (in_ && writes_.empty() && in_close_requested_)
        close_stdin_now();
}

void ProcessCore::arm_write_wait() {
    if (in_waiting_)
        return;
    in_waiting_ = true;
    in_->async_wait(asio::posix::stream_descriptor::wait_write,
                    [self = shared_from_this()](const boost::system::error_code& ec) {
                        self->in_waiting_ = false;
                        if (!ec)
                            self->flush_writes();
                    });
}

void ProcessCore::fail_writes(int err, const std::string& why) {
    auto writes = std::move(writes_);
    writes_.clear();
    if (writes.empty())
        return;
    auto e = std::make_exception_ptr(
        ProcessError(err, program(), "kaa::Process::write() to '" + program() + "': " + why));
    for (auto& w : writes) {
        w.state->clear_abort_hook();
        if (w.state->status() == Status::pending)
            InProgress<void>(w.state).fail(e);
    }
}

void ProcessCore::close_stdin_now() { in_.reset(); }

void ProcessCore::close_stdin() {
    if (!in_piped_ || in_close_requested_)
        return;
    in_close_requested_ = true;
    if (writes_.empty())
        close_stdin_now();
}

void ProcessCore::release() noexcept {
    auto keep = shared_from_this();
    handle_alive_ = false;
    signals_.stdout_line.disconnect_all();
    signals_.stderr_line.disconnect_all();
    signals_.exited.disconnect_all();
    try {
        if (started_ && !status_ && pidfd_)
            pidfd_send_signal(pidfd_->native_handle(), SIGKILL);
        fail_reads(out_, ECANCELED, "the Process was destroyed while a read was pending");
        fail_reads(err_, ECANCELED, "the Process was destroyed while a read was pending");
        fail_writes(ECANCELED, "the Process was destroyed before the data was written");
    } catch (...) {
        report_unhandled(std::current_exception(), "kaa::Process destructor");
    }
    close_output(out_, false);
    close_output(err_, false);
    close_stdin_now();
    // The pidfd wait (if the child still runs) keeps this core alive until
    // the child is reaped; its exited() operations then finish.
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
            if (!deliver) {
                status_ = r == 0 ? status_from(si) : ExitStatus{-1, 0, false};
            } else if (r == 0) {
                on_exit(status_from(si));
            } else {
                on_lost_child(errno);
            }
        }
        kill_timer_.reset();
        pidfd_.reset();
        if (deliver) {
            close_output(out_, true);
            close_output(err_, true);
            fail_writes(EPIPE, "the loop shut down");
        } else {
            out_.eof = err_.eof = true;
            out_.sd.reset();
            err_.sd.reset();
        }
        close_stdin_now();
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

bool Process::running() const {
    auto& c = core();
    return c.started_ && !c.status_;
}

pid_t Process::pid() const { return core().pid_; }

std::optional<ExitStatus> Process::exit_status() const { return core().status_; }

const std::vector<std::string>& Process::argv() const { return core().argv_; }

Process::Signals& Process::signals() { return core().signals_; }

} // namespace kaa
