// SPDX-License-Identifier: BSL-1.0
// Coroutine stacks: guard-paged, pooled per thread, overflow reported by name.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kaa::detail {

// Valgrind follows a switch to a coroutine stack only if the stack is
// registered (valgrind/valgrind.h, package valgrind; its macros cost a few
// no-op instructions outside Valgrind). Without the header, Valgrind guesses
// from the stack pointer jump and warns "client switching stacks?".
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#define KAA_VALGRIND 1
#endif
#endif

struct Stack {
    char* base = nullptr;     // lowest address of the mapping (the guard page is here)
    std::size_t mapped = 0;   // bytes mapped, guard included
    std::size_t guard = 0;    // bytes of guard at `base`
#if defined(KAA_VALGRIND)
    unsigned valgrind_id = 0; // VALGRIND_STACK_REGISTER's id
#endif
    char* top() const noexcept { return base + mapped; }
    std::size_t usable() const noexcept { return mapped - guard; }
    explicit operator bool() const noexcept { return base != nullptr; }
};

/// How a stack's bottom is protected.
enum class GuardMode {
    guard_region,  // madvise(MADV_GUARD_INSTALL): no extra memory mapping (Linux >= 6.13)
    mprotect,      // a PROT_NONE page: two mappings per stack, bounded by vm.max_map_count
};

/// Statistics, for tests and benchmarks.
struct StackStats {
    std::size_t live = 0;    // stacks handed out and not returned
    std::size_t pooled = 0;  // stacks kept for reuse (hot and cold)
    std::size_t mapped = 0;  // stacks currently mapped (live + pooled)
    GuardMode mode = GuardMode::mprotect;
};

/// Per-thread pool of stacks. Not thread-safe: each thread has its own.
///
/// Up to kMaxPooled stacks of the default size are kept *hot* (as they
/// are, for the next coroutine). With guard regions (one mapping per stack)
/// the kernel merges neighbouring stacks into one mapping, and unmapping one
/// stack out of the middle of such a run splits it in two: a million
/// coroutines ending in random order would cut the address space into more
/// mappings than vm.max_map_count allows, and every later mmap (and munmap)
/// in the process would fail. So in that mode a released stack beyond the
/// hot ones is never unmapped alone: its memory goes back to the system
/// (MADV_DONTNEED) and it stays mapped, *cold*, for reuse; trim() unmaps the
/// pooled stacks in address order, whole runs at a time. (With mprotect
/// guards every stack is two mappings of its own, neighbours never merge,
/// and surplus stacks are unmapped as before.)
class StackPool {
public:
    static StackPool& local();
    /// local().acquire/release, and still correct after this thread's pool
    /// was destroyed (at thread or process exit, a static MainLoop may still
    /// unwind coroutines): then stacks are mapped and unmapped directly.
    static Stack acquire_local(std::size_t usable);
    static void release_local(Stack s) noexcept;

    Stack acquire(std::size_t usable);
    void release(Stack s) noexcept;
    StackStats stats() const noexcept;
    /// Unmaps the pooled stacks.
    void trim() noexcept;

    ~StackPool();

private:
    static Stack map(std::size_t usable);
    static void unmap(Stack s) noexcept;

    std::vector<Stack> free_;  // hot, default size
    std::vector<Stack> cold_;        // memory released, default size (guard-region mode)
    std::vector<Stack> cold_other_;  // the same, other sizes (few: searched linearly)
    std::size_t live_ = 0;
};

/// The default usable stack size (128 KiB, as Boost.Context and asio::spawn;
/// only touched pages take memory).
std::size_t default_stack_size() noexcept;
/// The guard mode this process uses (probed once).
GuardMode guard_mode() noexcept;

/// What the SIGSEGV handler needs to name an overflowing coroutine. Set by the
/// coroutine code around every switch; read from the signal handler.
struct RunningStackInfo {
    const char* guard_lo = nullptr;
    const char* guard_hi = nullptr;
    const char* name = nullptr;
    std::size_t size = 0;
    // The creation site (static strings from std::source_location); line 0
    // when unknown.
    const char* file = nullptr;
    unsigned line = 0;
};
// constinit: no dynamic initialisation, so other files reach it directly
// rather than through a TLS wrapper call (it is set on every switch).
extern constinit thread_local RunningStackInfo t_running_stack;

/// Installs (once per process, and an alternate signal stack once per thread)
/// the handler that reports "stack overflow in coroutine NAME".
void install_overflow_handler();

} // namespace kaa::detail
