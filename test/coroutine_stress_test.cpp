// SPDX-License-Identifier: BSL-1.0
// Adversarial tests for coroutines: reentrancy inside finish() (kaa's
// interval-0 fast path), aborts of coroutines on the resume chain, shutdown
// with coroutines in every kind of suspension, policies whose definition goes
// away, and the registry across many loops in one process.
#include "kaa/coroutine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using kaa::this_coroutine::await;
using kaa::this_coroutine::yield;
using namespace std::chrono_literals;

class CoroutineStress : public kaa::test::LoopTest {};

struct Counted {
    static inline int alive = 0;
    Counted() { ++alive; }
    Counted(const Counted&) { ++alive; }
    ~Counted() { --alive; }
};

// ---- reentrancy inside finish() --------------------------------------------

TEST_F(CoroutineStress, ResumedInsideFinishDropsTheLastHandleOfTheFinishingOperation) {
    // The coroutine holds the only handle to the view it waits on; the view
    // finishes from its relay (finish(other)), and the coroutine drops it.
    InProgress<int> source;
    auto holder = std::make_shared<std::optional<InProgress<int>>>(source.noabort());
    int got = 0;
    auto co = kaa::coroutine([holder, &got] {
        InProgress<int> view = **holder;
        holder->reset();
        got = await(view);
        // `view` is the last handle: dropping it here destroys the state that
        // is still completing further up this call chain.
    });
    holder.reset();
    source.finish(5);
    EXPECT_EQ(got, 5);
    EXPECT_TRUE(co.finished());
}

TEST_F(CoroutineStress, ResumedInsideFinishAbortsAnotherCoroutineWaitingOnTheSameOperation) {
    InProgress<int> gate;
    InProgress<int> b(nullptr);
    bool b_aborted = false;
    b = kaa::coroutine([&] {
        try {
            return await(gate);
        } catch (const InProgressAborted&) {
            b_aborted = true;
            throw;
        }
    });
    auto a = kaa::coroutine([&] {
        int v = await(gate);  // a connected after b: runs after b's callback?
        if (!b.finished())
            b.abort();
        return v;
    });
    gate.finish(1);
    EXPECT_EQ(a.result(), 1);
    // b ran first (connection order) and finished with the value; aborting a
    // finished coroutine is not attempted.
    EXPECT_FALSE(b_aborted);
    EXPECT_EQ(b.result(), 1);
}

