// Conversions between InProgress<T> and std::future<T>.
//
//  * to_future(ip): a std::future that becomes ready when ip finishes (on the
//    loop thread). Do not block on it ON the loop thread: nothing would run
//    the loop -- use ip.wait() there, which iterates the loop.
//  * from_future(std::future<T>): an InProgress finished on the loop thread
//    with the future's value or exception. Waiting on a std::future blocks a
//    thread, so a job on the default thread pool does it; aborting the
//    InProgress stops waiting for the value (it is discarded when it comes).
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
    return threaded([f = std::move(f)]() mutable -> T { return f.get(); });
}

} // namespace kaa
