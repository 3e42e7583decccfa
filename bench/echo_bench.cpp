// SPDX-License-Identifier: BSL-1.0
// echo_bench: kaa's coroutine echo server against an asio::spawn echo server,
// a hand-written epoll echo server and a Python asyncio echo server, all
// driven by the same load client in one run (scripts/echo_bench.sh).
//
// Each server runs in a child process on 127.0.0.1 (port chosen by the
// system); the load client, in this process on its own thread, opens N
// connections and plays ping-pong: each connection sends a message of S bytes,
// waits for all of it to come back, and sends the next, M times. The figure is
// round trips per second over the whole run; every run is bounded in time
// (a server that stalls is reported, not waited for).
//
//   echo_bench [--connections N] [--messages M] [--size S] [--time-limit SECONDS]
//              [--servers kaa,spawn,epoll,asyncio] [--repeat R]
//   echo_bench --serve kaa|spawn|epoll      (run one server; prints its port)
//   echo_bench --port P [...]               (drive a server already running)
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/write.hpp>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/socket.hpp"

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// ---- servers (each prints its port on stdout, then serves until killed) ----

void announce(std::uint16_t port) {
    std::printf("%u\n", port);
    std::fflush(stdout);
}

// The kaa server is the sample's echo coroutine, verbatim in spirit.
void echo(kaa::Socket client) {
    using kaa::this_coroutine::await;
    for (std::string data; !(data = await(client.read())).empty();)
        await(client.write(std::move(data)));
}

int serve_kaa() {
    kaa::MainLoop loop;
    kaa::Listener server;
    server.listen("127.0.0.1", 0);
    server.signals().new_client.connect([](const kaa::Socket& c) { kaa::coroutine(echo, c); });
    announce(server.port());
    loop.run();
    return 0;
}

// asio::spawn: Boost 1.81's spawn runs on Boost.Context (no Boost.Coroutine).
int serve_spawn() {
    asio::io_context io(1);
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    announce(acceptor.local_endpoint().port());
    asio::spawn(
        io,
        [&](asio::yield_context yield) {
            for (;;) {
                asio::ip::tcp::socket s(io);
                acceptor.async_accept(s, yield);
                s.set_option(asio::ip::tcp::no_delay(true));
                asio::spawn(
                    io,
                    [s = std::move(s)](asio::yield_context yield) mutable {
                        char buf[4096];
                        boost::system::error_code ec;
                        for (;;) {
                            std::size_t n = s.async_read_some(asio::buffer(buf), yield[ec]);
                            if (ec)
                                return;
                            asio::async_write(s, asio::buffer(buf, n), yield[ec]);
                            if (ec)
                                return;
                        }
                    },
                    asio::detached);
            }
        },
        asio::detached);
    io.run();
    return 0;
}

// A minimal level-triggered epoll echo server: the floor for one thread.
int serve_epoll() {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1024) != 0)
        return 1;
    socklen_t len = sizeof a;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    announce(ntohs(a.sin_port));
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::map<int, std::string> pending; // unsent output (rare)
    char buf[4096];
    epoll_event events[256];
    for (;;) {
        int n = ::epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            auto drop = [&] {
                ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
                ::close(fd);
                pending.erase(fd);
            };
            if (events[i].events & EPOLLOUT) {
                std::string& out = pending[fd];
                ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    drop();
                    continue;
                }
                out.erase(0, w < 0 ? 0 : static_cast<std::size_t>(w));
                if (out.empty()) {
                    pending.erase(fd);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = fd;
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                }
                continue;
            }
            ssize_t r = ::recv(fd, buf, sizeof buf, 0);
            if (r <= 0) {
                if (r == 0 || errno != EAGAIN)
                    drop();
                continue;
            }
            ssize_t w = ::send(fd, buf, static_cast<std::size_t>(r), MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                drop();
                continue;
            }
            if (w < r) {
                pending[fd].assign(buf + std::max<ssize_t>(w, 0), buf + r);
                epoll_event cev{};
                cev.events = EPOLLOUT;
                cev.data.fd = fd;
                ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
            }
        }
    }
}

