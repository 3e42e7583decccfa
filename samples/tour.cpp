// SPDX-License-Identifier: BSL-1.0
// A tour of kaa for C++.
//
// Each section below is a small function that shows one part of the
// programming model and returns the operation it started, as an InProgress.
// main() runs the sections one after another on the main loop -- the next one
// starts when the previous operation has finished -- and stops the loop after
// the last one. The whole tour takes about two seconds and prints what
// happens, with the time since the start.
//
// Build and run:  cmake --build build --target tour && build/samples/tour

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include <kaa/coroutine.hpp>
#include <kaa/event.hpp>
#include <kaa/generator.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/in_progress_all.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/progress.hpp>
#include <kaa/signal.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;

namespace {

// Printing ------------------------------------------------------------------

const kaa::Clock::time_point start_time = kaa::Clock::now();

// Prints its arguments on one line, after the time since the tour started.
template <class... Args>
void say(const Args&... args) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(kaa::Clock::now() - start_time);
    std::cout << '[' << std::right;
    std::cout.width(4);
    std::cout << ms.count() << " ms]" << std::boolalpha;
    ((std::cout << ' ' << args), ...);
    std::cout << std::endl;
}

void section(const char* title) { std::cout << '\n' << title << '\n'; }

// An object with a signal, as an application would have.
struct Player {
    kaa::Signal<void(const std::string&)> song_changed;
};

// 1. Callback style ----------------------------------------------------------
//
// Whatever finishes later returns an InProgress<T>. Callbacks connected with
// connect() run on the loop thread when it finishes.

// Pretends to look a value up: the answer arrives 100 ms later. kaa::delay()
// is itself an InProgress<void>, finished by a timer.
kaa::InProgress<int> look_up_answer() {
    kaa::InProgress<int> answer;
    kaa::delay(100ms).connect([answer] { answer.finish(42); });
    return answer;
}

kaa::InProgressRef callback_style() {
    section("1. Callback style: InProgress<T> and connect()");
    kaa::InProgress<int> answer = look_up_answer();
    answer.connect([](int value) { say("connect() callback: the answer is", value); });
    say("look-up started, finished() =", answer.finished());

    // connect() on an operation that has already finished calls back at once,
    // before connect() returns.
    kaa::InProgress<std::string> cached = kaa::make_finished<std::string>("cached value");
    say("before connect() on a finished InProgress");
    cached.connect([](const std::string& value) { say("  called at once with", value); });
    say("after connect()");
    return answer;
}

// 2. Timers -------------------------------------------------------------------
//
// A kaa::Timer calls back on the loop thread every interval until stop(), or
// until its callback returns false.

kaa::InProgressRef repeating_timer() {
    section("2. A repeating timer that stops itself");
    kaa::InProgress<void> done;
    auto metronome = std::make_shared<kaa::Timer>([ticks = 0, done]() mutable {
        ++ticks;
        say("tick", ticks);
        if (ticks < 3)
            return true;
        say("returning false stops the timer");
        done.finish();
        return false;
    });
    metronome->start(100ms);
    kaa::call_later(150ms, [] { say("call_later(): a fire-and-forget one-shot, no handle kept"); });
    // kaa's @timed: a Timed definition runs its function on a timer when
    // called; with the restart policy a second call replaces the pending one.
    auto status = std::make_shared<kaa::Timed<void(std::string)>>(
        kaa::TimedOptions{.interval = 50ms, .policy = kaa::TimedPolicy::restart, .one_shot = true},
        [](const std::string& text) { say("Timed, restart policy: of two quick calls the last ran:", text); });
    (*status)("first");
    (*status)("second");
    // Destroying a Timer stops it: keep this one alive until it is done.
    done.connect_finished([metronome, status] {});
    return done;
}

// 3. Signals -------------------------------------------------------------------
//
// emit() calls the connected slots at once, in connection order. A
// connect_once() slot is disconnected before its first call.

