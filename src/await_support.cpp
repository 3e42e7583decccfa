// SPDX-License-Identifier: BSL-1.0
#include "await_support.hpp"

#include <string>

#include "kaa/main_loop.hpp"

namespace kaa::detail {

bool is_abort(const std::exception_ptr& e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted&) {
        return true;
    } catch (...) {
        return false;
    }
}

void abort_if_unwatched(const InProgressRef& m, const InProgressAborted& exc, const char* where) noexcept {
    StateBase& s = *m.state();
    if (s.status() != Status::pending || s.listener_count() != 0 || !s.abortable())
        return;
    try {
        s.abort(m.state(), exc);
    } catch (...) {
        report_unhandled(std::current_exception(), where);
    }
}

// ---- AwaitCore ----------------------------------------------------------------

void AwaitCore::refuse_suspend(const char* name) {
    if (pending_abort_) {
        // Aborted while running (by itself, or by code it called): this
        // suspension point is where the abort is raised.
        std::rethrow_exception(std::exchange(pending_abort_, nullptr));
    }
    std::string who = name ? "coroutine '" + std::string(name) + "'" : std::string("a kaa::Task");
    throw SuspendAfterAbort(who + " was aborted and cannot suspend again: catch InProgressAborted only to "
                                  "clean up without waiting (start independent cleanup work as a new "
                                  "coroutine, or shield it with noabort())");
}

void AwaitCore::rethrow_awaited_failure(StateBase& s, const InProgressRef& ip) {
    std::exception_ptr e = s.take_error();
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted& a) {
        // As kaa: the abort seen here names what this coroutine waited on.
        if (a.inprogress() != ip)
            std::rethrow_exception(a.with_inprogress(ip));
        throw;
    }
}

bool AwaitCore::begin_abort(const InProgressAborted& exc, std::exception_ptr eptr) {
    if (aborted_)
        return false;
    aborted_ = true;
    (void)eptr;
    // The coroutine's failure is the exception raised inside it (decision
    // 23): inprogress() names what it waited on (nothing while it ran or
    // waited on a time slice), origin() where abort() was called.
    InProgressRef origin = exc.origin();
    if (running_) {
        pending_abort_ = exc.with(InProgressRef(), origin);
        abort_exc_ = pending_abort_;
        return false;
    }
    ++token_;  // scheduled resumptions are void now
    InProgressRef waited = std::move(waiting_on_);
    waiting_on_ = InProgressRef();
    if (waited) {
        waited.state()->remove_callback(wait_id_);
        // Cascade: abort what it waits on if nobody else waits on it.
        abort_if_unwatched(waited, exc, "abort cascade");
    }
    pending_abort_ = exc.with(waited, origin);
    abort_exc_ = pending_abort_;
    return true;
}

void AwaitCore::settle(Outcome o, const char* kind, std::string origin,
                       UniqueFunction<void(StateBase&)> set_value) noexcept {
    StateBase& state = *o.state;
    state.clear_abort_hook();
    if (!o.aborted && !o.error && !set_value && state.complete_unclaimed(Status::succeeded, o.state))
        return;  // the common case: claim, publish and call back in one go
    const std::string who = origin.empty() ? std::string(kind) : origin;
    if (!state.claim()) {
        report_unhandled(std::make_exception_ptr(UsageError(
                             std::string("the InProgress of a ") + kind + " was finished by someone else; the " +
                             kind + "'s own outcome was discarded")),
                         who.c_str());
        return;
    }
    try {
        if (!origin.empty())
            state.set_origin(std::move(origin));
        if (o.aborted) {
            if (o.error && !is_abort(o.error))
                report_unhandled(o.error, (who + " cleanup after abort").c_str());
            state.fail_claimed(std::move(o.abort_exc), o.state, true);
        } else if (o.error) {
            state.fail_claimed(std::move(o.error), o.state);
        } else {
            if (set_value)
                set_value(state);
            state.complete(Status::succeeded, o.state);
        }
    } catch (...) {
        report_unhandled(std::current_exception(), (who + " completion").c_str());
    }
}

// ---- AwaitRegistry ------------------------------------------------------------

void AwaitRegistry::hook(MainLoop& loop) {
    hooked_ = &loop;
    add_shutdown_hook(loop, [this] { abort_all(); });
}

void AwaitRegistry::abort_all() {
    hooked_ = nullptr;
    const std::string where = std::string(kind_) + " abort at shutdown";
    // Each abort unwinds one coroutine (and possibly those it waits on);
    // start again from the head after each, since the list changes.
    std::size_t guard = count_ * 2 + 16;
    while (head_ && guard-- > 0) {
        AwaitCore* c = head_;
        while (c && c->aborted())
            c = c->next;
        if (!c)
            break;
        std::shared_ptr<StateBase> keep = c->state_ptr();
        try {
            if (keep->status() == Status::pending && keep->abortable()) {
                InProgressRef(keep).abort(InProgressAborted("the main loop shut down"));
            } else {
                // Its InProgress was finished from outside while the body
                // still runs, or was made unabortable: no abort() reaches it,
                // so unwind the coroutine itself.
                InProgressAborted exc("the main loop shut down", InProgressRef(keep), InProgressRef(keep));
                c->on_abort(exc, std::make_exception_ptr(exc));
            }
        } catch (...) {
            report_unhandled(std::current_exception(), where.c_str());
        }
    }
}

} // namespace kaa::detail
