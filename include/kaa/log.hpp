// SPDX-License-Identifier: BSL-1.0
// Where kaa's reports go: one hook for every message the library writes.
//
// The library writes in a few places only -- an exception that nobody handled
// (when nothing is connected to the loop's `exception` signal), the dump of
// live work (kaa/debug.hpp), work still alive at a shutdown. Each of them is a
// LogRecord with a severity, handed to the one handler installed with
// set_log_handler(); by default that is stderr ("kaa: ..." lines, as before).
// An application routes them to its own logger:
//
//   kaa::set_log_handler([](const kaa::LogRecord& r) {
//       g_log("kaa", r.level >= kaa::LogLevel::error ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
//             "%.*s", int(r.message.size()), r.message.data());
//   });
//
// Guarantees:
//  * Every report of the library goes through log(), hence to the handler,
//    except the stack-overflow message, which is written with write(2) from
//    the SIGSEGV handler just before the process ends (no handler can safely
//    run there).
//  * log() and set_log_handler() are safe from any thread. The handler runs
//    on the thread that reports, outside any kaa lock; concurrent reports may
//    call it concurrently. A handler that is being replaced may still finish
//    a call that started before.
//  * A handler that throws does not lose the report: it and the handler's
//    exception are written to stderr.
#pragma once

#include <functional>
#include <string_view>

namespace kaa {

/// How bad a report is.
enum class LogLevel : unsigned char {
    debug,
    info,     ///< asked for: a dump of live work
    warning,  ///< work still alive at a shutdown, a result discarded
    error,    ///< an exception that nobody handled
};

/// "debug", "info", "warning", "error".
const char* to_string(LogLevel level) noexcept;

/// One report of the library. The views are valid during the handler's call.
struct LogRecord {
    LogLevel level = LogLevel::info;
    /// What kind of report: "unhandled exception", "dump", "shutdown".
    std::string_view topic;
    /// The text, without a trailing newline; a dump has several lines.
    std::string_view message;
};

using LogHandler = std::function<void(const LogRecord&)>;

/// Installs `handler` for every report from now on; an empty one restores the
/// default (stderr). Returns the handler that was installed (empty for the
/// default). Any thread.
LogHandler set_log_handler(LogHandler handler);

/// Hands a report to the installed handler (stderr by default). Any thread;
/// never throws.
void log(LogLevel level, std::string_view topic, std::string_view message) noexcept;

/// The default handler: "kaa: <message>" on stderr for warnings and errors,
/// "kaa <level>: <message>" for the others, flushed.
void log_to_stderr(const LogRecord& record) noexcept;

} // namespace kaa