kaa::InProgressRef signals(Player& player) {
    section("3. Signals: connect() and connect_once(); events");
    player.song_changed.connect([](const std::string& title) { say("display shows", title); });
    player.song_changed.connect_once([](const std::string& title) { say("first song only:", title); });
    say("slots connected:", player.song_changed.count());
    player.song_changed.emit("Intro");
    player.song_changed.emit("Second song");
    say("slots left:", player.song_changed.count());
    // Events are notifications by name, posted from any thread and delivered
    // at the end of the iteration to the handlers registered for them.
    kaa::InProgress<void> delivered;
    auto handler = std::make_shared<kaa::EventHandler>([delivered](const kaa::Event& e) {
        say("event delivered:", e.name());
        delivered.finish();
    });
    handler->register_for({"playlist done"});
    kaa::Event("playlist done").post();
    delivered.connect_finished([handler] {});
    return delivered;
}

// 4. Waiting for a signal ---------------------------------------------------
//
// next() is the next emission as an InProgress: one argument becomes the
// value, several a tuple. The signal holds it weakly: keep the handle.

kaa::InProgressRef waiting_for_a_signal(Player& player) {
    section("4. Waiting for a signal with next()");
    kaa::InProgress<std::string> next_song = player.song_changed.next();
    next_song.connect([](const std::string& title) { say("next() finished with", title); });
    kaa::delay(100ms).connect([&player] { player.song_changed.emit("Third song"); });
    say("waiting for the next song...");
    return next_song;
}

// 5. Abort ------------------------------------------------------------------
//
// abort() stops an operation that can be stopped and fails it with
// InProgressAborted. Its connect() callbacks never run; exception callbacks do.

kaa::InProgressRef abort_an_operation() {
    section("5. Abort");
    kaa::InProgress<void> long_wait = kaa::delay(10s);
    long_wait.connect([] { say("never printed: the operation was aborted"); });
    long_wait.connect_exception([](std::exception_ptr error) {
        try {
            std::rethrow_exception(error);
        } catch (const kaa::InProgressAborted& aborted) {
            say("exception callback:", aborted.message());
        }
    });
    say("started a 10 s delay; abortable() =", long_wait.abortable());
    long_wait.abort(); // Cancels the timer; the tour does not wait 10 s.
    say("after abort(): finished() =", long_wait.finished(), "failed() =", long_wait.failed());
    return long_wait;
}

// 6. Nothing is lost ----------------------------------------------------------
//
// An exception that escapes a callback, and a failure that nobody looked at,
// are handed to the loop's `exception` signal (connected in main()).

kaa::InProgressRef unhandled_exceptions() {
    section("6. Nothing is lost: unhandled exceptions");
    {
        kaa::InProgress<int> job;
        job.fail(std::runtime_error("disk full"));
        say("a job failed; nobody looks at it");
    } // The last handle goes here: the failure is reported.

    kaa::Signal<void()> clicked;
    clicked.connect([] { throw std::runtime_error("bug in a slot"); });
    clicked.connect([] { say("the next slot still runs"); });
    clicked.emit();

    kaa::main_loop().post([] { throw std::logic_error("bug in posted work"); });
    kaa::InProgress<void> done;
    kaa::main_loop().post([done] { done.finish(); }); // runs after the work above
    return done;
}

// 7. Coroutines ---------------------------------------------------------------
//
// A coroutine is an ordinary function running on a stack of its own.
// this_coroutine::await(ip) suspends it -- not the loop -- until the
// InProgress finishes, then returns its value or rethrows its exception.
// kaa::coroutine(fn, args...) starts one and returns its own InProgress.

using kaa::this_coroutine::await;

// A pretend web server. Connecting takes 50 ms; a request is blocking work,
// done on a thread pool; the page arrives 50 ms later through a signal.
struct Server {
    kaa::Signal<void(const std::string&)> data_received;

