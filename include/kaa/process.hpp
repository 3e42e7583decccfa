// SPDX-License-Identifier: BSL-1.0
// Process: a child process driven from the loop (kaa.Process).
//
// A Process runs a program with an argument vector, an optional environment
// and working directory. Its stdin, stdout and stderr are IOChannels (pipes):
// the output arrives line by line as signals or through awaitable
// read()/readline(); write() feeds the stdin; exited() is an InProgress for
// the exit status; stop() asks politely (SIGTERM) and then insists (SIGKILL).
//
// Guarantees (see doc/process.md):
//  * Start-up errors are synchronous: start() throws ProcessError when the
//    program does not exist, is not executable, or the working directory is
//    missing -- posix_spawn reports the exec failure to the parent.
//  * No fd leaks: kaa's pipe ends are close-on-exec, and the child closes
//    every descriptor above 2 before exec, including ones the application
//    opened without O_CLOEXEC.
//  * No zombies: the child is reaped as soon as it exits, through a pidfd
//    watched by the loop's Asio context (no SIGCHLD handler). This needs
//    Linux >= 5.3 (start() throws ProcessError otherwise) and nobody else
//    reaping children behind kaa's back (waitpid(-1), SIGCHLD set to SIG_IGN).
//  * Output the child wrote reaches whoever reads it (line signals, pending
//    reads) before exited() finishes and `exited` is emitted: for each pipe
//    being read, the exit waits until its end of file -- unless another
//    process (a grandchild) still holds the pipe, which never holds the exit
//    status up.
//  * Every callback and signal runs on the loop thread; a Process is used
//    from the loop thread only (WrongThread otherwise).
//  * Destroying a Process whose child still runs kills the child (SIGKILL);
//    the loop reaps it and the exited() operations handed out still finish.
//    At loop shutdown every child still running is killed and reaped and its
//    pipes are closed (pending reads and writes fail with ConnectionClosed).
//    Call stop() and wait for it to end children politely.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kaa/errors.hpp"
#include "kaa/fwd.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/io_channel.hpp"
#include "kaa/signal.hpp"

namespace kaa {

/// How a child process ended: an exit code, or the signal that killed it.
struct ExitStatus {
    /// The exit code (0-255) if the child exited; -1 if a signal killed it.
    int code = 0;
    /// The signal that killed the child; 0 if it exited.
    int signal = 0;
    /// A signal killed it and it dumped core.
    bool core_dumped = false;

    /// The child called exit() (or returned from main).
    bool exited() const noexcept { return signal == 0; }
    /// A signal killed the child.
    bool killed() const noexcept { return signal != 0; }
    /// Exited with code 0.
    bool success() const noexcept { return signal == 0 && code == 0; }
    /// "exit code 3", "killed by signal 9 (SIGKILL)".
    std::string to_string() const;

    friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

/// What a child's stdin, stdout or stderr is connected to.
enum class Stdio {
    pipe,    ///< a pipe to the Process (write()/read()/signals)
    inherit, ///< the parent's descriptor
    null,    ///< /dev/null
};

/// How a Process starts its child.
struct ProcessOptions {
    /// Environment variables to set in the child (NAME -> value).
    std::map<std::string, std::string> env;
    /// false: `env` is added to the parent's environment (overriding the
    /// variables it names). true: `env` is the child's whole environment.
    bool replace_env = false;
    /// The child's working directory; empty = the parent's.
    std::string cwd;
    Stdio stdin_mode = Stdio::pipe;
    Stdio stdout_mode = Stdio::pipe;
    Stdio stderr_mode = Stdio::pipe;
};

namespace detail {
class ProcessCore;
}

/// A child process (kaa.Process). Movable, not copyable; a moved-from Process
/// is empty and its methods throw EmptyHandle. Loop thread only.
class Process {
public:
    /// Which output stream read() and readline() read.
    enum Output { out, err };

    /// The Process's signals, emitted on the loop thread.
    struct Signals {
        /// Each line the child writes to stdout, without its "\n"; a last line
        /// without "\n" is emitted when stdout ends. Lines that read()/readline()
        /// take are not emitted. Data that arrived while nothing was connected
        /// is emitted on the iteration after the first slot connects.
        Signal<void(std::string)> stdout_line;
        /// The same for stderr.
        Signal<void(std::string)> stderr_line;
        /// Once, when the child has exited and been reaped.
        Signal<void(ExitStatus)> exited;
    };