const char* asyncio_server = R"(
import asyncio, sys
class Echo(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
async def main():
    srv = await asyncio.get_running_loop().create_server(Echo, '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()
asyncio.run(main())
)";

// ---- running a server in a child process ----

struct Child {
    pid_t pid = -1;
    std::uint16_t port = 0;
};

Child start_server(const std::string& kind, const char* self) {
    int out[2];
    if (::pipe(out) != 0)
        return {};
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        if (kind == "asyncio")
            ::execlp("python3", "python3", "-c", asyncio_server, static_cast<char*>(nullptr));
        else
            ::execl(self, self, "--serve", kind.c_str(), static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    ::close(out[1]);
    char line[32] = {};
    std::size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = ::read(out[0], line + got, 1);
        if (r <= 0 || line[got] == '\n')
            break;
        ++got;
    }
    ::close(out[0]);
    Child c;
    c.pid = pid;
    c.port = static_cast<std::uint16_t>(std::atoi(line));
    if (c.port == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        c.pid = -1;
    }
    return c;
}

/// Stops the server; returns the CPU seconds (user + system) it used.
double stop_server(Child& c) {
    if (c.pid <= 0)
        return 0;
    ::kill(c.pid, SIGKILL);
    rusage ru{};
    int status = 0;
    ::wait4(c.pid, &status, 0, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- the load client (one thread, epoll, ping-pong per connection) ----

struct LoadResult {
    std::uint64_t round_trips = 0;
    double seconds = 0;
    bool complete = false;
    std::string error;
};

LoadResult run_load(std::uint16_t port, int conns, int messages, int size, double limit) {
    LoadResult res;
    struct Conn {
        int fd;
        int sent = 0;       // messages sent
        int received = 0;   // bytes of the current echo received
    };
    std::vector<Conn> cs;
    std::string msg(static_cast<std::size_t>(size), 'k');
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    for (int i = 0; i < conns; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            res.error = std::string("connect: ") + std::strerror(errno);
            return res;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::fcntl(fd, F_SETFL, O_NONBLOCK);
        cs.push_back(Conn{fd});
    }
    for (std::size_t i = 0; i < cs.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    auto start = Clock::now();
    auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
    int done = 0;
    for (auto& c : cs) {
        if (::send(c.fd, msg.data(), msg.size(), MSG_NOSIGNAL) != size) {
            res.error = "send failed";
            return res;
        }
        c.sent = 1;
    }
    std::vector<char> buf(65536);
    epoll_event events[256];
    while (done < conns) {
        if (Clock::now() > deadline)
            break;
        int n = ::epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; ++i) {
            Conn& c = cs[events[i].data.u64];
            ssize_t r = ::recv(c.fd, buf.data(), buf.size(), 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                res.error = "the server closed a connection";
                done = conns;
                break;
            }
            c.received += static_cast<int>(r);
            while (c.received >= size) {
                c.received -= size;
                ++res.round_trips;
                if (c.sent < messages) {
                    ::send(c.fd, msg.data(), msg.size(), MSG_NOSIGNAL);
                    ++c.sent;
                } else {
                    ++done;
                }
            }
        }
    }
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    res.complete = res.error.empty() && done == conns &&
                   res.round_trips == static_cast<std::uint64_t>(conns) * static_cast<std::uint64_t>(messages);
    for (auto& c : cs)
        ::close(c.fd);
    ::close(ep);
    return res;
}

bool have_python3() { return std::system("python3 -c 'import asyncio' >/dev/null 2>&1") == 0; }

} // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::strcmp(argv[1], "--serve") == 0) {
        std::string kind = argv[2];
        if (kind == "kaa")
            return serve_kaa();
        if (kind == "spawn")
            return serve_spawn();
        if (kind == "epoll")
            return serve_epoll();
        return 2;
    }
    // Best of 7: on this class of VM a run lands in one of two modes (up to
    // 1.4x apart, whichever server runs), so 3 runs often missed the fast
    // mode for one server and not another.
    int conns = 100, messages = 1000, size = 64, repeat = 7;
    double limit = 60;
    std::string servers = "kaa,spawn,epoll,asyncio";
    int external_port = 0; // --port: drive a server started elsewhere (profiling)
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--connections")
            conns = std::atoi(argv[i + 1]);
        else if (k == "--messages")
            messages = std::atoi(argv[i + 1]);
        else if (k == "--size")
            size = std::atoi(argv[i + 1]);
        else if (k == "--time-limit")
            limit = std::atof(argv[i + 1]);
        else if (k == "--servers")
            servers = argv[i + 1];
        else if (k == "--repeat")
            repeat = std::atoi(argv[i + 1]);
        else if (k == "--port")
            external_port = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "echo_bench: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
    if (external_port > 0) {
        LoadResult r = run_load(static_cast<std::uint16_t>(external_port), conns, messages, size, limit);
        std::printf("%.0f round trips/s%s%s\n", r.seconds > 0 ? static_cast<double>(r.round_trips) / r.seconds : 0.0,
                    r.error.empty() ? "" : ": ", r.error.c_str());
        return r.complete ? 0 : 1;
    }
    std::vector<std::string> kinds;
    for (std::size_t p = 0; p <= servers.size();) {
        std::size_t q = servers.find(',', p);
        if (q == std::string::npos)
            q = servers.size();
        if (q > p)
            kinds.push_back(servers.substr(p, q - p));
        p = q + 1;
    }
    std::printf("echo benchmark: %d connections x %d messages x %d B, loopback, best of %d runs "
                "(runs interleaved), time limit %.0f s per run\n\n",
                conns, messages, size, repeat, limit);
    std::map<std::string, double> best;
    std::map<std::string, std::string> notes;
    std::map<std::string, double> cpu_best; // server CPU microseconds per round trip (lowest)
    bool python = have_python3();
    // Interleave the servers run by run, so that a burst of load from
    // elsewhere on the machine hits them alike; keep each one's best run.
    for (int run = 0; run < repeat; ++run) {
        for (const auto& kind : kinds) {
            if (kind == "asyncio" && !python) {
                notes[kind] = "skipped (no python3)";
                continue;
            }
            Child c = start_server(kind, "/proc/self/exe");
            if (c.pid < 0) {
                notes[kind] = "server did not start";
                continue;
            }
            LoadResult r = run_load(c.port, conns, messages, size, limit);
            double cpu = stop_server(c);
            if (!r.error.empty()) {
                notes[kind] = r.error;
                continue;
            }
            double rate = r.seconds > 0 ? static_cast<double>(r.round_trips) / r.seconds : 0;
            if (!r.complete)
                notes[kind] = "hit the time limit (partial run)";
            best[kind] = std::max(best[kind], rate);
            if (r.round_trips > 0) {
                double us = cpu * 1e6 / static_cast<double>(r.round_trips);
                if (!cpu_best.count(kind) || us < cpu_best[kind])
                    cpu_best[kind] = us;
            }
        }
    }
    // Two figures: throughput (what a client sees; on a busy machine it also
    // measures the neighbours), and the server's own CPU time per round trip
    // (from wait4's rusage), which other load on the machine disturbs less.
    std::printf("| server | round trips/s | kaa / server (throughput) | server CPU us per round trip | "
                "server / kaa (CPU) |\n|---|---:|---:|---:|---:|\n");
    double kaa_rate = best.count("kaa") ? best["kaa"] : 0;
    double kaa_cpu = cpu_best.count("kaa") ? cpu_best["kaa"] : 0;
    for (const auto& kind : kinds) {
        std::string name = kind == "kaa" ? "kaa coroutines" : kind == "spawn" ? "asio::spawn" : kind == "epoll" ? "raw epoll" : "Python asyncio";
        if (!best.count(kind) || best[kind] == 0) {
            std::printf("| %s | %s | | | |\n", name.c_str(), notes.count(kind) ? notes[kind].c_str() : "failed");
            continue;
        }
        char ratio[32] = "-";
        if (kaa_rate > 0)
            std::snprintf(ratio, sizeof ratio, "%.2f", kaa_rate / best[kind]);
        char cpu[32] = "-", cpu_ratio[32] = "-";
        if (cpu_best.count(kind)) {
            std::snprintf(cpu, sizeof cpu, "%.2f", cpu_best[kind]);
            if (kaa_cpu > 0)
                std::snprintf(cpu_ratio, sizeof cpu_ratio, "%.2f", cpu_best[kind] / kaa_cpu);
        }
        std::printf("| %s | %.0f | %s | %s | %s |%s%s\n", name.c_str(), best[kind], ratio, cpu, cpu_ratio,
                    notes.count(kind) ? " " : "", notes.count(kind) ? notes[kind].c_str() : "");
    }
    return 0;
}
