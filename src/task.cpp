#include "kaa/task.hpp"

#include "kaa/main_loop.hpp"

namespace kaa {

namespace detail {

namespace {

// Tasks that started and have not ended, on this thread (= the loop thread):
// the loop's shutdown aborts the suspended ones so their frames unwind.
struct TaskRegistry {
    TaskCore* head = nullptr;
    std::size_t count = 0;
    MainLoop* hooked = nullptr;
};
thread_local TaskRegistry t_tasks;

void abort_all_tasks() {
    TaskRegistry& r = t_tasks;
    r.hooked = nullptr;
    std::size_t guard = r.count * 2 + 16;
    while (r.head && guard-- > 0) {
        TaskCore* t = r.head;
        while (t && t->aborted())
            t = t->next;
        if (!t)
            break;
        std::shared_ptr<StateBase> keep = t->state_ptr();
        try {
            InProgressRef(keep).abort(InProgressAborted("the main loop shut down"));
        } catch (...) {
            report_unhandled(std::current_exception(), "task abort at shutdown");
        }
    }
}

bool is_abort(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted&) {
        return true;
    } catch (...) {
        return false;
    }
}

} // namespace

void TaskCore::start(std::shared_ptr<StateBase> state, std::coroutine_handle<> h) {
    MainLoop& loop = MainLoop::current();
    if (!loop.is_main_thread())
        throw WrongThread("kaa::Task: tasks run on the loop thread; start them there");
    state_ = std::move(state);
    handle_ = h;
    running_ = true;  // the first step runs now, in the caller
    TaskRegistry& r = t_tasks;
    next = r.head;
    if (r.head)
        r.head->prev = this;
    r.head = this;
    ++r.count;
    if (r.hooked != &loop) {
        r.hooked = &loop;
        add_shutdown_hook(loop, [] { abort_all_tasks(); });
    }
    state_->set_abort_hook([this](const InProgressAborted& exc, std::exception_ptr e) { return on_abort(exc, e); });
}

void TaskCore::before_suspend() {
    if (pending_abort_)
        std::rethrow_exception(std::exchange(pending_abort_, nullptr));
    if (aborted_)
        throw SuspendAfterAbort("a kaa::Task that was aborted cannot co_await again: catch "
                                "InProgressAborted only to clean up without waiting");
}

void TaskCore::suspend_on(const InProgressRef& ip) {
    waiting_on_ = ip;
    std::uint32_t token = token_;
    wait_id_ = ip.state()->add_callback([this, token](StateBase&) { wake(token); });
    running_ = false;
}

void TaskCore::wake(std::uint32_t token) {
    if (token != token_ || running_)
        return;
    ++token_;
    resume();
}

void TaskCore::resume() {
    // The frame (and this core) may be gone when resume() returns: the flag
    // on this stack frame tells.
    bool ended = false;
    ended_flag_ = &ended;
    running_ = true;
    handle_.resume();
    if (!ended)
        ended_flag_ = nullptr;
}

void TaskCore::after_resume(const InProgressRef& ip) {
    waiting_on_ = InProgressRef();
    if (pending_abort_)
        std::rethrow_exception(std::exchange(pending_abort_, nullptr));
    StateBase& s = *ip.state();
    if (s.failed()) {
        std::exception_ptr e = s.take_error();
        try {
            std::rethrow_exception(e);
        } catch (const InProgressAborted& a) {
            if (a.inprogress() != ip)
                std::rethrow_exception(a.with_inprogress(ip));
            throw;
        }
    }
}

bool TaskCore::on_abort(const InProgressAborted& exc, std::exception_ptr e) {
    if (aborted_)
        return true;
    aborted_ = true;
    abort_exc_ = std::move(e);
    InProgressRef origin = exc.origin();
    if (running_) {
        pending_abort_ = exc.with(InProgressRef(), origin);
        return true;
    }
    ++token_;
    InProgressRef waited = std::move(waiting_on_);
    waiting_on_ = InProgressRef();
    if (waited) {
        StateBase& ws = *waited.state();
        ws.remove_callback(wait_id_);
        if (ws.status() == Status::pending && ws.listener_count() == 0 && ws.abortable()) {
            try {
                ws.abort(waited.state(), exc);
            } catch (...) {
                report_unhandled(std::current_exception(), "abort cascade");
            }
        }
    }
    pending_abort_ = exc.with(waited, origin);
    resume();  // unwinds the task from its co_await; `this` may be gone
    return true;
}

void TaskCore::finish(UniqueFunction<void(StateBase&)> set_value) noexcept {
    if (ended_flag_)
        *ended_flag_ = true;
    TaskRegistry& r = t_tasks;
    if (prev)
        prev->next = next;
    else
        r.head = next;
    if (next)
        next->prev = prev;
    --r.count;
    std::shared_ptr<StateBase> state = std::move(state_);
    state->clear_abort_hook();
    if (!state->claim()) {
        report_unhandled(std::make_exception_ptr(UsageError("the InProgress of a kaa::Task was finished by "
                                                            "someone else; the task's outcome was discarded")),
                         "task");
        return;
    }
    try {
        if (aborted_) {
            if (error_ && !is_abort(error_))
                report_unhandled(error_, "task cleanup after abort");
            state->fail_claimed(abort_exc_, state, true);
        } else if (error_) {
            state->fail_claimed(error_, state);
        } else {
            set_value(*state);
            state->complete(Status::succeeded, state);
        }
    } catch (...) {
        report_unhandled(std::current_exception(), "task completion");
    }
}

} // namespace detail

std::size_t active_tasks() noexcept { return detail::t_tasks.count; }

} // namespace kaa