TEST_F(CoroutineStress, ResumedInsideFinishAbortsACoroutineThatIsNotYetWoken) {
    // a and b wait on the same gate; a is woken first and aborts b, whose
    // callback is next in the same emission. b must unwind once, and its
    // stale wake-up must not resume it again.
    InProgress<int> gate;
    InProgress<int> b(nullptr);
    int b_resumes = 0;
    auto a = kaa::coroutine([&] {
        int v = await(gate);
        b.abort();
        return v;
    });
    b = kaa::coroutine([&] {
        try {
            int v = await(gate);
            ++b_resumes;
            return v;
        } catch (const InProgressAborted&) {
            ++b_resumes;
            throw;
        }
    });
    gate.finish(2);
    EXPECT_EQ(a.result(), 2);
    EXPECT_TRUE(b.failed());
    EXPECT_THROW(b.result(), InProgressAborted);
    EXPECT_EQ(b_resumes, 1);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(CoroutineStress, ResumedInsideFinishStartsCoroutinesAndFinishesWhatOthersWaitOn) {
    std::vector<std::string> log;
    InProgress<void> first, second;
    auto waiter = kaa::coroutine([&] {
        await(second);
        log.push_back("waiter");
    });
    auto chain = kaa::coroutine([&] {
        await(first);
        log.push_back("chain");
        auto child = kaa::coroutine([&] {
            log.push_back("child");
            second.finish();  // resumes `waiter` from inside this coroutine's child
            log.push_back("child-after");
        });
        await(child);
        log.push_back("chain-end");
    });
    first.finish();
    EXPECT_EQ(log, (std::vector<std::string>{"chain", "child", "waiter", "child-after", "chain-end"}));
    EXPECT_TRUE(waiter.finished());
    EXPECT_TRUE(chain.finished());
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(CoroutineStress, ResumedInsideFinishStepsTheLoop) {
    InProgress<void> gate;
    int sliced = 0;
    auto slicer = kaa::coroutine([&] {
        for (int i = 0; i < 3; ++i) {
            yield();
            ++sliced;
        }
    });
    auto co = kaa::coroutine([&] {
        await(gate);
        // A nested iteration on this coroutine's stack resumes the slicer.
        for (int i = 0; i < 5 && !slicer.finished(); ++i)
            loop.step(kaa::Duration::zero());
    });
    gate.finish();
    EXPECT_EQ(sliced, 3);
    EXPECT_TRUE(co.finished());
}

// ---- abort of a coroutine on the resume chain ------------------------------

TEST_F(CoroutineStress, AbortOfACoroutineUpTheResumeChainTakesEffectAtItsNextSuspension) {
    InProgress<void> outer_gate, inner_gate;
    InProgress<void> a(nullptr);
    std::vector<std::string> log;
    a = kaa::coroutine([&] {
        await(outer_gate);
        inner_gate.finish();  // resumes b here, which aborts a (still running)
        log.push_back("a-after-finish");
        try {
            yield();
        } catch (const InProgressAborted& e) {
            log.push_back("a-aborted");
            EXPECT_TRUE(e.origin() == a);
            throw;
        }
    });
    auto b = kaa::coroutine([&] {
        await(inner_gate);
        a.abort();  // a is on the resume chain: pending until it suspends
        log.push_back("b-aborted-a");
        EXPECT_FALSE(a.finished());
        a.abort();  // a second abort is a no-op
    });
    outer_gate.finish();
    EXPECT_EQ(log, (std::vector<std::string>{"b-aborted-a", "a-after-finish", "a-aborted"}));
    EXPECT_TRUE(a.failed());
    EXPECT_TRUE(b.finished());
    EXPECT_FALSE(b.failed());
}

TEST_F(CoroutineStress, AbortedWhileRunningAndEndingWithoutSuspendingStillFails) {
    InProgress<void> gate;
    InProgress<int> a(nullptr);
    a = kaa::coroutine([&] {
        await(gate);
        a.abort();
        return 7;  // never suspends again
    });
    gate.finish();
    ASSERT_TRUE(a.failed());
    EXPECT_THROW(a.result(), InProgressAborted);
    EXPECT_FALSE(a.abort());
}

TEST_F(CoroutineStress, DoubleAbortFromTheCleanupIsANoOp) {
    InProgress<void> never;
    InProgress<void> a(nullptr);
    int cleanups = 0;
    a = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const InProgressAborted&) {
            ++cleanups;
            a.abort();  // aborting itself again while unwinding
            throw;
        }
    });
    a.abort();
    EXPECT_EQ(cleanups, 1);
    EXPECT_TRUE(a.failed());
}

TEST_F(CoroutineStress, AwaitOnAnEmptyHandleIsATypedError) {
    auto co = kaa::coroutine([] {
        InProgress<int> empty(nullptr);
        return await(empty);
    });
    ASSERT_TRUE(co.failed());
    EXPECT_THROW(co.result(), kaa::EmptyHandle);
}

TEST_F(CoroutineStress, MisuseErrorsAreTyped) {
    InProgress<int> never;
    EXPECT_THROW(await(never), kaa::NotInCoroutine);
    EXPECT_THROW(yield(), kaa::NotInCoroutine);
    auto co = kaa::coroutine([&] { return never.wait(); });
    ASSERT_TRUE(co.failed());
    EXPECT_THROW(co.result(), kaa::UsageError);
    auto done = kaa::coroutine([] { return 1; });
    EXPECT_FALSE(done.abort());
}

// ---- policies ---------------------------------------------------------------

