// SPDX-License-Identifier: BSL-1.0
// Shared test fixture and helpers for kaa's test suites.
//
//  * LoopTest creates a kaa::MainLoop per test and captures everything that
//    reaches the loop's `exception` signal; a test that expects reports takes
//    them with `reports.take()`, and TearDown fails on any report left over.
//    Slots that a test connects to the loop's signals are disconnected in
//    TearDown; work a test posts must be run (or be harmless) by its end.
//  * step_until() steps the loop until a predicate holds, bounded by an
//    iteration count (never by wall-clock time), so a test that would hang
//    fails instead.
//  * ExceptionCapture is the RAII capture itself, usable without the fixture.
//  * With KAA_TEST_VIRTUAL_CLOCK=1 in the environment, LoopTest's loop runs
//    on a kaa::VirtualClock (make_test_loop()): ctest reruns the timer and
//    timeout suites that way (test/CMakeLists.txt, *_on_virtual_clock).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <cstdlib>
#include <string_view>

#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/virtual_clock.hpp"

namespace kaa::test {

/// Connects to `loop.signals().exception` for its lifetime and records every
/// exception that reaches it.
class ExceptionCapture {
public:
    explicit ExceptionCapture(MainLoop& loop)
        : conn_(loop.signals().exception.connect([this](std::exception_ptr e) { seen_.push_back(e); })) {}
    ~ExceptionCapture() { conn_.disconnect(); }
    ExceptionCapture(const ExceptionCapture&) = delete;
    ExceptionCapture& operator=(const ExceptionCapture&) = delete;

    /// Stops capturing (reports then go wherever the loop sends them).
    void disconnect() { conn_.disconnect(); }

    std::size_t size() const { return seen_.size(); }
    bool empty() const { return seen_.empty(); }
    const std::vector<std::exception_ptr>& all() const { return seen_; }

    /// Returns what was captured so far and forgets it.
    std::vector<std::exception_ptr> take() { return std::exchange(seen_, {}); }

    /// "type: message" of every capture, one per line.
    std::string describe_all() const {
        std::string out;
        for (const auto& e : seen_)
            out += kaa::describe(e) + "\n";
        return out;
    }

private:
    Connection conn_;
    std::vector<std::exception_ptr> seen_;
};

/// Whether `e` holds an exception of type E (or derived).
template <class E>
bool holds(const std::exception_ptr& e) {
    if (!e)
        return false;
    try {
        std::rethrow_exception(e);
    } catch (const E&) {
        return true;
    } catch (...) {
        return false;
    }
}

/// The message of a std::exception or InProgressAborted in `e` ("" otherwise).
inline std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted& x) {
        return x.message();
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return {};
    }
}

/// Steps `loop` until `pred()` holds, at most `max_iterations` iterations.
/// Each iteration may block until work arrives (that is what cross-thread tests
/// synchronise on); `per_step` only bounds a hang, it is not a timing check.
/// Returns whether the predicate held.
template <class Pred>
bool step_until(MainLoop& loop, Pred&& pred, int max_iterations = 1000,
                Duration per_step = std::chrono::seconds(10)) {
    for (int i = 0; i < max_iterations; ++i) {
        if (pred())
            return true;
        loop.step(per_step);
    }
    return pred();
}

/// Whether the suite runs on virtual time (KAA_TEST_VIRTUAL_CLOCK=1).
inline bool virtual_clock_requested() {
    const char* v = std::getenv("KAA_TEST_VIRTUAL_CLOCK");
    return v && std::string_view(v) == "1";
}

/// The loop a test fixture owns: a real one, or one on a fresh VirtualClock
/// with autojump when virtual_clock_requested().
inline MainLoop make_test_loop() {
    if (virtual_clock_requested())
        return MainLoop(VirtualClock());
    return MainLoop();
}

/// A fixture that owns the process's loop for one test.
class LoopTest : public ::testing::Test {
protected:
    void TearDown() override {
        EXPECT_TRUE(reports.empty()) << "unexpected reports on the exception signal:\n"
                                     << reports.describe_all();
        // The test body's locals are gone: slots it connected to the loop's
        // signals must not run when the loop's destructor shuts it down.
        reports.disconnect();
        loop.signals().step.disconnect_all();
        loop.signals().shutdown.disconnect_all();
        loop.signals().exception.disconnect_all();
    }

    template <class Pred>
    bool step_until(Pred&& pred, int max_iterations = 1000) {
        return kaa::test::step_until(loop, std::forward<Pred>(pred), max_iterations);
    }

    /// Runs `n` non-blocking iterations.
    void step_n(int n) {
        for (int i = 0; i < n; ++i)
            loop.step(Duration::zero());
    }

    /// Runs `body` inside run() (from the first iteration) and returns when
    /// the loop stops; the body (or what it starts) calls loop.stop().
    template <class F>
    void run_in_loop(F&& body) {
        loop.post(std::forward<F>(body));
        loop.run();
    }

    MainLoop loop = make_test_loop();
    ExceptionCapture reports{loop};
};

} // namespace kaa::test
