// SPDX-License-Identifier: BSL-1.0
// Waiting for several operations: kaa::any (kaa's InProgressAny) and
// kaa::all (InProgressAll), over any mix of InProgress types -- coroutines,
// threaded jobs, signals' next(), delays, Tasks.
//
// Semantics (doc/waiting.md has the table):
//  * any(a, b, ...) finishes when the first member finishes: with that
//    member's index if it succeeded, or failing with its exception. Members
//    already finished count at once (the lowest index wins). An empty any()
//    is an error (std::invalid_argument): it could never finish.
//  * all(a, b, ...) finishes when every member succeeded, with every result
//    (a tuple; a vector for all(std::vector<InProgress<T>>); InProgress<void>
//    members give std::monostate). It fails with the first failure, and then
//    aborts the members nobody else waits on. An empty all() finishes at once.
//  * Aborting an any/all aborts the unfinished members nobody else waits on
//    (the same rule as a coroutine's abort cascade); noabort() shields one.
//  * all() has a Progress aggregated from its members, each weighing the
//    same: max() is 100 per member, and each adds its own percentage (a
//    member without a Progress adds 0, then 100 when it finishes). The
//    combined position never moves back.
#pragma once

#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kaa/in_progress.hpp"

namespace kaa {

namespace detail {

/// Finishes `target` (an InProgress<std::size_t>) with the index of the first
/// member to finish, or fails it with that member's exception.
void attach_any(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members);
/// Calls `set_value()` then finishes `target` when every member succeeded;
/// fails it with the first failure.
void attach_all(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members,
                UniqueFunction<void()> set_value);

template <class T>
using result_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
result_or_monostate<T> result_of(const InProgress<T>& ip) {
    if constexpr (std::is_void_v<T>) {
        ip.result();
        return {};
    } else {
        return ip.result();
    }
}

} // namespace detail

/// The first of `members` to finish (see the header comment).
/// @throws std::invalid_argument if `members` is empty.
InProgress<std::size_t> any(std::vector<InProgressRef> members);

template <class... T>
    requires(sizeof...(T) > 0)
InProgress<std::size_t> any(const InProgress<T>&... members) {
    return any(std::vector<InProgressRef>{members...});
}

/// Every one of `members` (see the header comment).
template <class... T>
InProgress<std::tuple<detail::result_or_monostate<T>...>> all(const InProgress<T>&... members) {
    using R = std::tuple<detail::result_or_monostate<T>...>;
    InProgress<R> out;
    auto state = out.typed_ptr();
    detail::State<R>* raw = state.get();
    detail::attach_all(std::move(state), std::vector<InProgressRef>{members...},
                       [raw, members...] { raw->set_value(detail::result_of(members)...); });
    return out;
}

template <class T>
InProgress<std::vector<detail::result_or_monostate<T>>> all(const std::vector<InProgress<T>>& members) {
    using R = std::vector<detail::result_or_monostate<T>>;
    InProgress<R> out;
    auto state = out.typed_ptr();
    detail::State<R>* raw = state.get();
    detail::attach_all(std::move(state), std::vector<InProgressRef>(members.begin(), members.end()),
                       [raw, members] {
                           R values;
                           values.reserve(members.size());
                           for (const auto& m : members)
                               values.push_back(detail::result_of(m));
                           raw->set_value(std::move(values));
                       });
    return out;
}

/// all() over type-erased members: finishes with nothing once all succeeded.
InProgress<void> all(std::vector<InProgressRef> members);

} // namespace kaa
