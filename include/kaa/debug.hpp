// SPDX-License-Identifier: BSL-1.0
// Seeing inside a running program: every live coroutine, Task, threaded job
// and timer, what each one waits on, and who started it.
//
// kaa::live_work() returns one WorkRecord per live item; kaa::dump() formats
// them as text, and log_dump() sends that text to the log (kaa/log.hpp):
//
//   coroutine 'serve client 3'  suspended 12.4 s  started at server.cpp:41 (serve_client)
//     waits on: coroutine 'read request' (suspended 12.4 s)
//            -> threaded job 'parse' on pool "io": running 12.3 s on thread 4711
//
// The registry behind it is the bookkeeping the library keeps anyway (the
// coroutine list the shutdown unwinds, the pools' queues, the loop's timers);
// what this adds on the hot paths is a few stores when work starts, and one
// flag test when a coroutine suspends. The time a coroutine has spent in its
// state is measured only while state timing is on (set_state_timing(), or
// KAA_DUMP in the environment); otherwise it shows as unknown.
//
// Without code changes: with KAA_DUMP=1 in the environment, the MainLoop
// logs the dump when the process receives SIGUSR1 (handled on the loop
// thread, through Asio's signal_set, never inside the signal handler) and at
// a shutdown that still had live work.
//
// Guarantees:
//  * live_work() and dump() run on the loop thread and only read: they start,
//    resume and abort nothing. The jobs of thread pools are read under each
//    pool's lock, as a snapshot.
//  * The creation site is the call that started the work when it was given
//    options (coroutine({...}, fn), threaded({...}, fn)) or no arguments
//    besides the callable (coroutine(fn), threaded(fn)); a call with
//    arguments and no options records no site (pass `{}` as options to get
//    one).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "kaa/fwd.hpp"

namespace kaa {

/// What a WorkRecord describes.
enum class WorkKind : unsigned char {
    coroutine,  ///< a stackful coroutine (kaa::coroutine, kaa::Coroutine)
    task,       ///< a stackless kaa::Task
    job,        ///< a threaded job, queued or running on its pool
    timer,      ///< a Timer, OneShotTimer, AtTimer or delay() that is armed
};

/// "coroutine", "task", "threaded job", "timer".
const char* to_string(WorkKind kind) noexcept;

/// One step of a wait chain: what the previous item waits on.
struct WaitLink {
    /// The awaited item's record in the same live_work() result, if it is
    /// live work (a coroutine, a job...); nullopt for a plain InProgress.
    std::optional<std::size_t> index;
    /// One line: "coroutine 'B' (suspended 1.2 s)", "an InProgress nobody
    /// produces (pending)".
    std::string text;
    /// The link is shielded from aborts: the waiter waits on a noabort()
    /// view (or another unabortable InProgress), so aborting the waiter does
    /// not cascade past this point.
    bool noabort = false;
};

/// One live item.
struct WorkRecord {
    WorkKind kind = WorkKind::coroutine;
    /// The name given (CoroutineOptions::name), or one derived from the
    /// callable's type.
    std::string name;
    /// "running", "suspended" (waiting on an InProgress), "time slice"
    /// (yielded), "queued", "running on a worker", "armed".
    std::string state;
    /// How long it has been in `state`; nullopt when unknown (see
    /// set_state_timing()).
    std::optional<Duration> in_state;
    /// The pool of a job ("" for the default pool).
    std::string pool;
    /// The creation site: file, line, the enclosing function; file is empty
    /// when unknown.
    std::string file;
    unsigned line = 0;
    std::string function;
    /// The callable's type as the compiler spells it.
    std::string callable;
    /// What it waits on, followed transitively; empty when it waits on
    /// nothing. Ends at work that waits on nothing, at a plain InProgress,
    /// or where the chain would loop.
    std::vector<WaitLink> waits_on;
};

/// Every live coroutine, Task, threaded job and armed timer, coroutines first
/// (most recently started first), then Tasks, jobs (per pool: running, then
/// queued), timers.
/// @throws WrongThread off the loop thread; LoopError without a loop.
std::vector<WorkRecord> live_work();

/// The report of live_work() as text, one item per paragraph; "no live
/// work" when there is none.
/// @throws WrongThread off the loop thread; LoopError without a loop.
std::string dump();

/// Logs dump() at LogLevel::info, topic "dump". Loop thread.
void log_dump();

/// Turns on (or off) measuring how long each coroutine and Task has been in
/// its state (a coarse clock read per suspension). On from the start when
/// KAA_DUMP is set in the environment. Jobs and timers are always timed.
/// Any thread.
void set_state_timing(bool on) noexcept;

} // namespace kaa
