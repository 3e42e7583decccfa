// SPDX-License-Identifier: BSL-1.0
// kaa::MainLoop: the iteration structure, work from other threads, stopping.
//
// doc/main_loop.md quotes this program.

#include <chrono>
#include <iostream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <kaa/errors.hpp>
#include <kaa/main_loop.hpp>

using namespace std::chrono_literals;

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

void one_loop_per_process() {
    say("\n-- one loop per process --");
    try {
        kaa::MainLoop second;
    } catch (const kaa::LoopError& e) {
        say("LoopError:", e.what());
    }
}

// Drives the loop by hand, one iteration at a time, as a host loop would.
void iterations(kaa::MainLoop& loop) {
    say("\n-- what one iteration runs, in order --");
    int iteration = 1;
    kaa::Connection end = loop.signals().step.connect([&] { say("   step signal: end of iteration", iteration++); });

    loop.post([&loop] {
        say("1c. work posted on the loop thread (A)");
        loop.post([] { say("2c. work posted by A: runs on the next iteration"); });
    });
    std::thread([&loop] { loop.post([] { say("1b. work posted from another thread"); }); }).join();
    boost::asio::post(loop.context(), [] { say("1a. an Asio handler (timers and I/O complete this way)"); });

    say("ready without waiting:", loop.has_ready_work());
    loop.step(kaa::Duration::zero()); // Never waits: a host loop does the waiting.
    loop.step(kaa::Duration::zero());
    say("ready without waiting:", loop.has_ready_work());
    end.disconnect();
}

void wrong_thread(kaa::MainLoop& loop) {
    say("\n-- the loop runs on the thread that created it --");
    std::thread([&loop] {
        try {
            loop.step();
        } catch (const kaa::WrongThread& e) {
            say("WrongThread:", e.what());
        }
    }).join();
}

void run_and_stop_from_a_thread(kaa::MainLoop& loop) {
    say("\n-- run(), and stop() from another thread --");
    loop.signals().shutdown.connect([] { say("shutdown signal"); });
    std::thread worker([&loop] {
        std::this_thread::sleep_for(50ms);
        loop.post([] { say("work from the worker runs on the main thread:", kaa::is_main_thread()); });
        loop.stop(); // Safe from any thread; run() returns after the current iteration.
    });
    loop.run(); // Sleeps until the worker's post wakes it.
    worker.join();
    say("run() returned; is_running() =", loop.is_running());
}

} // namespace

int main() {
    kaa::MainLoop loop; // This thread is now the main thread.
    one_loop_per_process();
    iterations(loop);
    wrong_thread(loop);
    run_and_stop_from_a_thread(loop);
    return 0;
}
