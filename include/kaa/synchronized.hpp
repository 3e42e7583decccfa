// SPDX-License-Identifier: BSL-1.0
// Synchronized<T>: a value and the one lock that guards it (kaa's
// synchronized helper, for objects shared between the loop and workers).
//
// Every way of taking the lock -- with_lock(), lock(), or a std::scoped_lock
// on mutex() -- takes the same recursive mutex, so they exclude each other
// (kaa's decorator and `with` form did not share a lock: port decision 13).
//
//   kaa::Synchronized<std::vector<Item>> items;
//   items.with_lock([&](auto& v) { v.push_back(item); });   // from any thread
//   auto locked = items.lock(); locked->size();
#pragma once

#include <mutex>
#include <utility>

namespace kaa {

template <class T, class Mutex = std::recursive_mutex>
class Synchronized {
public:
    /// A locked view: holds the lock for its lifetime.
    class Locked {
    public:
        Locked(Mutex& m, T& v) : lock_(m), value_(&v) {}
        T* operator->() const noexcept { return value_; }
        T& operator*() const noexcept { return *value_; }

    private:
        std::unique_lock<Mutex> lock_;
        T* value_;
    };

    template <class... A>
    explicit Synchronized(A&&... args) : value_(std::forward<A>(args)...) {}
    Synchronized(const Synchronized&) = delete;
    Synchronized& operator=(const Synchronized&) = delete;

    /// Calls f(value) with the lock held and returns what f returns.
    template <class F>
    decltype(auto) with_lock(F&& f) {
        std::lock_guard lock(mutex_);
        return std::forward<F>(f)(value_);
    }

    /// Takes the lock until the returned view goes.
    Locked lock() { return Locked(mutex_, value_); }

    /// The lock itself, for std::scoped_lock over several objects.
    Mutex& mutex() noexcept { return mutex_; }

private:
    Mutex mutex_;
    T value_;
};

} // namespace kaa
