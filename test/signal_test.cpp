// SPDX-License-Identifier: BSL-1.0
#include "kaa/signal.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kaa/main_loop.hpp"
#include "test_support.hpp"

using kaa::Connection;
using kaa::Duration;
using kaa::InProgressAborted;
using kaa::Signal;
using kaa::SignalChange;
using kaa::test::holds;
using kaa::test::message_of;

namespace {

class SignalTest : public kaa::test::LoopTest {};

int g_free_calls = 0;
void free_slot(int) { ++g_free_calls; }
void other_free_slot(int) {}

static_assert(std::is_same_v<Signal<void()>::next_type, void>);
static_assert(std::is_same_v<Signal<void(const std::string&)>::next_type, std::string>);
static_assert(std::is_same_v<Signal<void(int, const std::string&)>::next_type, std::tuple<int, std::string>>);

} // namespace

// ---------------------------------------------------------------------------
// connect / emit

TEST_F(SignalTest, EmitWithNoSlotsDoesNothing) {
    Signal<void(int)> sig;
    EXPECT_EQ(sig.count(), 0u);
    EXPECT_TRUE(sig.empty());
    EXPECT_NO_THROW(sig.emit(1));
}

TEST_F(SignalTest, ConnectAndEmitPassesArguments) {
    Signal<void(int, const std::string&)> sig;
    int n = 0;
    std::string s;
    sig.connect([&](int a, const std::string& b) {
        n = a;
        s = b;
    });
    EXPECT_EQ(sig.count(), 1u);
    sig.emit(3, "three");
    EXPECT_EQ(n, 3);
    EXPECT_EQ(s, "three");
    sig(4, "four");
    EXPECT_EQ(n, 4);
}

TEST_F(SignalTest, EmitIsSynchronousOnTheEmittingThread) {
    Signal<void()> sig;
    std::thread::id ran_on;
    sig.connect([&] { ran_on = std::this_thread::get_id(); });
    std::thread::id emitter;
    std::thread t([&] {
        emitter = std::this_thread::get_id();
        sig.emit();
    });
    t.join();
    EXPECT_EQ(ran_on, emitter);
}

TEST_F(SignalTest, SlotsRunInConnectionOrder) {
    Signal<void()> sig;
    std::vector<int> order;
    for (int i = 0; i < 5; ++i)
        sig.connect([&order, i] { order.push_back(i); });
    sig.emit();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
    order.clear();
    sig.emit();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4})) << "slots stay connected";
}

TEST_F(SignalTest, ConnectFirstRunsFirstLastInsertedFirst) {
    Signal<void()> sig;
    std::vector<std::string> order;
    sig.connect([&] { order.push_back("a"); });
    sig.connect_first([&] { order.push_back("f1"); });
    sig.connect([&] { order.push_back("b"); });
    sig.connect_first([&] { order.push_back("f2"); });
    sig.emit();
    EXPECT_EQ(order, (std::vector<std::string>{"f2", "f1", "a", "b"}));
}

TEST_F(SignalTest, ConnectOnceIsDisconnectedBeforeItRuns) {
    Signal<void(int)> sig;
    int calls = 0;
    std::size_t count_inside = 99;
    bool connected_inside = true;
    Connection c;
    c = sig.connect_once([&](int) {
        ++calls;
        count_inside = sig.count();
        connected_inside = c.connected();
    });
    sig.connect([](int) {});
    EXPECT_EQ(sig.count(), 2u);
    sig.emit(1);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(count_inside, 1u);
    EXPECT_FALSE(connected_inside);
    EXPECT_EQ(sig.count(), 1u);
    sig.emit(2);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(c.disconnect()) << "already gone";
}

TEST_F(SignalTest, ConnectOnceReentrantEmitDoesNotCallItTwice) {
    Signal<void()> sig;
    int calls = 0;
    sig.connect_once([&] {
        ++calls;
        sig.emit();
    });
    sig.emit();
    EXPECT_EQ(calls, 1);
}

