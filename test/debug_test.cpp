// SPDX-License-Identifier: BSL-1.0
#include "kaa/debug.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>

#include "kaa/coroutine.hpp"
#include "kaa/log.hpp"
#include "kaa/task.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::WorkKind;
using kaa::WorkRecord;

class DebugTest : public kaa::test::LoopTest {
protected:
    const WorkRecord* find(const std::vector<WorkRecord>& records, const std::string& name) {
        for (const auto& r : records)
            if (r.name == name)
                return &r;
        return nullptr;
    }
};

std::string file_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

TEST_F(DebugTest, ADumpOfAKnownTreeListsNamesStatesTheWaitChainAndCreationSites) {
    kaa::ThreadPool io("io", 1);
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<bool> started{false};
    const unsigned job_line = __LINE__ + 1;
    auto job = kaa::threaded({.pool = "io"}, [&started, released] {
        started = true;
        kaa::main_loop().post([] {});  // wakes the loop that waits for this
        released.wait();
        return 7;
    });
    ASSERT_TRUE(step_until([&] { return started.load(); }));

    const unsigned b_line = __LINE__ + 1;
    auto b = kaa::coroutine({.name = "B"}, [&] { return kaa::this_coroutine::await(job.noabort()); });
    const unsigned a_line = __LINE__ + 1;
    auto a = kaa::coroutine({.name = "A"}, [&] { return kaa::this_coroutine::await(b); });
    const unsigned timer_line = __LINE__ + 1;
    kaa::Timer ticker([] {});
    ticker.start(std::chrono::hours(1));

    std::vector<WorkRecord> records = kaa::live_work();
    const WorkRecord* ra = find(records, "A");
    const WorkRecord* rb = find(records, "B");
    ASSERT_TRUE(ra && rb) << kaa::dump();
    EXPECT_EQ(ra->kind, WorkKind::coroutine);
    EXPECT_EQ(ra->state, "suspended");
    EXPECT_EQ(file_name(ra->file), "debug_test.cpp");
    EXPECT_EQ(ra->line, a_line);
    EXPECT_EQ(rb->line, b_line);
    EXPECT_NE(ra->function.find("ADumpOfAKnownTree"), std::string::npos) << ra->function;

    // A -> B -> (noabort) job on "io", running.
    ASSERT_EQ(ra->waits_on.size(), 2u) << kaa::dump();
    EXPECT_EQ(ra->waits_on[0].index.value(), static_cast<std::size_t>(rb - records.data()));
    EXPECT_FALSE(ra->waits_on[0].noabort);
    ASSERT_TRUE(ra->waits_on[1].index.has_value());
    const WorkRecord& rj = records[*ra->waits_on[1].index];
    EXPECT_TRUE(ra->waits_on[1].noabort) << "the wait on job.noabort() is shielded";
    EXPECT_EQ(rj.kind, WorkKind::job);
    EXPECT_EQ(rj.pool, "io");
    EXPECT_EQ(rj.state.rfind("running on thread ", 0), 0u) << rj.state;
    ASSERT_TRUE(rj.in_state.has_value());
    EXPECT_EQ(rj.line, job_line);
    EXPECT_NE(rj.name.find("lambda"), std::string::npos) << "derived from the callable: " << rj.name;
    ASSERT_EQ(rb->waits_on.size(), 1u);
    EXPECT_EQ(rb->waits_on[0].index, ra->waits_on[1].index);

    const WorkRecord* rt = find(records, "Timer");
    ASSERT_TRUE(rt) << kaa::dump();
    EXPECT_EQ(rt->kind, WorkKind::timer);
    EXPECT_EQ(rt->line, timer_line);
    EXPECT_EQ(rt->state.rfind("armed (interval 3600.000 s)", 0), 0u) << rt->state;

    std::string text = kaa::dump();
    EXPECT_NE(text.find("coroutine 'A': suspended"), std::string::npos) << text;
    EXPECT_NE(text.find("-> [noabort] threaded job"), std::string::npos) << text;
    EXPECT_NE(text.find("on pool \"io\""), std::string::npos) << text;
    EXPECT_NE(text.find("debug_test.cpp:" + std::to_string(a_line)), std::string::npos) << text;

    release.set_value();
    ASSERT_TRUE(step_until([&] { return a.finished(); }, 100000));
    EXPECT_EQ(a.result(), 7);
    ticker.stop();
    EXPECT_EQ(kaa::dump(), "no live work");
}

TEST_F(DebugTest, AQueuedJobAndATimeSlicingCoroutineHaveTheirStates) {
    kaa::ThreadPool serial("serial", 1);
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    auto blocker = kaa::threaded({.pool = "serial"}, [released] { released.wait(); });
    auto queued = kaa::threaded({.pool = "serial"}, [] {});
    bool stop = false;
    auto slicer = kaa::coroutine({.name = "slicer"}, [&] {
        while (!stop)
            kaa::this_coroutine::yield();
    });
    auto records = kaa::live_work();
    std::size_t queued_jobs = 0;
    for (const auto& r : records)
        if (r.kind == WorkKind::job && r.state == "queued")
            ++queued_jobs;
    EXPECT_GE(queued_jobs, 1u) << kaa::dump();
    const WorkRecord* rs = find(records, "slicer");
    ASSERT_TRUE(rs);
    EXPECT_EQ(rs->state, "time slice");
    EXPECT_TRUE(rs->waits_on.empty());
    stop = true;
    release.set_value();
    ASSERT_TRUE(step_until([&] { return slicer.finished() && queued.finished() && blocker.finished(); }, 100000));
}

