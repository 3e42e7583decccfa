// kaa inside a real Qt event loop (QCoreApplication::exec), in both
// arrangements: guest mode (kaa::qt::Guest, Qt waits on kaa's fds) and
// threaded mode (kaa::qt::ThreadedHost, a kaa thread waits and posts each
// dispatch to Qt). Every test ends the Qt loop from a kaa callback
// (loop.stop() quits Qt); a fail-safe Qt timer fails the test instead of
// letting it hang. ctest runs the suite twice: with Qt's default (GLib-based)
// event dispatcher and with its own UNIX one (QT_NO_GLIB=1).
#include "kaa/qt.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include <QCoreApplication>
#include <QThread>
#include <QTimer>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

int g_argc = 1;
char g_arg0[] = "qt_test";
char* g_argv[] = {g_arg0, nullptr};

enum class Mode { guest, threaded };

std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
    return info.param == Mode::guest ? "Guest" : "Threaded";
}

class QtLoopTest : public kaa::test::LoopTest, public ::testing::WithParamInterface<Mode> {
protected:
    void TearDown() override {
        // Whatever a test left, shutting down must leave nothing running.
        detach();
        loop.shutdown();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
        kaa::test::LoopTest::TearDown();
    }

    void attach(kaa::qt::GuestOptions options = {}) {
        if (GetParam() == Mode::guest)
            guest.emplace(loop, options);
        else
            threaded_host.emplace(loop, options);
    }

    void detach() {
        guest.reset();
        threaded_host.reset();
    }

    bool on_qt_thread() const { return QThread::currentThread() == app.thread(); }

    // Runs Qt's event loop until kaa's loop.stop() quits it. The fail-safe
    // only bounds a hang; it is not a timing check.
    void exec() {
        bool hung = false;
        QTimer failsafe;
        failsafe.setSingleShot(true);
        QObject::connect(&failsafe, &QTimer::timeout, [&] {
            hung = true;
            QCoreApplication::exit(3);
        });
        failsafe.start(30s);
        const int rc = QCoreApplication::exec();
        EXPECT_FALSE(hung) << "Qt's event loop was still running after 30 s: kaa never called loop.stop()";
        EXPECT_EQ(rc, 0);
    }

    QCoreApplication app{g_argc, g_argv};
    std::optional<kaa::qt::Guest> guest;
    std::optional<kaa::qt::ThreadedHost> threaded_host;
};

TEST_P(QtLoopTest, TimersFireInOrderOnTheQtThread) {
    attach();
    std::vector<int> order;
    bool all_on_qt_thread = true;
    auto fired = [&](int n) {
        all_on_qt_thread = all_on_qt_thread && on_qt_thread();
        order.push_back(n);
        if (order.size() == 4)
            loop.stop();
    };
    kaa::delay(30ms).connect([&] { fired(3); });
    kaa::delay(10ms).connect([&] { fired(1); });
    kaa::delay(20ms).connect([&] { fired(2); });
    kaa::OneShotTimer t([&] { fired(4); });
    t.start(40ms);
    exec();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
    EXPECT_TRUE(all_on_qt_thread);
}

TEST_P(QtLoopTest, CoroutineWaitsOnADelayAndAThreadedJob) {
    attach();
    std::thread::id job_thread;
    auto co = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(5ms));
        int v = kaa::this_coroutine::await(kaa::threaded([&] {
            job_thread = std::this_thread::get_id();
            return 41;
        }));
        kaa::this_coroutine::yield();
        return v + 1;
    });
    std::optional<int> result;
    bool callback_on_qt_thread = false;
    co.connect([&](int v) {
        result = v;
        callback_on_qt_thread = on_qt_thread();
        loop.stop();
    });
    exec();
    EXPECT_EQ(result, 42);
    EXPECT_TRUE(callback_on_qt_thread);
    EXPECT_NE(job_thread, std::this_thread::get_id());
}

