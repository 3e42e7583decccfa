// SPDX-License-Identifier: BSL-1.0
// IOMonitor: a callback that the loop calls while a file descriptor is
// readable or writable (kaa's IOMonitor), and readable(fd) / writable(fd),
// the same as an InProgress for a coroutine to wait on.
//
//   kaa::IOMonitor mon([&] { return handle_input(); });  // false unregisters
//   mon.register_fd(fd, kaa::IOCondition::read);
//
//   kaa::this_coroutine::await(kaa::readable(fd));        // in a coroutine
//
// Guarantees:
//  * The descriptor stays the caller's: kaa watches a duplicate of it (dup),
//    and never reads, writes or closes the caller's descriptor. Because the
//    duplicate keeps the file open, unregister() before relying on the file
//    being closed (a pipe's reader sees end-of-file only when every copy of
//    the write end is closed).
//  * The callback runs on the loop thread, from MainLoop::step(), while the
//    condition holds (level-triggered, as select()): a callback that does not
//    consume the input is called again on the next iteration. End of file,
//    hang-up and errors count as readable. Regular files are always ready.
//  * A callback returning false unregisters the monitor (void keeps it). It
//    may unregister, re-register or destroy the monitor. An exception escaping
//    it goes to the loop's `exception` signal; the monitor stays registered.
//  * Destroying the monitor unregisters it. The loop's shutdown unregisters
//    every monitor, and fails pending readable()/writable() with
//    ConnectionClosed.
//  * Loop thread only (WrongThread elsewhere).
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "kaa/detail/function.hpp"
#include "kaa/errors.hpp"
#include "kaa/in_progress.hpp"

namespace kaa {

/// What an IOMonitor watches for.
enum class IOCondition : unsigned {
    read = 1,        ///< data (or end of file, hang-up, an error) can be read
    write = 2,       ///< data can be written without blocking
    read_write = 3,  ///< either
};

namespace detail {

class MonitorCore;

std::shared_ptr<MonitorCore> make_monitor_core(UniqueFunction<bool()> callback);

/// What an IOMonitor callback may be: no arguments, returning void (stay
/// registered) or bool (false unregisters).
template <class F>
concept MonitorCallback =
    std::invocable<std::decay_t<F>&> && (std::is_void_v<std::invoke_result_t<std::decay_t<F>&>> ||
                                         std::is_same_v<std::invoke_result_t<std::decay_t<F>&>, bool>);

template <class T>
struct IsFunction : std::false_type {};
template <class S>
struct IsFunction<std::function<S>> : std::true_type {};

template <MonitorCallback F>
UniqueFunction<bool()> wrap_monitor_callback(F&& f) {
    using D = std::decay_t<F>;
    if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D> || IsFunction<D>::value) {
        if (!f)
            throw EmptyHandle("IOMonitor: the callback is empty");
    }
    if constexpr (std::is_void_v<std::invoke_result_t<D&>>)
        return [f = std::forward<F>(f)]() mutable {
            std::invoke(f);
            return true;
        };
    else
        return [f = std::forward<F>(f)]() mutable -> bool { return std::invoke(f); };
}

} // namespace detail

/// Calls a callback while a descriptor is readable and/or writable.
/// Movable, not copyable.
class IOMonitor {
public:
    /// An unregistered monitor that will call `callback()`.
    /// @throws EmptyHandle for an empty std::function or a null pointer.
    template <detail::MonitorCallback F>
    explicit IOMonitor(F&& callback) : core_(detail::make_monitor_core(detail::wrap_monitor_callback(std::forward<F>(callback)))) {}

    IOMonitor(IOMonitor&&) noexcept = default;
    /// Unregisters the monitor this one held, then takes over `other`'s.
    IOMonitor& operator=(IOMonitor&& other) noexcept;
    IOMonitor(const IOMonitor&) = delete;
    IOMonitor& operator=(const IOMonitor&) = delete;
    /// Unregisters: the callback is not called after this. On another
    /// thread than the loop's, the loop unregisters it on its next iteration
    /// instead (until then the callback may still run there).
    ~IOMonitor();

    /// Starts watching `fd` for `cond`. Registering again with the same
    /// descriptor and condition does nothing.
    /// @throws UsageError if it is registered to another descriptor or
    /// condition (unregister() first); IOError if the descriptor cannot be
    /// watched (e.g. it is not open); LoopError, WrongThread.
    void register_fd(int fd, IOCondition cond = IOCondition::read);
    /// Stops watching. Does nothing if not registered.
    /// @throws WrongThread off the loop thread.
    void unregister();
    /// True while registered.
    bool active() const noexcept;
    /// The descriptor given to register_fd(), or -1.
    int fd() const noexcept;

private:
    std::shared_ptr<detail::MonitorCore> core_;
};

/// Finishes when `fd` is readable (or at end of file, hang-up, error). The
/// descriptor stays the caller's (a duplicate is watched). Aborting it stops
/// the wait. @throws IOError if the descriptor cannot be watched.
InProgress<void> readable(int fd);
/// Finishes when `fd` is writable. See readable().
InProgress<void> writable(int fd);

} // namespace kaa
