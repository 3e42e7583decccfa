// SPDX-License-Identifier: BSL-1.0
// Conversions between InProgress<T> and std::future<T>.
//
//  * to_future(ip): a std::future that becomes ready when ip finishes (on the
//    loop thread). Do not block on it ON the loop thread: nothing would run
//    the loop -- use ip.wait() there, which iterates the loop.
//  * from_future(std::future<T>): an InProgress finished on the loop thread
//    with the future's value or exception. Waiting on a std::future blocks a
//    thread, so a job on the default thread pool does it, checking every
//    10 ms whether it was aborted: aborting the InProgress (or the loop
//    shutting down) stops the wait; a value that comes later is discarded.
#pragma once

#include <future>
#include <memory>
#include <type_traits>
#include <utility>

#include "kaa/in_progress.hpp"
#include "kaa/threaded.hpp"

namespace kaa {

template <class T>
std::future<T> to_future(const InProgress<T>& ip) {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> f = promise->get_future();
    ip.connect_both(
        [promise](const auto&... value) {
            if constexpr (std::is_void_v<T>)
                promise->set_value();
            else
                promise->set_value(value...);
        },
        [promise](std::exception_ptr e) { promise->set_exception(std::move(e)); });
    return f;
}

template <class T>
ThreadInProgress<T> from_future(std::future<T> f) {
    return threaded([f = std::move(f)]() mutable -> T {
        // std::future has no completion callback: wait in slices so that an
        // abort is seen (and shutdown is not held up for its grace period).
        while (f.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready)
            this_job::check_aborted();
        return f.get();
    });
}

} // namespace kaa