    kaa::InProgress<void> connect_to(const std::string& /*host*/) { return kaa::delay(50ms); }

    kaa::InProgress<int> send_request(const std::string& path) {
        kaa::InProgress<int> status = kaa::threaded([path] {
            std::this_thread::sleep_for(20ms); // blocking I/O
            return path == "/" ? 200 : 404;
        });
        status.connect([this, path](int) {
            kaa::delay(50ms).connect([this, path] { data_received.emit("<html>" + path + "</html>"); });
        });
        return status;
    }
};

Server server;

// Reads like blocking code; while it waits, the loop runs everything else.
std::string fetch_page(const std::string& host, const std::string& path) {
    await(server.connect_to(host));
    int status = await(server.send_request(path));
    if (status != 200)
        throw std::runtime_error(path + ": HTTP " + std::to_string(status));
    return await(server.data_received.next());
}

// The same logic with callbacks: each step is a nested callback, and each
// must pass failures on by hand.
kaa::InProgress<std::string> fetch_page_with_callbacks(const std::string& host, const std::string& path) {
    kaa::InProgress<std::string> page;
    auto fail = [page](std::exception_ptr error) { page.fail(error); };
    server.connect_to(host).connect_both(
        [page, path, fail] {
            server.send_request(path).connect_both(
                [page, path, fail](int status) {
                    if (status != 200)
                        return page.fail(std::runtime_error(path + ": HTTP " + std::to_string(status)));
                    kaa::InProgress<std::string> body = server.data_received.next();
                    // The signal holds next() weakly: the callback keeps it.
                    body.connect_both([page, body](const std::string& html) { page.finish(html); }, fail);
                },
                fail);
        },
        fail);
    return page;
}

// The section is itself a coroutine.
void coroutines_section() {
    section("7. Coroutines: sequential code over asynchronous steps");
    std::string page = await(kaa::coroutine(fetch_page, std::string("example.org"), std::string("/")));
    say("coroutine fetch_page() returned", page);
    page = await(fetch_page_with_callbacks("example.org", "/"));
    say("fetch_page_with_callbacks() finished with", page);
    try {
        await(kaa::coroutine(fetch_page, std::string("example.org"), std::string("/missing")));
    } catch (const std::runtime_error& e) {
        say("a failure inside arrives as an exception:", e.what());
    }

    // yield() gives the loop a time slice: two coroutines take turns.
    std::string order;
    auto slicer = [&order](std::string name) {
        for (int i = 1; i <= 3; ++i) {
            order += name + std::to_string(i) + ' ';
            kaa::this_coroutine::yield();
        }
    };
    auto a = kaa::coroutine(slicer, std::string("A"));
    auto b = kaa::coroutine(slicer, std::string("B"));
    await(a);
    await(b);
    order.pop_back(); // the last space
    say("two coroutines calling yield() interleave:", order);

    // A generator: a coroutine that hands out values one at a time. Inside a
    // coroutine it is a range; each step waits for the next value.
    auto countdown = kaa::generator<int>([](kaa::Yield<int>& yield) {
        for (int i = 3; i > 0; --i) {
            kaa::this_coroutine::yield(); // or await anything
            yield(i);
        }
    });
    std::string counted;
    for (int i : countdown)
        counted += std::to_string(i) + ", ";
    say("a generator iterated as a range:", counted + "liftoff");

    // abort() raises InProgressAborted where the coroutine waits, and
    // cascades into what it waits on.
    kaa::InProgress<void> nap(nullptr);
    kaa::InProgress<void> sleeper(nullptr);
    sleeper = kaa::coroutine([&nap, &sleeper] {
        nap = kaa::delay(10s);
        try {
            await(nap);
        } catch (const kaa::InProgressAborted& e) {
            say("sleeper caught InProgressAborted: inprogress() is the delay:", e.inprogress() == nap,
                "- origin() is the sleeper:", e.origin() == sleeper);
            throw; // it may clean up here, but not wait again
        }
    });
    say("sleeper waits on a 10 s delay; abort() it");
    sleeper.abort();
    say("after abort(): the delay failed() =", nap.failed(), "- the sleeper failed() =", sleeper.failed());
}

