// kaa::glib against a real GLib main loop (g_main_loop_run): timers, a
// coroutine on a delay and a threaded job, cross-thread posts, abort from a
// GLib callback, time slices that do not starve higher GLib priorities, and
// detach/shutdown. Every test ends by quitting the GMainLoop from a kaa
// callback; a generous GLib timeout only turns a hang into a failure.
#include "kaa/glib.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress_all.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using kaa::Duration;
using kaa::test::LoopTest;
using namespace std::chrono_literals;

namespace {

class GlibTest : public LoopTest {
protected:
    GlibTest() : gloop(g_main_loop_new(nullptr, FALSE)) {}
    ~GlibTest() override { g_main_loop_unref(gloop); }

    /// Runs the GLib main loop until something quits it. A hang fails the
    /// test after 30 s instead of blocking ctest.
    void run_glib() {
        timed_out = false;
        guint failsafe = g_timeout_add_seconds(
            30,
            [](gpointer self) -> gboolean {
                auto* t = static_cast<GlibTest*>(self);
                t->timed_out = true;
                g_main_loop_quit(t->gloop);
                return G_SOURCE_REMOVE;
            },
            this);
        g_main_loop_run(gloop);
        if (!timed_out)
            g_source_remove(failsafe);
        EXPECT_FALSE(timed_out) << "the GLib loop was not quit by kaa: the notifier stalled";
    }

    void quit() { g_main_loop_quit(gloop); }

    GMainLoop* gloop;
    bool timed_out = false;
};

} // namespace

TEST_F(GlibTest, TimersFireInOrder) {
    kaa::glib::Guest guest(loop, gloop);
    std::vector<int> order;
    kaa::OneShotTimer t3([&] {
        order.push_back(3);
        loop.stop(); // the quit hook ends g_main_loop_run
    });
    kaa::OneShotTimer t1([&] { order.push_back(1); });
    kaa::OneShotTimer t2([&] { order.push_back(2); });
    t3.start(30ms);
    t1.start(5ms);
    t2.start(15ms);
    run_glib();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(GlibTest, CoroutineWaitsOnADelayAndAThreadedJob) {
    kaa::glib::Guest guest(loop, gloop);
    std::thread::id job_thread;
    auto ip = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(5ms));
        int v = kaa::this_coroutine::await(kaa::threaded([&] {
            job_thread = std::this_thread::get_id();
            return 42;
        }));
        return v + 1;
    });
    EXPECT_FALSE(ip.finished()) << "it waits for the delay";
    bool on_loop_thread = false;
    ip.connect([&](int) {
        on_loop_thread = loop.is_main_thread();
        quit();
    });
    run_glib();
    ASSERT_TRUE(ip.finished());
    EXPECT_EQ(ip.result(), 43);
    EXPECT_TRUE(on_loop_thread);
    EXPECT_NE(job_thread, std::this_thread::get_id());
}

TEST_F(GlibTest, CallbackPostedFromAWorkerRunsOnTheHostThread) {
    kaa::glib::Guest guest(loop, gloop);
    std::thread::id ran_on;
    bool owner = false;
    std::thread worker([&] {
        loop.post([&] {
            ran_on = std::this_thread::get_id();
            owner = g_main_context_is_owner(g_main_context_default());
            quit();
        });
    });
    run_glib();
    worker.join();
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    EXPECT_TRUE(owner) << "kaa work runs inside GLib's dispatch";
}

TEST_F(GlibTest, ManyPostsFromWorkersAllArrive) {
    kaa::glib::Guest guest(loop, gloop);
    constexpr int kThreads = 4, kPosts = 500;
    int count = 0;
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t)
        workers.emplace_back([&] {
            for (int i = 0; i < kPosts; ++i)
                loop.post([&] {
                    if (++count == kThreads * kPosts)
                        quit();
                });
        });
    run_glib();
    for (auto& w : workers)
        w.join();
    EXPECT_EQ(count, kThreads * kPosts);
}

TEST_F(GlibTest, CoroutineIsAbortedFromAGlibCallback) {
    kaa::glib::Guest guest(loop, gloop);
    bool saw_abort = false;
    auto ip = kaa::coroutine([&] {
        try {
            kaa::this_coroutine::await(kaa::delay(1h));
        } catch (const kaa::InProgressAborted&) {
            saw_abort = true;
            throw;
        }
    });
    std::exception_ptr error;
    ip.connect_exception([&](std::exception_ptr e) {
        error = e;
        quit();
    });
    struct Ctx {
        kaa::CoroutineInProgress<void>* ip;
    } ctx{&ip};
    g_timeout_add(
        5,
        [](gpointer p) -> gboolean {
            static_cast<Ctx*>(p)->ip->abort();
            return G_SOURCE_REMOVE;
        },
        &ctx);
    run_glib();
    EXPECT_TRUE(saw_abort);
    EXPECT_TRUE(kaa::test::holds<kaa::InProgressAborted>(error));
    EXPECT_EQ(kaa::active_coroutines(), 0u);
}

