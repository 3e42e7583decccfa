// SPDX-License-Identifier: BSL-1.0
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <kaa/kaa.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await; // bare await(...) in coroutines, as the docs write it

int main() {
    kaa::MainLoop loop;
    // A coroutine: waits on a threaded job and a timer, suspending only itself.
    kaa::InProgress<std::string> greeting = kaa::coroutine([] {
        int answer = await(kaa::threaded([] {
            std::this_thread::sleep_for(20ms); // blocking work, on the thread pool
            return 42;
        }));
        await(kaa::delay(10ms)); // a timer
        return "the answer is " + std::to_string(answer);
    });
    // Callback style: runs on the loop thread when the coroutine has finished.
    greeting.connect([&](const std::string& text) {
        std::cout << text << '\n';
        loop.stop();
    });
    loop.run();
}
