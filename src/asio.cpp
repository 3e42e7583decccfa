// SPDX-License-Identifier: BSL-1.0
#include "kaa/asio.hpp"

#include <string>

#include <boost/asio/buffer.hpp> // io_core.hpp needs it
#include <boost/asio/error.hpp>

#include "io_core.hpp"

namespace asio = boost::asio;

namespace kaa::detail {

std::exception_ptr asio_error(const boost::system::error_code& ec, const char* what) {
    // Name lookups fail in Asio's netdb category (or as EAI_* in its addrinfo
    // one); kaa's resolver calls them ResolveError, and so do we.
    if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
        ec == asio::error::no_data || ec == asio::error::no_recovery || ec == asio::error::service_not_found ||
        ec == asio::error::socket_type_not_supported)
        return std::make_exception_ptr(ResolveError(std::error_code(ec), std::string(what) + ": " + ec.message()));
    // Everything else as kaa's own I/O: ConnectionReset, ConnectionRefused,
    // ConnectionClosed, or IOError with the code (operation_aborted when
    // someone else cancelled the operation).
    return io_error(ec, std::string(what));
}

void abandon_asio_operation(const std::shared_ptr<StateBase>& s, const char* what) noexcept {
    if (s->status() != Status::pending || s->aborted())
        return;
    try {
        auto e = std::make_exception_ptr(
            LoopError(std::string(what) + ": its completion handler was destroyed without being called (the "
                                          "io_context was stopped or destroyed with the operation outstanding); "
                                          "the operation will never complete"));
        if (!s->claim())
            return;
        if (in_loop_context())
            s->fail_claimed(std::move(e), s);
        else
            post_to_loop([s, e]() mutable { s->fail_claimed(std::move(e), s); });
    } catch (...) {
        // No memory for the exception: the state stays pending, as a handler
        // Asio drops leaves it -- only a waiter's abort ends it.
    }
}

std::exception_ptr abandoned_wait_error() {
    return std::make_exception_ptr(
        LoopError("kaa::async_wait(): every handle of the InProgress went away while it was unfinished, so "
                  "nothing can finish it any more; keep the InProgress (or its producer) alive while waiting"));
}

std::exception_ptr stopped_waiting_error(const InProgressRef& ip) {
    return std::make_exception_ptr(InProgressAborted(
        "kaa::async_wait(): cancelled; the InProgress goes on (someone else waits on it, or it cannot be aborted)",
        ip, InProgressRef()));
}

void throw_async_wait_wrong_thread() {
    throw WrongThread("kaa::async_wait() must be called on the loop thread (from an asio::awaitable or a handler "
                      "running on the loop's io_context); post() to the loop first");
}

} // namespace kaa::detail
