// SPDX-License-Identifier: BSL-1.0
#include "kaa/log.hpp"

#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace kaa {

namespace {

// The handler is shared, not copied, per report: a report takes the mutex for
// a reference count only, and calls the handler outside it (the handler may
// itself report, or replace the handler).
std::mutex g_log_mutex;
std::shared_ptr<const LogHandler> g_handler;  // null: log_to_stderr

void write_stderr(std::string_view prefix, std::string_view text) noexcept {
    std::fprintf(stderr, "%.*s%.*s\n", static_cast<int>(prefix.size()), prefix.data(), static_cast<int>(text.size()),
                 text.data());
    std::fflush(stderr);
}

} // namespace

const char* to_string(LogLevel level) noexcept {
    switch (level) {
    case LogLevel::debug:
        return "debug";
    case LogLevel::info:
        return "info";
    case LogLevel::warning:
        return "warning";
    case LogLevel::error:
        return "error";
    }
    return "?";
}

LogHandler set_log_handler(LogHandler handler) {
    std::shared_ptr<const LogHandler> next;
    if (handler)
        next = std::make_shared<const LogHandler>(std::move(handler));
    std::shared_ptr<const LogHandler> prev;
    {
        std::lock_guard lock(g_log_mutex);
        prev = std::exchange(g_handler, std::move(next));
    }
    return prev ? *prev : LogHandler();
}

void log_to_stderr(const LogRecord& record) noexcept {
    if (record.level >= LogLevel::warning) {
        write_stderr("kaa: ", record.message);
    } else {
        std::string prefix = std::string("kaa ") + to_string(record.level) + ": ";
        write_stderr(prefix, record.message);
    }
}

void log(LogLevel level, std::string_view topic, std::string_view message) noexcept {
    LogRecord record{level, topic, message};
    std::shared_ptr<const LogHandler> handler;
    {
        std::lock_guard lock(g_log_mutex);
        handler = g_handler;
    }
    if (!handler) {
        log_to_stderr(record);
        return;
    }
    try {
        (*handler)(record);
    } catch (const std::exception& e) {
        log_to_stderr(record);
        write_stderr("kaa: the log handler threw: ", e.what());
    } catch (...) {
        log_to_stderr(record);
        write_stderr("kaa: the log handler threw: ", "an exception not derived from std::exception");
    }
}

} // namespace kaa
