// SPDX-License-Identifier: BSL-1.0
#include "kaa/generator.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/signal.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

namespace {

using kaa::this_coroutine::await;

class GeneratorTest : public kaa::test::LoopTest {
protected:
    // Collects every value of `gen` by iterating it inside a coroutine.
    template <class T>
    std::vector<T> collect(kaa::Generator<T> gen) {
        auto all = kaa::coroutine([gen] {
            std::vector<T> out;
            for (T& v : gen)
                out.push_back(v);
            return out;
        });
        EXPECT_TRUE(step_until([&] { return all.finished(); }));
        return all.result();
    }
};

// Iterated inside a coroutine, a generator is a standard input range.
static_assert(std::ranges::input_range<kaa::Generator<int>>);
static_assert(std::ranges::input_range<kaa::Generator<std::unique_ptr<int>>>);

// Sets a flag when destroyed: shows that a producer's stack was unwound.
struct Unwound {
    explicit Unwound(bool& flag) : flag_(flag) {}
    ~Unwound() { flag_ = true; }
    bool& flag_;
};

// kaa's test/generators.py, coroutine part: a time slice, 1, a wait for
// another coroutine (which gives 10), 11, 2, a time slice, 3.
TEST_F(GeneratorTest, ACoroutineProducerYieldsAcrossItsOwnWaitsAsKaasTestSequence) {
    auto async = [] {
        kaa::this_coroutine::yield();
        return 10;
    };
    auto cg = kaa::generator<int>([async](kaa::Yield<int>& yield) {
        kaa::this_coroutine::yield();
        yield(1);
        int x = await(kaa::coroutine(async));
        yield(x + 1);
        yield(2);
        kaa::this_coroutine::yield();
        yield(3);
    });
    EXPECT_EQ(collect(cg), (std::vector<int>{1, 11, 2, 3}));
    EXPECT_TRUE(cg.producer().finished());
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

// The threaded part: values produced on a worker arrive on the loop thread.
TEST_F(GeneratorTest, AThreadedProducersValuesArriveOnTheLoopThreadInOrder) {
    std::thread::id producer_thread;
    auto tg = kaa::generator<std::string>(kaa::ThreadOptions{}, [&producer_thread](kaa::Yield<std::string>& yield) {
        producer_thread = std::this_thread::get_id();
        yield("a");
        yield("b");
    });
    std::vector<std::string> got;
    std::vector<bool> on_loop_thread;
    auto consumer = kaa::coroutine([&] {
        for (std::string& v : tg) {
            got.push_back(v);
            on_loop_thread.push_back(loop.is_main_thread());
        }
    });
    ASSERT_TRUE(step_until([&] { return consumer.finished(); }));
    consumer.result();
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(on_loop_thread, (std::vector<bool>{true, true}));
    EXPECT_NE(producer_thread, std::this_thread::get_id());
    ASSERT_TRUE(step_until([&] { return tg.producer().finished(); }));
    EXPECT_FALSE(tg.producer().failed());
}

// kaa's `generic` generator, whose values come from a callback: here the
// Yield is handed to a signal's slot, and the producer suspends inside the
// slot, frames below its own function (a stackful generator).
TEST_F(GeneratorTest, AProducerCanYieldFromACallbackDeepInItsCallTree) {
    auto gg = kaa::generator<int>([](kaa::Yield<int>& yield) {
        kaa::Signal<void(int)> item_parsed;
        item_parsed.connect([&yield](int id) { yield(id * 10); });
        for (int id = 0; id < 3; ++id)
            item_parsed.emit(id);
    });
    EXPECT_EQ(collect(gg), (std::vector<int>{0, 10, 20}));
}

TEST_F(GeneratorTest, EachNextIsOneInProgressPerValueThenNulloptAtTheEndAndAfterIt) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) {
        yield(1);
        await(kaa::delay(kaa::Duration::zero()));
        yield(2);
    });
    kaa::InProgress<std::optional<int>> first = gen.next();
    ASSERT_TRUE(first.finished()) << "the producer ran to its first yield at once";
    EXPECT_EQ(first.result(), 1);
    kaa::InProgress<std::optional<int>> second = gen.next();
    EXPECT_FALSE(second.finished()) << "the producer waits on a delay";
    std::vector<std::optional<int>> got;
    second.connect([&got](const std::optional<int>& v) { got.push_back(v); });
    ASSERT_TRUE(step_until([&] { return second.finished(); }));
    EXPECT_EQ(got, (std::vector<std::optional<int>>{2}));
    auto end = gen.next();
    ASSERT_TRUE(step_until([&] { return end.finished(); }));
    EXPECT_EQ(end.result(), std::nullopt);
    auto after = gen.next();
    ASSERT_TRUE(after.finished());
    EXPECT_EQ(after.result(), std::nullopt);
}

