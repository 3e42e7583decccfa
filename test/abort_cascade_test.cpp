// SPDX-License-Identifier: BSL-1.0
// The abort rules of coroutines: kaa-spec.md 6.3, one test per row of its
// cascade table, plus the C++ port decisions (section 12, decision 1).
#include "kaa/coroutine.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::InProgressRef;
using kaa::this_coroutine::await;
using kaa::this_coroutine::yield;
using namespace std::chrono_literals;

class AbortCascade : public kaa::test::LoopTest {};

bool holds_origin(const std::exception_ptr& e, const InProgressRef& origin) {
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted& a) {
        return a.origin() == origin;
    } catch (...) {
        return false;
    }
}

struct Seen {
    bool aborted = false;
    InProgressRef inprogress;
    InProgressRef origin;
    std::string message;
};

TEST_F(AbortCascade, AbortRaisesAtTheSuspensionPointAndFailsTheInProgress) {
    Seen seen;
    bool cleaned_up = false;
    InProgress<void> never;
    auto ip = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted& e) {
            seen = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    EXPECT_TRUE(ip.abort());  // does not throw: the caller asked for it (doc/coroutines.md)
    EXPECT_TRUE(seen.aborted);
    EXPECT_TRUE(seen.inprogress == never);
    EXPECT_TRUE(seen.origin == ip);
    ASSERT_TRUE(ip.finished());
    ASSERT_TRUE(ip.failed());
    try {
        ip.result();
        FAIL() << "result() must rethrow";
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.inprogress() == never) << "the failure names what the coroutine waited on, as inside";
        EXPECT_TRUE(e.origin() == ip);
    }
    (void)cleaned_up;
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(AbortCascade, ResultCallbacksNeverRunExceptionCallbacksDo) {
    InProgress<int> never;
    auto ip = kaa::coroutine([&] { return await(never); });
    bool result_cb = false, exc_cb = false;
    ip.connect([&](int) { result_cb = true; });
    ip.connect_exception([&](std::exception_ptr e) { exc_cb = kaa::test::holds<InProgressAborted>(e); });
    ip.abort();
    EXPECT_FALSE(result_cb);
    EXPECT_TRUE(exc_cb);
}

TEST_F(AbortCascade, AbortSignalRunsBeforeExceptionCallbacks) {
    InProgress<void> never;
    std::vector<std::string> order;
    auto ip = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted&) {
            order.push_back("body");
            throw;
        }
    });
    ip.abort_signal().connect([&](const InProgressAborted&) { order.push_back("abort-signal"); });
    ip.connect_exception([&](std::exception_ptr) { order.push_back("exception-cb"); });
    ip.abort();
    EXPECT_EQ(order, (std::vector<std::string>{"abort-signal", "body", "exception-cb"}));
}

