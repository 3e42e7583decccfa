// SPDX-License-Identifier: BSL-1.0
#include "kaa/detail/state_alloc.hpp"

#include <cstddef>
#include <new>

namespace kaa::detail {

namespace {

// The per-thread cache of state blocks (state_allocate). Blocks are one
// size, large enough for the state of any small result type (a threaded
// job's state, with its Job inside, included); larger states go to operator
// new. A thread keeps at most kCachedBlocks (1 MiB): enough for the loop
// thread to reuse the states of a couple of thousand operations in flight
// (a batch of 1000 threaded jobs, say), bounded so that a burst does not pin
// memory. With 512 blocks, half the states of 1000 jobs in flight went back
// to malloc and came from it again: ~380 instructions per job on the loop
// thread, and page faults when free() trimmed the heap. In practice only
// the loop thread fills its cache: states are released there. Sanitizer
// builds skip it, so that ASan still sees every use after free.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kCacheBlocks = false;
#else
constexpr bool kCacheBlocks = true;
#endif
constexpr std::size_t kBlockSize = 512;
constexpr std::size_t kCachedBlocks = 2048;

struct FreeBlock {
    FreeBlock* next;
};

// Set once the thread's cache is destroyed (at thread exit): states freed
// later (by other thread-local destructors) go straight to operator delete.
thread_local bool t_block_cache_gone = false;

struct BlockCache {
    FreeBlock* head = nullptr;
    std::size_t count = 0;
    ~BlockCache() {
        t_block_cache_gone = true;
        while (head) {
            FreeBlock* next = head->next;
            ::operator delete(static_cast<void*>(head), kBlockSize);
            head = next;
        }
    }
};
thread_local BlockCache t_block_cache;

} // namespace

void* state_allocate(std::size_t bytes) {
    if (!kCacheBlocks || bytes > kBlockSize)
        return ::operator new(bytes);
    if (!t_block_cache_gone) {
        BlockCache& c = t_block_cache;
        if (FreeBlock* b = c.head) {
            c.head = b->next;
            --c.count;
            return b;
        }
    }
    return ::operator new(kBlockSize);
}

void state_deallocate(void* p, std::size_t bytes) noexcept {
    if (!kCacheBlocks || bytes > kBlockSize) {
        ::operator delete(p, bytes);
        return;
    }
    if (!t_block_cache_gone) {
        BlockCache& c = t_block_cache;
        if (c.count < kCachedBlocks) {
            c.head = ::new (p) FreeBlock{c.head};
            ++c.count;
            return;
        }
    }
    ::operator delete(p, kBlockSize);
}

} // namespace kaa::detail