TEST_F(GeneratorTest, AnEmptyGeneratorEndsAtOnce) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>&) {});
    auto end = gen.next();
    ASSERT_TRUE(end.finished());
    EXPECT_EQ(end.result(), std::nullopt);
    EXPECT_TRUE(collect(gen).empty());

    auto threaded = kaa::generator<int>(kaa::ThreadOptions{}, [](kaa::Yield<int>&) {});
    EXPECT_TRUE(collect(threaded).empty());
}

TEST_F(GeneratorTest, AProducerRunsAtMostOneValueAheadOfItsConsumer) {
    int produced = 0;
    auto gen = kaa::generator<int>([&produced](kaa::Yield<int>& yield) {
        for (int i = 1; i <= 3; ++i) {
            ++produced;
            yield(i);
        }
    });
    EXPECT_EQ(produced, 1) << "the first value waits in yield until it is taken";
    step_n(3);
    EXPECT_EQ(produced, 1);
    EXPECT_EQ(gen.next().result(), 1);
    EXPECT_EQ(produced, 2) << "taking a value lets the producer run to its next yield, inside next()";
    EXPECT_EQ(gen.next().result(), 2);
    EXPECT_EQ(gen.next().result(), 3);
    EXPECT_EQ(produced, 3);
    EXPECT_EQ(gen.next().result(), std::nullopt);
}

TEST_F(GeneratorTest, AThreadedProducerBlocksInYieldUntilItsValueIsTaken) {
    std::atomic<int> produced{0};
    auto gen = kaa::generator<int>(kaa::ThreadOptions{}, [&produced](kaa::Yield<int>& yield) {
        for (int i = 1;; ++i) {
            produced.fetch_add(1);
            yield(i);
        }
    });
    for (int taken = 1; taken <= 20; ++taken) {
        auto next = gen.next();
        ASSERT_TRUE(step_until([&] { return next.finished(); }));
        EXPECT_EQ(next.result(), taken);
        // The worker may have started on the next value, but it cannot get
        // past that value's yield until it is taken.
        EXPECT_LE(produced.load(), taken + 1);
    }
    EXPECT_TRUE(gen.abort());
    ASSERT_TRUE(step_until([&] { return kaa::ThreadPool::default_pool().stats().running == 0; }));
}

TEST_F(GeneratorTest, AProducersExceptionIsTheNextItemsFailureThenTheGeneratorEnds) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) {
        yield(1);
        throw std::runtime_error("bad frame");
    });
    EXPECT_EQ(gen.next().result(), 1);
    auto failed = gen.next();
    ASSERT_TRUE(failed.finished());
    EXPECT_THROW(failed.result(), std::runtime_error);
    EXPECT_EQ(gen.next().result(), std::nullopt) << "after the failure the generator is finished";

    // The same from a thread, with the next() already pending.
    auto threaded = kaa::generator<int>(kaa::ThreadOptions{}, [](kaa::Yield<int>&) {
        throw std::runtime_error("disk gone");
    });
    auto pending = threaded.next();
    ASSERT_TRUE(step_until([&] { return pending.finished(); }));
    EXPECT_EQ(kaa::test::message_of(pending.exception()), "disk gone");
    EXPECT_EQ(threaded.next().result(), std::nullopt);
}