TEST_F(DebugTest, AnUnnamedCoroutineIsNamedAfterItsFunctionAndStateTimingMeasuresItsWait) {
    kaa::set_state_timing(true);
    kaa::InProgress<void> gate;
    const unsigned line = __LINE__ + 1;
    auto c = kaa::coroutine([&] { kaa::this_coroutine::await(gate); });
    auto records = kaa::live_work();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_NE(records[0].name.find("lambda"), std::string::npos) << records[0].name;
    EXPECT_EQ(records[0].line, line);
    EXPECT_TRUE(records[0].in_state.has_value());
    ASSERT_EQ(records[0].waits_on.size(), 1u);
    EXPECT_FALSE(records[0].waits_on[0].index.has_value());
    EXPECT_EQ(records[0].waits_on[0].text, "an InProgress with no known producer (pending)");
    kaa::set_state_timing(false);
    gate.finish();
    EXPECT_TRUE(c.finished());
}

TEST_F(DebugTest, OptionsDefaultConstructedAsAVariableRecordNoSiteRatherThanTheirHeader) {
    kaa::CoroutineOptions opts;  // its site is the implicit constructor's, in coroutine.hpp
    opts.name = "plain";
    kaa::InProgress<void> gate;
    auto c = kaa::coroutine(opts, [&] { kaa::this_coroutine::await(gate); });
    auto records = kaa::live_work();
    const WorkRecord* r = find(records, "plain");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->file.empty()) << r->file;
    EXPECT_EQ(r->line, 0u);
    EXPECT_EQ(kaa::dump().find("coroutine.hpp"), std::string::npos) << kaa::dump();
    gate.finish();
    EXPECT_TRUE(c.finished());
}

TEST_F(DebugTest, ACoroutineWaitingOnADelayChainsToItsTimer) {
    auto c = kaa::coroutine({.name = "sleeper"}, [] { kaa::this_coroutine::await(kaa::delay(std::chrono::hours(1))); });
    auto records = kaa::live_work();
    const WorkRecord* r = find(records, "sleeper");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->waits_on.size(), 1u) << kaa::dump();
    ASSERT_TRUE(r->waits_on[0].index.has_value()) << kaa::dump();
    EXPECT_EQ(records[*r->waits_on[0].index].name, "delay()");
    c.abort();
}

TEST_F(DebugTest, TheReportOfAnExceptionEscapingACoroutineNamesItAndItsCreationSite) {
    reports.disconnect();
    std::vector<std::string> messages;
    kaa::set_log_handler([&](const kaa::LogRecord& r) { messages.emplace_back(r.message); });
    {
        kaa::InProgress<void> gate;
        const unsigned line = __LINE__ + 1;
        auto c = kaa::coroutine({.name = "doomed"}, [&] {
            kaa::this_coroutine::await(gate);
            throw std::runtime_error("doomed-boom");
        });
        gate.finish();
        ASSERT_TRUE(c.finished());
        // nobody observes the failure: the last handle reports it
        c = decltype(c)(nullptr);
        kaa::set_log_handler({});
        ASSERT_EQ(messages.size(), 1u);
        EXPECT_NE(messages[0].find("coroutine 'doomed' started at debug_test.cpp:" + std::to_string(line)),
                  std::string::npos)
            << messages[0];
        EXPECT_NE(messages[0].find("doomed-boom"), std::string::npos) << messages[0];
    }
    kaa::set_log_handler({});
}

TEST_F(DebugTest, TheReportOfAFailedJobNobodyObservedNamesItsPoolAndSite) {
    reports.disconnect();
    std::vector<std::string> messages;
    kaa::set_log_handler([&](const kaa::LogRecord& r) { messages.emplace_back(r.message); });
    kaa::ThreadPool pool("reporting", 1);
    const unsigned line = __LINE__ + 1;
    auto job = kaa::threaded({.pool = "reporting"}, []() -> int { throw std::runtime_error("job-boom"); });
    ASSERT_TRUE(step_until([&] { return job.finished(); }, 100000));
    job = decltype(job)(nullptr);
    kaa::set_log_handler({});
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_NE(messages[0].find("on pool \"reporting\" started at debug_test.cpp:" + std::to_string(line)),
              std::string::npos)
        << messages[0];
}

TEST_F(DebugTest, LogDumpSendsTheDumpToTheLogAtInfoLevel) {
    std::vector<kaa::LogLevel> levels;
    std::vector<std::string> topics;
    kaa::set_log_handler([&](const kaa::LogRecord& r) {
        levels.push_back(r.level);
        topics.emplace_back(r.topic);
    });
    kaa::log_dump();
    kaa::set_log_handler({});
    ASSERT_EQ(levels.size(), 1u);
    EXPECT_EQ(levels[0], kaa::LogLevel::info);
    EXPECT_EQ(topics[0], "dump");
}

TEST(DebugOffLoop, LiveWorkOffTheLoopThreadIsAWrongThreadError) {
    kaa::MainLoop loop;
    std::exception_ptr seen;
    std::thread([&] {
        try {
            kaa::live_work();
        } catch (...) {
            seen = std::current_exception();
        }
    }).join();
    EXPECT_TRUE(kaa::test::holds<kaa::WrongThread>(seen));
}

} // namespace
