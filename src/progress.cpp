// SPDX-License-Identifier: BSL-1.0
#include "kaa/progress.hpp"

#include <algorithm>

namespace kaa {

Progress::Progress(std::int64_t max) : start_(Clock::now()), max_(max) {}

void Progress::set(std::optional<std::int64_t> pos, std::optional<std::int64_t> max, std::optional<double> speed) {
    if (max)
        max_ = *max;
    if (pos)
        pos_ = *pos;
    if (pos_ > max_)
        max_ = pos_;
    speed_ = speed;
    changed_.emit(*this);
}

void Progress::update(std::int64_t diff, std::optional<double> speed) { set(pos_ + diff, std::nullopt, speed); }

double Progress::percentage() const noexcept {
    return max_ == 0 ? 0.0 : static_cast<double>(pos_) * 100.0 / static_cast<double>(max_);
}

Duration Progress::elapsed() const noexcept { return Clock::now() - start_; }

Duration Progress::eta() const noexcept {
    if (pos_ <= 0)
        return Duration::zero();
    auto el = elapsed();
    return std::chrono::duration_cast<Duration>(el * (static_cast<double>(max_ - pos_) / static_cast<double>(pos_)));
}

std::string Progress::bar(int width) const {
    width = std::max(width, 3);
    int inner = width - 2;
    int filled = static_cast<int>(percentage() / 100.0 * inner);
    filled = std::clamp(filled, 0, inner);
    std::string s = "[";
    s.append(static_cast<std::size_t>(filled), '=');
    if (filled < inner) {
        s.push_back('>');
        s.append(static_cast<std::size_t>(inner - filled - 1), ' ');
    }
    s.push_back(']');
    return s;
}

} // namespace kaa
