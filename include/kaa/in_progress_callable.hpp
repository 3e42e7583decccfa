// SPDX-License-Identifier: BSL-1.0
// InProgressCallable<Args...>: an InProgress that is also a callback (kaa's
// InProgressCallable), so that a callback-style API becomes something to
// connect to or await.
//
//   kaa::InProgressCallable<int, std::string> done;
//   legacy_api.fetch(url, done, done.on_error());  // calls done(code, body) later
//   auto [code, body] = kaa::this_coroutine::await(done);
//
// Calling it finishes it, translating the call as kaa does: no arguments ->
// InProgress<void>; one argument -> that value; several -> a std::tuple.
// on_error() gives a callable that fails it with an exception_ptr. The
// callable is a cheap handle: copies finish the same InProgress, so it can be
// passed by value into std::function-taking APIs. Calling it a second time
// raises AlreadyFinished, like finish().
#pragma once

#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kaa/in_progress.hpp"
#include "kaa/signal.hpp"

namespace kaa {

template <class... Args>
class InProgressCallable : public InProgress<typename detail::NextResult<Args...>::type> {
    using Base = InProgress<typename detail::NextResult<Args...>::type>;

public:
    using Base::Base;
    InProgressCallable() = default;

    /// Finishes with the arguments (see the header comment).
    void operator()(Args... args) const { this->finish(std::forward<Args>(args)...); }

    /// A callable that fails this InProgress with the exception_ptr it gets.
    auto on_error() const {
        return [self = static_cast<const Base&>(*this)](std::exception_ptr e) { self.fail(std::move(e)); };
    }
};

/// An InProgress finished with fn()'s result, or failed with what fn throws.
template <class F>
auto execute(F&& fn) {
    using R = std::remove_cvref_t<std::invoke_result_t<F&>>;
    InProgress<R> ip;
    ip.execute(std::forward<F>(fn));
    return ip;
}

} // namespace kaa
