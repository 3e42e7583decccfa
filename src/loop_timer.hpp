// SPDX-License-Identifier: BSL-1.0
// Private: the one timer kaa's own timers wait on -- Asio's steady_timer on a
// real loop, the loop's virtual deadline queue (virtual_time.hpp) on a loop
// that runs on a kaa::VirtualClock. Which one is decided when the LoopTimer
// is made, from the current loop; a real loop's path is steady_timer's, with
// one branch more.
//
// One wait at a time: expires_at() cancels the pending one (as Asio's does).
// A cancelled wait's handler is never called on the virtual path, where
// Asio calls it with operation_aborted: kaa's handlers ignore both alike.
// Loop thread only.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include "kaa/fwd.hpp"
#include "virtual_time.hpp"

namespace kaa::detail {

/// The current loop's virtual time, or null on a real loop (or none).
std::shared_ptr<VirtualTime> current_virtual_time() noexcept;

/// The current loop's clock: virtual, or Clock::now(); and its wall clock.
Clock::time_point loop_now() noexcept;
std::chrono::system_clock::time_point loop_wall_now() noexcept;

class LoopTimer {
public:
    explicit LoopTimer(boost::asio::io_context& io) : virtual_(current_virtual_time()) {
        if (!virtual_)
            real_.emplace(io);
    }
    ~LoopTimer() { cancel(); }
    LoopTimer(const LoopTimer&) = delete;
    LoopTimer& operator=(const LoopTimer&) = delete;

    void expires_at(Clock::time_point t) {
        if (real_) [[likely]] {
            real_->expires_at(t);
            return;
        }
        cancel();
        due_ = t;
    }
    void expires_after(Duration d) {
        if (real_) [[likely]] {
            real_->expires_after(d);
            return;
        }
        expires_at(virtual_->now() + d);
    }

    /// `handler(const boost::system::error_code&)` runs on the loop thread
    /// when the deadline is reached.
    template <class Handler>
    void async_wait(Handler&& handler) {
        if (real_) [[likely]] {
            real_->async_wait(std::forward<Handler>(handler));
            return;
        }
        cancel();
        key_ = virtual_->arm(
            due_, [h = std::forward<Handler>(handler)]() mutable { h(boost::system::error_code()); });
    }

    void cancel() noexcept {
        if (real_) [[likely]] {
            try {
                real_->cancel();
            } catch (...) {
                // Asio's cancel throws only on a broken reactor; the owner's
                // generation check makes an orphaned wait harmless.
            }
            return;
        }
        if (key_) {
            virtual_->cancel(*key_);
            key_.reset();
        }
    }

private:
    std::shared_ptr<VirtualTime> virtual_;
    std::optional<boost::asio::steady_timer> real_;
    Clock::time_point due_{};
    std::optional<VirtualTime::Key> key_;
};

} // namespace kaa::detail
