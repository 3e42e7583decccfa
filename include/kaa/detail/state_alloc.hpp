// SPDX-License-Identifier: BSL-1.0
// Memory for InProgress states. Library plumbing.
//
// Every InProgress, coroutine, Task and threaded job allocates one state
// block (the state and its shared_ptr control block together), and frees it
// when the last handle goes. With many of them in flight, frees overflow
// glibc's per-thread cache and both malloc and free take the slow paths, so
// each thread keeps the state blocks it frees (one block size, up to a
// bound) for the next states it creates. See src/state_alloc.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace kaa::detail {

void* state_allocate(std::size_t bytes);
void state_deallocate(void* p, std::size_t bytes) noexcept;

template <class T>
struct StateAllocator {
    using value_type = T;
    StateAllocator() noexcept = default;
    template <class U>
    StateAllocator(const StateAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(state_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { state_deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const StateAllocator<U>&) const noexcept {
        return true;
    }
};

/// make_shared for state types, through the per-thread block cache.
template <class S>
std::shared_ptr<S> make_state() {
    if constexpr (alignof(S) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__)
        return std::allocate_shared<S>(StateAllocator<S>());
    else
        return std::make_shared<S>();
}

} // namespace kaa::detail
