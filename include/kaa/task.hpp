// SPDX-License-Identifier: BSL-1.0
// kaa::Task<T>: C++20 stackless coroutines on the same InProgress and the
// same cancellation model as kaa's stackful coroutines.
//
//   kaa::Task<int> add_later(kaa::InProgress<int> a) {
//       int x = co_await a;                        // any InProgress: coroutine, threaded, delay...
//       co_await kaa::delay(std::chrono::milliseconds(10));
//       co_return x + 1;
//   }
//   kaa::InProgress<int> ip = add_later(job);     // a Task is an InProgress
//
// Semantics, identical to kaa::coroutine (doc/tasks.md):
//  * The first step runs at once, in the caller, up to the first co_await
//    on an unfinished InProgress; co_await on a finished one does not suspend.
//  * co_await returns the value or rethrows the failure (observing it).
//  * A wake-up resumes the task directly inside the finishing call.
//  * abort() raises InProgressAborted at the suspension point and cascades
//    into what it awaits if nobody else waits on that and it is abortable;
//    after an abort a co_await raises SuspendAfterAbort; an aborted task ends
//    failed with InProgressAborted. Stackful coroutines awaiting a Task, and
//    Tasks awaiting a stackful coroutine, cascade both ways.
//  * Only InProgress types can be co_awaited (as kaa's `yield` only waited on
//    InProgress). Tasks run on the loop thread; loop shutdown aborts the ones
//    still suspended.
#pragma once

#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "kaa/detail/await_core.hpp"
#include "kaa/in_progress.hpp"

namespace kaa {

template <class T = void>
class Task;

namespace detail {

/// The non-template part of a running Task (lives in its frame). Aborting,
/// waiting and finishing are AwaitCore's, shared with stackful coroutines.
class TaskCore final : public AwaitCore {
public:
    TaskCore() = default;
    ~TaskCore() = default;

    /// Registers the task, installs its abort handler.
    void start(std::shared_ptr<StateBase> state, std::coroutine_handle<> h);
    /// Before a suspension: raises a pending abort or SuspendAfterAbort.
    void before_suspend() { check_can_suspend(nullptr); }
    /// Suspends on `ip` (registers the wake-up).
    void suspend_on(const InProgressRef& ip);
    /// After the co_await: raises a pending abort, or the awaited failure.
    void after_resume(const InProgressRef& ip) {
        after_wait();
        rethrow_if_failed(*ip.state(), ip);
    }
    /// At the final suspension point: finishes the InProgress. `set_value`
    /// stores the co_returned value into the state.
    void finish(UniqueFunction<void(StateBase&)> set_value) noexcept;

    // Used by src/task.cpp.
    bool on_abort(const InProgressAborted& exc, std::exception_ptr e) override;
    void describe(WorkRecord& r, std::int64_t now) const override;
    void wake(std::uint32_t token);
    void resume();

private:
    std::coroutine_handle<> handle_;
    bool* ended_flag_ = nullptr;
};

template <class T>
struct TaskPromiseBase {
    std::shared_ptr<State<T>> state = make_state<State<T>>();
    TaskCore core;
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;

    std::suspend_never initial_suspend() noexcept { return {}; }

    struct FinalAwaiter {
        TaskPromiseBase* p;
        bool await_ready() noexcept {
            p->core.finish([p = p](StateBase& s) {
                if constexpr (std::is_void_v<T>)
                    static_cast<State<T>&>(s).set_value();
                else
                    static_cast<State<T>&>(s).set_value(std::move(*p->value));
            });
            return true;  // flows off the end: the frame is destroyed
        }
        void await_suspend(std::coroutine_handle<>) noexcept {}
        void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {this}; }

    void unhandled_exception() noexcept { core.failed(std::current_exception()); }

    template <class U>
    struct Awaiter {
        TaskCore& core;
        InProgress<U> ip;
        bool await_ready() {
            core.before_suspend();
            return ip.finished();
        }
        void await_suspend(std::coroutine_handle<>) { core.suspend_on(ip); }
        std::remove_cvref_t<U> await_resume() {
            core.after_resume(ip);
            if constexpr (std::is_void_v<U>)
                ip.result();
            else
                return ip.result();
        }
    };

    template <class U>
    Awaiter<U> await_transform(const InProgress<U>& ip) {
        return Awaiter<U>{core, ip};
    }
};

template <class T>
struct TaskPromise : TaskPromiseBase<T> {
    Task<T> get_return_object();
    template <class V>
    void return_value(V&& v) {
        this->value.emplace(std::forward<V>(v));
    }
};

template <>
struct TaskPromise<void> : TaskPromiseBase<void> {
    Task<void> get_return_object();
    void return_void() { value.emplace(true); }
};

} // namespace detail

/// The InProgress of a stackless kaa coroutine (see the header comment).
template <class T>
class Task : public InProgress<T> {
public:
    using promise_type = detail::TaskPromise<T>;
    using InProgress<T>::InProgress;
    Task(const InProgress<T>& ip) : InProgress<T>(ip) {}
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() {
    this->core.start(this->state, std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
    return Task<T>(this->state);
}

inline Task<void> TaskPromise<void>::get_return_object() {
    this->core.start(this->state, std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
    return Task<void>(this->state);
}

} // namespace detail

/// Number of Tasks on this thread that started and have not ended.
std::size_t active_tasks() noexcept;

} // namespace kaa
