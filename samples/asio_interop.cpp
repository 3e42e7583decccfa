// SPDX-License-Identifier: BSL-1.0
// kaa and Boost.Asio in one program (doc/interop.md): a TCP echo server
// written as kaa coroutines over plain Asio sockets, and a client written as
// an asio::awaitable that waits on a kaa threaded job -- the two models
// calling each other on one loop.
#include <array>
#include <functional>
#include <iostream>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "kaa/asio.hpp"
#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using kaa::this_coroutine::await;

namespace {

template <class... A>
void say(const A&... a) {
    ((std::cout << a << ' '), ...) << std::endl;
}

// One connection: a kaa coroutine that reads and writes with Asio's own
// operations, each an InProgress through kaa::use_in_progress.
void echo(tcp::socket sock) {
    std::array<char, 256> buf;
    try {
        for (;;) {
            std::size_t n = await(sock.async_read_some(asio::buffer(buf), kaa::use_in_progress));
            await(asio::async_write(sock, asio::buffer(buf.data(), n), kaa::use_in_progress));
        }
    } catch (const kaa::ConnectionClosed&) {
        say("server: the client closed the connection");
    }
}

// The accept loop, a kaa coroutine too. When the loop shuts down it is
// aborted, and the abort cancels the accept it waits on.
void serve(tcp::acceptor& acceptor) {
    try {
        for (;;) {
            tcp::socket sock(acceptor.get_executor());
            await(acceptor.async_accept(sock, kaa::use_in_progress));
            kaa::coroutine(echo, std::move(sock));
        }
    } catch (const kaa::InProgressAborted&) {
        say("server: aborted, the accept is cancelled");
        throw;
    }
}

// The client: an asio::awaitable. It co_awaits a kaa InProgress (a threaded
// job) with kaa::async_wait, then talks to the server.
asio::awaitable<std::string> client(tcp::endpoint server, kaa::InProgress<std::string> greeting) {
    tcp::socket sock(co_await asio::this_coro::executor);
    co_await sock.async_connect(server, asio::use_awaitable);
    std::string text = co_await kaa::async_wait(greeting, asio::use_awaitable);
    co_await asio::async_write(sock, asio::buffer(text), asio::use_awaitable);
    std::string reply(text.size(), '\0');
    co_await asio::async_read(sock, asio::buffer(reply), asio::use_awaitable);
    co_return reply;
}

} // namespace

int main() {
    kaa::MainLoop loop;
    tcp::acceptor acceptor(loop.context(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    kaa::coroutine(serve, std::ref(acceptor));

    // A kaa coroutine awaits the awaitable as it awaits any InProgress.
    auto session = kaa::coroutine([&] {
        auto greeting = kaa::threaded([] { return std::string("hello through Asio"); });
        std::string reply = await(client(acceptor.local_endpoint(), greeting));
        say("client: the server echoed:", reply);
        return reply.size();
    });
    session.connect([&loop](std::size_t) { loop.stop(); });
    loop.run(); // its shutdown aborts the server's coroutines
    say("loop returned; kaa coroutines left:", kaa::active_coroutines());
}
