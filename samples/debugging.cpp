// SPDX-License-Identifier: BSL-1.0
// Seeing inside a running program: the log hook, the dump of live work with
// its wait chains and creation sites, and the KAA_DUMP=1 trigger.
//
// doc/debugging.md quotes this program. A server coroutine, 'serve client 3',
// waits on 'read request 3', which waits on a threaded job on pool "io" that
// is stuck (it waits on a disk that answers late). The program dumps what is
// alive while the job is stuck, lets the disk answer, and ends.
//
//   debugging             the dump is asked for in code (kaa::log_dump())
//   debugging --sigusr1   run with KAA_DUMP=1: the program sends itself
//                         SIGUSR1 and the loop prints the dump; it then stops
//                         with a timer still armed, which prints another dump
//
// Both modes end within a second.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <future>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <kaa/coroutine.hpp>
#include <kaa/debug.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/log.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await;

namespace {

// The disk the "io" job waits on, and the signal that the job is stuck there.
std::promise<void> disk;
std::shared_future<void> disk_answers = disk.get_future().share();
kaa::InProgress<void> job_is_stuck;

kaa::InProgress<std::string> read_request(int client) {
    return kaa::coroutine({.name = "read request " + std::to_string(client)}, [] {
        return await(kaa::threaded({.pool = "io", .name = "read from disk"}, [] {
            kaa::main_loop().post([] { job_is_stuck.finish(); });
            disk_answers.wait();  // stuck here until the disk answers
            return std::string("GET /index.html");
        }));
    });
}

kaa::InProgress<void> serve(int client) {
    return kaa::coroutine({.name = "serve client " + std::to_string(client)}, [client] {
        std::string request = await(read_request(client));
        std::cout << "client " << client << " asked for " << request << std::endl;
    });
}

} // namespace

int main(int argc, char** argv) {
    const bool by_signal = argc > 1 && std::string_view(argv[1]) == "--sigusr1";
    if (by_signal && !std::getenv("KAA_DUMP")) {
        std::cerr << "debugging --sigusr1: run it with KAA_DUMP=1 in the environment\n";
        return 2;
    }

    // Every report of the library comes here: unhandled exceptions, discarded
    // results, work left at a shutdown, dumps.
    kaa::InProgress<void> dumped;
    kaa::set_log_handler([&dumped](const kaa::LogRecord& r) {
        std::cout << "[kaa " << kaa::to_string(r.level) << "] " << r.topic << ":\n" << r.message << std::endl;
        if (r.topic == "dump" && !dumped.finished())
            dumped.finish();
    });

    kaa::MainLoop loop;
    kaa::ThreadPool io("io", 1);
    kaa::Timer heartbeat([] {});
    heartbeat.start(10s);

    // A failure nobody looks at is reported with the coroutine's name and the
    // line that started it.
    kaa::coroutine({.name = "rotate logs"}, [] { throw std::runtime_error("disk full"); });

    auto server = serve(3);
    kaa::coroutine({.name = "main"}, [&] {
        await(job_is_stuck);
        if (by_signal) {
            std::raise(SIGUSR1);  // as `kill -USR1 <pid>` from a shell
            await(dumped);
        } else {
            kaa::log_dump();
        }
        disk.set_value();
        await(server);
        if (!by_signal)
            heartbeat.stop();
        kaa::main_loop().stop();  // with --sigusr1, the heartbeat is still armed
    });
    loop.run();
    kaa::set_log_handler({});  // `dumped` goes now
    std::cout << "done" << std::endl;
}