TEST_P(QtLoopTest, WorkPostedFromAWorkerRunsOnTheQtThread) {
    attach();
    bool ran_on_qt_thread = false;
    std::thread worker([&] {
        loop.post([&] {
            ran_on_qt_thread = on_qt_thread();
            loop.stop();
        });
    });
    exec();
    worker.join();
    EXPECT_TRUE(ran_on_qt_thread);
}

// Work queued on the loop thread outside any kaa dispatch -- from a Qt slot --
// must run without another event to carry it.
TEST_P(QtLoopTest, WorkQueuedFromAQtCallbackRuns) {
    attach();
    int slices = 0;
    QTimer::singleShot(0, [&] {
        kaa::coroutine([&] {
            for (; slices < 3; ++slices)
                kaa::this_coroutine::yield();
            loop.post([&] { loop.stop(); });
        });
    });
    exec();
    EXPECT_EQ(slices, 3);
}

TEST_P(QtLoopTest, CoroutineAbortedFromAQtCallback) {
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
    std::exception_ptr failure;
    co.connect_exception([&](std::exception_ptr e) {
        failure = e;
        loop.stop();
    });
    QTimer::singleShot(5, [&] { co.abort(); });
    exec();
    EXPECT_TRUE(saw_abort);
    EXPECT_TRUE(kaa::test::holds<kaa::InProgressAborted>(failure));
}

// A coroutine that time-slices for as long as the host is not seen to run:
// if its slices starved Qt, the host's zero-interval timer would never tick
// and the coroutine would reach its bound; if Qt starved kaa, the fail-safe
// would fire.
TEST_P(QtLoopTest, TimeSlicedCoroutinesDoNotStarveQt) {
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
    auto busy = kaa::coroutine([&] { // a second one, so that two interleave
        while (!co.finished())
            kaa::this_coroutine::yield();
    });
    QTimer ticker;
    ticker.setInterval(0);
    QObject::connect(&ticker, &QTimer::timeout, [&] {
        ++host_ticks;
        if (co.finished() && busy.finished()) {
            ticker.stop();
            loop.stop();
        }
    });
    ticker.start();
    exec();
    EXPECT_TRUE(co.finished());
    EXPECT_GE(host_ticks, 50);
    EXPECT_LT(slices, bound) << "the coroutine's time slices kept Qt's zero timer from running";
}

// A blocking wait inside a kaa callback (InProgress::wait runs nested
// iterations) still completes while Qt is the host.
TEST_P(QtLoopTest, NestedWaitInsideACallback) {
    attach();
    std::optional<int> got;
    loop.post([&] {
        got = kaa::threaded([] { return 7; }).wait();
        loop.stop();
    });
    exec();
    EXPECT_EQ(got, 7);
}

TEST_P(QtLoopTest, DetachAndShutdownLeaveNothingRunning) {
    attach();
    auto sleeper = kaa::coroutine([&] { kaa::this_coroutine::await(kaa::delay(1h)); });
    std::mutex m;
    std::condition_variable_any cv;
    auto job = kaa::threaded([&](std::stop_token st) {
        loop.post([&] { loop.stop(); }); // running: let the test go on
        std::unique_lock lock(m);
        cv.wait(lock, st, [] { return false; }); // until shutdown asks it to stop
    });
    kaa::Timer repeating([] {});
    repeating.start(1h);
    exec();
    EXPECT_EQ(kaa::active_coroutines(), 1u);

    detach();
    EXPECT_FALSE(loop.host_attached());
    // Posts after the detach go to the standalone loop, not to Qt.
    std::thread([&] { loop.post([] {}); }).join();
    EXPECT_TRUE(loop.step(kaa::Duration::zero()));

    loop.shutdown();
    EXPECT_EQ(kaa::active_coroutines(), 0u);
    EXPECT_TRUE(sleeper.failed());
    EXPECT_TRUE(job.finished()); // asked to stop, it returned: its result was delivered
    EXPECT_EQ(kaa::ThreadPool::default_pool().stats().running, 0u);
    EXPECT_EQ(kaa::ThreadPool::default_pool().stats().threads, 0u);
    repeating.stop();
}