kaa::InProgressRef coroutines() { return kaa::coroutine({.name = "tour: coroutines"}, coroutines_section); }

// 8. Threads --------------------------------------------------------------------
//
// kaa::threaded(fn) runs blocking work on a thread pool and returns an
// InProgress that finishes on the loop thread. A job reports progress with
// this_job::set_progress(), calls the main thread with
// threaded(kaa::main_thread, fn), and stops when this_job::aborted().

// Main-thread state (think: a setting shown in the UI). Workers ask for it.
std::size_t chunk_size = 64 * 1024;
int main_thread_calls = 0;

// A stand-in for real work: FNV-1a over a buffer, chunk by chunk, with a
// pause per chunk so that the progress bars have something to show.
std::uint64_t hash_buffer(const std::vector<unsigned char>& data) {
    std::size_t chunk = kaa::threaded(kaa::main_thread, [] {
                            ++main_thread_calls;
                            return chunk_size;
                        }).wait();
    std::uint64_t hash = 14695981039346656037u;
    for (std::size_t done = 0; done < data.size();) {
        kaa::this_job::check_aborted(); // throws InProgressAborted once aborted
        for (std::size_t end = std::min(data.size(), done + chunk); done < end; ++done)
            hash = (hash ^ data[done]) * 1099511628211u;
        kaa::this_job::set_progress(static_cast<std::int64_t>(done), static_cast<std::int64_t>(data.size()));
        std::this_thread::sleep_for(10ms);
    }
    return hash;
}

// One bar per job, on one line, redrawn every 10 % of the total.
void draw_bars(const std::vector<kaa::Progress*>& bars, int& drawn) {
    std::int64_t pos = 0, max = 0;
    for (const kaa::Progress* p : bars) {
        pos += p->pos();
        max += p->max();
    }
    int tenth = max ? static_cast<int>(pos * 10 / max) : 0;
    if (tenth == drawn)
        return;
    drawn = tenth;
    std::cout << "\r        ";
    for (const kaa::Progress* p : bars)
        std::cout << ' ' << p->bar(14);
    std::cout << std::flush;
}

void threads_section() {
    section("8. Threads: blocking work on a pool, progress, main-thread calls, abort");
    std::vector<kaa::ThreadInProgress<std::uint64_t>> jobs;
    for (int i = 0; i < 4; ++i) {
        std::vector<unsigned char> buffer(1 << 20, static_cast<unsigned char>(i));
        jobs.push_back(kaa::threaded({.progress = true}, hash_buffer, std::move(buffer)));
    }
    say("hashing 4 buffers of 1 MiB on the default pool");
    std::vector<kaa::Progress*> bars;
    for (auto& job : jobs)
        bars.push_back(job.progress().get());
    int drawn = -1;
    for (kaa::Progress* p : bars)
        p->changed().connect([&bars, &drawn](const kaa::Progress&) { draw_bars(bars, drawn); });
    std::uint64_t combined = 0;
    for (auto& job : jobs)
        combined ^= await(job);
    std::cout << std::endl;
    for (kaa::Progress* p : bars)
        p->changed().disconnect_all();
    say("all done; the workers made", main_thread_calls, "main-thread calls; combined hash", combined);

    // A long job, aborted by a timer. abort() fails the InProgress at once;
    // the job notices this_job::aborted() and stops.
    kaa::InProgress<int> stopped_after; // the job reports how far it got
    auto transcode = kaa::threaded([stopped_after] {
        int chunks = 0;
        while (!kaa::this_job::aborted()) {
            std::this_thread::sleep_for(10ms); // one chunk of a long job
            ++chunks;
        }
        stopped_after.finish(chunks); // from the worker: delivered on the loop
        return chunks;                // too late: the InProgress failed already
    });
    kaa::OneShotTimer give_up([transcode] {
        say("timer fires: abort() the long job");
        transcode.abort();
    });
    give_up.start(150ms);
    try {
        await(transcode);
    } catch (const kaa::InProgressAborted& e) {
        say("waiting on the job raised InProgressAborted:", e.message());
    }
    say("the job saw this_job::aborted() and stopped after", await(stopped_after), "chunks");
}

