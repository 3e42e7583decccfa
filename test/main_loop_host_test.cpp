// SPDX-License-Identifier: BSL-1.0
// Guest mode's core, without any host toolkit: the fd that attach_host()
// returns, the wake-up hook, has_ready_work()/has_posted_work(), and the
// "no spin" property. test/glib_test.cpp runs the same against a real GLib loop.
#include "kaa/main_loop.hpp"

#include <gtest/gtest.h>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kaa/timer.hpp"
#include "test_support.hpp"

using kaa::Duration;
using kaa::HostHooks;
using kaa::test::LoopTest;
using namespace std::chrono_literals;

namespace {

// Generous: a bound on a hang, not a timing check.
constexpr int kHangMs = 10000;

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    return n == 1 && (p.revents & POLLIN);
}

class HostTest : public LoopTest {
protected:
    // What a host does when the fd is readable or it was woken: dispatch
    // without blocking, as long as the loop says work is ready.
    void dispatch() {
        do
            loop.step(Duration::zero());
        while (loop.has_ready_work());
    }

    std::atomic<int> wakeups{0};
    int attach() {
        return loop.attach_host(HostHooks{.wakeup = [this] { ++wakeups; }});
    }
};

} // namespace

TEST_F(HostTest, AttachReturnsAPollableFdAndIdleLoopDoesNotMakeItReadable) {
    int fd = attach();
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(loop.host_attached());
    dispatch();
    // (e) Nothing to do: the fd stays quiet, so the host sleeps (no spin).
    EXPECT_FALSE(readable(fd, 0));
    EXPECT_FALSE(loop.has_ready_work());
    EXPECT_FALSE(loop.has_posted_work());
    loop.detach_host();
    EXPECT_FALSE(loop.host_attached());
}

TEST_F(HostTest, PendingTimerDoesNotMakeTheFdReadableBeforeItIsDue) {
    int fd = attach();
    kaa::OneShotTimer later([] {});
    later.start(std::chrono::seconds(100));
    dispatch();
    EXPECT_FALSE(readable(fd, 0));
    loop.detach_host();
}

TEST_F(HostTest, TimerExpiryMakesTheFdReadable) {
    int fd = attach();
    bool fired = false;
    kaa::OneShotTimer timer([&] { fired = true; });
    timer.start(1ms);
    dispatch();
    // (a) The host sleeps in poll() on the fd until the timer is due.
    for (int i = 0; i < 100 && !fired; ++i) {
        ASSERT_TRUE(readable(fd, kHangMs)) << "timer expiry must wake the host";
        dispatch();
    }
    EXPECT_TRUE(fired);
    dispatch();
    EXPECT_FALSE(readable(fd, 0)) << "nothing left to do";
    loop.detach_host();
}

TEST_F(HostTest, AsioPostFromAnotherThreadMakesTheFdReadable) {
    int fd = attach();
    dispatch();
    bool ran = false;
    std::thread t([&] { boost::asio::post(loop.context(), [&] { ran = true; }); });
    t.join();
    // (b)
    EXPECT_TRUE(readable(fd, kHangMs) || loop.has_ready_work());
    dispatch();
    EXPECT_TRUE(ran);
    EXPECT_FALSE(readable(fd, 0));
    loop.detach_host();
}

TEST_F(HostTest, AsioPostAfterADispatchThatRanTheReactorStillWakes) {
    // The case rearm() exists for: io.poll() ran the reactor, which leaves
    // Asio believing the reactor is interrupted already.
    int fd = attach();
    for (int round = 0; round < 3; ++round) {
        dispatch();
        ASSERT_FALSE(readable(fd, 0));
        std::atomic<bool> ran{false};
        std::thread t([&] { boost::asio::post(loop.context(), [&] { ran = true; }); });
        t.join();
        ASSERT_TRUE(readable(fd, kHangMs)) << "round " << round;
        dispatch();
        EXPECT_TRUE(ran);
    }
    loop.detach_host();
}

TEST_F(HostTest, KaaPostFromAnotherThreadCallsTheWakeupHook) {
    attach();
    dispatch();
    bool ran = false;
    std::thread t([&] { loop.post([&] { ran = true; }); });
    t.join();
    // (c)
    EXPECT_EQ(wakeups.load(), 1);
    EXPECT_TRUE(loop.has_posted_work());
    EXPECT_TRUE(loop.has_ready_work());
    dispatch();
    EXPECT_TRUE(ran);
    EXPECT_FALSE(loop.has_posted_work());
    loop.detach_host();
}

TEST_F(HostTest, HandlerQueuedOnTheLoopThreadOutsideADispatchIsSeen) {
    int fd = attach();
    dispatch();
    bool ran = false;
    // (d) Host code (a GLib callback, say) queues an Asio handler directly.
    boost::asio::post(loop.context(), [&] { ran = true; });
    EXPECT_TRUE(loop.has_ready_work() || readable(fd, 0));
    dispatch();
    EXPECT_TRUE(ran);
    EXPECT_FALSE(readable(fd, 0));
    loop.detach_host();
}

