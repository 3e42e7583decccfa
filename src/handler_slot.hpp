// SPDX-License-Identifier: BSL-1.0
// Private: memory for one Asio handler at a time, kept in the object that
// starts the operation.
//
// Asio recycles a handler's memory through a cache in its per-thread
// context, which exists only inside io_context::run()/poll(). An operation
// started anywhere else -- from the loop's own queue, or from another thread
// -- pays a malloc (an aligned one) and a free per operation. An object that
// has at most one such operation outstanding as a rule keeps a slot for it
// instead, and hands it to Asio with asio::bind_allocator(SlotAllocator<void>
// (&slot), handler). A second operation while the slot is taken, or a handler
// larger than the slot, falls back to the heap.
//
// Lifetime: Asio returns the memory while the handler (moved out of the
// operation) still exists, so a handler that holds a reference to the slot's
// owner keeps the owner alive across the deallocation.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <type_traits>

namespace kaa::detail {

/// `Shared`: whether several threads may allocate from it at once (an
/// atomic flag); otherwise a plain one.
template <std::size_t Size, bool Shared = false>
class HandlerSlot {
public:
    void* allocate(std::size_t size) {
        if (size <= Size && take())
            return buf_;
        return ::operator new(size);
    }
    void deallocate(void* p) noexcept {
        if (p == buf_)
            give_back();
        else
            ::operator delete(p);
    }

private:
    bool take() noexcept {
        if constexpr (Shared)
            return !busy_.exchange(true, std::memory_order_acquire);
        else
            return busy_ ? false : (busy_ = true);
    }
    void give_back() noexcept {
        if constexpr (Shared)
            busy_.store(false, std::memory_order_release);
        else
            busy_ = false;
    }

    alignas(std::max_align_t) unsigned char buf_[Size];
    std::conditional_t<Shared, std::atomic<bool>, bool> busy_{false};
};

/// The allocator Asio gets for a handler bound to a HandlerSlot.
template <class T, class Slot>
struct SlotAllocator {
    using value_type = T;
    Slot* slot;
    explicit SlotAllocator(Slot* s) noexcept : slot(s) {}
    template <class U>
    SlotAllocator(const SlotAllocator<U, Slot>& o) noexcept : slot(o.slot) {}
    template <class U>
    struct rebind {
        using other = SlotAllocator<U, Slot>;
    };
    T* allocate(std::size_t n) { return static_cast<T*>(slot->allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { slot->deallocate(p); }
    template <class U>
    bool operator==(const SlotAllocator<U, Slot>& o) const noexcept {
        return slot == o.slot;
    }
};

} // namespace kaa::detail
