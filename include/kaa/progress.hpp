// SPDX-License-Identifier: BSL-1.0
// Progress: position, maximum, percentage, speed and ETA of an operation
// (kaa's InProgressStatus), with a `changed` signal.
//
// A producer (a coroutine with CoroutineOptions::progress, later a threaded
// job) updates it; callers reach it through InProgressRef::progress() and
// watch changed(). Loop-thread object, like the InProgress it belongs to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "kaa/fwd.hpp"
#include "kaa/signal.hpp"

namespace kaa {

class Progress {
public:
    explicit Progress(std::int64_t max = 0);
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    /// Updates the position and/or the maximum (a position past the maximum
    /// raises the maximum), replaces the speed (as kaa: even with nothing),
    /// and emits changed().
    void set(std::optional<std::int64_t> pos, std::optional<std::int64_t> max = std::nullopt,
             std::optional<double> speed = std::nullopt);
    /// set(pos() + diff, nullopt, speed).
    void update(std::int64_t diff = 1, std::optional<double> speed = std::nullopt);

    std::int64_t pos() const noexcept { return pos_; }
    std::int64_t max() const noexcept { return max_; }
    /// pos * 100 / max, or 0 when max is 0.
    double percentage() const noexcept;
    /// Units per second, as last given to set()/update().
    std::optional<double> speed() const noexcept { return speed_; }
    /// Time since creation.
    Duration elapsed() const noexcept;
    /// Estimated time left: elapsed / pos * (max - pos); zero when pos is 0.
    Duration eta() const noexcept;
    /// An ASCII bar `[=====>    ]` of `width` characters.
    std::string bar(int width = 70) const;

    /// Emitted after every set()/update().
    Signal<void(const Progress&)>& changed() noexcept { return changed_; }

private:
    Clock::time_point start_;
    std::int64_t pos_ = 0;
    std::int64_t max_ = 0;
    std::optional<double> speed_;
    Signal<void(const Progress&)> changed_;
};

} // namespace kaa
