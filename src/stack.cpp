// SPDX-License-Identifier: BSL-1.0
#include "stack.hpp"
#include "work_registry.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string>
#include <system_error>

#if defined(KAA_VALGRIND)
#include <valgrind/valgrind.h>
#endif

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

namespace kaa::detail {

constinit thread_local RunningStackInfo t_running_stack;

namespace {

constexpr std::size_t kDefaultStack = 128 * 1024;
// Pooled stacks kept per thread; beyond this they are unmapped on release.
constexpr std::size_t kMaxPooled = 1024;

std::size_t page_size() noexcept {
    static const std::size_t p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return p;
}

std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

// Stacks protected with mprotect cost two mappings each; this process-wide
// count keeps them inside vm.max_map_count instead of letting mprotect fail
// (or, as with Boost's protected_fixedsize_stack in release builds, silently
// run without a guard).
std::atomic<std::size_t> g_mprotect_stacks{0};

// Set when this thread's pool is destroyed; trivially destructible, so it
// stays readable until the very end of the thread.
constinit thread_local bool t_pool_gone = false;

// fail_next_stack_maps(): how many of the next stack mappings fail.
std::atomic<long> g_fail_maps{0};

std::size_t mprotect_budget() noexcept {
    static const std::size_t budget = [] {
        std::size_t max_maps = 65530;
        std::ifstream in("/proc/sys/vm/max_map_count");
        in >> max_maps;
        // Leave a quarter of the mappings (and at least 4096) for the rest
        // of the process: libraries, heaps, thread stacks, files.
        std::size_t reserve = std::max<std::size_t>(max_maps / 4, 4096);
        return max_maps > reserve ? (max_maps - reserve) / 2 : 0;
    }();
    return budget;
}

GuardMode probe_guard_mode() noexcept {
    std::size_t p = page_size();
    void* m = ::mmap(nullptr, 2 * p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return GuardMode::mprotect;
    int rc = ::madvise(m, p, MADV_GUARD_INSTALL);
    ::munmap(m, 2 * p);
    return rc == 0 ? GuardMode::guard_region : GuardMode::mprotect;
}

// ---------------------------------------------------------------------------
// Overflow reporting.

struct sigaction g_previous_segv;
std::once_flag g_handler_once;
thread_local bool t_altstack_installed = false;

void write_str(const char* s) noexcept {
    std::size_t n = std::strlen(s);
    while (n > 0) {
        ssize_t w = ::write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= static_cast<std::size_t>(w);
    }
}

void write_num(std::size_t v) noexcept {
    char buf[32];
    int i = 31;
    buf[i] = '\0';
    do {
        buf[--i] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    write_str(buf + i);
}

void segv_handler(int sig, siginfo_t* info, void* uctx) {
    const RunningStackInfo& rs = t_running_stack;
    const char* addr = static_cast<const char*>(info->si_addr);
    // A fault in the guard page, or just below the stack (a large frame can
    // skip the guard page entirely; within a page below is still ours).
    if (rs.guard_lo && addr >= rs.guard_lo - page_size() && addr < rs.guard_hi + page_size()) {
        write_str("kaa: stack overflow in coroutine '");
        write_str(rs.name ? rs.name : "?");
        write_str("' (stack size ");
        write_num(rs.size);
        write_str(" bytes)");
        if (site_known(rs.file, rs.line)) {
            const char* base = rs.file;
            for (const char* p = rs.file; *p; ++p)
                if (*p == '/')
                    base = p + 1;
            write_str(", started at ");
            write_str(base);
            write_str(":");
            write_num(rs.line);
        }
        write_str("; give it a larger stack with CoroutineOptions::stack_size\n");
        ::signal(SIGSEGV, SIG_DFL);
        ::raise(SIGSEGV);
        return;
    }
    // Not ours: hand it to whoever was there before.
    if (g_previous_segv.sa_flags & SA_SIGINFO) {
        if (g_previous_segv.sa_sigaction) {
            g_previous_segv.sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (g_previous_segv.sa_handler != SIG_DFL && g_previous_segv.sa_handler != SIG_IGN) {
        g_previous_segv.sa_handler(sig);
        return;
    }
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
}

} // namespace

std::size_t default_stack_size() noexcept { return kDefaultStack; }

void fail_next_stack_maps(std::size_t n) noexcept { g_fail_maps.store(static_cast<long>(n)); }

CoroutineStackCounts coroutine_stack_counts() noexcept {
    if (t_pool_gone)
        return CoroutineStackCounts{};
    StackStats s = StackPool::local().stats();
    return CoroutineStackCounts{s.live, s.pooled};
}

GuardMode guard_mode() noexcept {
    static const GuardMode mode = probe_guard_mode();
    return mode;
}

void install_overflow_handler() {
    std::call_once(g_handler_once, [] {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGSEGV, &sa, &g_previous_segv);
    });
    if (!t_altstack_installed) {
        // The handler must run on a stack of its own: the faulting one is full.
        stack_t current;
        if (::sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE) && current.ss_sp) {
            t_altstack_installed = true;  // someone (a sanitizer, the host) already set one
            return;
        }
        static thread_local struct AltStack {
            void* mem = nullptr;
            std::size_t size = 0;
            ~AltStack() {
                if (mem) {
                    stack_t off{};
                    off.ss_flags = SS_DISABLE;
                    ::sigaltstack(&off, nullptr);
                    ::munmap(mem, size);
                }
            }
        } alt;
        alt.size = std::max<std::size_t>(SIGSTKSZ, 64 * 1024);
        alt.mem = ::mmap(nullptr, alt.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (alt.mem == MAP_FAILED) {
            alt.mem = nullptr;
            return;
        }
        stack_t ss{};
        ss.ss_sp = alt.mem;
        ss.ss_size = alt.size;
        ::sigaltstack(&ss, nullptr);
        t_altstack_installed = true;
    }
}

// ---------------------------------------------------------------------------

StackPool& StackPool::local() {
    static thread_local StackPool pool;
    return pool;
}

StackPool::~StackPool() {
    trim();
    t_pool_gone = true;
}

Stack StackPool::acquire_local(std::size_t usable) {
    if (g_fail_maps.load(std::memory_order_relaxed) > 0) [[unlikely]] {
        // Test hook (fail_next_stack_maps): pooled stacks are not reused
        // while it is armed, so the next acquisitions map (and fail).
        Stack s = map(usable == 0 ? kDefaultStack : usable);
        if (!t_pool_gone)
            ++local().live_;
        return s;
    }
    if (t_pool_gone) [[unlikely]] {
        install_overflow_handler();
        return map(usable == 0 ? kDefaultStack : usable);
    }
    return local().acquire(usable);
}

void StackPool::release_local(Stack s) noexcept {
    if (t_pool_gone) [[unlikely]] {
        unmap(s);
        return;
    }
    local().release(s);
}

Stack StackPool::map(std::size_t usable) {
    // Once per process (and thread, for the alternate signal stack): every
    // stack a thread runs was mapped by that thread's pool first.
    install_overflow_handler();
    const std::size_t page = page_size();
    const std::size_t guard = page;
    const std::size_t mapped = round_up(usable, page) + guard;
    const GuardMode mode = guard_mode();
    if (mode == GuardMode::mprotect) {
        if (g_mprotect_stacks.fetch_add(1) >= mprotect_budget()) {
            g_mprotect_stacks.fetch_sub(1);
            throw StackAllocationError(
                ENOMEM, std::generic_category(),
                "kaa: cannot create another guard-paged coroutine stack: each takes two memory "
                "mappings and vm.max_map_count would be exceeded (this kernel lacks "
                "MADV_GUARD_INSTALL); raise vm.max_map_count or run fewer coroutines at once");
        }
    }
    void* m = MAP_FAILED;
    int map_errno = ENOMEM;
    if (g_fail_maps.load(std::memory_order_relaxed) > 0 && g_fail_maps.fetch_sub(1) > 0) [[unlikely]] {
        // Test hook (fail_next_stack_maps): as if mmap had failed.
    } else {
        m = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
        map_errno = errno;
    }
    if (m == MAP_FAILED) {
        if (mode == GuardMode::mprotect)
            g_mprotect_stacks.fetch_sub(1);
        throw StackAllocationError(map_errno, std::generic_category(),
                                   "kaa: cannot map a coroutine stack of " + std::to_string(mapped) +
                                       " bytes; the memory or address space (ulimit -v) ran out: run fewer "
                                       "coroutines at once or give them a smaller CoroutineOptions::stack_size");
    }
    int rc = mode == GuardMode::guard_region ? ::madvise(m, guard, MADV_GUARD_INSTALL)
                                             : ::mprotect(m, guard, PROT_NONE);
    if (rc != 0) {
        int err = errno;
        ::munmap(m, mapped);
        if (mode == GuardMode::mprotect)
            g_mprotect_stacks.fetch_sub(1);
        throw StackAllocationError(err, std::generic_category(),
                                   "kaa: cannot install the guard page of a coroutine stack (too many memory "
                                   "mappings?); raise vm.max_map_count or run fewer coroutines at once");
    }
    Stack s{static_cast<char*>(m), mapped, guard};
#if defined(KAA_VALGRIND)
    s.valgrind_id = VALGRIND_STACK_REGISTER(s.base + s.guard, s.top());
#endif
    return s;
}

void StackPool::unmap(Stack s) noexcept {
#if defined(KAA_VALGRIND)
    VALGRIND_STACK_DEREGISTER(s.valgrind_id);
#endif
    ::munmap(s.base, s.mapped);
    if (guard_mode() == GuardMode::mprotect)
        g_mprotect_stacks.fetch_sub(1);
}

Stack StackPool::acquire(std::size_t usable) {
    if (usable == 0)
        usable = kDefaultStack;
    if (usable == kDefaultStack && !free_.empty()) {
        Stack s = free_.back();
        free_.pop_back();
        ++live_;
        return s;
    }
    if (usable == kDefaultStack && !cold_.empty()) {
        Stack s = cold_.back();
        cold_.pop_back();
        ++live_;
        return s;
    }
    if (usable != kDefaultStack) {
        const std::size_t mapped = round_up(usable, page_size()) + page_size();
        for (std::size_t i = cold_other_.size(); i-- > 0;) {
            if (cold_other_[i].mapped == mapped) {
                Stack s = cold_other_[i];
                cold_other_[i] = cold_other_.back();
                cold_other_.pop_back();
                ++live_;
                return s;
            }
        }
    }
    Stack s = map(usable);
    ++live_;
    return s;
}

void StackPool::release(Stack s) noexcept {
    --live_;
    if (s.usable() == round_up(kDefaultStack, page_size()) && free_.size() < kMaxPooled) {
        free_.push_back(s);
        return;
    }
    if (guard_mode() == GuardMode::guard_region) {
        // Give the memory back, keep the mapping (see the class comment).
        // The guard region stays installed across MADV_DONTNEED.
        ::madvise(s.base + s.guard, s.usable(), MADV_DONTNEED);
        try {
            if (s.usable() == round_up(kDefaultStack, page_size()))
                cold_.push_back(s);
            else
                cold_other_.push_back(s);
            return;
        } catch (...) {
            // No memory for the bookkeeping: unmap it after all.
        }
    }
    unmap(s);
}

void StackPool::trim() noexcept {
    std::vector<Stack> all;
    try {
        all.reserve(free_.size() + cold_.size() + cold_other_.size());
    } catch (...) {
        for (auto* list : {&free_, &cold_, &cold_other_}) {
            for (Stack& s : *list)
                unmap(s);
            list->clear();
        }
        return;
    }
    for (auto* list : {&free_, &cold_, &cold_other_}) {
        all.insert(all.end(), list->begin(), list->end());
        list->clear();
    }
    if (guard_mode() == GuardMode::mprotect) {
        for (Stack& s : all)
            unmap(s);
        return;
    }
    // Whole runs of adjacent stacks in one munmap each, so that trimming
    // never splits a mapping into more pieces.
    std::sort(all.begin(), all.end(), [](const Stack& a, const Stack& b) { return a.base < b.base; });
    for (std::size_t i = 0; i < all.size();) {
        char* lo = all[i].base;
        char* hi = all[i].top();
        std::size_t j = i + 1;
        while (j < all.size() && all[j].base == hi)
            hi = all[j++].top();
#if defined(KAA_VALGRIND)
        for (std::size_t k = i; k < j; ++k)
            VALGRIND_STACK_DEREGISTER(all[k].valgrind_id);
#endif
        ::munmap(lo, static_cast<std::size_t>(hi - lo));
        i = j;
    }
}

StackStats StackPool::stats() const noexcept {
    const std::size_t pooled = free_.size() + cold_.size() + cold_other_.size();
    return StackStats{live_, pooled, live_ + pooled, guard_mode()};
}

} // namespace kaa::detail
