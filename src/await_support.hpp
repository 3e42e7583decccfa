// SPDX-License-Identifier: BSL-1.0
// The registry of running coroutines, shared by stackful coroutines
// (coroutine.cpp) and Tasks (task.cpp). See kaa/detail/await_core.hpp.
#pragma once

#include <cstddef>

#include "kaa/detail/await_core.hpp"

namespace kaa {
class MainLoop;
}

namespace kaa::detail {

/// Coroutines of one kind that started and have not ended, on this thread (=
/// the loop thread). They stay alive here while nobody else holds their
/// InProgress, and are aborted (unwound) when the loop shuts down.
class AwaitRegistry {
public:
    /// `kind` names the coroutines in reports ("coroutine", "task").
    constexpr explicit AwaitRegistry(const char* kind) noexcept : kind_(kind) {}

    void link(AwaitCore* c, MainLoop& loop) {
        c->prev = nullptr;
        c->next = head_;
        if (head_)
            head_->prev = c;
        head_ = c;
        ++count_;
        if (hooked_ != &loop) [[unlikely]]
            hook(loop);
    }

    void unlink(AwaitCore* c) noexcept {
        if (c->prev)
            c->prev->next = c->next;
        else
            head_ = c->next;
        if (c->next)
            c->next->prev = c->prev;
        --count_;
    }

    std::size_t count() const noexcept { return count_; }
    /// The most recently started one; follow AwaitCore::next (loop thread).
    AwaitCore* head() const noexcept { return head_; }

    /// Aborts every registered coroutine (the loop's shutdown hook): each
    /// unwinds from its suspension point and finishes its InProgress.
    void abort_all();

    /// Where head() is, for scripts/kaa_gdb.py (see kaa_gdb_anchor).
    static std::size_t head_offset() noexcept { return offsetof(AwaitRegistry, head_); }

private:
    void hook(MainLoop& loop);

    AwaitCore* head_ = nullptr;
    std::size_t count_ = 0;
    MainLoop* hooked_ = nullptr;  // the loop whose shutdown aborts them
    const char* kind_;
};

} // namespace kaa::detail
