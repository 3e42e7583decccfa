// SPDX-License-Identifier: BSL-1.0
// Every exception type kaa throws, in one place.
//
// Two families:
//  * UsageError and its subclasses (all std::logic_error) report misuse of the
//    API: finishing an InProgress twice, suspending outside a coroutine, using
//    the loop from the wrong place. Their messages say what to do instead.
//  * InProgressAborted (and TimeoutError) travel through asynchronous
//    operations to say "this was aborted". They deliberately do NOT derive from
//    std::exception, as kaa's derives from BaseException and Boost.Context's
//    forced_unwind is not a std::exception: a generic
//    `catch (const std::exception&)` inside a coroutine must not swallow an
//    abort and carry on as if nothing happened. Catch InProgressAborted by name.
//
// Errors of the outside world (a child process that cannot start, a pipe the
// other side closed, a coroutine stack that cannot be mapped) are
// std::system_error subclasses: ProcessError, StackAllocationError.
#pragma once

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "kaa/fwd.hpp"

namespace kaa {

/// Base of every misuse error. The message names the mistake and the remedy.
class UsageError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// finish()/fail() on an InProgress that is already finished (abort() on a
/// finished one is harmless: it returns false).
class AlreadyFinished : public UsageError {
public:
    using UsageError::UsageError;
};

/// result() (or exception()) read before the InProgress finished.
class ResultNotReady : public UsageError {
public:
    using UsageError::UsageError;
};

/// abort() on an InProgress that cannot be aborted (nothing would stop the
/// work, or it is a noabort() view).
class NotAbortable : public UsageError {
public:
    using UsageError::UsageError;
};

/// A suspending call (await, yield) made outside any coroutine.
class NotInCoroutine : public UsageError {
public:
    using UsageError::UsageError;
};

/// A coroutine that was aborted caught InProgressAborted and then tried to
/// suspend again. It may clean up, but cannot wait any more.
class SuspendAfterAbort : public UsageError {
public:
    using UsageError::UsageError;
};

/// No kaa::MainLoop exists, or a second one was created, or the loop was used
/// after it shut down.
class LoopError : public UsageError {
public:
    using UsageError::UsageError;
};

/// An operation that must run on the loop thread was called from another
/// thread (or the reverse).
class WrongThread : public UsageError {
public:
    using UsageError::UsageError;
};

/// A handle that refers to nothing (default-moved-from InProgress, an empty
/// Timer callback...).
class EmptyHandle : public UsageError {
public:
    using UsageError::UsageError;
};

/// An unknown pool name was given to threaded(). The message lists the
/// registered ones.
class UnknownPool : public UsageError {
public:
    using UsageError::UsageError;
};

/// A blocking wait that could never finish (a worker waiting for a job
/// queued behind itself on its own serial thread).
class WouldDeadlock : public UsageError {
public:
    using UsageError::UsageError;
};

/// Generator::next() called while the previous next() is still pending: a
/// generator hands out one value at a time. Wait for that InProgress first.
class GeneratorBusy : public UsageError {
public:
    using UsageError::UsageError;
};

/// A child process (kaa::Process) could not be started, or its exit status
/// was lost. code() is the errno (ENOENT: the program or the working
/// directory does not exist; EACCES: not executable; ECHILD: something else
/// reaped the child); program() is argv[0]. Errors on its pipes are the
/// IOChannel ones (ConnectionClosed...).
class ProcessError : public std::system_error {
public:
    ProcessError(int errno_value, std::string program, const std::string& what)
        : std::system_error(errno_value, std::generic_category(), what), program_(std::move(program)) {}
    const std::string& program() const noexcept { return program_; }

private:
    std::string program_;
};

/// A coroutine stack could not be created: the memory or address space ran
/// out, or another guard-paged stack would exceed vm.max_map_count. Thrown by
/// kaa::coroutine() (and Coroutine calls) before anything started; nothing
/// leaks and the loop goes on. A resource limit, not a misuse: code() is the
/// errno (ENOMEM), what() says which limit and what to change.
class StackAllocationError : public std::system_error {
public:
    using std::system_error::system_error;
};

/// Raised inside an operation that was aborted: inside a coroutine at its
/// suspension point, and as the failure of the aborted InProgress.
///
/// `inprogress()` is the operation that was being waited on when the abort
/// arrived (for a coroutine: what it awaited, empty on a time slice; for any
/// other operation: itself); `origin()` is the operation whose abort() was
/// called. The same values are seen inside the coroutine, by its exception
/// callbacks and by anyone reading its failure (kaa, decision 23).
///
/// An exception object holds both operations: while you hold it (or the
/// aborted operation), neither accessor comes back empty. The copy an
/// operation keeps as its own failure refers to itself and to the origin
/// weakly (so that no operation keeps itself alive through its failure, and
/// a cascade forms no cycle); every read of the failure (result(),
/// exception(), exception callbacks, await) hands out a copy with strong
/// references again. Only an operation cascaded into by an abort whose
/// origin was dropped before anybody read the failure reports an empty
/// origin().
///
/// A failure with InProgressAborted is never reported as unhandled (an abort
/// is intentional); a TimeoutError is, like any other error.
class InProgressAborted {
public:
    explicit InProgressAborted(std::string message = "InProgress aborted");
    InProgressAborted(std::string message, InProgressRef inprogress, InProgressRef origin);
    InProgressAborted(const InProgressAborted&);
    InProgressAborted& operator=(const InProgressAborted&);
    virtual ~InProgressAborted();

