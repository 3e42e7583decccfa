// SPDX-License-Identifier: BSL-1.0
// kaa::ThreadedHost: kaa's waiting in a thread of its own, its dispatching on
// a host loop's thread. Two hosts: a hand-made one (a queue the test's main
// thread drains, with a normal and an idle priority), whose every step the
// test can see, and -- when GLib is available -- a real GMainLoop fed through
// GSources. What every host must do is the shared HostConformance suite
// (host_conformance.hpp), instantiated here for both; the tests below are
// the threaded mode's own. Every test ends the host loop from a kaa callback
// (loop.stop() calls the quit hook); a fail-safe bound fails the test
// instead of hanging.
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
#include "host_conformance.hpp"
#include "test_support.hpp"

#if KAA_TEST_WITH_GLIB
#include <glib.h>

#include "glib_support.hpp"
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

// The host-conformance adapter (host_conformance.hpp) over the hand-made host.
class HandThreadedHost {
public:
    static constexpr const char* name = "HandHost";
    explicit HandThreadedHost(kaa::MainLoop& loop) : loop_(loop) {}
    void attach() { host_.emplace(loop_, hand_.invoker(), hand_.options()); }
    void detach() { host_.reset(); }
    bool run() { return hand_.run(); }
    void post_host(std::function<void()> fn) { hand_.post_host(std::move(fn)); }
    bool on_host_thread() const { return std::this_thread::get_id() == thread_; }

private:
    kaa::MainLoop& loop_;
    const std::thread::id thread_ = std::this_thread::get_id();
    HandHost hand_;
    std::optional<kaa::ThreadedHost> host_; // goes before the host it dispatches to
};

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

// The host-conformance adapter over a GMainLoop on a context of its own,
// wired by hand through GSources (kaa::glib::ThreadedHost, below, does the
// same for an application).
class GlibThreadedHost {
public:
    static constexpr const char* name = "GMainLoop";
    explicit GlibThreadedHost(kaa::MainLoop& loop)
        : loop_(loop), context_(g_main_context_new()), main_loop_(g_main_loop_new(context_, FALSE)) {}
    ~GlibThreadedHost() {
        detach();
        // Host callbacks that never ran refer to a finished test's locals;
        // stale kaa dispatches do nothing. Drop both before the context goes.
        posted_.clear();
        while (g_main_context_iteration(context_, FALSE)) {
        }
        g_main_loop_unref(main_loop_);
        g_main_context_unref(context_);
    }
    void attach() {
        kaa::ThreadedHostOptions options;
        options.invoke_idle = [this](kaa::HostTask t) { invoke_on(context_, std::move(t), G_PRIORITY_DEFAULT_IDLE); };
        options.quit = [this] { g_main_loop_quit(main_loop_); };
        host_.emplace(
            loop_, [this](kaa::HostTask t) { invoke_on(context_, std::move(t), G_PRIORITY_DEFAULT); },
            std::move(options));
    }
    void detach() { host_.reset(); }
    bool run() { return kaa::test::run_glib_loop(main_loop_); }
    void post_host(std::function<void()> fn) { posted_.post(context_, std::move(fn)); }
    bool on_host_thread() const { return g_main_context_is_owner(context_); }

private:
    kaa::MainLoop& loop_;
    GMainContext* context_;
    GMainLoop* main_loop_;
    std::optional<kaa::ThreadedHost> host_;
    kaa::test::GlibCallbacks posted_;
};

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
        EXPECT_TRUE(kaa::test::run_glib_loop(main_loop)) << "kaa's loop.stop() did not quit the GMainLoop";
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

using namespace kaa::test; // HostConformance and its registration
#if KAA_TEST_WITH_GLIB
using ThreadedHosts = ::testing::Types<HandThreadedHost, GlibThreadedHost>;
#else
using ThreadedHosts = ::testing::Types<HandThreadedHost>;
#endif
INSTANTIATE_TYPED_TEST_SUITE_P(Threaded, HostConformance, ThreadedHosts, HostName);

} // namespace
