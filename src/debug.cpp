// SPDX-License-Identifier: BSL-1.0
#include "kaa/debug.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "await_support.hpp"
#include "kaa/errors.hpp"
#include "kaa/log.hpp"
#include "kaa/main_loop.hpp"
#include "work_registry.hpp"

namespace asio = boost::asio;

namespace kaa {

namespace detail {

constinit std::atomic<bool> g_state_timing{false};

std::int64_t coarse_now() noexcept {
    timespec ts{};
#ifdef CLOCK_MONOTONIC_COARSE
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec + 1;
}

std::optional<Duration> time_since(std::int64_t since, std::int64_t now) noexcept {
    if (since == 0)
        return std::nullopt;
    return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(now > since ? now - since : 0));
}

bool site_known(const char* file, unsigned line) noexcept {
    if (line == 0 || !file)
        return false;
    // Options default-constructed as a variable (CoroutineOptions opts;)
    // carry the location of their implicit constructor: the struct's own
    // header, which says nothing about who started the work.
    std::size_t n = 0;
    while (file[n])
        ++n;
    for (const char* header : {"kaa/coroutine.hpp", "kaa/threaded.hpp", "kaa/timer.hpp"}) {
        std::size_t h = 0;
        while (header[h])
            ++h;
        if (n >= h) {
            std::size_t i = 0;
            while (i < h && file[n - h + i] == header[i])
                ++i;
            if (i == h)
                return false;
        }
    }
    return true;
}

void set_site(WorkRecord& r, const WorkSite& site) {
    if (!site_known(site.where.file_name(), site.where.line()))
        return;
    r.file = site.where.file_name();
    r.line = site.where.line();
    r.function = site.where.function_name();
}

namespace {

std::string_view base_name(std::string_view path) {
    std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace

std::string site_text(const WorkSite& site) {
    if (!site_known(site.where.file_name(), site.where.line()))
        return {};
    return "started at " + std::string(base_name(site.where.file_name())) + ":" + std::to_string(site.where.line());
}

namespace {

bool dump_enabled_by_env() noexcept {
    static const bool on = [] {
        const char* v = std::getenv("KAA_DUMP");
        return v && *v && std::string_view(v) != "0";
    }();
    return on;
}

/// Owns the SIGUSR1 signal_set of one loop's io_context; shut down (the
/// set destroyed) with the context, before Asio's signal service.
class DumpTrigger final : public asio::execution_context::service {
public:
    static asio::execution_context::id id;

    explicit DumpTrigger(asio::io_context& io) : asio::execution_context::service(io) {
        signals_.emplace(io, SIGUSR1);
        arm();
    }

private:
    void arm() {
        signals_->async_wait([this](const boost::system::error_code& ec, int) {
            if (ec)
                return;
            log_dump();
            arm();
        });
    }
    void shutdown() override { signals_.reset(); }

    std::optional<asio::signal_set> signals_;
};

asio::execution_context::id DumpTrigger::id;

std::string format_duration(Duration d) {
    char buf[32];
    double s = std::chrono::duration<double>(d).count();
    if (s < 1)
        std::snprintf(buf, sizeof buf, "%.0f ms", s * 1000);
    else
        std::snprintf(buf, sizeof buf, "%.1f s", s);
    return buf;
}

std::string state_text(const WorkRecord& r) {
    return r.in_state ? r.state + " for " + format_duration(*r.in_state) : r.state;
}

std::string link_text(const WorkRecord& r) {
    std::string text = std::string(to_string(r.kind)) + " '" + r.name + "'";
    if (r.kind == WorkKind::job)
        text += r.pool.empty() ? " on the default pool" : " on pool \"" + r.pool + "\"";
    return text + " (" + state_text(r) + ")";
}

std::string plain_text(const StateBase& s) {
    std::string text = "an InProgress with no known producer (";
    text += s.finished() ? "finished" : s.status() == Status::claimed ? "being finished" : "pending";
    return text + ")";
}

void follow_chain(std::vector<WorkRecord>& records, std::size_t i, const std::vector<const StateBase*>& waits,
                  const std::unordered_map<const StateBase*, std::size_t>& index) {
    std::vector<bool> seen(records.size(), false);
    seen[i] = true;
    const StateBase* cur = waits[i];
    for (int depth = 0; cur && depth < 64; ++depth) {
        // Through views (noabort(), timeout(), finish(other)) to the
        // operation they stand for; a view that abort() does not reach
        // shields the link.
        bool noabort = false;
        std::shared_ptr<StateBase> keep;
        for (int hops = 0; hops < 64 && !index.count(cur); ++hops) {
            std::shared_ptr<StateBase> src = cur->source.lock();
            if (!src || src->finished() || cur->finished())
                break;
            // A view abort() does not pass through: the wait is shielded
            // here. (A plain InProgress at the end of a chain is not
            // abortable either, but nothing lies behind it to shield.)
            if (!cur->abortable())
                noabort = true;
            keep = std::move(src);
            cur = keep.get();
        }
        WaitLink link;
        link.noabort = noabort;
        auto it = index.find(cur);
        if (it == index.end()) {
            link.text = plain_text(*cur);
            records[i].waits_on.push_back(std::move(link));
            return;
        }
        std::size_t j = it->second;
        link.index = j;
        link.text = link_text(records[j]);
        if (seen[j]) {
            link.text += " -- a cycle";
            records[i].waits_on.push_back(std::move(link));
            return;
        }
        seen[j] = true;
        records[i].waits_on.push_back(std::move(link));
        cur = waits[j];
    }
}

} // namespace

void install_dump_trigger(MainLoop& loop) {
    if (!dump_enabled_by_env())
        return;
    g_state_timing.store(true, std::memory_order_relaxed);
    asio::use_service<DumpTrigger>(loop.context());
}

void dump_at_shutdown(MainLoop& loop) noexcept {
    if (!dump_enabled_by_env() || !loop.is_main_thread())
        return;
    try {
        std::vector<WorkRecord> records = live_work();
        if (records.empty())
            return;
        log(LogLevel::warning, "shutdown", "the loop shuts down with live work (KAA_DUMP is set):\n" + dump());
    } catch (...) {
        log(LogLevel::warning, "shutdown", "the loop shuts down with live work (the dump failed)");
    }
}

} // namespace detail

const char* to_string(WorkKind kind) noexcept {
    switch (kind) {
    case WorkKind::coroutine:
        return "coroutine";
    case WorkKind::task:
        return "task";
    case WorkKind::job:
        return "threaded job";
    case WorkKind::timer:
        return "timer";
    }
    return "?";
}

std::vector<WorkRecord> live_work() {
    MainLoop& loop = MainLoop::current();
    if (!loop.is_main_thread())
        throw WrongThread("kaa::live_work()/dump(): call it on the loop thread (from another thread, post() it "
                          "there, or set KAA_DUMP=1 and send the process SIGUSR1)");
    std::vector<WorkRecord> records;
    std::vector<const detail::StateBase*> states;  // what each record produces
    std::vector<const detail::StateBase*> waits;   // what each record waits on
    const std::int64_t now = detail::coarse_now();
    for (const detail::AwaitRegistry* reg : {&detail::coroutine_registry(), &detail::task_registry()}) {
        for (const detail::AwaitCore* c = reg->head(); c; c = c->next) {
            WorkRecord r;
            c->describe(r, now);
            records.push_back(std::move(r));
            states.push_back(c->state_ptr().get());
            waits.push_back(c->waiting_on().state().get());
        }
    }
    detail::collect_jobs(records, states);
    detail::collect_timers(loop, records, states);
    waits.resize(records.size(), nullptr);
    std::unordered_map<const detail::StateBase*, std::size_t> index;
    for (std::size_t i = 0; i < states.size(); ++i)
        if (states[i])
            index.emplace(states[i], i);
    for (std::size_t i = 0; i < records.size(); ++i)
        if (waits[i])
            detail::follow_chain(records, i, waits, index);
    return records;
}

std::string dump() {
    std::vector<WorkRecord> records = live_work();
    if (records.empty())
        return "no live work";
    std::size_t counts[4] = {};
    for (const WorkRecord& r : records)
        ++counts[static_cast<int>(r.kind)];
    std::string out = "live work:";
    const char* names[4] = {" coroutine(s)", " task(s)", " threaded job(s)", " timer(s)"};
    bool first = true;
    for (int k = 0; k < 4; ++k) {
        if (!counts[k])
            continue;
        out += (first ? " " : ", ") + std::to_string(counts[k]) + names[k];
        first = false;
    }
    for (const WorkRecord& r : records) {
        out += "\n" + std::string(to_string(r.kind)) + " '" + r.name + "'";
        if (r.kind == WorkKind::job)
            out += r.pool.empty() ? " on the default pool" : " on pool \"" + r.pool + "\"";
        out += ": " + detail::state_text(r);
        if (!r.file.empty())
            out += ", started at " + std::string(detail::base_name(r.file)) + ":" + std::to_string(r.line) + " in " +
                   r.function;
        for (std::size_t k = 0; k < r.waits_on.size(); ++k) {
            const WaitLink& l = r.waits_on[k];
            out += k == 0 ? "\n    waits on: " : "\n           -> ";
            if (l.noabort)
                out += "[noabort] ";
            out += l.text;
        }
    }
    return out;
}

void log_dump() { log(LogLevel::info, "dump", dump()); }

void set_state_timing(bool on) noexcept { detail::g_state_timing.store(on, std::memory_order_relaxed); }

} // namespace kaa
