// SPDX-License-Identifier: BSL-1.0
// Threads: where threaded() runs work, in which order, how it is aborted and
// waited for, and how results come back to the loop thread; one function each.
//
// doc/threads.md quotes this program. It drives the loop with
// InProgress::wait() on the main thread, which runs loop iterations until the
// operation has finished.

#include <atomic>
#include <future>
#include <iostream>
#include <latch>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <kaa/coroutine.hpp>
#include <kaa/errors.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/synchronized.hpp>
#include <kaa/threaded.hpp>

using namespace std::chrono_literals;

namespace {

template <class... Args>
void say(const Args&... args) {
    static std::mutex m; // workers print too
    std::lock_guard lock(m);
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

void targets() {
    say("\n-- targets: the default pool, a named pool, a named thread, the main thread --");
    kaa::ThreadPool decoders("decoders", 2); // registered by name while it exists
    kaa::ThreadPool db("db", 1);             // a pool of one: a named thread

    auto frame = kaa::threaded([] { return std::string("frame from the default pool"); });
    auto image = kaa::threaded({.pool = "decoders"}, [](std::string path) { return "decoded " + path; },
                               std::string("cover.jpg"));
    auto rows = kaa::threaded({.pool = "db", .priority = 5}, [] { return 3; });
    image.connect([](const std::string& text) { say("callback on the main thread:", kaa::is_main_thread(), text); });
    say(frame.wait());
    say(image.wait());
    say("rows:", rows.wait());
    try {
        kaa::threaded({.pool = "gpu"}, [] {});
    } catch (const kaa::UnknownPool& e) {
        say("UnknownPool:", e.what());
    }
}

void main_thread_calls() {
    say("\n-- a worker calls the main thread and waits for the answer --");
    std::string window_title = "kaa player"; // main-thread state
    auto job = kaa::threaded([&window_title] {
        std::string title = kaa::threaded(kaa::main_thread, [&] { return window_title; }).wait();
        return "the worker read '" + title + "' on the main thread";
    });
    say(job.wait());
}

void priorities_on_a_named_thread() {
    say("\n-- a named thread runs one job at a time, highest priority first --");
    kaa::ThreadPool db("db", 1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::latch busy(1);
    auto first = kaa::threaded({.pool = "db"}, [&] {
        busy.count_down();
        gate.wait(); // holds the thread until the others are queued
    });
    busy.wait();
    std::vector<kaa::InProgress<void>> jobs;
    const std::pair<const char*, int> queue[] = {{"lo1", 0}, {"lo2", 0}, {"hi5", 5}, {"hi3", 3}};
    for (auto [name, priority] : queue)
        jobs.push_back(kaa::threaded({.pool = "db", .priority = priority}, [name] { say("  runs", name); }));
    release.set_value();
    for (auto& job : jobs)
        job.wait();
}

void abort_queued_and_running() {
    say("\n-- abort: a queued job is removed, a running one is asked to stop --");
    kaa::ThreadPool serial("serial", 1);
    std::latch started(1);
    auto running = kaa::threaded({.pool = "serial"}, [&started](std::stop_token stop) {
        started.count_down();
        int chunks = 0;
        while (!stop.stop_requested()) {
            std::this_thread::sleep_for(1ms);
            ++chunks;
        }
        return chunks; // after the abort: discarded, and counted
    });
    auto queued = kaa::threaded({.pool = "serial"}, [] { say("never printed: removed from the queue"); });
    started.wait();
    queued.abort();
    running.abort(); // never blocks; the InProgress fails at once
    say("queued failed() =", queued.failed(), "- running failed() =", running.failed());
    while (serial.stats().late_results == 0) // the loop counts the discarded value
        kaa::main_loop().step(10ms);
    say("the running job obeyed; late results discarded:", serial.stats().late_results);
}

void progress_is_coalesced() {
    say("\n-- progress: the loop gets the latest value, not every update --");
    auto job = kaa::threaded({.progress = true}, [] {
        for (int i = 1; i <= 100000; ++i)
            kaa::this_job::set_progress(i, 100000);
    });
    int updates = 0;
    job.progress()->changed().connect([&updates](const kaa::Progress&) { ++updates; });
    job.wait();
    kaa::main_loop().step(kaa::Duration::zero()); // delivers the last update
    say("100000 set_progress() calls,", updates > 0 && updates < 100000 ? "far fewer" : "?",
        "updates; final:", job.progress()->percentage(), "%");
}

void waiting() {
    say("\n-- waiting: blocking on a worker, refused in a coroutine, deadlock detected --");
    kaa::InProgress<int> never;
    auto impatient = kaa::threaded([never] {
        try {
            return never.wait(20ms); // on a worker: blocks this thread
        } catch (const kaa::TimeoutError&) {
            return -1;
        }
    });
    say("wait(20ms) on a worker timed out:", impatient.wait() == -1);

    auto in_coroutine = kaa::coroutine([never] { return never.wait(); });
    try {
        in_coroutine.result();
    } catch (const kaa::UsageError& e) {
        say("wait() inside a coroutine:", e.what());
    }

    kaa::ThreadPool serial("serial", 1);
    std::promise<kaa::InProgress<int>> next;
    auto outer = kaa::threaded({.pool = "serial"}, [later = next.get_future()]() mutable {
        return later.get().wait(); // queued behind this very job
    });
    next.set_value(kaa::threaded({.pool = "serial"}, [] { return 1; }));
    try {
        outer.wait();
    } catch (const kaa::WouldDeadlock& e) {
        say("WouldDeadlock:", e.what());
    }
}

void synchronized_value() {
    say("\n-- Synchronized<T>: one lock, however it is taken --");
    kaa::Synchronized<std::vector<std::string>> log;
    std::vector<kaa::InProgress<void>> jobs;
    for (int i = 0; i < 4; ++i)
        jobs.push_back(kaa::threaded([&log, i] {
            log.with_lock([i](auto& lines) { lines.push_back("job " + std::to_string(i)); });
        }));
    for (auto& job : jobs)
        job.wait();
    say("lines:", log.lock()->size());
}

} // namespace

int main() {
    kaa::MainLoop loop;
    targets();
    main_thread_calls();
    priorities_on_a_named_thread();
    abort_queued_and_running();
    progress_is_coalesced();
    waiting();
    synchronized_value();
    return 0;
}