TEST_F(SignalTest, ConnectFirstOnce) {
    Signal<void()> sig;
    std::vector<std::string> order;
    sig.connect([&] { order.push_back("a"); });
    sig.connect_first_once([&] { order.push_back("once"); });
    sig.emit();
    sig.emit();
    EXPECT_EQ(order, (std::vector<std::string>{"once", "a", "a"}));
    EXPECT_EQ(sig.count(), 1u);
}

TEST_F(SignalTest, ConnectWeakNeverCalledAfterOwnerDies) {
    Signal<void(int)> sig;
    auto owner = std::make_shared<int>(0);
    int calls = 0;
    Connection c = sig.connect_weak(owner, [&](int v) { calls += v; });
    sig.emit(1);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(sig.count(), 1u);
    owner.reset();
    EXPECT_EQ(sig.count(), 0u);
    EXPECT_FALSE(c.connected());
    sig.emit(1);
    EXPECT_EQ(calls, 1);
}

TEST_F(SignalTest, ConnectWeakFromWeakPtr) {
    Signal<void()> sig;
    auto owner = std::make_shared<std::string>("x");
    int calls = 0;
    sig.connect_weak(std::weak_ptr<std::string>(owner), [&] { ++calls; });
    sig.emit();
    owner.reset();
    sig.emit();
    EXPECT_EQ(calls, 1);
}

TEST_F(SignalTest, ConnectWeakKeepsTheOwnerAliveDuringTheCall) {
    Signal<void()> sig;
    auto owner = std::make_shared<int>(7);
    std::weak_ptr<int> weak = owner;
    bool alive_during_call = false;
    sig.connect_weak(owner, [&] {
        owner.reset(); // the last outside reference goes...
        alive_during_call = !weak.expired(); // ...but the call holds it
    });
    sig.emit();
    EXPECT_TRUE(alive_during_call);
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(sig.count(), 0u);
}

// ---------------------------------------------------------------------------
// disconnect

TEST_F(SignalTest, DisconnectByConnection) {
    Signal<void()> sig;
    int calls = 0;
    Connection c = sig.connect([&] { ++calls; });
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(sig.disconnect(c));
    EXPECT_FALSE(c.connected());
    EXPECT_FALSE(sig.disconnect(c));
    sig.emit();
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(sig.count(), 0u);
}

TEST_F(SignalTest, DisconnectByFunctionPointer) {
    Signal<void(int)> sig;
    g_free_calls = 0;
    sig.connect(&free_slot);
    sig.connect(&free_slot);
    sig.connect([](int) {});
    EXPECT_FALSE(sig.disconnect(&other_free_slot));
    EXPECT_EQ(sig.count(), 3u);
    EXPECT_TRUE(sig.disconnect(&free_slot));
    EXPECT_EQ(sig.count(), 1u) << "every slot equal to the callable goes";
    sig.emit(1);
    EXPECT_EQ(g_free_calls, 0);
    EXPECT_FALSE(sig.disconnect(&free_slot));
}

TEST_F(SignalTest, DisconnectAll) {
    Signal<void()> sig;
    int calls = 0;
    Connection a = sig.connect([&] { ++calls; });
    sig.connect_first([&] { ++calls; });
    sig.connect_once([&] { ++calls; });
    sig.disconnect_all();
    EXPECT_EQ(sig.count(), 0u);
    EXPECT_FALSE(a.connected());
    sig.emit();
    EXPECT_EQ(calls, 0);
}

TEST_F(SignalTest, SlotsConnectedDuringEmitAreNotCalledInIt) {
    Signal<void()> sig;
    int inner = 0, outer = 0;
    sig.connect([&] {
        ++outer;
        sig.connect([&] { ++inner; });
        sig.connect_first([&] { ++inner; });
    });
    sig.emit();
    EXPECT_EQ(outer, 1);
    EXPECT_EQ(inner, 0);
    sig.emit();
    EXPECT_EQ(inner, 2);
}

TEST_F(SignalTest, ConnectionOutlivesTheSignal) {
    Connection c;
    {
        Signal<void()> sig;
        c = sig.connect([] {});
    }
    EXPECT_FALSE(c.connected());
    EXPECT_FALSE(c.disconnect());
}

