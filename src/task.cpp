// SPDX-License-Identifier: BSL-1.0
#include "kaa/task.hpp"

#include <cstdio>

#include "await_support.hpp"
#include "kaa/main_loop.hpp"
#include "work_registry.hpp"

namespace kaa {

namespace detail {

namespace {

// Tasks that started and have not ended, on this thread (= the loop thread):
// the loop's shutdown aborts the suspended ones so their frames unwind.
constinit thread_local AwaitRegistry t_tasks{"task"};

} // namespace

void TaskCore::start(std::shared_ptr<StateBase> state, std::coroutine_handle<> h) {
    MainLoop& loop = MainLoop::current();
    if (!loop.is_main_thread())
        throw WrongThread("kaa::Task: tasks run on the loop thread; start them there");
    state_ = std::move(state);
    handle_ = h;
    running_ = true;  // the first step runs now, in the caller
    note_state_change(since_);
    t_tasks.link(this, loop);
    state_->set_abort_hook([this](const InProgressAborted& exc, std::exception_ptr e) { return on_abort(exc, e); });
}

void TaskCore::suspend_on(const InProgressRef& ip) {
    waiting_on_ = ip;
    std::uint32_t token = token_;
    wait_id_ = ip.state()->add_callback([this, token](StateBase&) { wake(token); });
    running_ = false;
    note_state_change(since_);
}

void TaskCore::describe(WorkRecord& r, std::int64_t now) const {
    r.kind = WorkKind::task;
    // A Task's frame starts with its resume function (the Itanium ABI that
    // GCC and Clang follow): its address names the coroutine function, for
    // addr2line or a debugger, when nothing else can.
    void* const* frame = static_cast<void* const*>(handle_.address());
    char buf[64];
    std::snprintf(buf, sizeof buf, "task (resume function %p)", frame ? frame[0] : nullptr);
    r.name = buf;
    r.state = running_ ? "running" : "suspended";
    r.in_state = time_since(since_, now);
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

bool TaskCore::on_abort(const InProgressAborted& exc, std::exception_ptr e) {
    if (begin_abort(exc, std::move(e)))
        resume();  // unwinds the task from its co_await; `this` may be gone
    return true;
}

void TaskCore::finish(UniqueFunction<void(StateBase&)> set_value) noexcept {
    if (ended_flag_)
        *ended_flag_ = true;
    t_tasks.unlink(this);
    settle(take_outcome(), "task", {}, std::move(set_value));
}

} // namespace detail

std::size_t active_tasks() noexcept { return detail::t_tasks.count(); }

namespace detail {
const AwaitRegistry& task_registry() noexcept { return t_tasks; }
} // namespace detail

} // namespace kaa
