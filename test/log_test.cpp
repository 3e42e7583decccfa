// SPDX-License-Identifier: BSL-1.0
#include "kaa/log.hpp"

#include <gtest/gtest.h>

#include <atomic>
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
    static std::atomic<bool> release{false};  // static: the abandoned thread may read it late
    auto ip = kaa::threaded({.pool = "log-test-pool"}, [&] {
        while (!release.load())
            std::this_thread::yield();
    });
    ASSERT_TRUE(kaa::test::step_until(loop, [&] { return pool.stats().running == 1; }, 100000,
                                      std::chrono::milliseconds(1)));
    pool.shutdown(kaa::Duration::zero());
    release = true;
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

} // namespace
