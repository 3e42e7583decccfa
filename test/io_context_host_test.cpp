// SPDX-License-Identifier: BSL-1.0
// kaa::IoContextHost: kaa as a guest on an application's own io_context. The
// shared HostConformance suite runs against it, then its own tests.
#include "kaa/io_context_host.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/timer.hpp"
#include "host_conformance.hpp"
#include "test_support.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// The host: an io_context run by the test's thread, as an Asio application
// runs its own.
class IoContextAdapter {
public:
    static constexpr const char* name = "IoContextHost";

    explicit IoContextAdapter(kaa::MainLoop& loop) : loop_(loop) {}

    void attach() { host_.emplace(loop_, io_); }
    void detach() { host_.reset(); }

    // Until loop.stop() stops io; a fail-safe timer bounds a hang.
    bool run() {
        timed_out_ = false;
        io_.restart();
        failsafe_.expires_after(30s);
        failsafe_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) {
                timed_out_ = true;
                io_.stop();
            }
        });
        io_.run();
        failsafe_.cancel();
        return !timed_out_;
    }

    void post_host(std::function<void()> fn) { asio::post(io_, std::move(fn)); }
    bool on_host_thread() const { return std::this_thread::get_id() == thread_; }

    asio::io_context& io() { return io_; }

private:
    kaa::MainLoop& loop_;
    asio::io_context io_;
    asio::steady_timer failsafe_{io_};
    bool timed_out_ = false;
    std::optional<kaa::IoContextHost> host_;
    std::thread::id thread_ = std::this_thread::get_id();
};

} // namespace

namespace kaa::test {
using IoContextHosts = ::testing::Types<IoContextAdapter>;
INSTANTIATE_TYPED_TEST_SUITE_P(IoContext, HostConformance, IoContextHosts, HostName);
} // namespace kaa::test

namespace {

class IoContextHostTest : public kaa::test::LoopTest {
protected:
    void TearDown() override {
        host.detach();
        loop.shutdown();
        kaa::test::LoopTest::TearDown();
    }
    IoContextAdapter host{loop};
};

TEST_F(IoContextHostTest, KaaCallbacksAndTheApplicationsHandlersShareItsThread) {
    host.attach();
    std::vector<std::string> order;
    // The order comes from the chain, not from the two delays: under load
    // both timers may be due in the same pass of io.run().
    asio::steady_timer app_timer(host.io(), 2ms);
    kaa::InProgress<void> app_fired;
    app_timer.async_wait([&](const boost::system::error_code&) {
        order.push_back("application timer");
        app_fired.finish();
    });
    kaa::coroutine([&] {
        kaa::this_coroutine::await(app_fired);
        kaa::this_coroutine::await(kaa::delay(1ms));
        order.push_back(host.on_host_thread() ? "kaa coroutine, io's thread" : "kaa coroutine, elsewhere");
        loop.stop();
    });
    ASSERT_TRUE(host.run());
    EXPECT_EQ(order, (std::vector<std::string>{"application timer", "kaa coroutine, io's thread"}));
}

TEST_F(IoContextHostTest, WhileAttachedIoRunDoesNotRunOutOfWork) {
    host.attach();
    bool late = false;
    // Nothing but a kaa timer is pending: io.run() must keep going for it.
    kaa::OneShotTimer t([&] {
        late = true;
        loop.stop();
    });
    t.start(3ms);
    ASSERT_TRUE(host.run());
    EXPECT_TRUE(late);
}

TEST_F(IoContextHostTest, WithoutStopIoOnStopTheApplicationEndsIo) {
    std::optional<kaa::IoContextHost> guest;
    guest.emplace(loop, host.io(), kaa::IoContextHostOptions{.stop_io_on_stop = false});
    bool stopped_kaa = false;
    loop.post([&] {
        loop.stop(); // leaves io alone
        stopped_kaa = true;
        asio::post(host.io(), [&] { host.io().stop(); }); // the application decides
    });
    host.io().restart();
    host.io().run();
    EXPECT_TRUE(stopped_kaa);
    guest.reset();
}

} // namespace
