// SPDX-License-Identifier: BSL-1.0
// Timers: callbacks that the loop calls after an interval, repeatedly, or at
// wall-clock times -- kaa's Timer, OneShotTimer, WeakTimer, AtTimer, delay()
// and timed, and the fire-and-forget call_later() / call_at().
//
// Timer objects are RAII handles: destroying one stops it. So that a started
// timer never vanishes silently with a temporary handle, start() cannot be
// called on a temporary (`kaa::OneShotTimer(cb).start(1s)` does not compile);
// what kaa code writes that way is call_later(1s, cb), whose handle may be
// dropped.
//
// Interval timers run on Asio's steady clock (they ignore wall-clock changes);
// AtTimer computes local wall-clock times and re-checks the wall clock when its
// steady wait ends, so that a clock adjustment is noticed. On a loop made with
// a VirtualClock (kaa/virtual_clock.hpp) all of them run on its virtual time
// instead. All of them share these guarantees:
//  * Callbacks run on the loop thread, from MainLoop::step(). A timer created
//    stopped; start() arms it, stop() disarms it, destroying it stops it.
//  * start() and stop() called from another thread are marshalled to the loop
//    thread (kaa's MAINTHREAD): they take effect on a later iteration, in the
//    order they were called, and a timer stopped that way may still fire once
//    meanwhile. active(), interval() and next() may be read from any thread;
//    they reflect what the loop has done so far.
//  * A timer started during an iteration never fires in that same iteration.
//    An interval of zero fires once per iteration (and keeps the loop from
//    blocking while it is active), like kaa's 0-ms timers.
//  * Repeating timers are phase-locked: the next deadline is the previous one
//    plus the interval, and ticks missed while the loop was busy are dropped
//    (no catch-up burst).
//  * A callback may restart, stop or destroy its own timer.
//  * An exception escaping a callback goes to the loop's `exception` signal
//    (MainLoop::handle_exception); the timer keeps its state: a repeating
//    timer keeps running, as if the callback had returned true.
//  * start() needs a MainLoop (it throws LoopError without one). Timers still
//    active when the loop is destroyed are stopped.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kaa/detail/function.hpp"
#include "kaa/detail/loop_access.hpp"
#include "kaa/detail/work_site.hpp"
#include "kaa/errors.hpp"
#include "kaa/fwd.hpp"
#include "kaa/in_progress.hpp"

namespace kaa {

namespace detail {

class TimerCore;

enum class TimerKind : std::uint8_t { repeating, one_shot };

std::shared_ptr<TimerCore> make_timer_core(TimerKind kind, UniqueFunction<bool()> callback,
                                           std::weak_ptr<void> owner, bool weak);

[[noreturn]] void throw_empty_timer_callback();

template <class T>
struct IsStdFunction : std::false_type {};
template <class S>
struct IsStdFunction<std::function<S>> : std::true_type {};

/// What a timer callback may be: callable with no arguments, returning void
/// (keep going) or bool (false stops a repeating timer).
template <class F>
concept TimerCallback = std::invocable < std::decay_t<F>
& > &&(std::is_void_v<std::invoke_result_t<std::decay_t<F>&>> ||
       std::is_same_v<std::invoke_result_t<std::decay_t<F>&>, bool>);

/// Wraps a timer callback as `bool()`: true keeps a repeating timer going.
template <TimerCallback F>
UniqueFunction<bool()> wrap_timer_callback(F&& f) {
    using D = std::decay_t<F>;
    if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D> || IsStdFunction<D>::value) {
        if (!f)
            throw_empty_timer_callback();
    }
    if constexpr (std::is_void_v<std::invoke_result_t<D&>>) {
        return [f = std::forward<F>(f)]() mutable {
            std::invoke(f);
            return true;
        };
    } else {
        return [f = std::forward<F>(f)]() mutable -> bool { return std::invoke(f); };
    }
}

} // namespace detail

