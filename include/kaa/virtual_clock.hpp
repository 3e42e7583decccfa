// SPDX-License-Identifier: BSL-1.0
// VirtualClock: time for tests that a loop can run on instead of the real
// clocks (Trio's MockClock, asyncio's test loops).
//
// `kaa::MainLoop loop(kaa::VirtualClock{});` makes a loop whose every timer
// reads the virtual clock: Timer, OneShotTimer, WeakTimer, AtTimer, delay(),
// call_later()/call_at(), Timed, InProgress::timeout(), a coroutine's time
// slice interval, InProgress::wait(timeout) and step(timeout) on the loop
// thread, and MainLoop::now()/wall_now(). Its time stands still until the
// loop has nothing left to do; then, with autojump on (the default), it jumps
// straight to the next deadline. A test of code that waits minutes runs in
// microseconds, and the same way every time: the order in which timers fire
// depends only on their deadlines.
//
// Guarantees:
//  * The time never moves backwards, and it moves only between iterations:
//    by a jump, or by advance().
//  * A jump happens only when an iteration would otherwise block: nothing is
//    queued or posted, no I/O is ready (Asio is polled first), no timer is
//    due, and no threaded job is queued, running or has its result on the
//    way to the loop -- a job counts until its result is delivered. Then the
//    time jumps to the earliest deadline (or to the end of step()'s timeout,
//    if that comes first). With no deadline at all the loop blocks for real,
//    as a real loop would, until work is posted or I/O arrives.
//  * Real I/O is not waited for while a deadline exists: if the other end of
//    a socket or a child process has not answered yet, a timeout armed on
//    the reply expires at once. Tests of timeouts on real I/O keep the peer
//    in the same loop, or use a real loop.
//  * Work the loop cannot see -- a std::thread of your own that will post()
//    later -- does not hold the time back either (as run_until_idle() does
//    not wait for it).
//  * AtTimer and call_at() follow the virtual wall clock, which starts at the
//    time given to the constructor and moves with the steady one.
//  * What stays on real time: the kill grace of Process, the accept back-off
//    of Listener, a threaded job's own waits, Progress::elapsed().
//  * A virtual loop runs standalone: attaching it to a host loop (GLib, Qt,
//    ThreadedHost) throws LoopError.
//
// The handle is cheap to copy; copies share one time. The loop keeps its own
// copy (MainLoop::virtual_clock()), so the clock may outlive or predate it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "kaa/fwd.hpp"

namespace kaa {

namespace detail {
struct VirtualTime;
}

class VirtualClock {
public:
    using WallClock = std::chrono::system_clock;

    /// A clock that starts at the real steady and wall time of this moment,
    /// with autojump on.
    VirtualClock();
    /// A clock whose wall time starts at `wall_start` (for AtTimer and
    /// call_at() tests that must not depend on today's date).
    explicit VirtualClock(WallClock::time_point wall_start);

    /// The virtual steady time. Any thread.
    Clock::time_point now() const noexcept;
    /// The virtual wall time. Any thread.
    WallClock::time_point wall_now() const noexcept;
    /// How far the time has moved since the clock was made. Any thread.
    Duration elapsed() const noexcept;

    /// Moves the time forward by `d`; the timers it makes due fire in the
    /// loop's next iteration. From another thread it wakes the loop.
    /// @throws std::invalid_argument if `d` is negative.
    void advance(Duration d);

    /// Whether the loop jumps to the next deadline when idle (on by
    /// default). With it off, only advance() moves the time, and a loop with
    /// nothing else to do blocks until someone calls it. Any thread.
    void set_autojump(bool on) noexcept;
    bool autojump() const noexcept;

    /// The number of jumps so far (advance() is not one). Any thread.
    std::uint64_t jumps() const noexcept;

private:
    friend class MainLoop;
    std::shared_ptr<detail::VirtualTime> time_;
};

} // namespace kaa