TEST_F(CoroutineStress, SynchronizedDefinitionDestroyedWithCallsQueued) {
    InProgress<void> gate;
    std::vector<std::string> names;
    auto def = std::make_unique<kaa::Coroutine<void(int)>>(
        kaa::CoroutineOptions{.name = "queued-def", .policy = kaa::Policy::synchronized}, [&](int) {
            names.push_back(kaa::this_coroutine::name());
            await(gate);
        });
    auto a = (*def)(0);
    auto b = (*def)(1);
    auto c = (*def)(2);
    def.reset();  // the calls outlive their definition
    gate.finish();
    EXPECT_TRUE(a.finished());
    EXPECT_TRUE(b.finished());
    EXPECT_TRUE(c.finished());
    EXPECT_EQ(names, (std::vector<std::string>{"queued-def", "queued-def", "queued-def"}));
}

TEST_F(CoroutineStress, SynchronizedAbortOfTheRunningCallStartsTheNext) {
    std::vector<std::string> log;
    InProgress<void> never, gate;
    kaa::Coroutine<void(int)> def({.policy = kaa::Policy::synchronized}, [&](int i) {
        log.push_back("in" + std::to_string(i));
        await(i == 0 ? never : gate);
        log.push_back("out" + std::to_string(i));
    });
    auto a = def(0);
    auto b = def(1);
    auto c = def(2);
    a.abort();
    EXPECT_TRUE(a.failed());
    EXPECT_EQ(log, (std::vector<std::string>{"in0", "in1"}));
    b.abort();
    EXPECT_EQ(log, (std::vector<std::string>{"in0", "in1", "in2"}));
    gate.finish();
    EXPECT_EQ(log, (std::vector<std::string>{"in0", "in1", "in2", "out2"}));
    EXPECT_TRUE(c.finished());
    EXPECT_FALSE(c.failed());
}

TEST_F(CoroutineStress, SingletonCalledFromItsOwnCompletionStartsAFreshInstance) {
    InProgress<int> gate;
    int entered = 0;
    kaa::Coroutine<int()> def({.policy = kaa::Policy::singleton}, [&] {
        ++entered;
        return await(gate);
    });
    auto first = def();
    kaa::CoroutineInProgress<int> second(nullptr);
    first.connect([&](int) { second = def(); });
    gate.finish(3);
    ASSERT_TRUE(second.valid());
    EXPECT_FALSE(second == first) << "a finished instance is never handed out";
    EXPECT_EQ(entered, 2);
    EXPECT_EQ(second.result(), 3);
}

// ---- shutdown ---------------------------------------------------------------

TEST(CoroutineStressShutdown, EveryKindOfSuspensionIsUnwound) {
    Counted::alive = 0;
    int unwound = 0;
    {
        kaa::MainLoop loop;
        InProgress<void> never;
        auto body = [&](int kind) {
            Counted on_stack;
            try {
                switch (kind) {
                case 0:
                    await(never);
                    break;
                case 1:
                    for (;;)
                        yield();  // parked on a posted time slice
                case 2:
                    await(kaa::delay(1h));
                    break;
                default:
                    for (;;)
                        yield();  // parked on the interval timer
                }
            } catch (const InProgressAborted&) {
                ++unwound;
                throw;
            }
        };
        kaa::coroutine(body, 0);
        kaa::coroutine(body, 1);
        kaa::coroutine(body, 2);
        kaa::coroutine(kaa::CoroutineOptions{.interval = 1h}, body, 3);
        loop.step(kaa::Duration::zero());
        EXPECT_EQ(Counted::alive, 4);
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
    }
    EXPECT_EQ(unwound, 4);
    EXPECT_EQ(Counted::alive, 0);
}