/// A repeating timer (kaa.Timer): calls its callback every `interval` on the
/// loop thread until stopped, or until the callback returns false.
///
/// Movable, not copyable; a moved-from Timer is empty and its methods throw
/// EmptyHandle.
class Timer {
public:
    /// A stopped timer that will call `callback()`. The callback returns void
    /// (the timer repeats) or bool (false stops it).
    /// @throws EmptyHandle if `callback` is an empty std::function or null.
    /// `site` is the creation site kaa::live_work() shows.
    template <detail::TimerCallback F>
    explicit Timer(F&& callback, std::source_location site = std::source_location::current())
        : Timer(detail::TimerKind::repeating, detail::wrap_timer_callback(std::forward<F>(callback)),
                detail::WorkSite{site, detail::type_name_v<std::decay_t<F>>}) {}

    Timer(Timer&&) noexcept = default;
    /// Stops the timer this one held, then takes over `other`'s.
    Timer& operator=(Timer&& other) noexcept;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    /// Stops the timer. A pending expiry never reaches the callback after this
    /// (one running on the loop thread right now completes).
    ~Timer();

    /// Starts the timer: the callback first runs `interval` from now. If it is
    /// already active it is restarted with the new interval, measured from now.
    /// With `now`, the callback is also called synchronously first (its return
    /// value does not affect the schedule). Thread-safe: from another thread it
    /// is queued to the loop (and `now` calls back there).
    /// @throws std::invalid_argument if `interval` is negative; LoopError if no
    /// MainLoop exists.
    void start(Duration interval, bool now = false) &;
    /// Deleted: a temporary timer would stop again at the end of the
    /// statement. Keep the timer in a variable, or use call_later().
    void start(Duration interval, bool now = false) && = delete;

    /// Stops the timer; no-op if stopped. A callback already running completes.
    /// Thread-safe: from another thread it is queued to the loop.
    void stop();

    /// Whether the timer is started (for a WeakTimer: and its owner lives).
    bool active() const;

    /// The interval passed to start(), or nullopt while stopped.
    std::optional<Duration> interval() const;

protected:
    Timer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback, std::weak_ptr<void> owner = {},
          bool weak = false);
    Timer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback, const detail::WorkSite& site);

    detail::TimerCore& core() const;

private:
    std::shared_ptr<detail::TimerCore> core_;
};

/// A timer that fires once (kaa.OneShotTimer). It is stopped *before* its
/// callback runs, so the callback may start it again; the callback's return
/// value is ignored (unlike kaa, returning false after a restart does not
/// cancel the restart).
class OneShotTimer : public Timer {
public:
    template <detail::TimerCallback F>
    explicit OneShotTimer(F&& callback, std::source_location site = std::source_location::current())
        : Timer(detail::TimerKind::one_shot, detail::wrap_timer_callback(std::forward<F>(callback)),
                detail::WorkSite{site, detail::type_name_v<std::decay_t<F>>}) {}
};

/// A repeating timer bound weakly to an owner (kaa.WeakTimer): once the owner
/// is destroyed the callback is never called again and active() is false. The
/// owner is kept alive for the duration of each call, as Signal::connect_weak
/// does. The callback itself is held strongly: capture the owner weakly (or
/// not at all) in it.
class WeakTimer : public Timer {
public:
    template <class T, detail::TimerCallback F>
    WeakTimer(const std::shared_ptr<T>& owner, F&& callback)
        : WeakTimer(std::weak_ptr<T>(owner), std::forward<F>(callback)) {}
    template <class T, detail::TimerCallback F>
    WeakTimer(const std::weak_ptr<T>& owner, F&& callback)
        : Timer(detail::TimerKind::repeating, detail::wrap_timer_callback(std::forward<F>(callback)),
                std::weak_ptr<void>(owner), true) {}
};

