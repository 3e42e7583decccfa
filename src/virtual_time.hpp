// SPDX-License-Identifier: BSL-1.0
// Private: what a kaa::VirtualClock handle points to -- the virtual time
// itself and the deadline queue of the loop that runs on it.
//
// The time is an offset from the real clocks' readings when the clock was
// made; only MainLoop (jumps) and VirtualClock::advance() move it, and only
// forward. The deadline queue replaces Asio's timer queue on a virtual loop:
// LoopTimer (loop_timer.hpp) arms entries in it, and MainLoop::step() runs
// the entries that are due, and jumps the time to the earliest one when
// nothing else can happen (main_loop.cpp). The time may be read from any
// thread; the queue belongs to the loop thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "kaa/detail/function.hpp"
#include "kaa/fwd.hpp"

namespace kaa::detail {

struct VirtualTime {
    using WallClock = std::chrono::system_clock;

    VirtualTime(Clock::time_point steady_start, WallClock::time_point wall_start) noexcept
        : start(steady_start), wall_start(wall_start) {}

    Clock::time_point now() const noexcept {
        return start + Duration(elapsed.load(std::memory_order_acquire));
    }
    WallClock::time_point wall_now() const noexcept {
        return wall_start + std::chrono::duration_cast<WallClock::duration>(
                                Duration(elapsed.load(std::memory_order_acquire)));
    }
    /// Moves the time forward by `d` (any thread).
    void advance(Duration d) noexcept { elapsed.fetch_add(d.count(), std::memory_order_acq_rel); }
    /// Loop thread: the autojump. Counts a jump if the time moved.
    void jump_to(Clock::time_point t) noexcept {
        Duration::rep target = (t - start).count();
        Duration::rep cur = elapsed.load(std::memory_order_acquire);
        // advance() from another thread may race a jump: the time only moves forward.
        while (cur < target && !elapsed.compare_exchange_weak(cur, target, std::memory_order_acq_rel)) {
        }
        if (cur < target)
            jumps.fetch_add(1, std::memory_order_relaxed);
    }

    // ---- the deadline queue (loop thread) ----------------------------------

    /// An armed wait: its deadline, then the order it was armed in, so that
    /// waits with equal deadlines fire first armed, first fired.
    using Key = std::pair<Clock::time_point, std::uint64_t>;

    Key arm(Clock::time_point deadline, UniqueFunction<void()> handler) {
        Key key{deadline, ++armed};
        queue.emplace(key, std::move(handler));
        return key;
    }
    /// Drops the wait's handler without calling it; no-op if it ran already
    /// or the queue was cleared.
    void cancel(const Key& key) noexcept { queue.erase(key); }

    bool pending() const noexcept { return !queue.empty(); }
    std::optional<Clock::time_point> next_deadline() const noexcept {
        if (queue.empty())
            return std::nullopt;
        return queue.begin()->first.first;
    }
    bool due() const noexcept { return !queue.empty() && queue.begin()->first.first <= now(); }

    /// Takes the waits due now, in firing order, armed before this call:
    /// what they arm in turn waits for a later iteration, as a timer armed
    /// in Asio's handler is not run by the poll that ran the handler.
    std::vector<UniqueFunction<void()>> take_due() {
        std::vector<UniqueFunction<void()>> due_now;
        const Clock::time_point t = now();
        while (!queue.empty() && queue.begin()->first.first <= t) {
            auto node = queue.extract(queue.begin());
            due_now.push_back(std::move(node.mapped()));
        }
        return due_now;
    }

    /// The loop is going away: its waits go with it (moved out first, as
    /// destroying a handler may cancel another).
    void clear() noexcept {
        std::map<Key, UniqueFunction<void()>> dropped;
        dropped.swap(queue);
    }

    const Clock::time_point start;
    const WallClock::time_point wall_start;
    std::atomic<Duration::rep> elapsed{0};
    std::atomic<bool> autojump{true};
    std::atomic<std::uint64_t> jumps{0};
    // Whether a loop runs on this time now (VirtualClock::advance() wakes it).
    std::atomic<bool> in_use{false};

    std::map<Key, UniqueFunction<void()>> queue;
    std::uint64_t armed = 0;
};

} // namespace kaa::detail
