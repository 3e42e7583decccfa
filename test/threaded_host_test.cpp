// kaa::ThreadedHost: kaa's waiting in a thread of its own, its dispatching on
// a host loop's thread. Two hosts: a hand-made one (a queue the test's main
// thread drains, with a normal and an idle priority), whose every step the
// test can see, and -- when GLib is available -- a real GMainLoop fed through
// GSources. Every test ends the host loop from a kaa callback (loop.stop()
// calls the quit hook); a fail-safe bound fails the test instead of hanging.
#include "kaa/threaded_host.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

#if KAA_TEST_WITH_GLIB
#include <glib.h>

#include "kaa/glib.hpp"
#endif

using namespace std::chrono_literals;

namespace {

// A minimal host loop: two FIFO queues, the idle one served only when the
// normal one is empty (as GLib and Qt priorities do).
class HandHost {
public:
    enum class Priority { normal, idle };
    using Job = kaa::detail::UniqueFunction<void()>;

    void invoke(Job task, Priority p) {
        {
            std::lock_guard lock(m_);
            (p == Priority::normal ? normal_ : idle_).push_back(std::move(task));
            ++invoked_;
        }
        cv_.notify_one();
    }
    // Host-thread work that re-queues itself, like a zero-interval timer.
    void post_host(Job task) { invoke(std::move(task), Priority::idle); }

    void quit() {
        std::lock_guard lock(m_);
        quit_ = true;
    }

    // Runs until quit(), or fails after `bound` of waiting for one task
    // (a hang bound, not a timing check). Returns whether quit() ended it.
    bool run(std::chrono::seconds bound = 30s) {
        std::unique_lock lock(m_);
        quit_ = false;
        while (!quit_) {
            if (!cv_.wait_for(lock, bound, [&] { return quit_ || !normal_.empty() || !idle_.empty(); }))
                return false;
            if (quit_)
                break;
            auto& q = normal_.empty() ? idle_ : normal_;
            Job t = std::move(q.front());
            q.pop_front();
            lock.unlock();
            t();
            lock.lock();
        }
        return true;
    }

    std::size_t queued() {
        std::lock_guard lock(m_);
        return normal_.size() + idle_.size();
    }
    // Waits until something is queued, at most `bound` (a hang bound).
    bool wait_queued(std::chrono::seconds bound = 30s) {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, bound, [&] { return !normal_.empty() || !idle_.empty(); });
    }
    std::size_t invoked() {
        std::lock_guard lock(m_);
        return invoked_;
    }

    kaa::ThreadedHostOptions options() {
        kaa::ThreadedHostOptions o;
        o.invoke_idle = [this](kaa::HostTask t) { invoke([t = std::move(t)]() mutable { t(); }, Priority::idle); };
        o.quit = [this] { quit(); };
        return o;
    }
    kaa::HostInvoker invoker() {
        return [this](kaa::HostTask t) { invoke([t = std::move(t)]() mutable { t(); }, Priority::normal); };
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<Job> normal_, idle_;
    std::size_t invoked_ = 0;
    bool quit_ = false;
};

class ThreadedHostTest : public kaa::test::LoopTest {
protected:
    void TearDown() override {
        host.reset();
        loop.shutdown();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        kaa::test::LoopTest::TearDown();
    }

    void attach() { host.emplace(loop, hand.invoker(), hand.options()); }
    void run() { EXPECT_TRUE(hand.run()) << "the host loop did not end: kaa never called loop.stop()"; }

