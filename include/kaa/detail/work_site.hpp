// SPDX-License-Identifier: BSL-1.0
// What started a piece of work (a coroutine, a threaded job, a timer): the
// call's source location and the callable's type name, for kaa::live_work()
// and for reports. Library plumbing: both parts are pointers to static data,
// so recording them costs a few stores and no allocation.
#pragma once

#include <source_location>
#include <string_view>

namespace kaa::detail {

struct WorkSite {
    /// The call that started the work; line() == 0 when unknown.
    std::source_location where{};
    /// The callable's type, as the compiler spells it ("main()::<lambda()>").
    std::string_view function;
};

/// The type name of F, computed at compile time from __PRETTY_FUNCTION__
/// (GCC: "... type_name() [with F = X; ...]", Clang: "... [F = X]").
template <class F>
constexpr std::string_view type_name() noexcept {
    std::string_view p = __PRETTY_FUNCTION__;
    constexpr std::string_view key = "F = ";
    std::size_t b = p.find(key);
    if (b == std::string_view::npos)
        return "callable";
    b += key.size();
    // GCC lists the other names the signature uses after "; " ("[with F =
    // X; std::string_view = std::basic_string_view<char>]"); a type name
    // itself never holds "; " (template arguments are separated by ", ").
    std::size_t e = p.find("; ", b);
    if (e == std::string_view::npos)
        e = p.rfind(']');
    return e == std::string_view::npos || e <= b ? p.substr(b) : p.substr(b, e - b);
}

/// type_name<F>(), computed once at compile time: a constexpr function called
/// in a plain expression may run at run time, and this one scans the whole
/// signature (a few hundred instructions per coroutine or job started).
template <class F>
inline constexpr std::string_view type_name_v = type_name<F>();

} // namespace kaa::detail
