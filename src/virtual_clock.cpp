// SPDX-License-Identifier: BSL-1.0
#include "kaa/virtual_clock.hpp"

#include <stdexcept>

#include "kaa/main_loop.hpp"
#include "loop_timer.hpp"
#include "virtual_time.hpp"

namespace kaa {

VirtualClock::VirtualClock() : VirtualClock(WallClock::now()) {}

VirtualClock::VirtualClock(WallClock::time_point wall_start)
    : time_(std::make_shared<detail::VirtualTime>(Clock::now(), wall_start)) {}

Clock::time_point VirtualClock::now() const noexcept { return time_->now(); }

VirtualClock::WallClock::time_point VirtualClock::wall_now() const noexcept { return time_->wall_now(); }

Duration VirtualClock::elapsed() const noexcept {
    return Duration(time_->elapsed.load(std::memory_order_acquire));
}

void VirtualClock::advance(Duration d) {
    if (d < Duration::zero())
        throw std::invalid_argument("kaa::VirtualClock::advance(): the time only moves forward; pass a "
                                    "duration >= 0");
    time_->advance(d);
    // A loop blocked in a real wait (autojump off, or a job running) must
    // look at its deadlines again; on the loop thread, the next iteration
    // does anyway.
    if (time_->in_use.load(std::memory_order_acquire) && !detail::in_loop_context())
        detail::post_to_loop([] {});
}

void VirtualClock::set_autojump(bool on) noexcept {
    time_->autojump.store(on, std::memory_order_release);
    if (on && time_->in_use.load(std::memory_order_acquire) && !detail::in_loop_context()) {
        try {
            detail::post_to_loop([] {});
        } catch (...) {
            // Without the wake-up the loop jumps at its next idle iteration.
        }
    }
}

bool VirtualClock::autojump() const noexcept { return time_->autojump.load(std::memory_order_acquire); }

std::uint64_t VirtualClock::jumps() const noexcept { return time_->jumps.load(std::memory_order_relaxed); }

} // namespace kaa

namespace kaa::detail {

std::shared_ptr<VirtualTime> current_virtual_time() noexcept {
    MainLoop* loop = MainLoop::current_or_null();
    return loop ? virtual_time_of(*loop) : nullptr;
}

Clock::time_point loop_now() noexcept {
    MainLoop* loop = MainLoop::current_or_null();
    return loop ? loop->now() : Clock::now();
}

std::chrono::system_clock::time_point loop_wall_now() noexcept {
    MainLoop* loop = MainLoop::current_or_null();
    return loop ? loop->wall_now() : std::chrono::system_clock::now();
}

} // namespace kaa::detail