    HandHost hand;
    std::optional<kaa::ThreadedHost> host;
};

TEST_F(ThreadedHostTest, TimersFireInOrderOnTheHostThread) {
    attach();
    std::vector<int> order;
    bool on_host_thread = true;
    const auto host_thread = std::this_thread::get_id();
    auto fired = [&](int n) {
        on_host_thread = on_host_thread && std::this_thread::get_id() == host_thread;
        order.push_back(n);
        if (order.size() == 3)
            loop.stop();
    };
    kaa::delay(20ms).connect([&] { fired(3); });
    kaa::delay(5ms).connect([&] { fired(1); });
    kaa::delay(10ms).connect([&] { fired(2); });
    run();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(on_host_thread);
}

TEST_F(ThreadedHostTest, CoroutineWaitsOnADelayAndAThreadedJob) {
    attach();
    auto co = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(2ms));
        int v = kaa::this_coroutine::await(kaa::threaded([] { return 20; }));
        kaa::this_coroutine::yield();
        return v + 1;
    });
    std::optional<int> result;
    co.connect([&](int v) {
        result = v;
        loop.stop();
    });
    run();
    EXPECT_EQ(result, 21);
}

TEST_F(ThreadedHostTest, PostsFromWorkersAndFromTheHostThreadRun) {
    attach();
    int ran = 0;
    std::thread worker([&] { loop.post([&] { ++ran; }); });
    worker.join();
    // From the host thread, outside any dispatch: no fd announces it, the
    // loop's wakeup hook must.
    hand.post_host([&] {
        loop.post([&] {
            ++ran;
            loop.stop();
        });
    });
    run();
    EXPECT_EQ(ran, 2);
}

TEST_F(ThreadedHostTest, TimeSlicesGoThroughTheIdleInvokerAndDoNotStarveTheHost) {
    attach();
    constexpr int bound = 1'000'000;
    int host_ticks = 0;
    int slices = 0;
    auto co = kaa::coroutine([&] {
        while (host_ticks < 50 && slices < bound) {
            ++slices;
            kaa::this_coroutine::yield();
        }
    });
    std::function<void()> tick = [&] {
        ++host_ticks;
        if (co.finished())
            loop.stop();
        else
            hand.post_host(tick);
    };
    hand.post_host(tick);
    run();
    EXPECT_TRUE(co.finished());
    EXPECT_LT(slices, bound);
}

TEST_F(ThreadedHostTest, AbortFromAHostCallback) {
    attach();
    bool saw_abort = false;
    auto co = kaa::coroutine([&] {
        try {
            kaa::this_coroutine::await(kaa::delay(1h));
        } catch (const kaa::InProgressAborted&) {
            saw_abort = true;
            throw;
        }
    });
    co.connect_exception([&](std::exception_ptr) { loop.stop(); });
    hand.post_host([&] { co.abort(); });
    run();
    EXPECT_TRUE(saw_abort);
    EXPECT_TRUE(co.failed());
}

TEST_F(ThreadedHostTest, DestroyingWithATaskQueuedLeavesTheTaskHarmless) {
    attach();
    // Make the waiting thread hand a dispatch over, but do not run the host.
    std::thread([&] { loop.post([] {}); }).join();
    ASSERT_TRUE(hand.wait_queued()) << "the waiting thread never handed the dispatch over";
    EXPECT_EQ(hand.queued(), 1u);
    host.reset(); // joins the thread while it waits for that dispatch
    EXPECT_FALSE(loop.host_attached());
    hand.post_host([&] { hand.quit(); });
    EXPECT_TRUE(hand.run()); // runs the stale task: it must do nothing
    EXPECT_TRUE(loop.step(kaa::Duration::zero())) << "the posted work is still there for the loop";
}

TEST_F(ThreadedHostTest, AKaaCallbackMayDestroyTheHost) {
    attach();
    bool detached = false;
    std::thread([&] {
        loop.post([&] {
            host.reset(); // inside the dispatch the waiting thread handed over
            detached = !loop.host_attached();
            hand.quit();
        });
    }).join();
    run();
    EXPECT_TRUE(detached);
}

TEST_F(ThreadedHostTest, MisuseIsReported) {
    EXPECT_THROW(kaa::ThreadedHost(loop, nullptr), kaa::UsageError);
    std::exception_ptr off_thread;
    std::thread([&] {
        try {
            kaa::ThreadedHost h(loop, hand.invoker());
        } catch (...) {
            off_thread = std::current_exception();
        }
    }).join();
    EXPECT_TRUE(kaa::test::holds<kaa::WrongThread>(off_thread));
    attach();
    EXPECT_THROW(kaa::ThreadedHost(loop, hand.invoker()), kaa::LoopError);
}