TEST_F(GeneratorTest, AProducersExceptionLeavesARangeForAsThatException) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) {
        yield(1);
        yield(2);
        throw std::runtime_error("truncated");
    });
    std::vector<int> got;
    auto consumer = kaa::coroutine([&] {
        try {
            for (int v : gen)
                got.push_back(v);
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    });
    ASSERT_TRUE(step_until([&] { return consumer.finished(); }));
    EXPECT_EQ(consumer.result(), "truncated");
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
}

TEST_F(GeneratorTest, AProducersFailureThatNobodyReadsIsReported) {
    {
        auto gen = kaa::generator<int>([](kaa::Yield<int>&) { throw std::runtime_error("lost"); });
    }
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(kaa::test::message_of(seen[0]), "lost");
}

TEST_F(GeneratorTest, AbortingThePendingNextStopsACoroutineProducerAndUnwindsItsStack) {
    bool unwound = false;
    bool saw_abort = false;
    kaa::InProgress<void> never;  // the producer waits here
    auto gen = kaa::generator<int>([&](kaa::Yield<int>& yield) {
        Unwound guard(unwound);
        yield(1);
        try {
            await(never);
        } catch (const kaa::InProgressAborted&) {
            saw_abort = true;
            throw;
        }
        yield(2);
    });
    EXPECT_EQ(gen.next().result(), 1);
    auto next = gen.next();
    EXPECT_EQ(kaa::active_coroutines(), 1u);
    EXPECT_TRUE(next.abort());
    EXPECT_TRUE(saw_abort);
    EXPECT_TRUE(unwound) << "the producer's RAII objects are destroyed: its stack is gone";
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    ASSERT_TRUE(gen.producer().failed());
    try {
        std::rethrow_exception(gen.producer().exception());
    } catch (const kaa::InProgressAborted& e) {
        EXPECT_EQ(e.origin(), next) << "one abort: the producer's names the aborted next() as its origin";
    }
    EXPECT_THROW(next.result(), kaa::InProgressAborted);
    EXPECT_EQ(gen.next().result(), std::nullopt);
}

TEST_F(GeneratorTest, AbortingTheConsumerCoroutineStopsTheProducer) {
    bool unwound = false;
    auto gen = kaa::generator<int>([&unwound](kaa::Yield<int>& yield) {
        Unwound guard(unwound);
        yield(1);
        await(kaa::InProgress<void>());  // never finishes
    });
    std::vector<int> got;
    auto consumer = kaa::coroutine([&got, gen] {
        for (int v : gen)
            got.push_back(v);
    });
    step_n(2);
    EXPECT_EQ(got, (std::vector<int>{1}));
    EXPECT_EQ(kaa::active_coroutines(), 2u);
    EXPECT_TRUE(consumer.abort());  // cascades into its pending next()
    EXPECT_TRUE(unwound);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_TRUE(gen.producer().failed());
}

TEST_F(GeneratorTest, AbortingTheConsumerStopsAThreadedProducerAndReleasesItsThread) {
    kaa::ThreadPool pool("generator test", 1);
    kaa::InProgress<void> thread_returned;
    auto gen = kaa::generator<int>(kaa::ThreadOptions{.pool = "generator test"}, [thread_returned](kaa::Yield<int>& yield) {
        struct Finish {
            kaa::InProgress<void> ip;
            ~Finish() { ip.finish(); }  // from the worker: delivered on the loop
        } on_return{thread_returned};
        for (int i = 0;; ++i)
            yield(i);
    });
    auto first = gen.next();
    ASSERT_TRUE(step_until([&] { return first.finished(); }));
    EXPECT_EQ(first.result(), 0);
    // The worker now blocks in yield(1) until value 1 is taken, or waits to
    // hand it over. Abort the consumer's next InProgress instead.
    auto second = gen.next();
    if (second.finished()) {
        EXPECT_EQ(second.result(), 1);
        second = gen.next();
    }
    EXPECT_TRUE(second.abort());
    ASSERT_TRUE(step_until([&] { return thread_returned.finished(); }));
    EXPECT_TRUE(gen.producer().failed());
    ASSERT_TRUE(step_until([&] { return pool.stats().running == 0; }));
    EXPECT_EQ(pool.stats().completed, 1u) << "the job returned; its thread is free";
    // The pool's one thread runs the next job: nothing was left behind.
    EXPECT_EQ(kaa::threaded({.pool = "generator test"}, [] { return 7; }).wait(), 7);
    EXPECT_EQ(gen.next().result(), std::nullopt);
}