// ---------------------------------------------------------------------------
// Exceptions

TEST_F(SignalTest, ThrowingSlotIsReportedAndNextSlotStillRuns) {
    Signal<void(int)> sig;
    bool second = false;
    sig.connect([](int) { throw std::runtime_error("slot-throws"); });
    sig.connect([&](int) { second = true; });
    EXPECT_NO_THROW(sig.emit(1));
    EXPECT_TRUE(second);
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(holds<std::runtime_error>(seen[0]));
    EXPECT_EQ(message_of(seen[0]), "slot-throws");
}

TEST_F(SignalTest, InProgressAbortedFromASlotPropagatesOutOfEmit) {
    Signal<void()> sig;
    bool second = false;
    sig.connect([] { throw InProgressAborted("abort-through"); });
    sig.connect([&] { second = true; });
    bool caught = false;
    try {
        sig.emit();
    } catch (const InProgressAborted& e) {
        caught = true;
        EXPECT_EQ(e.message(), "abort-through");
    }
    EXPECT_TRUE(caught);
    EXPECT_FALSE(second);
    EXPECT_TRUE(reports.empty());
}

// ---------------------------------------------------------------------------
// emit_deferred

TEST_F(SignalTest, EmitDeferredDeliversOnALaterIteration) {
    Signal<void(int, std::string)> sig;
    int n = 0;
    std::string s;
    sig.connect([&](int a, std::string b) {
        n = a;
        s = std::move(b);
    });
    sig.emit_deferred(5, "five");
    EXPECT_EQ(n, 0);
    loop.step(Duration::zero());
    EXPECT_EQ(n, 5);
    EXPECT_EQ(s, "five");
}

TEST_F(SignalTest, EmitDeferredCopiesReferenceArguments) {
    Signal<void(const std::string&)> sig;
    std::string got;
    sig.connect([&](const std::string& v) { got = v; });
    {
        std::string temp = "copied";
        sig.emit_deferred(temp);
    }
    loop.step(Duration::zero());
    EXPECT_EQ(got, "copied");
}

TEST_F(SignalTest, EmitDeferredFromAnotherThreadRunsOnTheLoopThread) {
    const auto loop_thread = std::this_thread::get_id();
    Signal<void(int)> sig;
    std::thread::id ran_on;
    int got = 0;
    sig.connect([&](int v) {
        ran_on = std::this_thread::get_id();
        got = v;
    });
    std::thread t([&] { sig.emit_deferred(8); });
    t.join();
    ASSERT_TRUE(step_until([&] { return got != 0; }));
    EXPECT_EQ(ran_on, loop_thread);
}

TEST_F(SignalTest, EmitDeferredThrowingSlotIsReported) {
    Signal<void()> sig;
    bool second = false;
    sig.connect([] { throw std::runtime_error("deferred-throws"); });
    sig.connect([&] { second = true; });
    sig.emit_deferred();
    loop.step(Duration::zero());
    EXPECT_TRUE(second);
    EXPECT_EQ(reports.take().size(), 1u);
}

TEST_F(SignalTest, EmitDeferredIntoAnEmptySignalIsDeliveredInsideTheNextConnect) {
    Signal<void(int)> sig;
    sig.emit_deferred(1);
    sig.emit_deferred(2);
    step_n(3);  // nothing connected: held, not lost
    std::vector<std::string> got;
    auto early = sig.connect([&](int v) { got.push_back("first:" + std::to_string(v)); });
    // Delivered inside that connect(), in order.
    EXPECT_EQ(got, (std::vector<std::string>{"first:1", "first:2"}));
    sig.connect([&](int v) { got.push_back("second:" + std::to_string(v)); });
    EXPECT_EQ(got.size(), 2u) << "delivered once: a later connect gets nothing";
}