TEST_F(AbortCascade, CascadesIntoADelay) {
    InProgress<void> d(nullptr);
    Seen seen;
    auto ip = kaa::coroutine([&] {
        d = kaa::delay(1h);
        try {
            await(d);
        } catch (const InProgressAborted& e) {
            seen = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    ip.abort();
    ASSERT_TRUE(d.finished());
    EXPECT_TRUE(d.failed());
    EXPECT_TRUE(seen.inprogress == d);
    EXPECT_TRUE(seen.origin == ip);
    try {
        d.result();
    } catch (const InProgressAborted& e) {
        EXPECT_TRUE(e.origin() == ip) << "the delay's abort names the coroutine as origin";
    }
}

TEST_F(AbortCascade, NoabortShieldsTheDelay) {
    InProgress<void> d = kaa::delay(1ms);
    Seen seen;
    InProgress<void> view(nullptr);
    auto ip = kaa::coroutine([&] {
        view = d.noabort();
        try {
            await(view);
        } catch (const InProgressAborted& e) {
            seen = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    ip.abort();
    EXPECT_TRUE(seen.aborted);
    EXPECT_TRUE(seen.inprogress == view);
    EXPECT_FALSE(view.finished()) << "the noabort view is not aborted";
    EXPECT_FALSE(d.finished());
    ASSERT_TRUE(step_until([&] { return d.finished(); }));
    EXPECT_FALSE(d.failed()) << "the shielded delay finishes normally";
}

TEST_F(AbortCascade, CascadesIntoANestedCoroutineFirst) {
    std::vector<std::string> order;
    InProgress<void> never;
    InProgress<void> b(nullptr);
    Seen in_b, in_a;
    auto a = kaa::coroutine([&] {
        b = kaa::coroutine([&] {
            try {
                await(never);
            } catch (const InProgressAborted& e) {
                in_b = {true, e.inprogress(), e.origin(), e.message()};
                order.push_back("b-cleanup");
                throw;
            }
        });
        try {
            await(b);
        } catch (const InProgressAborted& e) {
            in_a = {true, e.inprogress(), e.origin(), e.message()};
            order.push_back("a-cleanup");
            throw;
        }
    });
    a.abort();
    EXPECT_EQ(order, (std::vector<std::string>{"b-cleanup", "a-cleanup"}));
    EXPECT_TRUE(in_b.inprogress == never);
    EXPECT_TRUE(in_b.origin == a);
    EXPECT_TRUE(in_a.inprogress == b);
    EXPECT_TRUE(in_a.origin == a);
    EXPECT_TRUE(b.failed());
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(AbortCascade, ThreeLevelsDeep) {
    InProgress<void> never;
    int unwound = 0;
    auto level = [&](auto self, int depth) -> void {
        try {
            if (depth == 0)
                await(never);
            else
                await(kaa::coroutine(self, self, depth - 1));
        } catch (const InProgressAborted&) {
            ++unwound;
            throw;
        }
    };
    auto top = kaa::coroutine(level, level, 2);
    EXPECT_EQ(kaa::active_coroutines(), 3u);
    top.abort();
    EXPECT_EQ(unwound, 3);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_FALSE(never.finished()) << "a plain InProgress without abort handler is not abortable";
}

TEST_F(AbortCascade, SharedOperationIsNotAborted) {
    InProgress<int> shared;
    shared.abort_signal().connect([](const InProgressAborted&) {});  // abortable
    auto a = kaa::coroutine([&] { return await(shared); });
    auto b = kaa::coroutine([&] { return await(shared); });
    a.abort();
    EXPECT_TRUE(a.failed());
    EXPECT_FALSE(shared.finished()) << "b still waits on it";
    shared.finish(5);
    EXPECT_EQ(b.result(), 5);
}

TEST_F(AbortCascade, SingletonSharedByTwoWaitersAndItsOrigin) {
    // kaa's documented example: master() waits on a singleton coroutine that
    // another coroutine waits on too. Aborting the waiter spares the
    // singleton; aborting the singleton reaches master with origin = singleton.
    InProgress<void> never;
    kaa::Coroutine<void()> singleton({.name = "singleton", .policy = kaa::Policy::singleton}, [&] { await(never); });
    Seen in_master;
    auto master = kaa::coroutine([&] {
        try {
            await(singleton());
        } catch (const InProgressAborted& e) {
            in_master = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    auto other = kaa::coroutine([&] { await(singleton()); });
    auto s = singleton();
    other.abort();
    EXPECT_FALSE(s.finished()) << "master still waits on the singleton";
    s.abort();
    EXPECT_TRUE(in_master.aborted);
    EXPECT_TRUE(in_master.inprogress == s);
    EXPECT_TRUE(in_master.origin == s);
    EXPECT_TRUE(master.failed());
}

TEST_F(AbortCascade, AbortWhileTimeSlicingNamesNothing) {
    Seen seen;
    auto ip = kaa::coroutine([&] {
        try {
            for (;;)
                yield();
        } catch (const InProgressAborted& e) {
            seen = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    loop.step(kaa::Duration::zero());
    ip.abort();
    EXPECT_TRUE(seen.aborted);
    EXPECT_FALSE(seen.inprogress.valid());
    EXPECT_TRUE(seen.origin == ip);
    try {
        ip.result();
    } catch (const InProgressAborted& e) {
        EXPECT_FALSE(e.inprogress().valid()) << "the failure, too, names nothing";
        EXPECT_TRUE(e.origin() == ip);
    }
    // The time slice that was queued must not resume the finished coroutine.
    loop.step(kaa::Duration::zero());
    EXPECT_TRUE(ip.failed());
}

TEST_F(AbortCascade, SuspendingAfterAbortIsAnError) {
    InProgress<void> never;
    bool got_error = false;
    auto ip = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted&) {
            try {
                yield();
            } catch (const kaa::SuspendAfterAbort&) {
                got_error = true;
                throw;
            }
        }
    });
    ip.abort();
    EXPECT_TRUE(got_error);
    EXPECT_TRUE(ip.failed());
    EXPECT_THROW(ip.result(), InProgressAborted) << "the InProgress reports the abort, not the misuse";
    auto got = reports.take();
    ASSERT_EQ(got.size(), 1u) << "the misuse during cleanup is reported";
    EXPECT_TRUE(kaa::test::holds<kaa::SuspendAfterAbort>(got[0]));
}

TEST_F(AbortCascade, CaughtAbortWithValueStillFails) {
    InProgress<int> never;
    auto ip = kaa::coroutine([&] {
        try {
            return await(never);
        } catch (const InProgressAborted&) {
            return -1;  // discarded: an aborted coroutine always ends aborted
        }
    });
    ip.abort();
    EXPECT_TRUE(ip.failed());
    EXPECT_THROW(ip.result(), InProgressAborted);
}

TEST_F(AbortCascade, AbortOnAFinishedCoroutineReturnsFalse) {
    auto ip = kaa::coroutine([] { return 1; });
    bool aborted = true;
    EXPECT_NO_THROW(aborted = ip.abort());
    EXPECT_FALSE(aborted);
    EXPECT_EQ(ip.result(), 1);
    // Aborted while it still unwinds (a second abort from its own cleanup).
    InProgress<void> never;
    InProgress<void> self_ip(nullptr);
    bool second = true;
    self_ip = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted&) {
            second = self_ip.abort();
            throw;
        }
    });
    EXPECT_TRUE(self_ip.abort());
    EXPECT_FALSE(second);
}

TEST_F(AbortCascade, InprogressAndOriginAreTheSameInsideInCallbacksAndInTheFailure) {
    Seen inside, in_callback, in_failure;
    InProgress<void> d(nullptr);
    auto ip = kaa::coroutine([&] {
        d = kaa::delay(1h);
        try {
            await(d);
        } catch (const InProgressAborted& e) {
            inside = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    std::weak_ptr<kaa::detail::StateBase> delay_state = d.state();
    ip.connect_exception([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const InProgressAborted& a) {
            in_callback = {true, a.inprogress(), a.origin(), a.message()};
        }
    });
    ip.abort();
    d = InProgress<void>(nullptr);
    ASSERT_FALSE(delay_state.expired()) << "the aborted coroutine's failure holds what it waited on";
    try {
        ip.result();
    } catch (const InProgressAborted& e) {
        in_failure = {true, e.inprogress(), e.origin(), e.message()};
    }
    for (const Seen* s : {&inside, &in_callback, &in_failure}) {
        EXPECT_TRUE(s->aborted);
        EXPECT_TRUE(s->inprogress.valid());
        EXPECT_TRUE(s->inprogress.state() == delay_state.lock());
        EXPECT_TRUE(s->origin == ip);
    }
}

TEST_F(AbortCascade, AnAbortedCascadeFormsNoReferenceCycle) {
    std::weak_ptr<kaa::detail::StateBase> coro_state, delay_state;
    {
        InProgress<void> d(nullptr);
        auto ip = kaa::coroutine([&] {
            d = kaa::delay(1h);
            await(d);
        });
        coro_state = ip.state();
        delay_state = d.state();
        ip.abort();
        ASSERT_TRUE(d.failed());
        EXPECT_TRUE(holds_origin(d.exception(), ip));
        (void)ip.exception();
    }
    EXPECT_TRUE(coro_state.expired()) << "the coroutine's failure does not keep it alive";
    EXPECT_TRUE(delay_state.expired()) << "the delay's failure (origin: the coroutine) forms no cycle";
}

TEST_F(AbortCascade, SelfAbortTakesEffectAtTheNextSuspension) {
    InProgress<void> self_ip(nullptr);
    InProgress<void> gate;
    bool after_abort_call = false;
    Seen seen;
    self_ip = kaa::coroutine([&] {
        await(gate);
        self_ip.abort();
        after_abort_call = true;  // abort() returns; the coroutine is running
        try {
            yield();
        } catch (const InProgressAborted& e) {
            seen = {true, e.inprogress(), e.origin(), e.message()};
            throw;
        }
    });
    gate.finish();
    EXPECT_TRUE(after_abort_call);
    EXPECT_TRUE(seen.aborted);
    EXPECT_TRUE(seen.origin == self_ip);
    EXPECT_TRUE(self_ip.failed());
}

TEST_F(AbortCascade, AbortedWaiterDoesNotConsumeTheResult) {
    // A completion and an abort that race: the waiter is gone, the result
    // stays with the operation for anyone else.
    InProgress<int> op;
    op.abort_signal().connect([](const InProgressAborted&) {});
    auto waiter = kaa::coroutine([&] { return await(op.noabort()); });
    waiter.abort();
    op.finish(9);
    EXPECT_EQ(op.result(), 9);
    EXPECT_TRUE(waiter.failed());
}

} // namespace
