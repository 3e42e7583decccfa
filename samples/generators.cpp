// SPDX-License-Identifier: BSL-1.0
// Generators (kaa.generator): a coroutine or a threaded job hands out values
// one at a time; the consumer takes one InProgress per value, or iterates
// them as a range inside a coroutine.
//
// doc/generators.md quotes this program.

#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kaa/coroutine.hpp>
#include <kaa/generator.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await;

namespace {

// A coroutine producer: it waits between values (here for a pretend tag
// look-up), and each yield() suspends it until the consumer takes the value.
void track_titles(kaa::Yield<std::string>& yield, std::vector<std::string> files) {
    for (const std::string& file : files) {
        await(kaa::delay(10ms)); // reading the file's tags
        yield(file.substr(0, file.find('.')));
    }
}

// A threaded producer: blocking work on a pool thread. yield() blocks the
// worker until the loop thread has taken the value.
void scan_directory(kaa::Yield<std::string>& yield, std::string path) {
    for (const char* name : {"intro.ogg", "theme.ogg", "outro.ogg"}) {
        std::this_thread::sleep_for(5ms); // readdir() and stat()
        yield(path + "/" + name);
    }
}

// A producer that fails half-way: its exception is the next item's failure.
void decode_frames(kaa::Yield<int>& yield) {
    yield(1);
    yield(2);
    throw std::runtime_error("frame 3 is corrupt");
}

// A producer that never ends, and says when it is stopped.
void ticks(kaa::Yield<int>& yield) {
    struct Report {
        ~Report() { std::cout << "ticks: producer stopped, its stack unwound" << std::endl; }
    } report;
    for (int i = 0;; ++i) {
        kaa::this_coroutine::yield(); // one value per loop iteration
        yield(i);
    }
}

void consume() {
    // Inside a coroutine, a generator is a range: each step waits for the
    // next value, suspending only this coroutine.
    auto titles = kaa::generator<std::string>(track_titles, std::vector<std::string>{"intro.ogg", "theme.ogg"});
    for (const std::string& title : titles)
        std::cout << "title: " << title << std::endl;

    auto files = kaa::generator<std::string>(kaa::ThreadOptions{}, scan_directory, std::string("/music"));
    for (const std::string& file : files)
        std::cout << "found: " << file << std::endl;

    try {
        for (int frame : kaa::generator<int>(decode_frames))
            std::cout << "frame " << frame << std::endl;
    } catch (const std::runtime_error& e) {
        std::cout << "decoding failed: " << e.what() << std::endl;
    }

    // Taking only what is needed: leaving the loop destroys the generator,
    // which stops its producer.
    {
        auto counter = kaa::generator<int>(ticks);
        for (int tick : counter) {
            std::cout << "tick " << tick << std::endl;
            if (tick == 2)
                break;
        }
    }

    // One InProgress per value: next() gives std::nullopt at the end.
    auto more = kaa::generator<std::string>(track_titles, std::vector<std::string>{"coda.ogg"});
    kaa::InProgress<std::optional<std::string>> next = more.next();
    next.connect([](const std::optional<std::string>& title) { std::cout << "next(): " << *title << std::endl; });
    await(next);
    std::cout << "then: " << (await(more.next()) ? "a value" : "the end") << std::endl;
    std::cout << "other coroutines left: " << kaa::active_coroutines() - 1 << std::endl;
}

} // namespace

int main() {
    kaa::MainLoop loop;
    auto consumer = kaa::coroutine(consume);
    consumer.connect_finished([&loop] { loop.stop(); });
    loop.run();
    consumer.result(); // rethrows if it failed
    std::cout << "done" << std::endl;
}