TEST_F(SignalTest, ThereIsNoLimitOnConnections) {
    // kaa.base refused more than 1000 connections per signal.
    Signal<void()> sig;
    int calls = 0;
    std::vector<Connection> conns;
    for (int i = 0; i < 5000; ++i)
        conns.push_back(sig.connect([&] { ++calls; }));
    sig.emit();
    EXPECT_EQ(calls, 5000);
    EXPECT_EQ(sig.count(), 5000u);
}

TEST_F(SignalTest, ASlotDisconnectedByAnEarlierSlotIsNotCalledInThatEmission) {
    // Boost.Signals2, Qt and GLib agree; kaa.base still called it.
    Signal<void()> sig;
    Connection second;
    bool second_ran = false;
    sig.connect([&] { second.disconnect(); });
    second = sig.connect([&] { second_ran = true; });
    sig.emit();
    EXPECT_FALSE(second_ran);
}

TEST_F(SignalTest, EmitDeferredAfterTheSignalIsGoneEmitsNothing) {
    // The typical slot captures the object that owned the signal: once the
    // signal is destroyed, a pending deferred emission must not reach it.
    struct Owner {
        Signal<void()> sig;
        int* calls = nullptr;
    };
    int calls = 0;
    {
        auto owner = std::make_unique<Owner>();
        owner->calls = &calls;
        Owner* self = owner.get();
        owner->sig.connect([self] { ++*self->calls; });
        owner->sig.emit_deferred();
    }
    loop.step(Duration::zero());
    EXPECT_EQ(calls, 0);
}

// ---------------------------------------------------------------------------
// changed()

TEST_F(SignalTest, ChangedFiresOnConnectAndDisconnect) {
    Signal<void()> sig;
    std::vector<SignalChange> changes;
    sig.changed().connect([&](SignalChange c) { changes.push_back(c); });
    Connection a = sig.connect([] {});
    Connection b = sig.connect_first([] {});
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected, SignalChange::connected}));
    changes.clear();
    a.disconnect();
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::disconnected}));
    changes.clear();
    EXPECT_FALSE(a.disconnect());
    EXPECT_TRUE(changes.empty()) << "nothing to report for a connection already gone";
    sig.disconnect(b);
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::disconnected}));
    changes.clear();
    sig.disconnect_all();
    EXPECT_TRUE(changes.empty()) << "nothing was connected";
    sig.connect([] {});
    sig.disconnect_all();
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected, SignalChange::disconnected}));
}

TEST_F(SignalTest, ChangedFiresForOnceSlotsAndWeakAndFunctionPointer) {
    Signal<void(int)> sig;
    std::vector<SignalChange> changes;
    std::size_t count_at_disconnect = 99;
    sig.changed().connect([&](SignalChange c) {
        changes.push_back(c);
        if (c == SignalChange::disconnected)
            count_at_disconnect = sig.count();
    });
    sig.connect_once([](int) {});
    sig.emit(1);
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected, SignalChange::disconnected}));
    EXPECT_EQ(count_at_disconnect, 0u) << "the count has dropped when `disconnected` fires";
    changes.clear();
    sig.emit(2);
    EXPECT_TRUE(changes.empty());

    auto owner = std::make_shared<int>(0);
    sig.connect_weak(owner, [](int) {});
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected}));
    changes.clear();

    sig.connect(&free_slot);
    sig.disconnect(&free_slot);
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected, SignalChange::disconnected}));
    changes.clear();
    EXPECT_FALSE(sig.disconnect(&free_slot));
    EXPECT_TRUE(changes.empty());
}

// ---------------------------------------------------------------------------
// next()

TEST_F(SignalTest, NextVoidFinishesOnTheNextEmitOnly) {
    Signal<void()> sig;
    auto ip = sig.next();
    EXPECT_FALSE(ip.finished());
    EXPECT_EQ(sig.count(), 1u);
    sig.emit();
    EXPECT_TRUE(ip.finished());
    EXPECT_EQ(sig.count(), 0u);
    sig.emit(); // nothing left to finish
}