TEST_F(GeneratorTest, DestroyingTheLastHandleStopsAParkedCoroutineProducer) {
    bool unwound = false;
    {
        auto gen = kaa::generator<int>([&unwound](kaa::Yield<int>& yield) {
            Unwound guard(unwound);
            for (int i = 0;; ++i)
                yield(i);
        });
        auto copy = gen;
        EXPECT_EQ(copy.next().result(), 0);
        EXPECT_EQ(kaa::active_coroutines(), 1u);
    }
    EXPECT_TRUE(unwound);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(GeneratorTest, DestroyingTheGeneratorStopsAThreadedProducerWaitingInYield) {
    kaa::InProgress<void> thread_returned;
    {
        auto gen = kaa::generator<int>(kaa::ThreadOptions{}, [thread_returned](kaa::Yield<int>& yield) {
            struct Finish {
                kaa::InProgress<void> ip;
                ~Finish() { ip.finish(); }
            } on_return{thread_returned};
            for (int i = 0;; ++i)
                yield(i);
        });
        auto first = gen.next();
        ASSERT_TRUE(step_until([&] { return first.finished(); }));
    }
    ASSERT_TRUE(step_until([&] { return thread_returned.finished(); }));
}

TEST_F(GeneratorTest, DestroyingTheGeneratorAbortsAPendingNext) {
    kaa::InProgress<std::optional<int>> pending(nullptr);
    {
        auto gen = kaa::generator<int>([](kaa::Yield<int>&) { await(kaa::InProgress<void>()); });
        pending = gen.next();
        EXPECT_FALSE(pending.finished());
    }
    ASSERT_TRUE(pending.finished());
    EXPECT_THROW(pending.result(), kaa::InProgressAborted);
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(GeneratorTest, AbortStopsTheProducerAndFinishesTheGenerator) {
    bool unwound = false;
    auto gen = kaa::generator<int>([&unwound](kaa::Yield<int>& yield) {
        Unwound guard(unwound);
        yield(1);
        yield(2);
    });
    EXPECT_TRUE(gen.abort());
    EXPECT_TRUE(unwound);
    EXPECT_EQ(gen.next().result(), std::nullopt) << "the value that waited is dropped";
    EXPECT_FALSE(gen.abort()) << "nothing left to stop";

    auto done = kaa::generator<int>([](kaa::Yield<int>&) {});
    EXPECT_FALSE(done.abort());
}

TEST_F(GeneratorTest, NextWhileANextIsPendingThrowsGeneratorBusy) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) {
        await(kaa::delay(kaa::Duration::zero()));
        yield(1);
    });
    auto pending = gen.next();
    try {
        gen.next();
        ADD_FAILURE() << "no exception";
    } catch (const kaa::GeneratorBusy& e) {
        EXPECT_NE(std::string(e.what()).find("wait for that InProgress"), std::string::npos) << e.what();
    }
    ASSERT_TRUE(step_until([&] { return pending.finished(); }));
    EXPECT_EQ(pending.result(), 1);
}

TEST_F(GeneratorTest, IteratingOutsideACoroutineThrowsNotInCoroutine) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) { yield(1); });
    try {
        for (int v : gen)
            (void)v;
        ADD_FAILURE() << "no exception";
    } catch (const kaa::NotInCoroutine& e) {
        EXPECT_NE(std::string(e.what()).find("call next()"), std::string::npos) << e.what();
    }
    EXPECT_EQ(gen.next().result(), 1) << "the failed attempt took nothing";
}