TEST_F(GlibTest, TimeSlicesInterleaveAndDoNotStarveAHigherPriorityIdle) {
    kaa::glib::Guest guest(loop, gloop);
    // Like GTK's redraw: a one-shot idle at G_PRIORITY_HIGH_IDLE + 20,
    // scheduled while coroutines keep the continuation source busy.
    std::string trace;
    constexpr int kSlices = 20;
    auto worker = [&](char name) {
        for (int i = 0; i < kSlices; ++i) {
            trace += name;
            if (name == 'a' && i == 5)
                g_idle_add_full(
                    G_PRIORITY_HIGH_IDLE + 20,
                    [](gpointer p) -> gboolean {
                        *static_cast<std::string*>(p) += 'R';
                        return G_SOURCE_REMOVE;
                    },
                    &trace, nullptr);
            kaa::this_coroutine::yield();
        }
    };
    auto a = kaa::coroutine(worker, 'a');
    auto b = kaa::coroutine(worker, 'b');
    auto both = kaa::all(a, b);
    both.connect_finished([&] { quit(); });
    run_glib();
    ASSERT_TRUE(a.finished() && b.finished());
    // 'R' runs in the GLib iteration after the slice that scheduled it,
    // before coroutine a gets its next slice.
    std::size_t r = trace.find('R');
    ASSERT_NE(r, std::string::npos) << trace;
    EXPECT_EQ(std::count(trace.begin(), trace.begin() + r, 'a'), 6)
        << "the priority-120 idle waited behind time slices: " << trace;
    std::string without_r = trace;
    without_r.erase(r, 1);
    std::string expected;
    for (int i = 0; i < kSlices; ++i)
        expected += "ab";
    EXPECT_EQ(without_r, expected) << "time slices interleave one by one";
}

TEST_F(GlibTest, ShutdownAndDetachLeaveNothingRunning) {
    auto guest = kaa::glib::attach(loop, gloop);
    std::mutex m;
    std::condition_variable_any cv;
    auto job = kaa::threaded([&](std::stop_token stop) {
        loop.post([&] { quit(); }); // it runs: time to shut down
        std::unique_lock lock(m);
        cv.wait(lock, stop, [] { return false; }); // until aborted
    });
    auto co = kaa::coroutine([&] { kaa::this_coroutine::await(kaa::delay(1h)); });
    kaa::Timer timer([] {});
    timer.start(1h);
    run_glib();
    EXPECT_EQ(kaa::active_coroutines(), 1u);

    // What run() does at its end; with a host, the application calls it.
    loop.shutdown();
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_TRUE(co.failed());
    EXPECT_TRUE(job.finished()) << "the running job saw the stop request and returned";
    EXPECT_EQ(kaa::ThreadPool::default_pool().stats().threads, 0u) << "the pool's threads are joined";

    guest.detach();
    EXPECT_FALSE(guest.attached());
    EXPECT_FALSE(loop.host_attached());
    EXPECT_EQ(guest.context(), nullptr);
    // The sources are gone: GLib no longer runs kaa work, the loop does.
    bool ran = false;
    loop.post([&] { ran = true; });
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
    EXPECT_FALSE(ran);
    loop.step(Duration::zero());
    EXPECT_TRUE(ran);
}

TEST_F(GlibTest, StopWithoutAQuitHookDoesNotStopTheHostButQuitHookDoes) {
    {
        kaa::glib::Guest guest(loop); // no GMainLoop: stop() has nothing to quit
        loop.stop();
        loop.post([&] { quit(); });
        run_glib();
    }
    kaa::glib::Guest guest(loop, gloop);
    kaa::OneShotTimer t([&] { loop.stop(); });
    t.start(1ms);
    run_glib();
    EXPECT_TRUE(guest.attached());
}

TEST_F(GlibTest, RunWhileAttachedThrowsAndAfterDetachWorks) {
    {
        kaa::glib::Guest guest(loop, gloop);
        EXPECT_THROW(loop.run(), kaa::LoopError);
        EXPECT_THROW(kaa::glib::Guest second(loop), kaa::LoopError);
    }
    loop.post([&] { loop.stop(); });
    loop.run();
}

TEST_F(GlibTest, AttachOffTheLoopThreadOrToAContextOwnedElsewhereThrowsWrongThread) {
    std::thread other([&] { EXPECT_THROW(kaa::glib::Guest guest(loop), kaa::WrongThread); });
    other.join();

    GMainContext* ctx = g_main_context_new();
    std::promise<void> acquired, release;
    std::thread owner([&] {
        g_main_context_acquire(ctx);
        acquired.set_value();
        release.get_future().wait();
        g_main_context_release(ctx);
    });
    acquired.get_future().wait();
    EXPECT_THROW(kaa::glib::Guest guest(loop, ctx), kaa::WrongThread);
    EXPECT_FALSE(loop.host_attached());
    release.set_value();
    owner.join();
    { kaa::glib::Guest guest(loop, ctx); EXPECT_TRUE(guest.attached()); }
    g_main_context_unref(ctx);
}

TEST_F(GlibTest, NestedWaitInsideAGlibDispatchCompletes) {
    kaa::glib::Guest guest(loop, gloop);
    int value = 0;
    loop.post([&] {
        auto job = kaa::threaded([] { return 7; });
        job.wait(); // nested kaa iterations inside GLib's dispatch
        value = job.result();
        quit();
    });
    run_glib();
    EXPECT_EQ(value, 7);
}

TEST(GlibLifetime, MainLoopDestroyedBeforeTheGuestDetachesIt) {
    std::optional<kaa::glib::Guest> guest;
    {
        kaa::MainLoop loop;
        guest.emplace(loop);
        EXPECT_TRUE(guest->attached());
    }
    EXPECT_FALSE(guest->attached());
    guest.reset(); // no use of the dead loop
    // The context is released: this thread can iterate it.
    EXPECT_TRUE(g_main_context_acquire(g_main_context_default()));
    g_main_context_release(g_main_context_default());
}
