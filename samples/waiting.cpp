// SPDX-License-Identifier: BSL-1.0
// Waiting for several things: kaa::any(), kaa::all(), timeout(), and bridges
// from callback APIs (InProgressCallable) and std::future.
//
// doc/waiting.md quotes this program. main() runs one coroutine that goes
// through the parts in order and stops the loop when it is done; the whole
// program takes about a second.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <variant>

#include <kaa/coroutine.hpp>
#include <kaa/future.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/in_progress_all.hpp>
#include <kaa/in_progress_callable.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/progress.hpp>
#include <kaa/signal.hpp>
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

// A blocking download, run on the thread pool: `chunks` pieces of 50 ms. It
// checks this_job::aborted() between pieces, so that abort() stops it.
kaa::ThreadInProgress<std::string> download(std::string url, int chunks) {
    return kaa::threaded([url, chunks] {
        for (int i = 0; i < chunks; ++i) {
            kaa::this_job::check_aborted(); // throws InProgressAborted once aborted
            std::this_thread::sleep_for(50ms);
        }
        return "<contents of " + url + ">";
    });
}

void first_of() {
    part("-- any(): the first of a download and a deadline --");
    auto slow = download("http://example.org/big", 5); // 250 ms
    auto deadline = kaa::delay(100ms);
    // Members of different types: the value is a std::variant.
    auto first = await(kaa::any(slow, deadline));
    if (first.index == 1) {
        say("the deadline came first; any() leaves the download running: finished() =", slow.finished());
        slow.abort(); // the caller decides what happens to the loser
        say("aborted the download");
    }

    auto quick = download("http://example.org/small", 1); // 50 ms
    auto patience = kaa::delay(1s);
    auto winner = await(kaa::any(quick, patience));
    if (winner.index == 0) {
        say("the download came first:", std::get<0>(winner.value));
        patience.abort(); // stop the timer: nobody waits for it any more
    }

    // One type: the value is the member's. any_if() skips the results its
    // filter rejects (the last member to finish is taken anyway, as kaa).
    auto mirror_a = download("http://a.example.org/", 1);
    auto mirror_b = download("http://b.example.org/", 2);
    auto good = await(kaa::any_if([](const kaa::AnyResult<std::string>& r) { return r.value.find("//b.") != std::string::npos; },
                                  mirror_a, mirror_b));
    say("any_if() took member", good.index, "with", good.value);
}

void every_one_of() {
    part("-- all(): a coroutine, a threaded job and a signal, with one progress bar --");
    // A coroutine that reports its progress: 4 steps of 40 ms.
    kaa::CoroutineOptions with_progress;
    with_progress.progress = true;
    auto cover = kaa::coroutine(with_progress, [] {
        auto& progress = kaa::this_coroutine::progress();
        progress.set(0, 4);
        for (int step = 1; step <= 4; ++step) {
            await(kaa::delay(40ms));
            progress.set(step);
        }
        return std::string("cover.jpg");
    });
    // A threaded job that reports its progress: 4 steps of 30 ms.
    kaa::ThreadOptions job_with_progress;
    job_with_progress.progress = true;
    auto checksum = kaa::threaded(job_with_progress, [] {
        std::uint32_t sum = 0;
        for (int step = 1; step <= 4; ++step) {
            std::this_thread::sleep_for(30ms);
            sum = sum * 31 + static_cast<std::uint32_t>(step);
            kaa::this_job::set_progress(step, 4);
        }
        return sum;
    });
    // The user confirms after 200 ms. A signal without arguments: next() is
    // an InProgress<void>, which all() turns into std::monostate.
    kaa::Signal<void()> confirmed;
    kaa::OneShotTimer user([&confirmed] { confirmed.emit(); });
    user.start(200ms);

    auto everything = kaa::all(cover, checksum, confirmed.next());
    // Each member weighs the same (a third here) and adds its percentage;
    // the signal has no Progress: it adds nothing until it fires. The bar
    // never moves back.
    everything.progress()->changed().connect([last = std::string()](const kaa::Progress& p) mutable {
        std::string line = p.bar(22) + " " + std::to_string(static_cast<int>(p.percentage())) + " %";
        if (line != last)
            say(line);
        last = line;
    });
    auto [file, sum, nothing] = await(everything);
    static_assert(std::is_same_v<decltype(nothing), std::monostate>);
    say("all finished:", file, "checksum", sum);
}