    /// A Process for `argv` (argv[0] is the program: a path, or a name looked
    /// up in the parent's PATH as execvp() does). Nothing runs until start().
    /// @throws std::invalid_argument if `argv` is empty.
    explicit Process(std::vector<std::string> argv, ProcessOptions options = {});
    Process(Process&&) noexcept;
    /// Releases (see ~Process) the child this one held, then takes `other`'s.
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    /// Kills a child that still runs (SIGKILL) and lets the loop reap it;
    /// closes the pipes (pending reads and writes fail with
    /// ConnectionClosed) and disconnects the signals; exited() operations
    /// still finish.
    ~Process();

    /// Starts the child and returns exited().
    /// @throws ProcessError if it cannot start (code() is the errno: ENOENT
    /// for a missing program or working directory, EACCES...); UsageError if
    /// already started; LoopError without a MainLoop; WrongThread.
    InProgress<ExitStatus> start();

    /// The exit status, once the child has exited and its output has reached
    /// its readers (see the guarantees above). Each call returns a new
    /// operation: aborting one cancels only that wait, never the child (use
    /// stop() for that).
    /// @throws UsageError before start().
    InProgress<ExitStatus> exited() const;

    /// SIGTERM now, SIGKILL if the child still runs after `grace`; finishes
    /// with the exit status once the child has exited. While one stop() is
    /// under way, later calls return the same operation (kaa's
    /// POLICY_SINGLETON; their `grace` is ignored). After the exit it returns
    /// a finished operation. Aborting it cancels the pending SIGKILL (the
    /// SIGTERM is already sent).
    /// @throws UsageError before start().
    InProgress<ExitStatus> stop(Duration grace = std::chrono::seconds(3));

    /// Sends `sig` to the child (through its pidfd: never to a recycled pid).
    /// Returns false if the child has already been reaped.
    /// @throws UsageError before start(); std::system_error if sending fails.
    bool send_signal(int sig);

    /// stdout_channel().read() (or stderr's): what is buffered, or the next
    /// chunk; "" at end of file. Aborting it cancels only this read; no data
    /// is lost. Fails with ConnectionClosed if the pipe is closed meanwhile
    /// (the Process destroyed, the loop shut down).
    /// @throws UsageError if that stream is not Stdio::pipe or before start().
    InProgress<std::string> read(Output from = out);
    /// stdout_channel().readline() (or stderr's): one line, with its "\n";
    /// the last line may lack it; "" at end of file. Reads are served in call
    /// order, before the line signals see the data.
    /// @throws as read().
    InProgress<std::string> readline(Output from = out);

    /// stdin_channel().write(data): queues `data`; finishes when all of it is
    /// in the pipe. Fails with ConnectionClosed if the child closes its stdin
    /// or exits first. Aborting it is refused (NotAbortable) once part of it
    /// was written; before that it takes the data out of the queue.
    /// @throws UsageError if stdin is not Stdio::pipe, before start(), or
    /// after close_stdin().
    InProgress<void> write(std::string data);
    /// Closes the child's stdin once the queued writes are out (the child sees
    /// end of file). Idempotent.
    void close_stdin();

    /// The pipes, for what Process does not wrap (read_bytes(), the raw
    /// `read` signal...). Not open unless the stream is Stdio::pipe and the
    /// Process started; closed when the child exits (stdin) or the Process
    /// goes.
    IOChannel stdin_channel() const;
    IOChannel stdout_channel() const;
    IOChannel stderr_channel() const;

    /// Started and not yet reaped.
    bool running() const;
    /// The child's pid once started (it stays readable after the exit), or -1.
    pid_t pid() const;
    /// The exit status once the child has been reaped (exited() may still
    /// wait for the output to reach its readers).
    std::optional<ExitStatus> exit_status() const;
    const std::vector<std::string>& argv() const;

    Signals& signals();

private:
    detail::ProcessCore& core() const;
    std::shared_ptr<detail::ProcessCore> core_;
};

} // namespace kaa
