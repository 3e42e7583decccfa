// SPDX-License-Identifier: BSL-1.0
#include "kaa/socket.hpp"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress_all.hpp"
#include "test_support.hpp"

using namespace kaa;
using kaa::test::holds;
using kaa::this_coroutine::await;

namespace {

class SocketTest : public kaa::test::LoopTest {
protected:
    /// A connected pair over 127.0.0.1: {client, server side}.
    std::pair<Socket, Socket> connected_pair(const std::string& host = "127.0.0.1") {
        Listener l;
        l.listen(host, 0);
        auto accepted = l.accept();
        Socket client;
        auto c = client.connect(host, l.port());
        EXPECT_TRUE(step_until([&] { return accepted.finished() && c.finished(); }));
        c.result();
        return {client, accepted.result()};
    }
};

/// A TCP port on 127.0.0.1 where nothing listens (bound, never listening).
struct ClosedPort {
    ClosedPort() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~ClosedPort() { ::close(fd); }
    int fd;
    std::uint16_t port;
};

bool have_ipv6_loopback() {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

} // namespace

TEST_F(SocketTest, ConnectReadWrite) {
    auto [client, server] = connected_pair();
    EXPECT_TRUE(client.is_open());
    EXPECT_EQ(client.peer_address(), server.local_address());
    EXPECT_FALSE(client.write("ping\n").failed());
    auto line = server.readline();
    ASSERT_TRUE(step_until([&] { return line.finished(); }));
    EXPECT_EQ(line.result(), "ping\n");
    server.write("pong");
    auto r = client.read_bytes(4);
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "pong");
}

TEST_F(SocketTest, PartialLines) {
    auto [client, server] = connected_pair();
    auto co = kaa::coroutine([s = server]() {
        std::vector<std::string> lines;
        for (std::string l; !(l = await(s.readline())).empty();)
            lines.push_back(l);
        return lines;
    });
    for (const char* piece : {"al", "pha\nbe", "ta", "\n", "\ngam", "ma"}) {
        client.write(piece);
        step_n(2);
    }
    client.close();
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    EXPECT_EQ(co.result(), (std::vector<std::string>{"alpha\n", "beta\n", "\n", "gamma"}));
}

TEST_F(SocketTest, LargeWritesBothWays) {
    auto [client, server] = connected_pair();
    std::string big(8 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 7 % 251);
    auto w1 = client.write(big);
    auto w2 = server.write(big);
    auto r1 = server.read_bytes(big.size());
    auto r2 = client.read_bytes(big.size());
    ASSERT_TRUE(step_until([&] { return r1.finished() && r2.finished() && w1.finished() && w2.finished(); },
                           100000));
    EXPECT_TRUE(r1.result() == big);
    EXPECT_TRUE(r2.result() == big);
    w1.result();
    w2.result();
}

TEST_F(SocketTest, PeerCloseIsEndOfStream) {
    auto [client, server] = connected_pair();
    bool closed = false;
    server.signals().closed.connect([&] { closed = true; });
    auto r = server.read();
    client.write("last words");
    client.close();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "last words");
    auto eof = server.read();
    ASSERT_TRUE(step_until([&] { return eof.finished(); }));
    EXPECT_EQ(eof.result(), "");
    EXPECT_TRUE(closed);
    auto more = server.read_bytes(1);
    EXPECT_TRUE(holds<ConnectionClosed>(more.exception()));
}

TEST_F(SocketTest, WriteToAClosedPeerFailsTyped) {
    auto [client, server] = connected_pair();
    client.close();
    std::string chunk(64 * 1024, 'x');
    InProgress<void> w(nullptr);
    // The first writes may still be accepted by the kernel; the peer's reset
    // turns the next into an error -- never a hang or a SIGPIPE.
    ASSERT_TRUE(step_until([&] {
        if (!w.valid() || (w.finished() && !w.failed()))
            w = server.write(chunk);
        return w.finished() && w.failed();
    }, 10000));
    EXPECT_TRUE(holds<ConnectionReset>(w.exception()) || holds<ConnectionClosed>(w.exception()))
        << kaa::describe(w.exception());
}

