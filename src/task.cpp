// SPDX-License-Identifier: BSL-1.0
#include "kaa/task.hpp"

#include "await_support.hpp"
#include "kaa/main_loop.hpp"

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
    t_tasks.link(this, loop);
    state_->set_abort_hook([this](const InProgressAborted& exc, std::exception_ptr e) { return on_abort(exc, e); });
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

bool TaskCore::on_abort(const InProgressAborted& exc, std::exception_ptr e) {
    if (begin_abort(exc, std::move(e)))
        resume();  // unwinds the task from its co_await; `this` may be gone
    return true;
}

void TaskCore::finish(UniqueFunction<void(StateBase&)> set_value) noexcept {
    if (ended_flag_)
        *ended_flag_ = true;
    t_tasks.unlink(this);
    settle(take_outcome(), "task", std::move(set_value));
}

} // namespace detail

std::size_t active_tasks() noexcept { return detail::t_tasks.count(); }

} // namespace kaa