/// A OneShotTimer bound weakly to an owner, as WeakTimer.
class WeakOneShotTimer : public Timer {
public:
    template <class T, detail::TimerCallback F>
    WeakOneShotTimer(const std::shared_ptr<T>& owner, F&& callback)
        : WeakOneShotTimer(std::weak_ptr<T>(owner), std::forward<F>(callback)) {}
    template <class T, detail::TimerCallback F>
    WeakOneShotTimer(const std::weak_ptr<T>& owner, F&& callback)
        : Timer(detail::TimerKind::one_shot, detail::wrap_timer_callback(std::forward<F>(callback)),
                std::weak_ptr<void>(owner), true) {}
};

/// A repeating wall-clock timer (kaa.AtTimer): calls back at every local time
/// that matches a set of hours, minutes, seconds and weekdays, until stopped or
/// until the callback returns false.
///
/// An empty set means "any value". Weekdays count from 0 = Sunday to
/// 6 = Saturday (std::tm::tm_wday, std::chrono::weekday::c_encoding()).
/// Each firing is the first matching second strictly after both the previous
/// scheduled time and now, so a slow callback skips missed times instead of
/// bursting, and a restart never fires twice for the same second.
class AtTimer {
public:
    using TimePoint = std::chrono::system_clock::time_point;

    template <detail::TimerCallback F>
    explicit AtTimer(F&& callback)
        : AtTimer(detail::TimerKind::repeating, detail::wrap_timer_callback(std::forward<F>(callback))) {}

    AtTimer(AtTimer&&) noexcept = default;
    AtTimer& operator=(AtTimer&& other) noexcept;
    AtTimer(const AtTimer&) = delete;
    AtTimer& operator=(const AtTimer&) = delete;
    /// Stops the timer (see ~Timer).
    ~AtTimer();

    /// Starts (or restarts) the timer for the given local times. The defaults
    /// fire at second 0 of every minute. Thread-safe as Timer::start().
    /// @throws std::invalid_argument if a value is out of range (hours 0-23,
    /// minutes 0-59, seconds 0-59, weekdays 0-6); LoopError if no MainLoop exists.
    void start(std::set<int> hours = {}, std::set<int> minutes = {}, std::set<int> seconds = {0},
               std::set<int> weekdays = {}) &;
    /// Deleted: a temporary timer would stop again at the end of the
    /// statement. Keep the timer in a variable, or use call_at().
    void start(std::set<int> hours = {}, std::set<int> minutes = {}, std::set<int> seconds = {0},
               std::set<int> weekdays = {}) && = delete;

    /// Stops the timer; no-op if stopped. Thread-safe as Timer::stop().
    void stop();

    /// Whether the timer is started.
    bool active() const;

    /// When the timer fires next, or nullopt while stopped.
    std::optional<TimePoint> next() const;

    /// The sets given to the last start() (empty = any value). Loop thread.
    const std::set<int>& hours() const;
    const std::set<int>& minutes() const;
    const std::set<int>& seconds() const;
    const std::set<int>& weekdays() const;

    /// The first whole second strictly after `after` whose local time (in the
    /// process's time zone, as std::localtime sees it) matches the sets. A
    /// local time repeated at a daylight-saving change is taken at its first
    /// occurrence after `after`; one skipped by it fires when the clock has
    /// passed it. Pure: it reads no timer state. Thread-safe.
    /// @throws std::invalid_argument for out-of-range values.
    static TimePoint next_after(TimePoint after, const std::set<int>& hours = {},
                                const std::set<int>& minutes = {}, const std::set<int>& seconds = {0},
                                const std::set<int>& weekdays = {});

    /// The same on a local calendar, without any time zone: the first second
    /// strictly after `after` that matches.
    static std::chrono::local_seconds next_after(std::chrono::local_seconds after,
                                                 const std::set<int>& hours = {},
                                                 const std::set<int>& minutes = {},
                                                 const std::set<int>& seconds = {0},
                                                 const std::set<int>& weekdays = {});

protected:
    AtTimer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback);

    detail::TimerCore& core() const;