TEST_F(SocketTest, PeerResetIsConnectionReset) {
    auto [client, server] = connected_pair();
    linger lg{1, 0}; // SO_LINGER 0: close() sends RST
    ASSERT_EQ(::setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    auto r = server.read();
    step_n(2);
    client.close();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_TRUE(holds<ConnectionReset>(r.exception())) << kaa::describe(r.exception());
    EXPECT_TRUE(holds<ConnectionReset>(server.read().exception())); // sticky
}

// Data and the end of the stream that arrive together, before anyone reads:
// the readiness edge has passed when the reads come, and a read that got
// only the data must not conclude that the socket is drained -- the end of
// the stream is still to be read and no further edge will announce it.
// (Treating a short recv() as "drained" makes exactly this hang.)
TEST_F(SocketTest, DataAndEndOfStreamThatArrivedTogetherAreBothRead) {
    // A read pending elsewhere keeps the loop polling Asio, so the steps
    // below do see the socket become readable while no read is pending on it.
    auto [other_client, other_server] = connected_pair();
    auto idle = other_server.read();
    for (bool full_close : {false, true}) {
        SCOPED_TRACE(full_close ? "close()" : "shutdown_write()");
        auto [client, server] = connected_pair();
        client.write("last words");
        if (full_close)
            client.close();
        else
            client.shutdown_write();
        step_n(3);
        auto r = server.read();
        ASSERT_TRUE(step_until([&] { return r.finished(); }));
        EXPECT_EQ(r.result(), "last words");
        auto eof = server.read();
        ASSERT_TRUE(step_until([&] { return eof.finished(); }));
        EXPECT_EQ(eof.result(), "");
        EXPECT_TRUE(server.at_eof());
    }
    EXPECT_FALSE(idle.finished());
    idle.abort();
}

// The same with a reset behind the data: the reads end in ConnectionReset
// (after the data, if the kernel still had it), never in a wait.
TEST_F(SocketTest, DataAndResetThatArrivedTogetherEndInConnectionReset) {
    auto [other_client, other_server] = connected_pair();
    auto idle = other_server.read(); // keeps the loop polling Asio (see above)
    auto [client, server] = connected_pair();
    client.write("x");
    linger lg{1, 0}; // SO_LINGER 0: close() sends RST
    ASSERT_EQ(::setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    client.close();
    step_n(3);
    std::string got;
    std::exception_ptr end;
    for (int i = 0; i < 3 && !end; ++i) {
        auto r = server.read();
        ASSERT_TRUE(step_until([&] { return r.finished(); }));
        if (r.failed())
            end = r.exception();
        else
            got += r.result();
    }
    EXPECT_TRUE(holds<ConnectionReset>(end)) << (end ? kaa::describe(end) : "no error after " + got);
    EXPECT_TRUE(got == "" || got == "x") << got;
    idle.abort();
}

TEST_F(SocketTest, AbortedReadThenLaterReadGetsTheData) {
    auto [client, server] = connected_pair();
    auto co = kaa::coroutine([s = server]() { return await(s.read()); });
    step_n(2);
    co.abort();
    EXPECT_TRUE(co.failed());
    client.write("after abort");
    step_n(3);
    auto r = server.read();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "after abort");
}

TEST_F(SocketTest, ConnectToAClosedPortIsRefused) {
    ClosedPort closed;
    Socket s;
    auto c = s.connect("127.0.0.1", closed.port);
    ASSERT_TRUE(step_until([&] { return c.finished(); }));
    EXPECT_TRUE(holds<ConnectionRefused>(c.exception())) << kaa::describe(c.exception());
    EXPECT_FALSE(s.is_open());
}

TEST_F(SocketTest, ConnectResolvesNames) {
    Listener l;
    l.listen("127.0.0.1", 0);
    auto accepted = l.accept();
    Socket s;
    auto c = s.connect("localhost", l.port());
    // localhost may resolve to ::1 first, where nothing listens: the next
    // address is tried.
    ASSERT_TRUE(step_until([&] { return c.finished() && accepted.finished(); }));
    c.result();
    EXPECT_TRUE(s.is_open());
}

TEST_F(SocketTest, UnknownHostIsResolveError) {
    Socket s;
    auto c = s.connect("no-such-host.invalid", 80);
    ASSERT_TRUE(step_until([&] { return c.finished(); }));
    EXPECT_TRUE(holds<ResolveError>(c.exception())) << kaa::describe(c.exception());
}

TEST_F(SocketTest, AbortedConnectLeavesNothingBehind) {
    Listener l;
    l.listen("127.0.0.1", 0);
    Socket s;
    auto c = s.connect("localhost", l.port());
    c.abort();
    EXPECT_TRUE(c.failed());
    EXPECT_FALSE(s.is_open());
    step_n(5);
    EXPECT_THROW(s.read(), UsageError);
}

TEST_F(SocketTest, IPv6Loopback) {
    if (!have_ipv6_loopback())
        GTEST_SKIP() << "::1 is not available here";
    auto [client, server] = connected_pair("::1");
    EXPECT_EQ(client.peer_address().substr(0, 5), "[::1]");
    client.write("six\n");
    auto l = server.readline();
    ASSERT_TRUE(step_until([&] { return l.finished(); }));
    EXPECT_EQ(l.result(), "six\n");
}

TEST_F(SocketTest, UnixSockets) {
    std::string path = ::testing::TempDir() + "kaa_socket_test_" + std::to_string(::getpid());
    Listener l;
    l.listen_unix(path);
    EXPECT_EQ(l.address(), path);
    auto accepted = l.accept();
    Socket s;
    auto c = s.connect_unix(path);
    ASSERT_TRUE(step_until([&] { return c.finished() && accepted.finished(); }));
    c.result();
    s.write("over unix\n");
    auto line = accepted.result().readline();
    ASSERT_TRUE(step_until([&] { return line.finished(); }));
    EXPECT_EQ(line.result(), "over unix\n");
    l.close();
    EXPECT_NE(::access(path.c_str(), F_OK), 0); // removed
}

TEST_F(SocketTest, NewClientSignalAndAbortedAccept) {
    Listener l;
    l.listen("127.0.0.1", 0);
    auto a = l.accept();
    step_n(2);
    a.abort();
    std::vector<Socket> clients;
    l.signals().new_client.connect([&](const Socket& s) { clients.push_back(s); });
    Socket c1, c2;
    c1.connect("127.0.0.1", l.port());
    c2.connect("127.0.0.1", l.port());
    ASSERT_TRUE(step_until([&] { return clients.size() == 2; }));
    l.close();
    EXPECT_THROW(l.accept().result(), ConnectionClosed);
}

TEST_F(SocketTest, ListenerServesAThousandConcurrentClients) {
    constexpr int n = 1000;
    // Both ends live in this process: 2 descriptors per client, plus spare.
    rlimit rl{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * n + 100) {
        rlim_t want = std::min<rlim_t>(rl.rlim_max, 2 * n + 200);
        if (want < 2 * n + 100)
            GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max << " is too low for " << n << " clients";
        rlimit raised = rl;
        raised.rlim_cur = want;
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
    }

    Listener l;
    l.listen("127.0.0.1", 0);
    int served = 0;
    l.signals().new_client.connect([&](const Socket& client) {
        kaa::coroutine([&served](Socket s) {
            for (std::string line; !(line = await(s.readline())).empty();)
                await(s.write(line));
            ++served;
        }, client);
    });
    std::vector<InProgress<std::string>> results;
    for (int i = 0; i < n; ++i)
        results.push_back(kaa::coroutine([port = l.port(), i]() {
            Socket s;
            await(s.connect("127.0.0.1", port));
            std::string reply;
            for (int k = 0; k < 3; ++k) {
                await(s.write("client " + std::to_string(i) + " says " + std::to_string(k) + "\n"));
                reply += await(s.readline());
            }
            return reply;
        }));
    auto all = kaa::all(results);
    ASSERT_TRUE(step_until([&] { return all.finished(); }, 1000000));
    all.result();
    for (int i = 0; i < n; ++i)
        ASSERT_EQ(results[i].result(), "client " + std::to_string(i) + " says 0\nclient " + std::to_string(i) +
                                           " says 1\nclient " + std::to_string(i) + " says 2\n");
    ASSERT_TRUE(step_until([&] { return served == n; }, 1000000));
    ::setrlimit(RLIMIT_NOFILE, &rl);
}

TEST(SocketMisuse, ListenNeedsANumericAddress) {
    MainLoop loop;
    Listener l;
    EXPECT_THROW(l.listen("example.org", 0), UsageError);
    EXPECT_THROW(l.accept(), NotConnected);
    Socket s;
    EXPECT_THROW(s.read(), NotConnected);
    EXPECT_THROW(s.shutdown_write(), NotConnected);
}

// The last handles of a socket and a listener may go on another thread:
// both still close, on the loop thread.
TEST_F(SocketTest, TheLastHandlesDroppedOnAnotherThreadCloseOnTheLoop) {
    Listener l;
    l.listen("127.0.0.1", 0);
    const auto port = l.port();
    auto [client, server] = connected_pair();
    auto end = client.read();
    std::thread([s = std::exchange(server, Socket()), l2 = std::exchange(l, Listener())]() mutable {
        s = Socket();
        l2 = Listener();
    }).join();
    ASSERT_TRUE(step_until([&] { return end.finished(); }));
    EXPECT_EQ(end.result(), "");  // the end of the stream: the server side closed
    Socket late;
    auto c = late.connect("127.0.0.1", port);
    ASSERT_TRUE(step_until([&] { return c.finished(); }));
    EXPECT_TRUE(holds<ConnectionRefused>(c.exception()));
}