void timeouts() {
    part("-- timeout(d) and timeout(d, true) --");
    auto page = download("http://example.org/slow", 4); // 200 ms
    try {
        await(page.timeout(50ms));
    } catch (const kaa::TimeoutError& e) {
        say("timeout(50ms):", e.message(), "- the download goes on: finished() =", page.finished());
    }
    say("waiting for it without a timeout:", await(page));

    auto again = download("http://example.org/slow", 4);
    try {
        await(again.timeout(50ms, true));
    } catch (const kaa::TimeoutError& e) {
        say("timeout(50ms, true):", e.message(), "- the download was aborted: failed() =", again.failed());
    }

    // An operation without an abort handler cannot be aborted, so
    // timeout(d, true) on it is refused at the call -- not later, in the loop.
    kaa::InProgress<std::string> reply; // someone else finishes it; nobody can stop it
    try {
        reply.timeout(50ms, true);
    } catch (const kaa::NotAbortable& e) {
        say("NotAbortable at the call:", e.what());
    }
    reply.finish("ok");
}

// A callback-style API, as a C library or an older toolkit offers it: it
// calls `done(address, port)` or `error(e)` later, on the loop thread.
void legacy_resolve(const std::string& host, std::function<void(std::string, int)> done,
                    std::function<void(std::exception_ptr)> error) {
    kaa::delay(20ms).connect([host, done, error] {
        if (host.empty())
            error(std::make_exception_ptr(std::invalid_argument("empty host name")));
        else
            done("192.0.2.7", 443);
    });
}

void callback_api() {
    part("-- InProgressCallable: a callback API made awaitable --");
    kaa::InProgressCallable<std::string, int> resolved; // an InProgress<std::tuple<std::string, int>>
    legacy_resolve("example.org", resolved, resolved.on_error());
    auto [address, port] = await(resolved);
    say("resolved to", address, "port", port);

    kaa::InProgressCallable<std::string, int> bad;
    legacy_resolve("", bad, bad.on_error());
    try {
        await(bad);
    } catch (const std::invalid_argument& e) {
        say("on_error() failed it:", e.what());
    }

    // execute(): a synchronous call whose result or exception becomes an
    // InProgress, finished already.
    auto parsed = kaa::execute([] { return std::stoi("42"); });
    auto failed = kaa::execute([] { return std::stoi("forty-two"); });
    say("execute():", parsed.result(), "and failed() =", failed.failed(), "-", kaa::describe(failed.exception()));
}

void futures() {
    part("-- std::future in both directions --");
    // to_future(): for code outside the loop. Here a plain std::thread
    // blocks on it; the loop thread must never do that (use await or wait()).
    kaa::InProgress<int> answer;
    std::future<int> future = kaa::to_future(answer);
    std::thread reader([f = std::move(future)]() mutable { say("a std::thread got", f.get(), "from to_future()"); });
    kaa::delay(20ms).connect([answer] { answer.finish(42); });
    await(kaa::delay(40ms));
    reader.join();

    // from_future(): a std::future (here from std::async) as an InProgress.
    std::future<std::string> computed = std::async(std::launch::async, [] {
        std::this_thread::sleep_for(30ms);
        return std::string("computed by std::async");
    });
    say("from_future():", await(kaa::from_future(std::move(computed))));
}

void run_all() {
    first_of();
    every_one_of();
    timeouts();
    callback_api();
    futures();
}

} // namespace

int main() {
    kaa::MainLoop loop;
    loop.signals().exception.connect([](std::exception_ptr e) { say("exception signal:", kaa::describe(e)); });

    auto parts = kaa::coroutine(run_all);
    parts.connect_finished([&loop] { loop.stop(); });
    loop.run();
    parts.result(); // rethrows if a part failed
    say("done");
    return 0;
}
