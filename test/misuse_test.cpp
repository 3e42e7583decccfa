// SPDX-License-Identifier: BSL-1.0
// The misuse catalogue (doc/errors.md, "Misuse catalogue"): every misuse the
// brief and kaa's spec name raises a typed exception, at the faulty call,
// whose message says what to do instead. One test per misuse; each checks the
// type AND the remedy in the message.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "kaa/kaa.hpp"
#include "test_support.hpp"

namespace {

using kaa::InProgress;
using kaa::InProgressAborted;
using namespace std::chrono_literals;

// Runs `f`, which must throw exactly E (or a subclass) with `remedy` in
// what(); returns the message.
template <class E, class F>
std::string expect_misuse(F&& f, const std::string& remedy) {
    try {
        f();
    } catch (const E& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(remedy), std::string::npos) << "message lacks the remedy \"" << remedy << "\": " << msg;
        return msg;
    } catch (...) {
        ADD_FAILURE() << "wrong exception: " << kaa::describe(std::current_exception());
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

// The same for an exception that reached an InProgress (misuse inside a
// coroutine or a job fails it).
template <class E>
void expect_failed_with(const kaa::InProgressRef& ip, const std::string& remedy) {
    ASSERT_TRUE(ip.failed());
    expect_misuse<E>([&] { std::rethrow_exception(ip.exception()); }, remedy);
}

class Misuse : public kaa::test::LoopTest {
protected:
    // Steps until `ip` finished (bounded by iterations).
    void settle(const kaa::InProgressRef& ip) { ASSERT_TRUE(step_until([&] { return ip.finished(); }, 100000)); }
};

// ---- suspending -------------------------------------------------------------

TEST_F(Misuse, AwaitOutsideACoroutine) {
    InProgress<int> never;
    expect_misuse<kaa::NotInCoroutine>([&] { kaa::this_coroutine::await(never); },
                                       "start one with kaa::coroutine(fn)");
}

TEST_F(Misuse, YieldOutsideACoroutine) {
    expect_misuse<kaa::NotInCoroutine>([] { kaa::this_coroutine::yield(); }, "start one with kaa::coroutine(fn)");
}

TEST_F(Misuse, AwaitFromAWorkerThread) {
    kaa::ThreadPool pool("misuse-await-worker", 1);
    InProgress<int> op;
    auto job = kaa::threaded({.pool = "misuse-await-worker"}, [op] { return kaa::this_coroutine::await(op); });
    settle(job);
    expect_failed_with<kaa::NotInCoroutine>(job, "wait() on the InProgress");
}

TEST_F(Misuse, SuspendingAgainAfterAbort) {
    // "Resuming an aborted coroutine": after the abort it may clean up, but
    // a wait would resume it again.
    InProgress<void> never;
    std::string msg;
    auto co = kaa::coroutine(kaa::CoroutineOptions{.name = "stubborn"}, [&] {
        try {
            kaa::this_coroutine::await(never);
        } catch (const InProgressAborted&) {
            msg = expect_misuse<kaa::SuspendAfterAbort>([] { kaa::this_coroutine::yield(); },
                                                        "catch InProgressAborted only to clean up");
            throw;
        }
    });
    co.abort();
    EXPECT_NE(msg.find("'stubborn'"), std::string::npos) << msg;
    EXPECT_TRUE(co.failed());
}

TEST_F(Misuse, WaitInsideACoroutine) {
    InProgress<int> never;
    auto co = kaa::coroutine([&] { return never.wait(); });
    expect_failed_with<kaa::UsageError>(co, "use kaa::this_coroutine::await(ip)");
}

// ---- finishing and aborting ---------------------------------------------------

TEST_F(Misuse, FinishingTwice) {
    InProgress<int> ip;
    ip.finish(1);
    expect_misuse<kaa::AlreadyFinished>([&] { ip.finish(2); }, "check finished() first");
}

TEST_F(Misuse, FinishingTwiceFromAnotherThread) {
    InProgress<int> ip;
    std::string msg;
    std::thread([&] {
        ip.finish(1);
        msg = expect_misuse<kaa::AlreadyFinished>([&] { ip.finish(2); }, "check finished() first");
    }).join();
    EXPECT_FALSE(msg.empty());
    settle(ip);
    EXPECT_EQ(ip.result(), 1);
}

TEST_F(Misuse, AbortingAFinishedOperationIsNotMisuse) {
    // Racing with completion is normal (asio cancel(), std::stop_source).
    auto done = kaa::coroutine([] { return 1; });
    EXPECT_FALSE(done.abort());
}

TEST_F(Misuse, AbortingANonAbortableOperation) {
    InProgress<int> plain;  // nothing would stop its work
    expect_misuse<kaa::NotAbortable>([&] { plain.abort(); }, "abort the operation it stands for instead");
}

TEST_F(Misuse, AbortingANoabortView) {
    InProgress<void> never;
    auto co = kaa::coroutine([&] { kaa::this_coroutine::await(never); });
    auto view = co.noabort();
    expect_misuse<kaa::NotAbortable>([&] { view.abort(); }, "abort the operation it stands for instead");
    co.abort();
}

TEST_F(Misuse, ResultBeforeFinished) {
    InProgress<int> ip;
    expect_misuse<kaa::ResultNotReady>([&] { (void)ip.result(); }, "connect() a callback");
}

TEST_F(Misuse, UsingAnEmptyHandle) {
    InProgress<int> empty(nullptr);
    expect_misuse<kaa::EmptyHandle>([&] { (void)empty.finished(); }, "create one with InProgress<T>()");
}

TEST_F(Misuse, FinishingWithItself) {
    InProgress<int> ip;
    expect_misuse<kaa::UsageError>([&] { ip.finish(ip); }, "cannot finish with itself");
}

// ---- waiting that could never end ----------------------------------------------

TEST_F(Misuse, WorkerWaitingForAJobQueuedBehindItselfOnItsOwnThread) {
    kaa::ThreadPool serial("misuse-serial", 1);
    auto job = kaa::threaded({.pool = "misuse-serial"}, [] {
        // Submitted from the loop by the main-thread call: queued behind us.
        auto behind = kaa::threaded(kaa::main_thread, [] {
            return kaa::threaded({.pool = "misuse-serial"}, [] { return 1; });
        }).wait();
        return behind.wait();
    });
    settle(job);
    expect_failed_with<kaa::WouldDeadlock>(job, "it could never finish");
}

TEST(MisuseNoLoop, WaitingWithoutALoop) {
    InProgress<int> never;
    expect_misuse<kaa::LoopError>([&] { never.wait(); }, "no kaa::MainLoop exists");
}

// ---- threads ----------------------------------------------------------------------

TEST_F(Misuse, UnknownPoolName) {
    kaa::ThreadPool known("misuse-known", 1);
    std::string msg = expect_misuse<kaa::UnknownPool>(
        [] { kaa::threaded({.pool = "misuse-nope"}, [] { return 1; }); }, "create a kaa::ThreadPool(\"misuse-nope\"");
    EXPECT_NE(msg.find("'misuse-known'"), std::string::npos) << "lists the registered pools: " << msg;
}

TEST_F(Misuse, DuplicatePoolName) {
    kaa::ThreadPool a("misuse-dup", 1);
    expect_misuse<kaa::UsageError>([] { kaa::ThreadPool b("misuse-dup", 1); }, "already exists");
}

TEST_F(Misuse, StartingACoroutineFromAWorker) {
    kaa::ThreadPool pool("misuse-co-worker", 1);
    auto job = kaa::threaded({.pool = "misuse-co-worker"}, [] { kaa::coroutine([] {}); });
    settle(job);
    expect_failed_with<kaa::WrongThread>(job, "post() the start to the loop");
}

TEST_F(Misuse, SubmittingAJobFromAWorker) {
    kaa::ThreadPool pool("misuse-job-worker", 1);
    auto job = kaa::threaded({.pool = "misuse-job-worker"}, [] { kaa::threaded([] {}); });
    settle(job);
    expect_failed_with<kaa::WrongThread>(job, "threaded(kaa::main_thread, ...)");
}

TEST_F(Misuse, SteppingTheLoopFromAnotherThread) {
    std::string msg;
    std::thread([&] {
        msg = expect_misuse<kaa::WrongThread>([&] { loop.step(kaa::Duration::zero()); }, "post() work to it instead");
    }).join();
    EXPECT_FALSE(msg.empty());
}

TEST_F(Misuse, JobProgressOutsideAJob) {
    expect_misuse<kaa::UsageError>([] { kaa::this_job::set_progress(1, 2); }, "not inside a threaded job");
}

TEST_F(Misuse, CoroutineProgressWithoutProgress) {
    auto co = kaa::coroutine([] { kaa::this_coroutine::progress(); });
    expect_failed_with<kaa::UsageError>(co, "CoroutineOptions{.progress = true}");
}

TEST_F(Misuse, PolicyWithoutADefinition) {
    expect_misuse<kaa::UsageError>(
        [] { kaa::coroutine(kaa::CoroutineOptions{.policy = kaa::Policy::singleton}, [] {}); },
        "create a kaa::Coroutine<R(Args...)> definition");
}

// ---- the loop itself --------------------------------------------------------------

TEST_F(Misuse, SecondLoop) {
    expect_misuse<kaa::LoopError>([] { kaa::MainLoop second; }, "use kaa::main_loop() to reach it");
}

TEST_F(Misuse, RunWhileRunning) {
    std::string msg;
    run_in_loop([&] {
        msg = expect_misuse<kaa::LoopError>([&] { loop.run(); }, "use step() or InProgress::wait()");
        loop.stop();
    });
    EXPECT_FALSE(msg.empty());
}

// Decision (doc/errors.md): after shutdown() (or run() returning) the loop is
// still usable -- run() shuts down at its end and can be called again. After
// the loop is destroyed, everything that needs a loop raises LoopError.
TEST(MisuseAfterLoop, CoroutineAfterTheLoopWasDestroyed) {
    { kaa::MainLoop loop; }
    expect_misuse<kaa::LoopError>([] { kaa::coroutine([] {}); }, "create one (kaa::MainLoop loop;)");
}

TEST(MisuseAfterLoop, MainLoopAfterTheLoopWasDestroyed) {
    { kaa::MainLoop loop; }
    expect_misuse<kaa::LoopError>([] { kaa::main_loop(); }, "create one (kaa::MainLoop loop;)");
}

TEST(MisuseAfterLoop, ThreadedAfterTheLoopWasDestroyed) {
    { kaa::MainLoop loop; }
    expect_misuse<kaa::LoopError>([] { kaa::threaded([] {}); }, "create one (kaa::MainLoop loop;)");
}

TEST(MisuseAfterLoop, TimerAfterTheLoopWasDestroyed) {
    { kaa::MainLoop loop; }
    kaa::Timer t([] {});
    expect_misuse<kaa::LoopError>([&] { t.start(1s); }, "kaa::MainLoop");
}

TEST(MisuseAfterLoop, PostFromAnotherThreadWhileTheLoopIsDestroyed) {
    // A thread that holds a reference to the loop and posts while it is being
    // destroyed gets LoopError (never a crash); one posted before is dropped.
    std::optional<kaa::MainLoop> loop(std::in_place);
    kaa::MainLoop* raw = &*loop;
    std::promise<void> in_destructor;
    std::atomic<bool> posting_done{false};
    std::string msg;
    // A shutdown slot runs inside the destructor: the other thread posts then.
    loop->signals().shutdown.connect([&] {
        std::thread([&] {
            msg = expect_misuse<kaa::LoopError>(
                [&] {
                    // Accepted until the destructor stops being the current
                    // loop, which it does right after this slot: keep posting.
                    for (;;) {
                        raw->post([] {});
                        std::this_thread::yield();
                    }
                },
                "stop posting to it from other threads");
            posting_done = true;
        }).detach();
    });
    loop->step(kaa::Duration::zero());  // a loop that ran shuts down when destroyed
    loop.reset();
    for (int i = 0; i < 100000000 && !posting_done.load(); ++i)
        std::this_thread::yield();
    ASSERT_TRUE(posting_done.load());
    EXPECT_FALSE(msg.empty());
}

TEST_F(Misuse, LoopIsUsableAfterShutdown) {
    loop.shutdown();
    bool ran = false;
    loop.post([&] { ran = true; });
    auto co = kaa::coroutine([] {
        kaa::this_coroutine::yield();
        return 1;
    });
    ASSERT_TRUE(step_until([&] { return ran && co.finished(); }));
    EXPECT_EQ(co.result(), 1);
}

} // namespace
