// SPDX-License-Identifier: BSL-1.0
// What stackful coroutines (src/coroutine.cpp) and C++20 Tasks (kaa/task.hpp)
// share: the abort state machine, the wait bookkeeping, and how an ended
// coroutine finishes its InProgress. One mechanism, so that both kinds abort,
// cascade, unwind at shutdown and report alike. Library plumbing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "kaa/in_progress.hpp"

namespace kaa {
struct WorkRecord;
}

namespace kaa::detail {

/// The part of a running coroutine (stackful or stackless) that waiting and
/// aborting need. The hot paths (check_can_suspend, after_wait,
/// rethrow_if_failed) are inline and branch to out-of-line code only when
/// something is wrong.
class AwaitCore {
public:
    AwaitCore() = default;
    AwaitCore(const AwaitCore&) = delete;
    AwaitCore& operator=(const AwaitCore&) = delete;

    /// The abort handler of the coroutine's InProgress (also what the loop's
    /// shutdown calls). Returns true: the coroutine finishes the state itself.
    virtual bool on_abort(const InProgressAborted& exc, std::exception_ptr e) = 0;

    bool aborted() const noexcept { return aborted_; }
    /// The coroutine's InProgress (empty once it ended).
    const std::shared_ptr<StateBase>& state_ptr() const noexcept { return state_; }

    /// The body threw `e`.
    void failed(std::exception_ptr e) noexcept { error_ = std::move(e); }

    /// For kaa::live_work() (loop thread): fills in the record's kind, name,
    /// state and creation site; `now` is the coarse clock's reading.
    virtual void describe(WorkRecord& r, std::int64_t now) const = 0;
    /// What it waits on (empty while running or time-slicing).
    const InProgressRef& waiting_on() const noexcept { return waiting_on_; }

    // Registry links (see src/await_support.hpp).
    AwaitCore* next = nullptr;
    AwaitCore* prev = nullptr;

protected:
    ~AwaitCore() = default;

    /// Before a suspension: raises a pending abort, or SuspendAfterAbort once
    /// the coroutine was aborted (`name`, a coroutine's name, or nullptr for
    /// a Task, goes into the message).
    void check_can_suspend(const char* name) {
        if (pending_abort_ || aborted_) [[unlikely]]
            refuse_suspend(name);
    }
    /// After being resumed from a wait: raises a pending abort.
    void after_wait() {
        waiting_on_ = InProgressRef();
        if (pending_abort_) [[unlikely]]
            std::rethrow_exception(std::exchange(pending_abort_, nullptr));
    }
    /// After a wait on `ip` (finished): rethrows its failure, observing it;
    /// an abort is renamed to name `ip` as what was waited on (as kaa).
    static void rethrow_if_failed(StateBase& s, const InProgressRef& ip) {
        if (s.failed()) [[unlikely]]
            rethrow_awaited_failure(s, ip);
    }

    /// The common start of an abort. Records it; if the coroutine is running
    /// (aborted by itself or by code it called) the abort is raised at its
    /// next suspension and false is returned. Otherwise it stops waiting,
    /// cascades into what it waited on (if nobody else waits on that and it
    /// is abortable), voids scheduled wake-ups (token), and returns true: the
    /// caller resumes the coroutine, which unwinds from its suspension point.
    bool begin_abort(const InProgressAborted& exc, std::exception_ptr eptr);

    /// How a coroutine ended, moved out of the core (which may be destroyed
    /// before its InProgress is finished).
    struct Outcome {
        std::shared_ptr<StateBase> state;
        std::exception_ptr error;
        std::exception_ptr abort_exc;
        bool aborted = false;
    };
    Outcome take_outcome() noexcept {
        return Outcome{std::move(state_), std::move(error_), std::move(abort_exc_), aborted_};
    }

    /// After the coroutine's last step: finishes its InProgress with the
    /// outcome (the abort, the error, or the value `set_value` stores; pass an
    /// empty function when the value is already in the state). An error
    /// thrown while unwinding from an abort, and an InProgress that someone
    /// else finished, are reported; `kind` ("coroutine", "task") names it.
    /// `origin` ("coroutine 'x' started at a.cpp:12", or empty) goes into
    /// those reports and is kept for the report of a failure nobody observes.
    static void settle(Outcome o, const char* kind, std::string origin,
                       UniqueFunction<void(StateBase&)> set_value) noexcept;

    std::shared_ptr<StateBase> state_;
    std::exception_ptr error_;
    std::exception_ptr pending_abort_;
    std::exception_ptr abort_exc_;
    InProgressRef waiting_on_;
    std::uint32_t wait_id_ = 0;
    std::uint32_t token_ = 0;  // bumped to void scheduled wake-ups
    std::int64_t since_ = 0;   // coarse clock when it entered its state; 0: not timed
    bool running_ = false;
    bool aborted_ = false;

private:
    [[noreturn]] void refuse_suspend(const char* name);
    [[noreturn]] static void rethrow_awaited_failure(StateBase& s, const InProgressRef& ip);
};

/// Aborts `m` with `exc` if it is pending, abortable and nobody waits on it
/// (the cascade rule of coroutines and any/all); an exception from its abort
/// handlers is reported under `where`.
void abort_if_unwatched(const InProgressRef& m, const InProgressAborted& exc, const char* where) noexcept;

/// Whether `e` holds an InProgressAborted.
bool is_abort(const std::exception_ptr& e) noexcept;

} // namespace kaa::detail