private:
    std::shared_ptr<detail::TimerCore> core_;
};

/// A wall-clock timer that fires once (kaa.OneShotAtTimer), at the next
/// matching time. Like OneShotTimer it is stopped before the callback runs.
class OneShotAtTimer : public AtTimer {
public:
    template <detail::TimerCallback F>
    explicit OneShotAtTimer(F&& callback)
        : AtTimer(detail::TimerKind::one_shot, detail::wrap_timer_callback(std::forward<F>(callback))) {}
};

/// The handle of a fire-and-forget call (call_later(), call_at()). The call
/// does not depend on it: dropping the handle leaves the call scheduled, and
/// while it is held it can cancel the call. Copyable; an empty
/// (default-constructed) handle is never active and cancels nothing.
class ScheduledCall {
public:
    ScheduledCall() noexcept = default;

    /// Cancels the call if it has not run yet; returns whether it was still
    /// pending. Thread-safe: from another thread the cancel is queued to the
    /// loop, and the call may still run once meanwhile (as Timer::stop()).
    bool cancel() const;

    /// Whether the call is still pending (it has neither run nor been
    /// cancelled). Any thread; it reflects what the loop has done so far.
    bool active() const noexcept;

    /// Library plumbing (call_later(), call_at()).
    explicit ScheduledCall(std::weak_ptr<detail::TimerCore> core) noexcept : core_(std::move(core)) {}

private:
    std::weak_ptr<detail::TimerCore> core_;
};

namespace detail {
ScheduledCall schedule_call_later(Duration d, UniqueFunction<bool()> callback);
ScheduledCall schedule_call_at(std::chrono::system_clock::time_point t, UniqueFunction<bool()> callback);
} // namespace detail

/// Calls `callback()` once on the loop thread after `d` -- the fire-and-forget
/// form of OneShotTimer, as Qt's QTimer::singleShot: nothing has to be kept
/// for it to happen. Like a timer started now, it never runs in the current
/// iteration, even with a zero delay. The callback's return value, if any, is
/// ignored. A call still pending when the loop is destroyed never runs (its
/// callback is destroyed then). Callable from any thread.
/// @throws std::invalid_argument if `d` is negative; EmptyHandle for an empty
/// callback; LoopError if no MainLoop exists.
template <detail::TimerCallback F>
ScheduledCall call_later(Duration d, F&& callback) {
    return detail::schedule_call_later(d, detail::wrap_timer_callback(std::forward<F>(callback)));
}

/// Calls `callback()` once on the loop thread when the wall clock reaches
/// `when` (at once, on the next iteration, if it has passed). The wait
/// re-checks the wall clock as AtTimer does, so a clock adjustment is
/// noticed. Otherwise as call_later().
/// @throws EmptyHandle for an empty callback; LoopError if no MainLoop exists.
template <detail::TimerCallback F>
ScheduledCall call_at(std::chrono::system_clock::time_point when, F&& callback) {
    return detail::schedule_call_at(when, detail::wrap_timer_callback(std::forward<F>(callback)));
}

/// What a Timed definition does when it is called while a timer it started
/// earlier is still active (kaa's POLICY_MANY, POLICY_ONCE, POLICY_RESTART).
enum class TimedPolicy : std::uint8_t {
    many,    ///< every call starts a timer of its own
    once,    ///< a call while one is active is ignored (returns false, its arguments dropped)
    restart, ///< a call stops the active timer and starts one with the new arguments
};

/// How a Timed definition runs its function.
struct TimedOptions {
    /// The time between calls (and before the first one).
    Duration interval = Duration::zero();
    TimedPolicy policy = TimedPolicy::many;
    /// Call the function once per start (kaa's timer=OneShotTimer) instead of
    /// repeating it until it returns false.
    bool one_shot = false;
};