TEST_F(SignalTest, NextSingleValue) {
    Signal<void(const std::string&)> sig;
    auto ip = sig.next();
    int later = 0;
    ip.connect([&](const std::string&) { ++later; });
    sig.emit("first");
    sig.emit("second");
    EXPECT_EQ(ip.result(), "first");
    EXPECT_EQ(later, 1);
}

TEST_F(SignalTest, NextTuple) {
    Signal<void(int, std::string)> sig;
    auto ip = sig.next();
    sig.emit(2, "two");
    EXPECT_EQ(ip.result(), std::make_tuple(2, std::string("two")));
}

TEST_F(SignalTest, NextOnlyFinishesOnEmissionsAfterItWasCreated) {
    Signal<void(int)> sig;
    sig.emit(1);
    auto ip = sig.next();
    EXPECT_FALSE(ip.finished());
    sig.emit(2);
    EXPECT_EQ(ip.result(), 2);
}

TEST_F(SignalTest, NextFromAnotherThreadEmissionDeliversOnTheLoop) {
    const auto loop_thread = std::this_thread::get_id();
    Signal<void(int)> sig;
    auto ip = sig.next();
    std::thread::id cb_thread;
    int got = 0;
    ip.connect([&](int v) {
        cb_thread = std::this_thread::get_id();
        got = v;
    });
    std::thread t([&] { sig.emit(6); });
    t.join();
    ASSERT_TRUE(step_until([&] { return got != 0; }));
    EXPECT_EQ(cb_thread, loop_thread);
}

TEST_F(SignalTest, AbortingNextDisconnects) {
    Signal<void(int)> sig;
    std::vector<SignalChange> changes;
    sig.changed().connect([&](SignalChange c) { changes.push_back(c); });
    auto ip = sig.next();
    EXPECT_TRUE(ip.abortable());
    EXPECT_EQ(sig.count(), 1u);
    ip.abort();
    EXPECT_EQ(sig.count(), 0u);
    EXPECT_TRUE(holds<InProgressAborted>(ip.exception()));
    EXPECT_EQ(changes, (std::vector<SignalChange>{SignalChange::connected, SignalChange::disconnected}));
    sig.emit(1); // must not touch the aborted operation
    EXPECT_TRUE(ip.failed());
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(SignalTest, AbortedUnobservedNextIsNotReported) {
    Signal<void()> sig;
    {
        auto ip = sig.next();
        ip.abort();
    }
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(SignalTest, DroppingNextLetsTheSignalForgetIt) {
    Signal<void(int)> sig;
    {
        auto ip = sig.next();
        EXPECT_EQ(sig.count(), 1u);
    }
    EXPECT_EQ(sig.count(), 0u) << "an abandoned next() must not stay connected";
    EXPECT_NO_THROW(sig.emit(1));
    EXPECT_TRUE(reports.empty()) << reports.describe_all();
}

TEST_F(SignalTest, RepeatedlyAbandonedNextDoesNotAccumulateSlots) {
    Signal<void()> sig;
    for (int i = 0; i < 100; ++i)
        (void)sig.next();
    EXPECT_EQ(sig.count(), 0u);
}

TEST_F(SignalTest, CopiedNextHandleKeepsItAlive) {
    Signal<void(int)> sig;
    kaa::InProgress<int> kept;
    {
        auto ip = sig.next();
        kept = ip;
    }
    sig.emit(4);
    EXPECT_EQ(kept.result(), 4);
}

// ---------------------------------------------------------------------------
// Loop-free use

TEST(SignalNoLoop, ThrowingSlotWithoutALoopIsPrinted) {
    Signal<void()> sig;
    bool second = false;
    sig.connect([] { throw std::runtime_error("no-loop-slot"); });
    sig.connect([&] { second = true; });
    testing::internal::CaptureStderr();
    sig.emit();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(second);
    EXPECT_NE(err.find("no-loop-slot"), std::string::npos) << err;
}

TEST(SignalNoLoop, EmitDeferredWithoutALoopRunsAtOnce) {
    Signal<void(int)> sig;
    int got = 0;
    sig.connect([&](int v) { got = v; });
    sig.emit_deferred(3);
    EXPECT_EQ(got, 3);
}
