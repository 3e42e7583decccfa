// SPDX-License-Identifier: BSL-1.0
#include "kaa/event.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

class EventTest : public kaa::test::LoopTest {
protected:
    // A handler that logs "<tag>:<event name>".
    kaa::EventHandler logger(std::string tag) {
        return kaa::EventHandler([this, tag](const kaa::Event& e) { log.push_back(tag + ":" + e.name()); });
    }
    std::vector<std::string> log;
};

using Log = std::vector<std::string>;

TEST(Event, ComparesByNameAndCarriesAnOptionalArgument) {
    kaa::Event plain("stop");
    kaa::Event with("stop", 42);
    EXPECT_FALSE(plain.has_arg());
    EXPECT_TRUE(with.has_arg());
    EXPECT_EQ(with.arg<int>(), 42);
    EXPECT_THROW(with.arg<std::string>(), std::bad_any_cast);
    EXPECT_TRUE(plain == with);
    EXPECT_TRUE(with == "stop");
    EXPECT_FALSE(with == kaa::Event("play"));
}

TEST_F(EventTest, PostedOnTheLoopThreadIsDeliveredAtTheEndOfTheIterationInRegistrationOrder) {
    auto a = logger("a");
    auto b = logger("b");
    auto c = logger("c");
    c.register_for({"stop"});
    a.register_for({"play"});
    b.register_for(); // every event
    kaa::Event("play").post();
    EXPECT_TRUE(log.empty()) << "post() never delivers inside the call";
    loop.step(kaa::Duration::zero());
    EXPECT_EQ(log, (Log{"a:play", "b:play"}));
    kaa::Event("stop").post();
    kaa::Event("play").post();
    ASSERT_TRUE(step_until([&] { return log.size() == 6; }));
    EXPECT_EQ(log, (Log{"a:play", "b:play", "c:stop", "b:stop", "a:play", "b:play"}))
        << "c registered first; events in posting order";
}

TEST_F(EventTest, PostWithAnArgumentPostsACopyCarryingIt) {
    std::vector<int> got;
    kaa::EventHandler h([&](const kaa::Event& e) { got.push_back(e.has_arg() ? e.arg<int>() : -1); });
    h.register_for({"volume"});
    kaa::Event volume("volume");
    volume.post(7);
    volume.post();
    ASSERT_TRUE(step_until([&] { return got.size() == 2; }));
    EXPECT_EQ(got, (std::vector<int>{7, -1}));
    EXPECT_FALSE(volume.has_arg());
}

TEST_F(EventTest, PostedByATimerIsDeliveredAfterTheTimersOfThatIteration) {
    kaa::call_later(0ms, [&] {
        log.push_back("timer 1");
        kaa::Event("tick").post();
    });
    kaa::call_later(0ms, [&] { log.push_back("timer 2"); });
    auto h = logger("h");
    h.register_for({"tick"});
    ASSERT_TRUE(step_until([&] { return log.size() == 3; }));
    EXPECT_EQ(log, (Log{"timer 1", "timer 2", "h:tick"}));
}

TEST_F(EventTest, RegisteringAgainReplacesTheNamesAndUnregisterStopsDelivery) {
    auto h = logger("h");
    h.register_for({"a"});
    EXPECT_TRUE(h.active());
    h.register_for({"b"});
    kaa::Event("a").post();
    kaa::Event("b").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"h:b"}));
    h.unregister();
    EXPECT_FALSE(h.active());
    kaa::Event("b").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"h:b"}));
}

TEST_F(EventTest, DestroyingAHandlerUnregistersIt) {
    auto keep = logger("keep");
    keep.register_for();
    {
        auto gone = logger("gone");
        gone.register_for();
    }
    kaa::Event("x").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"keep:x"}));
}

TEST_F(EventTest, AHandlerUnregisteredByAnEarlierOneIsNotCalledForThatEvent) {
    auto second = logger("second");
    kaa::EventHandler first([&](const kaa::Event&) {
        log.push_back("first");
        second.unregister();
    });
    first.register_for();
    second.register_for();
    kaa::Event("x").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"first"}));
}

TEST_F(EventTest, AHandlersInProgressHoldsBackTheRestOfTheDispatchAndLaterEvents) {
    kaa::InProgress<void> busy;
    bool returned = false;
    kaa::EventHandler slow([&](const kaa::Event& e) -> kaa::InProgress<void> {
        log.push_back("slow:" + e.name());
        if (returned)
            return kaa::InProgress<void>().finish();
        returned = true;
        return busy;
    });
    auto after = logger("after");
    slow.register_for();
    after.register_for();
    kaa::Event("a").post();
    kaa::Event("b").post();
    step_n(5);
    EXPECT_EQ(log, (Log{"slow:a"}));
    kaa::Event("c").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"slow:a"}));
    busy.finish();
    EXPECT_EQ(log, (Log{"slow:a", "after:a", "slow:b", "after:b", "slow:c", "after:c"}))
        << "the dispatch goes on from inside finish()";
}