// An invoker that runs the task on the calling (waiting) thread instead of
// queuing it to the host: reported as WrongThread, and nothing runs there.
TEST_F(ThreadedHostTest, AnInvokerThatRunsTasksInlineIsReported) {
    host.emplace(loop, [](kaa::HostTask t) { t(); });
    std::thread([&] { loop.post([] {}); }).join();
    ASSERT_TRUE(step_until([&] { return !reports.empty(); }));
    auto seen = reports.take();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(kaa::test::holds<kaa::WrongThread>(seen[0]));
}

// The MainLoop destroyed while the ThreadedHost is attached: the thread is
// stopped then, a task the host still holds does nothing, and destroying the
// ThreadedHost afterwards only cleans up.
TEST(ThreadedHostLoopGone, TheHostOutlivingTheLoopLetsGo) {
    HandHost hand;
    auto loop = std::make_unique<kaa::MainLoop>();
    std::optional<kaa::ThreadedHost> host;
    host.emplace(*loop, hand.invoker(), hand.options());
    std::thread([&] { loop->post([] {}); }).join();
    ASSERT_TRUE(hand.wait_queued());
    loop.reset();
    hand.post_host([&] { hand.quit(); });
    EXPECT_TRUE(hand.run()); // the stale dispatch runs first and does nothing
    host.reset();
}

#if KAA_TEST_WITH_GLIB

// The GLib way to hand a task to a GMainContext from another thread: an idle
// GSource attached to it (thread-safe, and always queued -- unlike
// g_main_context_invoke, which runs the function at once on the calling
// thread when it can acquire the context).
template <class F>
void invoke_on(GMainContext* context, F task, int priority) {
    GSource* source = g_idle_source_new();
    g_source_set_priority(source, priority);
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
            (*static_cast<F*>(data))();
            return G_SOURCE_REMOVE;
        },
        new F(std::move(task)), [](gpointer data) { delete static_cast<F*>(data); });
    g_source_attach(source, context);
    g_source_unref(source);
}

class ThreadedGlibTest : public kaa::test::LoopTest {
protected:
    void SetUp() override {
        context = g_main_context_new();
        main_loop = g_main_loop_new(context, FALSE);
        kaa::ThreadedHostOptions options;
        options.invoke_idle = [this](kaa::HostTask t) { invoke_on(context, std::move(t), G_PRIORITY_DEFAULT_IDLE); };
        options.quit = [this] { g_main_loop_quit(main_loop); };
        host.emplace(
            loop, [this](kaa::HostTask t) { invoke_on(context, std::move(t), G_PRIORITY_DEFAULT); },
            std::move(options));
    }
    void TearDown() override {
        host.reset();
        loop.shutdown();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        // Drop what is still queued (stale tasks do nothing) before the context goes.
        while (g_main_context_iteration(context, FALSE)) {
        }
        g_main_loop_unref(main_loop);
        g_main_context_unref(context);
        kaa::test::LoopTest::TearDown();
    }

    // Runs the GMainLoop until kaa's loop.stop() quits it; the fail-safe
    // source only bounds a hang.
    void run() {
        bool hung = false;
        GSource* failsafe = g_timeout_source_new_seconds(30);
        g_source_set_callback(
            failsafe,
            [](gpointer data) -> gboolean {
                auto* self = static_cast<std::pair<bool*, GMainLoop*>*>(data);
                *self->first = true;
                g_main_loop_quit(self->second);
                return G_SOURCE_REMOVE;
            },
            new std::pair<bool*, GMainLoop*>(&hung, main_loop),
            [](gpointer data) { delete static_cast<std::pair<bool*, GMainLoop*>*>(data); });
        g_source_attach(failsafe, context);
        g_main_context_push_thread_default(context);
        g_main_loop_run(main_loop);
        g_main_context_pop_thread_default(context);
        g_source_destroy(failsafe);
        g_source_unref(failsafe);
        EXPECT_FALSE(hung) << "the GLib loop was still running after 30 s: kaa never called loop.stop()";
    }