namespace detail {
/// @throws std::invalid_argument for a negative interval or an unknown policy.
void check_timed_options(const TimedOptions& opts);
[[noreturn]] void throw_timed_wrong_thread();
} // namespace detail

template <class Signature>
class Timed;

/// A function that runs on a timer when called (kaa's @timed decorator):
/// calling the definition starts a timer that calls the function with the
/// call's arguments every `interval`, until the function returns false
/// (a void function repeats until stop()), or once with `one_shot`.
///
///   kaa::Timed<bool(int)> poll({.interval = 100ms, .policy = kaa::TimedPolicy::once},
///                              [](int device) { return !ready(device); });
///   poll(3);  // true: started; poll(4) now returns false
///
/// The definition owns its timers: destroying it stops them. Make it a member
/// of the object whose method it runs, and the timers -- and the policy --
/// are per object, as in kaa; the function may then capture `this`.
/// Loop thread only (calls from elsewhere throw WrongThread).
template <class R, class... Args>
class Timed<R(Args...)> {
    static_assert(std::is_void_v<R> || std::is_same_v<R, bool>,
                  "a Timed function returns void (repeat) or bool (false stops it)");

public:
    /// @throws std::invalid_argument for a negative interval or a policy
    /// that is not one of TimedPolicy's (checked here, not at the first call).
    template <class F>
    Timed(TimedOptions opts, F&& fn) : opts_(opts) {
        detail::check_timed_options(opts_);
        static_assert(std::is_invocable_r_v<R, F&, Args...>, "the function does not take these arguments");
        fn_ = std::make_shared<std::function<R(Args...)>>(std::forward<F>(fn));
    }

    Timed(Timed&&) noexcept = default;
    Timed& operator=(Timed&&) noexcept = default;
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;

    /// Starts a timer for `fn(args...)` as the policy says. Returns true if
    /// a timer was started, false if the call was ignored (TimedPolicy::once
    /// with a timer still active).
    /// @throws WrongThread off the loop thread; LoopError without a MainLoop.
    bool operator()(Args... args) {
        if (!detail::in_loop_context())
            detail::throw_timed_wrong_thread();
        std::erase_if(timers_, [](const Timer& t) { return !t.active(); });
        if (opts_.policy == TimedPolicy::once && !timers_.empty())
            return false;
        if (opts_.policy == TimedPolicy::restart)
            timers_.clear();
        auto call = [fn = fn_, tuple = std::make_tuple(std::move(args)...)]() mutable -> R {
            return std::apply(*fn, tuple);
        };
        if (opts_.one_shot)
            timers_.push_back(OneShotTimer(std::move(call)));
        else
            timers_.push_back(Timer(std::move(call)));
        try {
            timers_.back().start(opts_.interval);
        } catch (...) {
            timers_.pop_back();
            throw;
        }
        return true;
    }

    /// Stops every timer this definition started. Loop thread.
    void stop() { timers_.clear(); }

    /// Whether a timer this definition started is active. Loop thread.
    bool active() const {
        return std::any_of(timers_.begin(), timers_.end(), [](const Timer& t) { return t.active(); });
    }

    const TimedOptions& options() const noexcept { return opts_; }

private:
    TimedOptions opts_;
    std::shared_ptr<std::function<R(Args...)>> fn_;
    std::vector<Timer> timers_;
};

/// An InProgress that finishes (with no value) after `d` (kaa.delay). It is
/// abortable: aborting it cancels the timer, and it then fails with
/// InProgressAborted (its connect() callbacks never run). The pending timer
/// keeps the operation alive, so `delay(d).connect(f)` works without keeping
/// the handle. Callable from any thread; it finishes on the loop thread.
/// @throws std::invalid_argument if `d` is negative; LoopError if no MainLoop exists.
InProgress<void> delay(Duration d, std::source_location site = std::source_location::current());

} // namespace kaa