TEST_F(EventTest, AHandlersExceptionIsReportedAndSkipsTheEventsRemainingHandlers) {
    kaa::EventHandler thrower([&](const kaa::Event& e) {
        log.push_back("thrower:" + e.name());
        if (e == "bad")
            throw std::runtime_error("handler failed");
    });
    auto next = logger("next");
    thrower.register_for();
    next.register_for();
    kaa::Event("bad").post();
    kaa::Event("good").post();
    ASSERT_TRUE(step_until([&] { return log.size() == 3; }));
    EXPECT_EQ(log, (Log{"thrower:bad", "thrower:good", "next:good"}));
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(seen[0]), "handler failed");
    EXPECT_FALSE(loop.is_stopped());
}

TEST_F(EventTest, AFailedInProgressFromAHandlerIsReportedAndSkipsTheRemainingHandlers) {
    kaa::InProgress<int> work;
    kaa::EventHandler first([&](const kaa::Event&) { return work; });
    auto second = logger("second");
    first.register_for();
    second.register_for();
    kaa::Event("x").post();
    step_n(2);
    work.fail(std::make_exception_ptr(std::runtime_error("work failed")));
    EXPECT_TRUE(log.empty());
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(seen[0]), "work failed");
}

TEST_F(EventTest, AnAbortedInProgressFromAHandlerSkipsTheRestWithoutAReport) {
    kaa::InProgress<void> work;
    work.set_abortable(true);
    kaa::EventHandler first([&](const kaa::Event& e) {
        log.push_back("first:" + e.name());
        return e == "x" ? work : kaa::InProgress<void>().finish();
    });
    auto second = logger("second");
    first.register_for();
    second.register_for();
    kaa::Event("x").post();
    kaa::Event("y").post();
    step_n(2);
    EXPECT_TRUE(work.abort());
    EXPECT_EQ(log, (Log{"first:x", "first:y", "second:y"}));
}

TEST_F(EventTest, AWeakHandlerIsNotCalledOnceItsOwnerIsGone) {
    auto owner = std::make_shared<int>(0);
    kaa::WeakEventHandler h(owner, [&](const kaa::Event& e) { log.push_back("weak:" + e.name()); });
    h.register_for();
    kaa::Event("a").post();
    step_n(2);
    owner.reset();
    kaa::Event("b").post();
    step_n(2);
    EXPECT_EQ(log, (Log{"weak:a"}));
    EXPECT_FALSE(h.active());
}

TEST_F(EventTest, PostFromAnotherThreadWakesTheLoop) {
    auto h = logger("h");
    h.register_for();
    std::thread poster([] { kaa::Event("from thread").post(); });
    // step() blocks until the post wakes it: a lost wakeup would hang here
    // (bounded by step_until's per-step limit), never pass by accident.
    ASSERT_TRUE(step_until([&] { return !log.empty(); }));
    poster.join();
    EXPECT_EQ(log, (Log{"h:from thread"}));
}

TEST_F(EventTest, PostOnTheLoopThreadWakesAnIdleLoop) {
    auto h = logger("h");
    h.register_for();
    kaa::Event("x").post();
    // A blocking step: with nothing else scheduled, the post itself must keep
    // the loop from sleeping.
    ASSERT_TRUE(step_until([&] { return !log.empty(); }, 3));
}

TEST_F(EventTest, HandlersRunOnTheLoopThreadInsideRun) {
    std::thread::id handler_thread;
    kaa::EventHandler h([&](const kaa::Event&) {
        handler_thread = std::this_thread::get_id();
        loop.stop();
    });
    h.register_for({"done"});
    std::thread poster;
    run_in_loop([&] { poster = std::thread([] { kaa::Event("done").post(); }); });
    poster.join();
    EXPECT_EQ(handler_thread, std::this_thread::get_id());
}

TEST_F(EventTest, RegisterForOffTheLoopThreadIsAWrongThreadError) {
    auto h = logger("h");
    bool threw = false;
    std::thread t([&] {
        try {
            h.register_for();
        } catch (const kaa::WrongThread&) {
            threw = true;
        }
    });
    t.join();
    EXPECT_TRUE(threw);
}

} // namespace