TEST_F(GeneratorTest, YieldOutsideItsProducerThrowsWithWhatToDo) {
    // A coroutine producer's yield, kept by a slot that runs after the
    // producer suspended: the slot runs outside the coroutine.
    kaa::Signal<void(int)> later;
    std::vector<std::string> errors;
    auto gen = kaa::generator<int>([&](kaa::Yield<int>& yield) {
        later.connect([&yield, &errors](int v) {
            try {
                yield(v);
            } catch (const kaa::NotInCoroutine& e) {
                errors.push_back(e.what());
            }
        });
        await(kaa::InProgress<void>());
    });
    later.emit(5);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("outside its coroutine"), std::string::npos) << errors[0];
    later.disconnect_all();
    gen.abort();

    // A threaded producer's yield called on the loop thread.
    kaa::InProgress<void> release;
    kaa::Yield<int>* leaked = nullptr;
    kaa::InProgress<void> ready;
    auto threaded = kaa::generator<int>(kaa::ThreadOptions{}, [&leaked, ready, release](kaa::Yield<int>& yield) {
        leaked = &yield;
        ready.finish();
        release.wait();
    });
    ASSERT_TRUE(step_until([&] { return ready.finished(); }));
    EXPECT_THROW((*leaked)(1), kaa::WrongThread);
    release.finish();
    ASSERT_TRUE(step_until([&] { return threaded.producer().finished(); }));
}

TEST_F(GeneratorTest, AnEmptyHandleThrowsEmptyHandle) {
    kaa::Generator<int> none;
    EXPECT_FALSE(none.valid());
    EXPECT_THROW(none.next(), kaa::EmptyHandle);
}

TEST_F(GeneratorTest, NextFromAnotherThreadThrowsWrongThread) {
    auto gen = kaa::generator<int>([](kaa::Yield<int>& yield) { yield(1); });
    bool threw = false;
    std::thread other([&] {
        try {
            gen.next();
        } catch (const kaa::WrongThread&) {
            threw = true;
        }
    });
    other.join();
    EXPECT_TRUE(threw);
    EXPECT_EQ(gen.next().result(), 1);
}

TEST_F(GeneratorTest, ValuesMoveThroughWithoutCopiesWhenTheConsumerTakesThem) {
    auto gen = kaa::generator<std::unique_ptr<int>>([](kaa::Yield<std::unique_ptr<int>>& yield) {
        yield(std::make_unique<int>(4));
    });
    auto consumer = kaa::coroutine([gen] {
        int sum = 0;
        for (std::unique_ptr<int>& p : gen)
            sum += *p;
        return sum;
    });
    ASSERT_TRUE(consumer.finished());
    EXPECT_EQ(consumer.result(), 4);
}

// Producers still waiting when the loop shuts down are stopped by the
// shutdown (coroutines unwound, jobs aborted and their threads joined); the
// handles, destroyed after the loop, have nothing left to do.
TEST(GeneratorShutdown, ProducersStillWaitingWhenTheLoopShutsDownAreStopped) {
    bool unwound = false;
    std::atomic<bool> thread_returned{false};
    kaa::Generator<int> cg;
    kaa::Generator<int> tg;
    {
        kaa::MainLoop loop;
        cg = kaa::generator<int>([&unwound](kaa::Yield<int>& yield) {
            Unwound guard(unwound);
            yield(1);
            yield(2);
        });
        tg = kaa::generator<int>(kaa::ThreadOptions{}, [&thread_returned](kaa::Yield<int>& yield) {
            struct Returned {
                std::atomic<bool>& flag;
                ~Returned() { flag.store(true); }
            } on_return{thread_returned};
            for (int i = 0;; ++i)
                yield(i);
        });
        EXPECT_EQ(cg.next().result(), 1);
        auto first = tg.next();
        ASSERT_TRUE(kaa::test::step_until(loop, [&] { return first.finished(); }));
        EXPECT_EQ(first.result(), 0);
    }
    EXPECT_TRUE(unwound);
    EXPECT_TRUE(thread_returned.load());
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

} // namespace
