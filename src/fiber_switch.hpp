// SPDX-License-Identifier: BSL-1.0
// Sanitizer annotations around stack switches.
//
// Boost.Context's fast (fcontext) switch is invisible to AddressSanitizer and
// ThreadSanitizer; without these calls ASan reports false stack overflows and
// use-after-returns, and TSan loses track of which "thread" runs. Every switch
// in the coroutine code goes through these two types; without a sanitizer
// they compile to nothing.
//
// They are forced inline, and the switch itself is Boost.Context's
// jump_fcontext (an uninstrumented assembly routine): TSan's shadow call
// stack follows fibers only if __tsan_switch_to_fiber and the jump happen in
// the same frame, with no instrumented call in between.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define KAA_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define KAA_TSAN 1
#endif
#define KAA_ALWAYS_INLINE [[gnu::always_inline]] inline

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KAA_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define KAA_TSAN 1
#endif
#endif

#if defined(KAA_ASAN)
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                                std::size_t* size_old);
#endif
#if defined(KAA_TSAN)
extern "C" void* __tsan_get_current_fiber();
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

namespace kaa::detail {

/// Per coroutine: what the sanitizers need to follow switches in and out.
class FiberAnnotations {
public:
    FiberAnnotations() {
#if defined(KAA_TSAN)
        tsan_fiber_ = __tsan_create_fiber(0);
#endif
    }
    ~FiberAnnotations() {
#if defined(KAA_TSAN)
        __tsan_destroy_fiber(tsan_fiber_);
#endif
    }
    FiberAnnotations(const FiberAnnotations&) = delete;
    FiberAnnotations& operator=(const FiberAnnotations&) = delete;

    /// On the coroutine's stack, right after a switch into it.
    KAA_ALWAYS_INLINE void arrived() {
#if defined(KAA_ASAN)
        __sanitizer_finish_switch_fiber(fake_stack_, &caller_bottom_, &caller_size_);
#endif
    }
    /// On the coroutine's stack, right before switching back to its resumer.
    KAA_ALWAYS_INLINE void leave() {
#if defined(KAA_ASAN)
        __sanitizer_start_switch_fiber(&fake_stack_, caller_bottom_, caller_size_);
#endif
#if defined(KAA_TSAN)
        __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
    }
    /// As leave(), for the last switch out: the coroutine's stack is done.
    KAA_ALWAYS_INLINE void leave_for_good() {
#if defined(KAA_ASAN)
        __sanitizer_start_switch_fiber(nullptr, caller_bottom_, caller_size_);
#endif
#if defined(KAA_TSAN)
        __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
    }

private:
    friend class FiberSwitch;
#if defined(KAA_ASAN)
    void* fake_stack_ = nullptr;
    const void* caller_bottom_ = nullptr;
    std::size_t caller_size_ = 0;
#endif
#if defined(KAA_TSAN)
    void* tsan_fiber_ = nullptr;
    void* tsan_caller_ = nullptr;
#endif
};

/// On the resumer's side, around one switch into a coroutine.
class FiberSwitch {
public:
    explicit FiberSwitch(FiberAnnotations& f) : f_(f) {}
    /// Right before the switch into a stack [bottom, bottom + size).
    KAA_ALWAYS_INLINE void enter([[maybe_unused]] const void* bottom, [[maybe_unused]] std::size_t size) {
#if defined(KAA_TSAN)
        f_.tsan_caller_ = __tsan_get_current_fiber();
#endif
#if defined(KAA_ASAN)
        __sanitizer_start_switch_fiber(&fake_, bottom, size);
#endif
#if defined(KAA_TSAN)
        __tsan_switch_to_fiber(f_.tsan_fiber_, 0);
#endif
    }
    /// Right after the coroutine switched back.
    KAA_ALWAYS_INLINE void returned() {
#if defined(KAA_ASAN)
        __sanitizer_finish_switch_fiber(fake_, nullptr, nullptr);
#endif
    }

private:
    [[maybe_unused]] FiberAnnotations& f_;
#if defined(KAA_ASAN)
    void* fake_ = nullptr;
#endif
};

} // namespace kaa::detail
