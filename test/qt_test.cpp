// SPDX-License-Identifier: BSL-1.0
// kaa inside a real Qt event loop (QCoreApplication::exec), in both
// arrangements: guest mode (kaa::qt::Guest, Qt waits on kaa's fds) and
// threaded mode (kaa::qt::ThreadedHost, a kaa thread waits and posts each
// dispatch to Qt). Every test ends the Qt loop from a kaa callback
// (loop.stop() quits Qt); a fail-safe Qt timer fails the test instead of
// letting it hang. What every host must do is the shared HostConformance
// suite (host_conformance.hpp), instantiated here for both modes; the tests
// below are Qt's own. ctest runs the binary twice: with Qt's default
// (GLib-based) event dispatcher and with its own UNIX one (QT_NO_GLIB=1).
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
#include <type_traits>
#include <vector>

#include <QCoreApplication>
#include <QThread>
#include <QTimer>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"
#include "host_conformance.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using namespace kaa::test; // HostConformance and its registration

int g_argc = 1;
char g_arg0[] = "qt_test";
char* g_argv[] = {g_arg0, nullptr};

// Runs Qt's event loop until kaa's loop.stop() quits it; false if the
// fail-safe had to end it (it bounds a hang; it is not a timing check) or
// Qt exited with an error.
bool exec_qt() {
    bool hung = false;
    QTimer failsafe;
    failsafe.setSingleShot(true);
    QObject::connect(&failsafe, &QTimer::timeout, [&] {
        hung = true;
        QCoreApplication::exit(3);
    });
    failsafe.start(30s);
    const int rc = QCoreApplication::exec();
    return !hung && rc == 0;
}

// The host-conformance adapter (host_conformance.hpp) for either mode.
template <class Adapter>
class QtHost {
public:
    static constexpr const char* name = std::is_same_v<Adapter, kaa::qt::Guest> ? "Guest" : "Threaded";
    explicit QtHost(kaa::MainLoop& loop) : loop_(loop) {}
    void attach() { adapter_.emplace(loop_); }
    void detach() { adapter_.reset(); }
    bool run() { return exec_qt(); }
    // A zero-interval QTimer, Qt's own "run this soon" that kaa's time
    // slices must not starve (doc/embedding.md). Timers that never fired go
    // with the adapter, before the test's locals they refer to.
    void post_host(std::function<void()> fn) {
        auto* timer = new QTimer(&timers_);
        timer->setSingleShot(true);
        QObject::connect(timer, &QTimer::timeout, [timer, fn = std::move(fn)] {
            timer->deleteLater();
            fn();
        });
        timer->start(0);
    }
    bool on_host_thread() const { return QThread::currentThread() == app_.thread(); }

private:
    kaa::MainLoop& loop_;
    QCoreApplication app_{g_argc, g_argv};
    QObject timers_;
    std::optional<Adapter> adapter_;
};

using QtHosts = ::testing::Types<QtHost<kaa::qt::Guest>, QtHost<kaa::qt::ThreadedHost>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Qt, HostConformance, QtHosts, HostName);

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

    void exec() { EXPECT_TRUE(exec_qt()) << "Qt's event loop did not end: kaa never called loop.stop()"; }

    QCoreApplication app{g_argc, g_argv};
    std::optional<kaa::qt::Guest> guest;
    std::optional<kaa::qt::ThreadedHost> threaded_host;
};

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
