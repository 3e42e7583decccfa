// SPDX-License-Identifier: BSL-1.0
#include "kaa/io_monitor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <thread>

#include "kaa/coroutine.hpp"
#include "test_support.hpp"

using namespace kaa;

namespace {

class IOMonitorTest : public kaa::test::LoopTest {
protected:
    void SetUp() override { ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0); }
    void TearDown() override {
        ::close(fds[0]);
        ::close(fds[1]);
        LoopTest::TearDown();
    }
    int fds[2] = {-1, -1};
};

} // namespace

TEST_F(IOMonitorTest, CallsBackWhileReadable) {
    int calls = 0;
    char got = 0;
    IOMonitor mon([&] {
        ++calls;
        EXPECT_EQ(::read(fds[0], &got, 1), 1);
        return calls < 2;  // false unregisters
    });
    mon.register_fd(fds[0]);
    EXPECT_TRUE(mon.active());
    step_n(3);
    EXPECT_EQ(calls, 0);
    ASSERT_EQ(::write(fds[1], "ab", 2), 2);
    ASSERT_TRUE(step_until([&] { return calls == 2; }));
    EXPECT_EQ(got, 'b');
    EXPECT_FALSE(mon.active());
    ASSERT_EQ(::write(fds[1], "c", 1), 1);
    step_n(3);
    EXPECT_EQ(calls, 2);
}

TEST_F(IOMonitorTest, LevelTriggeredUntilConsumed) {
    int calls = 0;
    IOMonitor mon([&] { ++calls; });
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    mon.register_fd(fds[0]);
    ASSERT_TRUE(step_until([&] { return calls >= 3; }));
    mon.unregister();
    int before = calls;
    step_n(3);
    EXPECT_EQ(calls, before);
}

TEST_F(IOMonitorTest, WritableAndTheDescriptorStaysOpen) {
    int calls = 0;
    {
        IOMonitor mon([&] { ++calls; return false; });
        mon.register_fd(fds[1], IOCondition::write);
        ASSERT_TRUE(step_until([&] { return calls == 1; }));
    }
    // kaa watched a duplicate: the caller's descriptor still works.
    EXPECT_EQ(::write(fds[1], "x", 1), 1);
}

TEST_F(IOMonitorTest, RegisteringElsewhereIsAnError) {
    IOMonitor mon([] {});
    mon.register_fd(fds[0]);
    EXPECT_NO_THROW(mon.register_fd(fds[0]));
    EXPECT_THROW(mon.register_fd(fds[1], IOCondition::write), UsageError);
    EXPECT_THROW(IOMonitor(std::function<void()>()), EmptyHandle);
    IOMonitor bad([] {});
    EXPECT_THROW(bad.register_fd(-1), IOError);
}

TEST_F(IOMonitorTest, DestroyingInsideTheCallback) {
    auto mon = std::make_unique<IOMonitor>([] {});
    int calls = 0;
    *mon = IOMonitor([&] {
        ++calls;
        mon.reset();
        return true;
    });
    mon->register_fd(fds[0]);
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    ASSERT_TRUE(step_until([&] { return !mon; }));
    step_n(3);
    EXPECT_EQ(calls, 1);
}

TEST_F(IOMonitorTest, ReadableInACoroutine) {
    auto co = kaa::coroutine([&] {
        this_coroutine::await(readable(fds[0]));
        char c = 0;
        EXPECT_EQ(::read(fds[0], &c, 1), 1);
        return c;
    });
    step_n(3);
    EXPECT_FALSE(co.finished());
    ASSERT_EQ(::write(fds[1], "z", 1), 1);
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    EXPECT_EQ(co.result(), 'z');
}

TEST_F(IOMonitorTest, AbortingReadableStopsTheWait) {
    auto r = readable(fds[0]);
    step_n(2);
    r.abort();
    EXPECT_TRUE(r.failed());
    ASSERT_EQ(::write(fds[1], "z", 1), 1);
    step_n(3);
    char c = 0;
    EXPECT_EQ(::read(fds[0], &c, 1), 1); // nobody consumed it
    EXPECT_NO_THROW(writable(fds[1]).wait(std::chrono::seconds(10)));
}

// A monitor destroyed on another thread stops on the loop thread, and
// unregister() there is refused.
TEST_F(IOMonitorTest, AMonitorDestroyedOnAnotherThreadStopsOnTheLoop) {
    int calls = 0;
    auto mon = std::make_unique<IOMonitor>([&] { ++calls; });
    mon->register_fd(fds[1], IOCondition::write);  // a pipe with room is always writable
    ASSERT_TRUE(step_until([&] { return calls > 0; }));
    bool refused = false;
    std::thread([&] {
        try {
            mon->unregister();
        } catch (const WrongThread&) {
            refused = true;
        }
    }).join();
    EXPECT_TRUE(refused);
    EXPECT_TRUE(mon->active());
    std::thread([m = std::move(mon)]() mutable { m.reset(); }).join();
    step_n(2);  // the first iteration runs the posted stop
    const int after = calls;
    step_n(3);
    EXPECT_EQ(calls, after);
}