kaa::InProgressRef threads() { return kaa::coroutine({.name = "tour: threads"}, threads_section); }

// 9. Waiting for several things ---------------------------------------------------
//
// kaa::any() finishes with the index and value of the first member to finish; kaa::all()
// with every member's result, and has a Progress that sums up the members'.
// Members can be any InProgress: delays, jobs, coroutines, signals' next().

// A job on the thread pool: `steps` pieces of 20 ms, reporting its progress.
int count_to(int steps) {
    for (int i = 1; i <= steps; ++i) {
        std::this_thread::sleep_for(20ms);
        kaa::this_job::set_progress(i, steps);
    }
    return steps;
}

kaa::InProgressRef waiting_for_several() {
    section("9. Waiting for several things: any() and all()");
    // any() as a deadline: the first of a 100 ms look-up and a 50 ms delay.
    kaa::InProgress<int> answer = look_up_answer();
    kaa::InProgress<void> deadline = kaa::delay(50ms);
    kaa::any(answer, deadline).connect([answer](const kaa::AnyResult<std::variant<int, std::monostate>>& first) {
        say("any(): member", first.index, "finished first; the look-up finished() =", answer.finished());
    });

    // all(): two jobs and a delay; one bar for the three of them.
    kaa::ThreadOptions with_progress;
    with_progress.progress = true;
    auto all = kaa::all(kaa::threaded(with_progress, count_to, 3), kaa::threaded(with_progress, count_to, 5),
                        kaa::delay(150ms));
    all.progress()->changed().connect([drawn = std::int64_t(-1)](const kaa::Progress& p) mutable {
        if (p.pos() != drawn)
            say("all():", p.bar(20), static_cast<int>(p.percentage()), "%");
        drawn = p.pos();
    });
    all.connect([](const std::tuple<int, int, std::monostate>& results) {
        say("all() finished with", std::get<0>(results), "and", std::get<1>(results), "(and std::monostate for the delay)");
    });
    return all;
}

// Running the tour -------------------------------------------------------------

Player player;

using Section = kaa::InProgressRef (*)();
const Section sections[] = {
    callback_style,
    repeating_timer,
    [] { return signals(player); },
    [] { return waiting_for_a_signal(player); },
    abort_an_operation,
    unhandled_exceptions,
    coroutines,
    threads,
    waiting_for_several,
};

// Starts section `i`; when its operation has finished (either way), starts the
// next one. After the last one, stops the loop.
void run_sections_from(std::size_t i) {
    if (i == std::size(sections)) {
        section("10. Stop");
        say("stopping the loop");
        kaa::main_loop().stop();
        return;
    }
    kaa::InProgressRef operation = sections[i]();
    // The callback holds the handle, which keeps the operation alive until it
    // finishes (a signal's next() is held only weakly by the signal).
    operation.connect_finished([i, operation] { run_sections_from(i + 1); });
}

} // namespace

int main() {
    kaa::MainLoop loop; // The thread that creates the loop is the main thread.

    loop.signals().exception.connect([](std::exception_ptr error) {
        say("exception signal:", kaa::describe(error));
    });
    loop.signals().shutdown.connect([] { say("shutdown signal"); });

    loop.post([] { run_sections_from(0); });
    loop.run(); // Returns after stop().
    say("run() returned; the tour is over");
    return 0;
}
