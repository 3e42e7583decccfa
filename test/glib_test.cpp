// SPDX-License-Identifier: BSL-1.0
// kaa::glib against a real GLib main loop (g_main_loop_run). What every host
// must do -- timers, a coroutine on a delay and a threaded job, cross-thread
// posts, abort from a host callback, time slices that do not starve the
// host, shutdown and detach -- is the shared HostConformance suite
// (host_conformance.hpp), instantiated here; the tests below are GLib's own:
// priorities, quit hooks, attaching rules, lifetime. Every test ends by
// quitting the GMainLoop from a kaa callback; a generous GLib timeout only
// turns a hang into a failure.
#include "kaa/glib.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
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
#include "glib_support.hpp"
#include "host_conformance.hpp"
#include "test_support.hpp"

using kaa::Duration;
using kaa::test::LoopTest;
using namespace std::chrono_literals;

namespace {

/// The host-conformance adapter (host_conformance.hpp): kaa::glib::Guest on
/// the default context, quitting a GMainLoop.
class GlibHost {
public:
    static constexpr const char* name = "Guest";
    explicit GlibHost(kaa::MainLoop& loop) : loop_(loop), gloop_(g_main_loop_new(nullptr, FALSE)) {}
    ~GlibHost() { g_main_loop_unref(gloop_); }
    void attach() { guest_.emplace(loop_, gloop_); }
    void detach() { guest_.reset(); }
    bool run() { return kaa::test::run_glib_loop(gloop_); }
    void post_host(std::function<void()> fn) { posted_.post(nullptr, std::move(fn)); }
    bool on_host_thread() const { return g_main_context_is_owner(g_main_context_default()); }

private:
    kaa::MainLoop& loop_;
    GMainLoop* gloop_;
    std::optional<kaa::glib::Guest> guest_;
    kaa::test::GlibCallbacks posted_;
};

using namespace kaa::test; // HostConformance and its registration
INSTANTIATE_TYPED_TEST_SUITE_P(Glib, HostConformance, GlibHost, HostName);

class GlibTest : public LoopTest {
protected:
    GlibTest() : gloop(g_main_loop_new(nullptr, FALSE)) {}
    ~GlibTest() override { g_main_loop_unref(gloop); }

    void run_glib() { EXPECT_TRUE(kaa::test::run_glib_loop(gloop)) << "the GLib loop was not quit by kaa: the notifier stalled"; }
    void quit() { g_main_loop_quit(gloop); }

    GMainLoop* gloop;
};

} // namespace

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

TEST_F(GlibTest, DetachRemovesKaasSourcesFromTheContext) {
    auto guest = kaa::glib::attach(loop, gloop);
    loop.post([&] { quit(); });
    run_glib();
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
