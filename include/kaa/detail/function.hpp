// SPDX-License-Identifier: BSL-1.0
// A move-only type-erased callable with small-buffer storage.
//
// Used on the hot paths (InProgress callbacks, loop queues, coroutine resumes)
// where std::function's copyability requirement and its smaller buffer would
// force allocations. Callables up to three pointers in size that are nothrow
// movable are stored inline.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace kaa::detail {

template <class Signature>
class UniqueFunction;

/// Whether moving an `F` can be a byte copy, after which the source is
/// simply forgotten (not destroyed): trivially copyable types, and types
/// that say so with a member `using trivially_relocatable = void;` (a
/// handle that owns a raw pointer and nulls the source when moved).
template <class F, class = void>
struct relocatable_by_copy
    : std::bool_constant<std::is_trivially_copyable_v<F> && std::is_trivially_destructible_v<F>> {};
template <class F>
struct relocatable_by_copy<F, std::void_t<typename F::trivially_relocatable>> : std::true_type {};

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
    static constexpr std::size_t buffer_size = 3 * sizeof(void*);

    // `move` is null when a byte copy moves the callable (see
    // relocatable_by_copy, and the pointer to a heap-stored one), `destroy`
    // when nothing needs destroying (trivially destructible, stored inline).
    // The queues and callbacks move each callable a few times; this saves an
    // indirect call each time.
    struct VTable {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* dst, void* src) noexcept; // move-construct dst from src, destroy src
        void (*destroy)(void*) noexcept;
    };

    template <class F>
    static constexpr bool stored_inline = sizeof(F) <= buffer_size &&
                                          alignof(F) <= alignof(std::max_align_t) &&
                                          std::is_nothrow_move_constructible_v<F>;

    template <class F>
    static F* get(void* p) noexcept {
        if constexpr (stored_inline<F>)
            return std::launder(static_cast<F*>(p));
        else
            return *static_cast<F**>(p);
    }

    template <class F>
    static constexpr bool trivially_relocated = !stored_inline<F> || relocatable_by_copy<F>::value;

    template <class F>
    static void move_impl(void* dst, void* src) noexcept {
        ::new (dst) F(std::move(*get<F>(src)));
        get<F>(src)->~F();
    }

    template <class F>
    static void destroy_impl(void* p) noexcept {
        if constexpr (stored_inline<F>)
            get<F>(p)->~F();
        else
            delete get<F>(p);
    }

    template <class F>
    static constexpr VTable vtable_for{
        [](void* p, Args&&... args) -> R { return (*get<F>(p))(std::forward<Args>(args)...); },
        trivially_relocated<F> ? nullptr : &move_impl<F>,
        stored_inline<F> && std::is_trivially_destructible_v<F> ? nullptr : &destroy_impl<F>,
    };

    void move_from(UniqueFunction& o) noexcept {
        if (o.vt_->move)
            o.vt_->move(buf_, o.buf_);
        else
            __builtin_memcpy(buf_, o.buf_, buffer_size);
        vt_ = o.vt_;
        o.vt_ = nullptr;
    }

public:
    UniqueFunction() noexcept = default;
    UniqueFunction(std::nullptr_t) noexcept {}

    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<!std::is_same_v<D, UniqueFunction> &&
                                       std::is_invocable_r_v<R, D&, Args...>>>
    UniqueFunction(F&& f) {
        if constexpr (stored_inline<D>) {
            // Moves of trivially relocatable callables copy the whole buffer:
            // give the bytes a smaller callable leaves (all of them, for a
            // captureless lambda) a value, or GCC warns about copying them.
            if constexpr (sizeof(D) < buffer_size || std::is_empty_v<D>)
                __builtin_memset(buf_, 0, buffer_size);
            ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
        } else
            *reinterpret_cast<D**>(buf_) = new D(std::forward<F>(f));
        vt_ = &vtable_for<D>;
    }

    UniqueFunction(UniqueFunction&& o) noexcept {
        if (o.vt_)
            move_from(o);
    }

    UniqueFunction& operator=(UniqueFunction&& o) noexcept {
        if (this != &o) {
            reset();
            if (o.vt_)
                move_from(o);
        }
        return *this;
    }

    UniqueFunction(const UniqueFunction&) = delete;
    UniqueFunction& operator=(const UniqueFunction&) = delete;

    ~UniqueFunction() { reset(); }

    void reset() noexcept {
        if (vt_) {
            if (vt_->destroy)
                vt_->destroy(buf_);
            vt_ = nullptr;
        }
    }

    explicit operator bool() const noexcept { return vt_ != nullptr; }

    R operator()(Args... args) { return vt_->invoke(buf_, std::forward<Args>(args)...); }

private:
    alignas(std::max_align_t) unsigned char buf_[buffer_size];
    const VTable* vt_ = nullptr;
};

} // namespace kaa::detail
