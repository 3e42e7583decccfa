// SPDX-License-Identifier: BSL-1.0
// Waiting for several operations: kaa::any (kaa's InProgressAny) and
// kaa::all (InProgressAll), over any mix of InProgress types -- coroutines,
// threaded jobs, signals' next(), delays, Tasks.
//
// Semantics (doc/waiting.md has the table):
//  * any(a, b, ...) finishes when the first member finishes: with an
//    AnyResult{index, value} if it succeeded (as kaa's (index, result)), or
//    failing with its exception. Members already finished count at once
//    (the lowest index wins). any_if(filter, a, b, ...) skips successes the
//    filter rejects, except the last member's (kaa finishes with it anyway).
//    An empty any() is an error (std::invalid_argument): it could never
//    finish.
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
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kaa/in_progress.hpp"

namespace kaa {

/// What any() finishes with: which member finished first, and its value
/// (std::monostate for an InProgress<void>; a std::variant, whose index() is
/// `index`, when the members' types differ; the member itself for the
/// type-erased any(std::vector<InProgressRef>)).
template <class V>
struct AnyResult {
    std::size_t index;
    V value;
};

namespace detail {

/// any()'s typed part: called when member `index` succeeded, with `last`
/// true if no other member is left; stores the AnyResult into the target and
/// returns true, or returns false to skip this member (a filter).
using AnyAccept = UniqueFunction<bool(std::size_t index, bool last)>;

/// Finishes `target` when `accept` takes a member's success, or fails it
/// with the first member's exception.
void attach_any(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members, AnyAccept accept);
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

template <class T, class... U>
inline constexpr bool all_same_v = (std::is_same_v<T, U> && ...);

/// The value type of any(members...): the members' common result type, or
/// a variant over them.
template <class T, class... U>
using any_value_t = std::conditional_t<all_same_v<T, U...>, result_or_monostate<T>,
                                       std::variant<result_or_monostate<T>, result_or_monostate<U>...>>;

template <class V, std::size_t I, class T>
AnyResult<V> make_any_result(const InProgress<T>& m) {
    if constexpr (std::is_same_v<V, result_or_monostate<T>>)
        return AnyResult<V>{I, result_of(m)};
    else
        return AnyResult<V>{I, V(std::in_place_index<I>, result_of(m))};
}

template <class V, class Filter, class... T>
AnyAccept make_any_accept(State<AnyResult<V>>* raw, Filter filter, const InProgress<T>&... members) {
    return [raw, filter = std::move(filter), ms = std::make_tuple(members...)](std::size_t i, bool last) mutable {
        std::optional<AnyResult<V>> r;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (void)((i == I ? (r.emplace(make_any_result<V, I>(std::get<I>(ms))), true) : false) || ...);
        }(std::index_sequence_for<T...>{});
        if (!last && !filter(static_cast<const AnyResult<V>&>(*r)))
            return false;
        raw->set_value(std::move(*r));
        return true;
    };
}

struct AcceptAny {
    template <class R>
    bool operator()(const R&) const noexcept {
        return true;
    }
};

} // namespace detail

/// The first of `members` to finish, as an AnyResult{index, value} (see the
/// header comment). Type-erased members: `value` is the member itself.
/// @throws std::invalid_argument if `members` is empty.
InProgress<AnyResult<InProgressRef>> any(std::vector<InProgressRef> members);

/// The first of `members` to succeed whose AnyResult `filter` accepts
/// (`bool filter(const AnyResult<V>&)`); a failure still fails it at once,
/// and the last member to finish is taken whatever the filter says (kaa).
template <class Filter, class T0, class... T>
InProgress<AnyResult<detail::any_value_t<T0, T...>>> any_if(Filter filter, const InProgress<T0>& first,
                                                           const InProgress<T>&... members) {
    using V = detail::any_value_t<T0, T...>;
    InProgress<AnyResult<V>> out;
    auto* raw = out.typed_ptr().get();
    detail::attach_any(out.state(), std::vector<InProgressRef>{first, members...},
                       detail::make_any_accept<V>(raw, std::move(filter), first, members...));
    return out;
}

template <class T0, class... T>
InProgress<AnyResult<detail::any_value_t<T0, T...>>> any(const InProgress<T0>& first,
                                                        const InProgress<T>&... members) {
    return any_if(detail::AcceptAny{}, first, members...);
}

/// any() over a vector of one type: AnyResult<T> (std::monostate for void).
template <class T>
InProgress<AnyResult<detail::result_or_monostate<T>>> any(const std::vector<InProgress<T>>& members) {
    using V = detail::result_or_monostate<T>;
    InProgress<AnyResult<V>> out;
    auto* raw = out.typed_ptr().get();
    detail::attach_any(out.state(), std::vector<InProgressRef>(members.begin(), members.end()),
                       [raw, members](std::size_t i, bool) {
                           raw->set_value(AnyResult<V>{i, detail::result_of(members[i])});
                           return true;
                       });
    return out;
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