TEST_P(QtLoopTest, StopWithoutQuitLeavesQtRunning) {
    attach({.quit_on_stop = false});
    // After stop(), kaa and Qt keep handing work to each other for a few
    // rounds; had stop() quit Qt, exec() would return before the last one.
    int rounds = 0;
    std::function<void()> round = [&] {
        if (++rounds == 5)
            QCoreApplication::exit(0);
        else
            QTimer::singleShot(0, [&] { loop.post(round); });
    };
    loop.post([&] {
        loop.stop();
        loop.post(round);
    });
    exec();
    EXPECT_EQ(rounds, 5);
}

// A kaa callback destroys the adapter that is dispatching it: the dispatch
// below it lets go, kaa is detached, and Qt goes on.
TEST_P(QtLoopTest, AKaaCallbackMayDetach) {
    attach();
    bool detached = false;
    kaa::coroutine([&] {
        kaa::this_coroutine::yield(); // now inside a continuation dispatch
        detach();
        detached = !loop.host_attached();
        QTimer::singleShot(0, [] { QCoreApplication::exit(0); });
    });
    exec();
    EXPECT_TRUE(detached);
}

TEST_P(QtLoopTest, MisuseIsReported) {
    attach();
    // A second host on the same loop.
    EXPECT_THROW(kaa::qt::Guest second(loop), kaa::LoopError);
    EXPECT_THROW(kaa::qt::ThreadedHost second(loop), kaa::LoopError);
    // Another thread than the loop's.
    std::exception_ptr off_thread;
    std::thread([&] {
        try {
            kaa::qt::Guest g(loop);
        } catch (...) {
            off_thread = std::current_exception();
        }
    }).join();
    EXPECT_TRUE(kaa::test::holds<kaa::WrongThread>(off_thread));
    EXPECT_THROW(loop.run(), kaa::LoopError); // the host runs the loop
}

INSTANTIATE_TEST_SUITE_P(Qt, QtLoopTest, ::testing::Values(Mode::guest, Mode::threaded), mode_name);

TEST(QtWithoutApplication, GuestNeedsAQCoreApplication) {
    kaa::MainLoop loop;
    ASSERT_EQ(QCoreApplication::instance(), nullptr);
    EXPECT_THROW(kaa::qt::Guest guest(loop), kaa::UsageError);
    EXPECT_THROW(kaa::qt::ThreadedHost host(loop), kaa::UsageError);
    EXPECT_FALSE(loop.host_attached());
}

} // namespace

// The MainLoop destroyed while still attached: the adapters let go of it
// (the loop's `detached` hook), events Qt still has queued do nothing, and
// destroying the adapter afterwards is harmless.
TEST(QtLoopGone, AdaptersOutlivingTheLoopLetGo) {
    QCoreApplication app(g_argc, g_argv);
    for (Mode mode : {Mode::guest, Mode::threaded}) {
        auto loop = std::make_unique<kaa::MainLoop>();
        std::optional<kaa::qt::Guest> guest;
        std::optional<kaa::qt::ThreadedHost> threaded_host;
        if (mode == Mode::guest)
            guest.emplace(*loop);
        else
            threaded_host.emplace(*loop);
        kaa::coroutine([] {
            for (;;)
                kaa::this_coroutine::yield();
        });
        std::thread([&] { loop->post([] {}); }).join();
        QCoreApplication::processEvents(); // queues continuations / dispatches
        loop.reset();
        QCoreApplication::processEvents(); // what Qt still had queued must do nothing
        QCoreApplication::sendPostedEvents();
        guest.reset();
        threaded_host.reset();
        EXPECT_EQ(kaa::active_coroutines(), 0u);
    }
}
