// Timers: callbacks that the loop calls after an interval, repeatedly, or at
// wall-clock times -- kaa's Timer, OneShotTimer, WeakTimer, AtTimer and delay().
//
// Interval timers run on Asio's steady clock (they ignore wall-clock changes);
// AtTimer computes local wall-clock times and re-checks the wall clock when its
// steady wait ends, so that a clock adjustment is noticed. All of them share
// these guarantees:
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

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <type_traits>
#include <utility>

#include "kaa/detail/function.hpp"
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
    template <detail::TimerCallback F>
    explicit Timer(F&& callback)
        : Timer(detail::TimerKind::repeating, detail::wrap_timer_callback(std::forward<F>(callback))) {}

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
    void start(Duration interval, bool now = false);

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
    explicit OneShotTimer(F&& callback)
        : Timer(detail::TimerKind::one_shot, detail::wrap_timer_callback(std::forward<F>(callback))) {}
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
               std::set<int> weekdays = {});

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

/// An InProgress that finishes (with no value) after `d` (kaa.delay). It is
/// abortable: aborting it cancels the timer, and it then fails with
/// InProgressAborted (its connect() callbacks never run). The pending timer
/// keeps the operation alive, so `delay(d).connect(f)` works without keeping
/// the handle. Callable from any thread; it finishes on the loop thread.
/// @throws std::invalid_argument if `d` is negative; LoopError if no MainLoop exists.
InProgress<void> delay(Duration d);

} // namespace kaa
