// SPDX-License-Identifier: BSL-1.0
// fetch_page: the first example of kaa's documentation -- a coroutine that
// fetches a web page -- in C++. So that it runs anywhere (and in CI), the
// sample first starts a tiny HTTP/1.0 server of its own on 127.0.0.1, on a
// port the system picks, and fetches the page from there.
#include <cstdio>
#include <string>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/socket.hpp"

using kaa::this_coroutine::await;

// The page fetcher: connect, send the request, read the reply up to the
// end of the stream (HTTP/1.0: the server closes when it is done).
std::string fetch_page(std::string host, std::uint16_t port) {
    kaa::Socket sock;
    await(sock.connect(host, port));
    await(sock.write("GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n"));
    std::string reply;
    for (std::string data; !(data = await(sock.read())).empty();)
        reply += data;
    return reply;
}

// The tiny server: one coroutine per client reads the request head, answers
// with a fixed page and closes.
void serve_http(kaa::Socket client) {
    std::string request_line = await(client.readline());
    for (std::string header; !(header = await(client.readline())).empty() && header != "\r\n";) {
        // headers are ignored
    }
    std::string body = "<html><body>Hello from kaa! You asked for: " + request_line.substr(0, request_line.find("\r")) +
                       "</body></html>\n";
    await(client.write("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    client.close();
}

int main() {
    kaa::MainLoop loop;

    kaa::Listener server;
    server.listen("127.0.0.1", 0);
    server.signals().new_client.connect([](const kaa::Socket& client) { kaa::coroutine(serve_http, client); });

    auto page = kaa::coroutine(fetch_page, std::string("127.0.0.1"), server.port());
    page.connect_finished([&] { loop.stop(); });
    loop.run();

    std::string reply = page.result();
    std::printf("%s", reply.c_str());
    return reply.rfind("HTTP/1.0 200 OK", 0) == 0 ? 0 : 1;
}
