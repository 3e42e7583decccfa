// SPDX-License-Identifier: BSL-1.0
// kaa::Task<T>: stackless C++20 coroutines (co_await) beside kaa's stackful
// coroutines, on the same InProgress and the same abort model.
//
// doc/tasks.md quotes this program. main() starts one Task that goes through
// the parts in order and stops the loop when it is done; the whole program
// takes about half a second.

#include <chrono>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

#include <kaa/coroutine.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/in_progress_all.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/task.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await;

namespace {

const kaa::Clock::time_point start_time = kaa::Clock::now();

// Prints its arguments on one line, after the time since the start.
template <class... Args>
void say(const Args&... args) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(kaa::Clock::now() - start_time);
    std::cout << '[' << std::right;
    std::cout.width(4);
    std::cout << ms.count() << " ms]" << std::boolalpha;
    ((std::cout << ' ' << args), ...);
    std::cout << std::endl;
}

void part(const char* title) { std::cout << '\n' << title << '\n'; }

// A stackful coroutine: an ordinary function that waits with await().
int scale(int bytes) {
    return await(kaa::threaded([bytes] {
        std::this_thread::sleep_for(20ms);
        return bytes / 4;
    }));
}

// A Task co_awaits any InProgress: a timer, a threaded job, a stackful
// coroutine, another Task. Calling it runs it up to its first suspension
// and returns its InProgress.
kaa::Task<std::string> make_thumbnail(std::string name) {
    say(name, "- the first step runs at once, in the caller");
    co_await kaa::delay(50ms);
    int bytes = co_await kaa::threaded([] {
        std::this_thread::sleep_for(30ms); // blocking work, on the pool
        return 4096;
    });
    int scaled = co_await kaa::coroutine(scale, bytes);
    co_return name + ".thumb, " + std::to_string(scaled) + " bytes";
}

// Waits on `what` and reports an abort before letting it go on.
kaa::Task<void> wait_on(kaa::InProgress<void> what, std::string who) {
    try {
        co_await what;
    } catch (const kaa::InProgressAborted& e) {
        say(who, "caught InProgressAborted at its co_await:", e.message());
        throw; // clean up here if need be, but do not co_await again
    }
}

// The same, as a stackful coroutine.
void sleeper(kaa::InProgress<void> what) {
    try {
        await(what);
    } catch (const kaa::InProgressAborted& e) {
        say("the stackful coroutine caught InProgressAborted in await():", e.message());
        throw;
    }
}

kaa::Task<void> await_coroutine(kaa::CoroutineInProgress<void> co) { co_await co; }

kaa::ThreadInProgress<std::string> fetch(std::string url) {
    return kaa::threaded([url] {
        std::this_thread::sleep_for(20ms);
        if (url.find("primary") != std::string::npos)
            throw std::runtime_error(url + ": connection refused");
        return "<contents of " + url + ">";
    });
}

// C++ does not allow co_await inside a catch handler: note the failure
// there, and wait after the handler.
kaa::Task<std::string> fetch_with_fallback() {
    std::string error;
    try {
        co_return co_await fetch("http://primary.example.org/");
    } catch (const std::runtime_error& e) {
        error = e.what(); // co_await here would not compile
    }
    say("failed:", error, "- trying the mirror");
    co_return co_await fetch("http://mirror.example.org/");
}

kaa::Task<void> run_all() {
    part("-- a Task awaits a timer, a threaded job and a stackful coroutine --");
    kaa::InProgress<std::string> one = make_thumbnail("a.jpg");
    say("make_thumbnail() returned; finished() =", one.finished());
    say("co_await gives", co_await one);

    part("-- a stackful coroutine awaits a Task; Tasks in all() --");
    auto stackful = kaa::coroutine([] { return await(make_thumbnail("b.jpg")); });
    say("the coroutine returned", co_await stackful);
    auto [c, d] = co_await kaa::all(make_thumbnail("c.jpg"), make_thumbnail("d.jpg"));
    say("all():", c, "and", d);

    part("-- abort cascades from a stackful coroutine into a Task --");
    kaa::InProgress<void> nap = kaa::delay(10s);
    auto outer = kaa::coroutine([nap] { await(wait_on(nap, "the Task")); });
    outer.abort();
    say("the coroutine failed() =", outer.failed(), "- the 10 s delay it reached failed() =", nap.failed());

    part("-- abort cascades from a Task into a stackful coroutine --");
    kaa::InProgress<void> nap2 = kaa::delay(10s);
    kaa::Task<void> task = await_coroutine(kaa::coroutine(sleeper, nap2));
    task.abort();
    say("the Task failed() =", task.failed(), "- the 10 s delay failed() =", nap2.failed());

    part("-- no co_await in a catch handler --");
    say("got", co_await fetch_with_fallback());
}

} // namespace

int main() {
    kaa::MainLoop loop;
    loop.signals().exception.connect([](std::exception_ptr e) { say("exception signal:", kaa::describe(e)); });

    // Still suspended when the loop stops: the shutdown aborts it, so its
    // frame unwinds (and its destructors run).
    kaa::Task<void> forgotten = wait_on(kaa::delay(1h), "the forgotten Task");

    kaa::Task<void> parts = run_all();
    parts.connect_finished([&loop] {
        std::cout << '\n';
        say("stopping the loop; Tasks still suspended:", kaa::active_tasks());
        loop.stop();
    });
    loop.run();
    parts.result(); // rethrows if a part failed
    say("run() returned; Tasks still suspended:", kaa::active_tasks());
    return 0;
}