TEST_F(HostTest, AsioWorkQueuedByKaaCallbacksInsideADispatchKeepsTheLoopReady) {
    // A posted kaa callback cancels a timer: Asio queues the cancellation
    // outside io.poll(); the host must not go to sleep with it queued.
    int fd = attach();
    boost::asio::steady_timer timer(loop.context(), std::chrono::hours(1));
    bool cancelled = false;
    timer.async_wait([&](boost::system::error_code ec) { cancelled = ec == boost::asio::error::operation_aborted; });
    loop.post([&] { timer.cancel(); });
    loop.step(Duration::zero());
    EXPECT_TRUE(loop.has_ready_work() || readable(fd, 0));
    dispatch();
    EXPECT_TRUE(cancelled);
    loop.detach_host();
}

TEST_F(HostTest, LocalPostIsReadyWorkButNotPostedWork) {
    attach();
    dispatch();
    bool ran = false;
    loop.post([&] { ran = true; });
    EXPECT_TRUE(loop.has_ready_work());
    EXPECT_FALSE(loop.has_posted_work()) << "loop-thread work is the idle-priority part";
    dispatch();
    EXPECT_TRUE(ran);
    loop.detach_host();
}

TEST_F(HostTest, StopCallsTheQuitHookOnTheLoopThread) {
    bool quit = false;
    loop.attach_host(HostHooks{.wakeup = [] {}, .quit = [&] { quit = true; }});
    std::thread t([&] { loop.stop(); });
    t.join();
    dispatch();
    EXPECT_TRUE(quit);
    loop.detach_host();
}

TEST_F(HostTest, RunWhileAttachedAndDoubleAttachThrowLoopError) {
    attach();
    EXPECT_THROW(loop.run(), kaa::LoopError);
    EXPECT_THROW(attach(), kaa::LoopError);
    loop.detach_host();
    EXPECT_NO_THROW(attach());
    loop.detach_host();
}

TEST_F(HostTest, AttachFromAnotherThreadThrowsWrongThread) {
    std::thread t([&] { EXPECT_THROW(attach(), kaa::WrongThread); });
    t.join();
    EXPECT_FALSE(loop.host_attached());
}

TEST_F(HostTest, LoopThreadPostOutsideADispatchCallsTheWakeupHook) {
    // A host callback (a Qt slot, a GLib handler) queues work: no fd
    // announces it, so the hook must. Inside a dispatch it need not: the host
    // looks at has_ready_work() after step().
    attach();
    dispatch();
    int ran = 0;
    loop.post([&] {
        ++ran;
        loop.post([&] { ++ran; }); // inside a dispatch: no wake-up
    });
    loop.post([&] { ++ran; }); // the queue was not empty: one wake-up is enough
    EXPECT_EQ(wakeups.load(), 1);
    EXPECT_TRUE(loop.has_ready_work());
    EXPECT_FALSE(loop.has_posted_work()); // local work: idle priority for the host
    dispatch();
    EXPECT_EQ(ran, 3);
    EXPECT_EQ(wakeups.load(), 1);
    loop.detach_host();
}

TEST_F(HostTest, NestedBlockingWaitIsWokenByPostsFromOtherThreads) {
    // InProgress::wait inside a host dispatch blocks in Asio; a post from a
    // worker must wake it there, not (only) the host loop.
    attach();
    bool ran = false;
    loop.post([&] {
        std::thread t([&] { loop.post([&] { ran = true; }); });
        EXPECT_TRUE(kaa::test::step_until(loop, [&] { return ran; }, 100));
        t.join();
    });
    dispatch();
    EXPECT_TRUE(ran);
    loop.detach_host();
}

TEST_F(HostTest, DetachReturnsToStandaloneMode) {
    attach();
    loop.detach_host();
    bool ran = false;
    std::thread t([&] { loop.post([&] { ran = true; }); });
    t.join();
    EXPECT_TRUE(step_until([&] { return ran; }));
    EXPECT_EQ(wakeups.load(), 0);
}

TEST(HostLifetime, DestroyingTheLoopWhileAttachedCallsTheDetachedHook) {
    bool detached = false;
    {
        kaa::MainLoop loop;
        loop.attach_host(HostHooks{.wakeup = [] {}, .detached = [&] { detached = true; }});
    }
    EXPECT_TRUE(detached);
}

TEST(HostLifetime, DetachHostDoesNotCallTheDetachedHook) {
    bool detached = false;
    kaa::MainLoop loop;
    loop.attach_host(HostHooks{.wakeup = [] {}, .detached = [&] { detached = true; }});
    loop.detach_host();
    EXPECT_FALSE(detached) << "the host asked for it; nothing to tell";
}
