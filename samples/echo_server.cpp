// SPDX-License-Identifier: BSL-1.0
// echo_server: the C10k classic in coroutine style -- one coroutine per
// connection, thousands of them on one thread.
//
//   echo_server --port 7000     serve on 127.0.0.1:7000 until interrupted
//   echo_server                 self-test: serve, run 2000 clients, exit
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress_all.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/socket.hpp"

using kaa::this_coroutine::await;

// One connection: echo whatever arrives until the client goes away.
void echo(kaa::Socket client) {
    for (std::string data; !(data = await(client.read())).empty();)
        await(client.write(std::move(data)));
}

// A self-test client: send lines, expect each one back.
bool client(std::uint16_t port, int id) {
    kaa::Socket sock;
    await(sock.connect("127.0.0.1", port));
    for (int i = 0; i < 10; ++i) {
        std::string line = "client " + std::to_string(id) + " line " + std::to_string(i) + "\n";
        await(sock.write(line));
        if (await(sock.readline()) != line)
            return false;
    }
    return true;
}

int main(int argc, char** argv) {
    int port = argc == 3 && std::strcmp(argv[1], "--port") == 0 ? std::atoi(argv[2]) : -1;
    kaa::MainLoop loop;

    kaa::Listener server;
    server.listen("127.0.0.1", port > 0 ? static_cast<std::uint16_t>(port) : 0);
    server.signals().new_client.connect([](const kaa::Socket& c) { kaa::coroutine(echo, c); });
    if (port > 0) {
        std::printf("echoing on %s\n", server.address().c_str());
        loop.run();
        return 0;
    }

    // Self-test: both ends live in this process, two descriptors per client.
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int clients = static_cast<int>(std::min<rlim_t>(2000, (rl.rlim_cur - 64) / 2));

    std::vector<kaa::InProgress<bool>> results;
    for (int id = 0; id < clients; ++id)
        results.push_back(kaa::coroutine(client, server.port(), id));
    auto all = kaa::all(results);
    all.connect_finished([&] { loop.stop(); });
    loop.run();

    int ok = 0;
    for (const auto& r : results)
        ok += r.finished() && !r.failed() && r.result();
    std::printf("%d of %d clients got their 10 lines echoed, on one thread\n", ok, clients);
    return ok == clients ? 0 : 1;
}
