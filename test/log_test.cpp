// SPDX-License-Identifier: BSL-1.0
#include "kaa/log.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "test_support.hpp"

namespace {

// KAA_DUMP=1 for this whole program (set before main(), so before the first
// loop reads it): the dump on SIGUSR1 and at a shutdown with live work are
// report kinds too.
const bool g_kaa_dump_set = [] { return ::setenv("KAA_DUMP", "1", 1) == 0; }();

using kaa::LogLevel;
using kaa::LogRecord;

struct Seen {
    LogLevel level;
    std::string topic;
    std::string message;
};

/// Installs a handler that records every report, for the test's lifetime.
class LogCapture {
public:
    LogCapture() {
        kaa::set_log_handler([this](const LogRecord& r) {
            std::lock_guard lock(m_);
            seen_.push_back({r.level, std::string(r.topic), std::string(r.message)});
        });
    }
    ~LogCapture() { kaa::set_log_handler({}); }
    std::vector<Seen> take() {
        std::lock_guard lock(m_);
        return std::exchange(seen_, {});
    }

private:
    std::mutex m_;
    std::vector<Seen> seen_;
};

// No LoopTest here: its fixture catches reports on the exception signal,
// before they reach the log.
class LogTest : public ::testing::Test {
protected:
    LogCapture log;
    kaa::MainLoop loop;
};

TEST_F(LogTest, AnExceptionHandedToTheLoopOutsideAnIterationIsAnErrorRecordNamingWhereItCameFrom) {
    // Inside an iteration it would escape from step() (nothing is connected
    // to `exception`); outside one nobody can rethrow it, so it is logged.
    loop.handle_exception(std::make_exception_ptr(std::runtime_error("escaped-boom")), "test site");
    auto seen = log.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].level, LogLevel::error);
    EXPECT_EQ(seen[0].topic, "unhandled exception");
    EXPECT_NE(seen[0].message.find("test site"), std::string::npos) << seen[0].message;
    EXPECT_NE(seen[0].message.find("escaped-boom"), std::string::npos) << seen[0].message;
}

TEST_F(LogTest, AnExceptionThrownByAnExceptionSlotReachesTheHandler) {
    loop.signals().exception.connect([](std::exception_ptr) { throw std::logic_error("slot-broke"); });
    loop.post([] { throw std::runtime_error("first"); });
    loop.step(kaa::Duration::zero());
    loop.signals().exception.disconnect_all();
    auto seen = log.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].message.find("slot-broke"), std::string::npos) << seen[0].message;
}

TEST_F(LogTest, AFailureNobodyObservedReachesTheHandler) {
    { kaa::make_failed<int>(std::make_exception_ptr(std::runtime_error("unobserved-boom"))); }
    auto seen = log.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].level, LogLevel::error);
    EXPECT_NE(seen[0].message.find("unobserved-boom"), std::string::npos) << seen[0].message;
}

TEST_F(LogTest, ACoroutineOutcomeDiscardedBecauseSomeoneElseFinishedItReachesTheHandler) {
    kaa::InProgress<void> gate;
    auto ip = kaa::coroutine({.name = "discarder"}, [&] { kaa::this_coroutine::await(gate); return 1; });
    ip.finish(2);
    gate.finish();
    auto seen = log.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].message.find("finished by someone else"), std::string::npos) << seen[0].message;
}

TEST_F(LogTest, ThePoolShutdownThatLeavesAJobRunningReachesTheHandler) {
    kaa::ThreadPool pool("log-test-pool", 1);
    // Shared with the job: the abandoned thread may read it after the test.
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto ip = kaa::threaded({.pool = "log-test-pool"}, [release] {
        while (!release->load())
            std::this_thread::yield();
    });
    ASSERT_TRUE(kaa::test::step_until(loop, [&] { return pool.stats().running == 1; }, 100000,
                                      std::chrono::milliseconds(1)));
    pool.shutdown(kaa::Duration::zero());
    *release = true;
    auto seen = log.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].message.find("log-test-pool"), std::string::npos) << seen[0].message;
    ip.abort();  // the job was asked to stop; its late value is discarded
}

TEST_F(LogTest, AThrowingHandlerDoesNotLoseTheReport) {
    kaa::set_log_handler([](const LogRecord&) { throw std::runtime_error("handler-broke"); });
    testing::internal::CaptureStderr();
    kaa::log(LogLevel::warning, "test", "still-printed");
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("still-printed"), std::string::npos) << err;
    EXPECT_NE(err.find("handler-broke"), std::string::npos) << err;
}

TEST_F(LogTest, AnEmptyHandlerRestoresStderrAndSetReturnsThePreviousHandler) {
    kaa::LogHandler previous = kaa::set_log_handler({});
    EXPECT_TRUE(static_cast<bool>(previous));
    testing::internal::CaptureStderr();
    kaa::log(LogLevel::error, "test", "on-stderr");
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, "kaa: on-stderr\n");
    EXPECT_TRUE(log.take().empty());
}

TEST_F(LogTest, WithKaaDumpSetSigusr1LogsTheDumpAsInfoOnTheLoopThread) {
    ASSERT_TRUE(g_kaa_dump_set);
    kaa::InProgress<void> gate;
    auto c = kaa::coroutine({.name = "waiting for the gate"}, [&] { kaa::this_coroutine::await(gate); });
    std::vector<Seen> dumps;
    ASSERT_EQ(std::raise(SIGUSR1), 0);
    // The signal is handled in a later iteration, through Asio's signal_set.
    ASSERT_TRUE(kaa::test::step_until(loop, [&] {
        for (Seen& s : log.take())
            if (s.topic == "dump")
                dumps.push_back(std::move(s));
        return !dumps.empty();
    }));
    EXPECT_EQ(dumps[0].level, LogLevel::info);
    EXPECT_NE(dumps[0].message.find("coroutine 'waiting for the gate': suspended for "), std::string::npos)
        << dumps[0].message;
    gate.finish();
    EXPECT_TRUE(c.finished());
}

TEST(LogShutdown, WithKaaDumpSetAShutdownWithLiveWorkLogsTheDumpAsAWarning) {
    ASSERT_TRUE(g_kaa_dump_set);
    LogCapture log;
    {
        kaa::MainLoop loop;
        kaa::InProgress<void> never;
        kaa::coroutine({.name = "left behind"}, [&] { kaa::this_coroutine::await(never); });
    }  // the loop's destructor shuts it down, aborting the coroutine
    std::vector<Seen> seen = log.take();
    const Seen* shutdown = nullptr;
    for (const Seen& s : seen)
        if (s.topic == "shutdown")
            shutdown = &s;
    ASSERT_NE(shutdown, nullptr);
    EXPECT_EQ(shutdown->level, LogLevel::warning);
    EXPECT_NE(shutdown->message.find("the loop shuts down with live work"), std::string::npos) << shutdown->message;
    EXPECT_NE(shutdown->message.find("coroutine 'left behind': suspended"), std::string::npos) << shutdown->message;
}

TEST(LogShutdown, WithKaaDumpSetAShutdownWithoutLiveWorkLogsNothing) {
    LogCapture log;
    { kaa::MainLoop loop; }
    EXPECT_TRUE(log.take().empty());
}

} // namespace
