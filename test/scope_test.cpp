// SPDX-License-Identifier: BSL-1.0
#include "kaa/scope.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using kaa::test::holds;
using kaa::test::message_of;
using kaa::this_coroutine::await;

namespace {

class ScopeTest : public kaa::test::LoopTest {};

TEST_F(ScopeTest, JoinFinishesOnlyAfterEveryChildEnded) {
    kaa::Scope scope;
    auto a = scope.coroutine([] { await(kaa::delay(1ms)); });
    auto b = scope.coroutine([] {
        await(kaa::delay(3ms));
        return 2;
    });
    EXPECT_EQ(scope.active(), 2u);
    kaa::InProgress<void> done = scope.join();
    EXPECT_FALSE(done.finished());
    bool children_first = false;
    done.connect([&] { children_first = a.finished() && b.finished(); });
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_FALSE(done.failed());
    EXPECT_TRUE(children_first);
    EXPECT_EQ(b.result(), 2);
    EXPECT_EQ(scope.active(), 0u);
}

TEST_F(ScopeTest, AScopeWithoutChildrenFinishesAtJoin) {
    kaa::Scope scope;
    EXPECT_TRUE(scope.join().finished());
}

TEST_F(ScopeTest, ItDoesNotFinishBeforeJoinEvenWhenItsChildrenHaveEnded) {
    kaa::Scope scope;
    auto a = scope.coroutine([] { return 1; });
    EXPECT_TRUE(a.finished());
    EXPECT_EQ(scope.active(), 0u);
    step_n(2);
    kaa::InProgress<void> done = scope.join();
    EXPECT_TRUE(done.finished());
    EXPECT_FALSE(done.failed());
}

TEST_F(ScopeTest, ChildrenMayStartChildrenAfterJoin) {
    kaa::Scope scope;
    bool grandchild_ran = false;
    scope.coroutine([&] {
        await(kaa::delay(1ms));
        scope.coroutine([&] {
            await(kaa::delay(1ms));
            grandchild_ran = true;
        });
    });
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_TRUE(grandchild_ran) << "the scope waited for the child started after join()";
}

TEST_F(ScopeTest, TheFirstFailureAbortsTheOthersAndIsTheScopesFailure) {
    kaa::Scope scope("loader");
    bool sibling_aborted = false;
    std::string why;
    auto sleeper = scope.coroutine([&] {
        try {
            await(kaa::delay(1h));
        } catch (const kaa::InProgressAborted& e) {
            sibling_aborted = true;
            why = e.message();
            throw;
        }
    });
    scope.coroutine([] {
        await(kaa::delay(1ms));
        throw std::runtime_error("disk full");
    });
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_TRUE(sibling_aborted);
    EXPECT_NE(why.find("a sibling failed"), std::string::npos) << why;
    EXPECT_TRUE(sleeper.failed());
    EXPECT_TRUE(holds<std::runtime_error>(done.exception()));
    EXPECT_EQ(message_of(done.exception()), "disk full");
    EXPECT_TRUE(scope.closed());
    EXPECT_THROW(scope.coroutine([] {}), kaa::UsageError) << "a failed scope takes no new children";
}

TEST_F(ScopeTest, ALaterFailureOfAnotherChildIsReportedNotLost) {
    kaa::Scope scope;
    kaa::InProgress<int> stubborn; // cannot be aborted: it ends on its own, later
    stubborn.set_abortable(false);
    scope.adopt(stubborn);
    scope.coroutine([] {
        await(kaa::delay(1ms));
        throw std::runtime_error("first");
    });
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return scope.closed(); }));
    EXPECT_FALSE(done.finished()) << "it waits for the child it could not abort";
    stubborn.fail(std::logic_error("second"));
    stubborn = nullptr; // nobody else looks at it
    ASSERT_TRUE(done.finished());
    EXPECT_EQ(message_of(done.exception()), "first");
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(message_of(seen[0]), "second");
}

TEST_F(ScopeTest, AChildEndedByAbortIsNotAFailure) {
    kaa::Scope scope;
    auto child = scope.coroutine([] { await(kaa::delay(1h)); });
    scope.coroutine([] { await(kaa::delay(1ms)); });
    child.abort();
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_FALSE(done.failed());
}

TEST_F(ScopeTest, ATimeoutIsAFailure) {
    kaa::Scope scope;
    scope.adopt(kaa::delay(1h).timeout(1ms, /*abort_on_timeout=*/true));
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_TRUE(holds<kaa::TimeoutError>(done.exception()));
}

