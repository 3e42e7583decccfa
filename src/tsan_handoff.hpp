// SPDX-License-Identifier: BSL-1.0
// Hand-offs through a host loop's queue that ThreadSanitizer cannot see.
//
// The threaded mode hands each dispatch from kaa's waiting thread to the host
// thread through the host's own queue: a GSource attached to a GMainContext,
// a QEvent posted to a QObject. GLib and Qt lock that queue with their own
// futex-based mutexes, in libraries that are not built with TSan, so TSan
// sees the task written on one thread and read on the other with nothing in
// between, and reports a race that is not one. kaa says what the host's queue
// does: the writer releases after building the task, the reader acquires
// before touching it. One address serves every hand-off (the waiting thread
// does nothing else that these extra edges could hide). No-ops without TSan.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define KAA_TSAN_HANDOFF 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KAA_TSAN_HANDOFF 1
#endif
#endif

#if defined(KAA_TSAN_HANDOFF)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace kaa::detail {

#if defined(KAA_TSAN_HANDOFF)
inline char tsan_handoff_sync;
inline void handoff_release() noexcept { __tsan_release(&tsan_handoff_sync); }
inline void handoff_acquire() noexcept { __tsan_acquire(&tsan_handoff_sync); }
#else
inline void handoff_release() noexcept {}
inline void handoff_acquire() noexcept {}
#endif

} // namespace kaa::detail