TEST(CoroutineStressShutdown, AbortHandlerAbortsAnotherCoroutineDuringShutdown) {
    Counted::alive = 0;
    // Declared before the loop: the abort handler uses them while the loop's
    // destructor unwinds the coroutines.
    InProgress<void> never;
    InProgress<void> other(nullptr);
    {
        kaa::MainLoop loop;
        kaa::coroutine([&] {
            Counted c;
            try {
                await(never);
            } catch (const InProgressAborted&) {
                if (other.valid() && !other.finished())
                    other.abort();
                throw;
            }
        });
        other = kaa::coroutine([&] {
            Counted c;
            await(never);
        });
    }
    EXPECT_EQ(Counted::alive, 0);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST(CoroutineStressShutdown, CoroutineStartedByCleanupAtShutdownIsUnwoundToo) {
    // kaa's advice for cleanup that must wait: start it as a new coroutine.
    // At shutdown that coroutine starts after the registry's shutdown hook
    // ran; it must be unwound all the same, and the registry must be left
    // clean for the next loop -- even one created at the same address.
    Counted::alive = 0;
    std::optional<kaa::MainLoop> loop;
    int cleanup_unwound = 0;
    for (int round = 0; round < 3; ++round) {
        loop.emplace();
        InProgress<void> never;
        kaa::coroutine([&] {
            try {
                await(never);
            } catch (const InProgressAborted&) {
                kaa::coroutine([&] {
                    Counted c;
                    try {
                        await(never);
                    } catch (const InProgressAborted&) {
                        ++cleanup_unwound;
                        throw;
                    }
                });
                throw;
            }
        });
        loop->post([&] { loop->stop(); });
        loop->run();
        EXPECT_EQ(kaa::active_coroutines(), 0u) << "round " << round;
        loop.reset();
        EXPECT_EQ(Counted::alive, 0) << "round " << round;
    }
    EXPECT_EQ(cleanup_unwound, 3);
    // A plain suspended coroutine in a loop at the same address is unwound
    // when that loop goes away.
    loop.emplace();
    {
        InProgress<void> never;
        kaa::coroutine([&] {
            Counted c;
            await(never);
        });
        EXPECT_EQ(Counted::alive, 1);
        loop.reset();
    }
    EXPECT_EQ(Counted::alive, 0);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST(CoroutineStressShutdown, CoroutineStartedByWorkDeliveredDuringShutdownIsUnwound) {
    Counted::alive = 0;
    {
        std::optional<kaa::MainLoop> loop(std::in_place);
        InProgress<void> never;
        kaa::coroutine([&] {
            try {
                await(never);
            } catch (const InProgressAborted&) {
                // Posted: runs in the iterations that deliver the shutdown's
                // aftermath, after the shutdown hooks ran.
                loop->post([&] {
                    kaa::coroutine([&] {
                        Counted c;
                        await(never);
                    });
                });
                throw;
            }
        });
        loop->post([&] { loop->stop(); });
        loop->run();
        loop.reset();
        EXPECT_EQ(Counted::alive, 0);
        EXPECT_EQ(kaa::active_coroutines(), 0u);
    }
    // And the next loop starts from a clean registry.
    {
        kaa::MainLoop loop;
        InProgress<void> never;
        kaa::coroutine([&] {
            Counted c;
            await(never);
        });
        EXPECT_EQ(kaa::active_coroutines(), 1u);
    }
    EXPECT_EQ(Counted::alive, 0);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST(CoroutineStressShutdown, CoroutineWhoseInProgressWasFinishedFromOutsideIsUnwound) {
    Counted::alive = 0;
    {
        kaa::MainLoop loop;
        kaa::test::ExceptionCapture reports(loop);
        InProgress<void> never;
        auto co = kaa::coroutine([&] {
            Counted c;
            await(never);
            return 1;
        });
        co.finish(2);  // the InProgress is public: someone finished it
        EXPECT_EQ(co.result(), 2);
        EXPECT_TRUE(co.active());
        loop.post([&] { loop.stop(); });
        loop.run();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        EXPECT_EQ(Counted::alive, 0);
        reports.take();  // what is reported about the discarded outcome is not the point
    }
    EXPECT_EQ(Counted::alive, 0);
}

TEST(CoroutineStressShutdown, ManyLoopsInOneProcessKeepTheRegistryAndStackPoolBounded) {
    for (int round = 0; round < 50; ++round) {
        kaa::MainLoop loop;
        InProgress<void> never;
        for (int i = 0; i < 20; ++i)
            kaa::coroutine([&] { await(never); });
        kaa::coroutine([] {
            for (;;)
                yield();
        });
        loop.step(kaa::Duration::zero());
        EXPECT_EQ(kaa::active_coroutines(), 21u);
    }
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

// ---- randomised ping-pong ---------------------------------------------------

#if defined(__SANITIZE_THREAD__)
constexpr int kRounds = 20;
#else
constexpr int kRounds = 200;
#endif

TEST_F(CoroutineStress, RandomisedWaitFinishAbortKeepsInvariants) {
    // Coroutines wait on shared gates and on each other; the test finishes
    // gates and aborts coroutines in a seeded random order. Every coroutine
    // ends exactly once, finished or failed, and nothing is reported.
    for (int round = 0; round < kRounds; ++round) {
        std::mt19937 rng(static_cast<unsigned>(round));
        constexpr int kGates = 6, kCoros = 12;
        std::vector<InProgress<int>> gates(kGates);
        for (auto& g : gates)
            g.abort_signal().connect([](const InProgressAborted&) {});
        std::vector<InProgress<int>> coros;
        std::vector<int> ends(kCoros, 0);
        for (int i = 0; i < kCoros; ++i) {
            int target = static_cast<int>(rng() % (kGates + static_cast<unsigned>(i)));
            InProgress<int> waited = target < kGates ? gates[static_cast<std::size_t>(target)]
                                                     : coros[static_cast<std::size_t>(target - kGates)];
            coros.push_back(kaa::coroutine([&ends, i, waited] {
                struct End {
                    int& n;
                    ~End() { ++n; }
                } end{ends[static_cast<std::size_t>(i)]};
                int v = await(waited);
                if (v % 3 == 0)
                    yield();
                return v + 1;
            }));
        }
        for (int action = 0; action < 30; ++action) {
            unsigned pick = rng() % (kGates + kCoros);
            try {
                if (pick < kGates) {
                    auto& g = gates[pick];
                    if (!g.finished())
                        g.finish(static_cast<int>(rng() % 10));
                } else {
                    auto& c = coros[pick - kGates];
                    if (!c.finished())
                        c.abort();
                }
            } catch (const kaa::NotAbortable&) {
            }
            if (rng() % 4 == 0)
                loop.step(kaa::Duration::zero());
        }
        for (auto& g : gates)
            if (!g.finished())
                g.finish(1);
        ASSERT_TRUE(step_until([&] {
            return std::all_of(coros.begin(), coros.end(), [](auto& c) { return c.finished(); });
        }, 100));
        for (int i = 0; i < kCoros; ++i)
            EXPECT_EQ(ends[static_cast<std::size_t>(i)], 1) << "round " << round << " coroutine " << i;
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        for (auto& c : coros)
            (void)c.exception();  // observed
    }
}

} // namespace

// ---- stack mappings ------------------------------------------------------------

namespace {
std::size_t map_count() {
    std::ifstream in("/proc/self/maps");
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line))
        ++n;
    return n;
}
} // namespace

TEST(CoroutineStressStacks, RandomOrderEndsDoNotFragmentMappings) {
    // With guard regions each stack is one mapping and the kernel merges
    // neighbouring stacks; unmapping stacks out of the middle of such runs as
    // coroutines end in random order would split them, multiplying the
    // process's mappings towards vm.max_map_count (then every mmap fails).
    // The pool keeps surplus stacks mapped instead (src/stack.hpp).
    kaa::MainLoop loop;
    constexpr int kCoroutines = 4000;  // well beyond the 1024 stacks kept hot
    std::vector<InProgress<void>> gates(kCoroutines);
    std::vector<InProgress<void>> coros;
    coros.reserve(kCoroutines);
    const std::size_t before = map_count();
    for (auto& gate : gates)
        coros.push_back(kaa::coroutine([&gate] { await(gate); }));
    const std::size_t created = map_count();
    if (created > before + kCoroutines / 2)
        GTEST_SKIP() << "stacks do not merge into shared mappings here (mprotect guard pages, or a "
                        "sanitizer's own mappings in between): nothing to split";
    std::vector<int> order(kCoroutines);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    for (int i : order)
        gates[static_cast<std::size_t>(i)].finish();
    for (auto& c : coros)
        ASSERT_TRUE(c.finished());
    EXPECT_LT(map_count(), before + 100) << "finishing in random order split the stacks' mappings";
}