    GMainContext* context = nullptr;
    GMainLoop* main_loop = nullptr;
    std::optional<kaa::ThreadedHost> host;
};

TEST_F(ThreadedGlibTest, TimersCoroutinesJobsAndPostsRunOnTheGlibThread) {
    const auto glib_thread = std::this_thread::get_id();
    std::vector<int> order;
    bool on_glib_thread = true;
    auto note = [&](int n) {
        on_glib_thread = on_glib_thread && std::this_thread::get_id() == glib_thread;
        order.push_back(n);
    };
    kaa::delay(10ms).connect([&] { note(2); });
    kaa::delay(5ms).connect([&] { note(1); });
    std::thread worker;
    auto co = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(15ms));
        note(3);
        int v = kaa::this_coroutine::await(kaa::threaded([] { return 4; }));
        note(v);
        worker = std::thread([&] {
            loop.post([&] {
                note(5);
                loop.stop();
            });
        });
    });
    run();
    worker.join();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5}));
    EXPECT_TRUE(on_glib_thread);
}

TEST_F(ThreadedGlibTest, CoroutineAbortedFromAGlibCallback) {
    auto co = kaa::coroutine([&] { kaa::this_coroutine::await(kaa::delay(1h)); });
    co.connect_exception([&](std::exception_ptr e) {
        EXPECT_TRUE(kaa::test::holds<kaa::InProgressAborted>(e));
        loop.stop();
    });
    invoke_on(
        context, [&] { co.abort(); }, G_PRIORITY_DEFAULT);
    run();
    EXPECT_TRUE(co.failed());
}

// kaa::glib::ThreadedHost wires the same: GSources at the Guest's
// priorities, and stop() quits the GMainLoop it was given.
TEST(ThreadedGlibHost, RunsKaaFromAGMainLoopAndStopQuitsIt) {
    kaa::MainLoop loop;
    GMainContext* context = g_main_context_new();
    GMainLoop* main_loop = g_main_loop_new(context, FALSE);
    {
        kaa::glib::ThreadedHost host(loop, main_loop);
        EXPECT_EQ(&host.loop(), &loop);
        std::optional<int> got;
        auto co = kaa::coroutine([&] {
            kaa::this_coroutine::await(kaa::delay(2ms));
            kaa::this_coroutine::yield();
            return kaa::this_coroutine::await(kaa::threaded([] { return 9; }));
        });
        co.connect([&](int v) {
            got = v;
            loop.stop();
        });
        struct Failsafe {
            bool hung = false;
            GMainLoop* main_loop;
        } failsafe_state{false, main_loop};
        GSource* failsafe = g_timeout_source_new_seconds(30); // bounds a hang; not a timing check
        g_source_set_callback(
            failsafe,
            [](gpointer data) -> gboolean {
                auto* f = static_cast<Failsafe*>(data);
                f->hung = true;
                g_main_loop_quit(f->main_loop);
                return G_SOURCE_REMOVE;
            },
            &failsafe_state, nullptr);
        g_source_attach(failsafe, context);
        g_main_context_push_thread_default(context);
        g_main_loop_run(main_loop); // until loop.stop() quits it
        g_main_context_pop_thread_default(context);
        g_source_destroy(failsafe);
        g_source_unref(failsafe);
        const bool hung = failsafe_state.hung;
        EXPECT_FALSE(hung);
        EXPECT_EQ(got, 9);
        EXPECT_THROW(kaa::glib::ThreadedHost(loop, context), kaa::LoopError);
    }
    loop.shutdown();
    while (g_main_context_iteration(context, FALSE)) {
    }
    g_main_loop_unref(main_loop);
    g_main_context_unref(context);
}

#endif

} // namespace
