// SPDX-License-Identifier: BSL-1.0
// What kaa::live_work() (src/debug.cpp) reads from each kind of live work,
// and the cheap clock the registry times states with. See kaa/debug.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "kaa/debug.hpp"
#include "kaa/detail/work_site.hpp"

namespace kaa {
class MainLoop;
}

namespace kaa::detail {

class AwaitRegistry;
class StateBase;

/// Whether coroutines and Tasks time their states (set_state_timing()).
/// Read with one relaxed load per suspension.
extern constinit std::atomic<bool> g_state_timing;

/// Nanoseconds of a monotonic clock of a few milliseconds' resolution
/// (CLOCK_MONOTONIC_COARSE: a read of the vDSO page, no TSC), never 0.
std::int64_t coarse_now() noexcept;

/// `since` = now, if states are timed.
inline void note_state_change(std::int64_t& since) noexcept {
    if (g_state_timing.load(std::memory_order_relaxed)) [[unlikely]]
        since = coarse_now();
}

/// The time since `since`, for a record (nullopt if not timed).
std::optional<Duration> time_since(std::int64_t since, std::int64_t now) noexcept;

/// Whether a creation site says who started the work: false for none, and
/// for the implicit constructor of options that were not written in the
/// call. Async-signal-safe (the stack-overflow report uses it).
bool site_known(const char* file, unsigned line) noexcept;
/// Fills the record's site fields.
void set_site(WorkRecord& r, const WorkSite& site);
/// "started at file:line" (with the file's last component only), or "".
std::string site_text(const WorkSite& site);

/// The lists the registry reads (loop thread).
const AwaitRegistry& coroutine_registry() noexcept;
const AwaitRegistry& task_registry() noexcept;
/// Appends a record per job queued or running in any pool, and the state of
/// each (for the wait chains). Takes each pool's lock in turn.
void collect_jobs(std::vector<WorkRecord>& out, std::vector<const StateBase*>& states);
/// Appends a record per armed timer of `loop`, and the InProgress each
/// finishes (a delay()'s; nullptr for the others).
void collect_timers(MainLoop& loop, std::vector<WorkRecord>& out, std::vector<const StateBase*>& states);

/// MainLoop's constructor: with KAA_DUMP set, turns on state timing and logs
/// the dump on SIGUSR1.
void install_dump_trigger(MainLoop& loop);
/// The start of a loop shutdown: with KAA_DUMP set, logs the dump if there
/// is live work.
void dump_at_shutdown(MainLoop& loop) noexcept;

} // namespace kaa::detail