    /// The message (as std::exception::what, for familiarity).
    const char* what() const noexcept { return message_.c_str(); }
    const std::string& message() const noexcept { return message_; }

    /// The operation that was waited on or aborted.
    InProgressRef inprogress() const;
    /// The operation whose abort() started this.
    InProgressRef origin() const;

    /// A copy of this exception (same dynamic type) that names another
    /// `inprogress`, keeping the origin; used when an abort travels on.
    std::exception_ptr with_inprogress(const InProgressRef& ip) const;
    /// A copy of this exception (same dynamic type) with both fields set.
    std::exception_ptr with(const InProgressRef& ip, const InProgressRef& origin) const;

    /// Library plumbing: the copy that `self` stores as its own failure
    /// (origin, and inprogress when it is `self`, held weakly).
    std::exception_ptr stored_by(const detail::StateBase* self) const;
    /// Library plumbing: a copy with strong references (see stored_by).
    std::exception_ptr strengthened() const;

protected:
    /// One field: strong in exceptions in flight, weak in a stored failure.
    struct Ref {
        std::shared_ptr<detail::StateBase> strong;
        std::weak_ptr<detail::StateBase> weak;
        std::shared_ptr<detail::StateBase> get() const { return strong ? strong : weak.lock(); }
    };
    /// A copy of the same dynamic type with these fields; a subclass that
    /// adds data overrides it.
    virtual std::exception_ptr copy_with(Ref inprogress, Ref origin) const;

    std::string message_;
    Ref inprogress_;
    Ref origin_;
};

/// An InProgress.timeout() ran out. It is an InProgressAborted, as in kaa,
/// because with abort=true it is also what aborts the guarded operation.
class TimeoutError : public InProgressAborted {
public:
    using InProgressAborted::InProgressAborted;

protected:
    std::exception_ptr copy_with(Ref inprogress, Ref origin) const override;
};

/// An I/O operation (IOChannel, Socket, Listener, IOMonitor) failed. code()
/// is the system's error code; what() says which operation and why. The
/// subclasses name the failures that callers usually treat apart. These are
/// ordinary std::exceptions (unlike InProgressAborted).
class IOError : public std::system_error {
public:
    using std::system_error::system_error;
};

/// The other end closed the connection while data was still required
/// (read_bytes() hit the end of the stream, write() to a closed pipe or
/// socket), or the channel was closed locally while the operation waited.
class ConnectionClosed : public IOError {
public:
    using IOError::IOError;
};

/// The peer reset the connection (ECONNRESET): it aborted instead of closing.
class ConnectionReset : public IOError {
public:
    using IOError::IOError;
};

/// Nobody listens at the address connected to (ECONNREFUSED).
class ConnectionRefused : public IOError {
public:
    using IOError::IOError;
};

/// A host name could not be resolved to an address.
class ResolveError : public IOError {
public:
    using IOError::IOError;
};

/// An I/O object was used before it was opened: read() on a Socket that is
/// not connected, accept() on a Listener that does not listen.
class NotConnected : public UsageError {
public:
    using UsageError::UsageError;
};

/// "type: message" for any exception_ptr, for reports and logs.
std::string describe(std::exception_ptr e);

} // namespace kaa