TEST_F(ScopeTest, AbortAbortsEveryChildAndFailsWithInProgressAborted) {
    kaa::Scope scope;
    int unwound = 0;
    for (int i = 0; i < 3; ++i)
        scope.coroutine([&] {
            try {
                await(kaa::delay(1h));
            } catch (const kaa::InProgressAborted&) {
                ++unwound;
                throw;
            }
        });
    kaa::InProgress<void> nap = scope.adopt(kaa::delay(1h));
    EXPECT_TRUE(scope.abort());
    EXPECT_EQ(unwound, 3) << "coroutines unwind inside abort()";
    EXPECT_TRUE(nap.failed());
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(done.finished());
    EXPECT_TRUE(holds<kaa::InProgressAborted>(done.exception()));
    EXPECT_FALSE(scope.abort()) << "abort() on a finished scope is harmless";
    EXPECT_THROW(scope.coroutine([] {}), kaa::UsageError);
}

TEST_F(ScopeTest, AbortingTheJoinInProgressIsAbortingTheScope) {
    kaa::Scope scope;
    auto child = scope.coroutine([] { await(kaa::delay(1h)); });
    kaa::InProgress<void> done = scope.join();
    done.abort();
    EXPECT_TRUE(child.failed());
    EXPECT_TRUE(done.failed());
    EXPECT_TRUE(scope.closed());
}

TEST_F(ScopeTest, TheAbortCascadeReachesTheChildrenThroughJoin) {
    kaa::Scope scope;
    auto child = scope.coroutine([] { await(kaa::delay(1h)); });
    auto parent = kaa::coroutine([&] { await(scope.join()); });
    parent.abort();
    EXPECT_TRUE(child.failed()) << "the parent waited on the scope, the scope on its child";
    EXPECT_TRUE(parent.failed());
}

struct Widget {
    explicit Widget(std::string& log) : log(log) {}
    void open() {
        tasks.coroutine([this] {
            try {
                await(kaa::delay(1h));
                log += "resumed into the widget;";
            } catch (const kaa::InProgressAborted&) {
                log += "aborted while the widget still exists (" + title + ");";
                throw;
            }
        });
    }
    std::string& log;
    std::string title = "player";
    kaa::Scope tasks{"widget"}; // last: destroyed first
};

TEST_F(ScopeTest, DestroyingTheOwnerAbortsItsCoroutinesBeforeItsMembersGo) {
    std::string log;
    auto w = std::make_unique<Widget>(log);
    w->open();
    w->open();
    EXPECT_EQ(kaa::active_coroutines(), 2u);
    w.reset();
    EXPECT_EQ(log, "aborted while the widget still exists (player);aborted while the widget still exists (player);");
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    step_n(3);
}

TEST_F(ScopeTest, AThreadedChildKeepsTheScopeOpenUntilItsFunctionReturns) {
    kaa::Scope scope;
    std::atomic<bool> running{false};
    std::binary_semaphore release{0};
    auto job = scope.threaded([&](std::stop_token st) {
        running = true;
        loop.post([] {}); // wake the loop
        while (!st.stop_requested())
            std::this_thread::yield();
        release.acquire(); // the test decides when it returns
        return 5;
    });
    ASSERT_TRUE(step_until([&] { return running.load(); }));
    kaa::InProgress<void> done = scope.join();
    EXPECT_TRUE(scope.abort());
    EXPECT_TRUE(job.failed()) << "an aborted job's InProgress fails at once";
    step_n(3);
    EXPECT_FALSE(done.finished()) << "its function still runs";
    EXPECT_EQ(scope.active(), 1u);
    release.release();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_TRUE(holds<kaa::InProgressAborted>(done.exception()));
}

TEST_F(ScopeTest, AThreadedChildsValueIsItsResult) {
    kaa::Scope scope;
    auto job = scope.threaded([](int a, int b) { return a + b; }, 2, 3);
    kaa::InProgress<void> done = scope.join();
    ASSERT_TRUE(step_until([&] { return done.finished(); }));
    EXPECT_EQ(job.result(), 5);
}

TEST_F(ScopeTest, OffTheLoopThreadItThrowsWrongThread) {
    kaa::Scope scope;
    bool threw = false;
    std::thread([&] {
        try {
            scope.adopt(kaa::InProgress<int>());
        } catch (const kaa::WrongThread&) {
            threw = true;
        }
    }).join();
    EXPECT_TRUE(threw);
}

} // namespace
