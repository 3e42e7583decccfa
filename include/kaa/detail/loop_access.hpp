// SPDX-License-Identifier: BSL-1.0
// What header-only parts of kaa need from the loop, without including it.
#pragma once

#include <exception>

#include "kaa/detail/function.hpp"

namespace kaa::detail {

/// True when the caller may touch loop-confined state directly: on the loop
/// thread, or anywhere when no loop exists.
bool in_loop_context() noexcept;

/// Where the caller runs, relative to the loop.
enum class LoopContext : unsigned char { loop_thread, no_loop, other_thread };
LoopContext loop_context() noexcept;

/// Runs `fn` on the loop thread on a later iteration; runs it at once when no
/// loop exists.
void post_to_loop(UniqueFunction<void()> fn);

/// Sends an exception that escaped a callback to the loop's `exception`
/// signal; with nothing connected it stops run(), which rethrows it (see
/// MainLoop::handle_exception). `where` names the kind of callback. Never
/// throws.
void report_unhandled(std::exception_ptr e, const char* where) noexcept;

/// Sends a failure that nobody observed to the loop's `exception` signal, or
/// to stderr; never stops the loop (see MainLoop::report). Never throws.
void report_unobserved(std::exception_ptr e, const char* where) noexcept;

} // namespace kaa::detail
