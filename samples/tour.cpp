// A tour of kaa for C++.
//
// Each section below is a small function that shows one part of the
// programming model and returns the operation it started, as an InProgress.
// main() runs the sections one after another on the main loop -- the next one
// starts when the previous operation has finished -- and stops the loop after
// the last one. The whole tour takes well under two seconds and prints what
// happens, with the time since the start.
//
// Build and run:  cmake --build build --target tour && build/samples/tour

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/signal.hpp>
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
    // Destroying a Timer stops it: keep this one alive until it is done.
    done.connect_finished([metronome] {});
    return done;
}

// 3. Signals -------------------------------------------------------------------
//
// emit() calls the connected slots at once, in connection order. A
// connect_once() slot is disconnected before its first call.

kaa::InProgressRef signals(Player& player) {
    section("3. Signals: connect() and connect_once()");
    player.song_changed.connect([](const std::string& title) { say("display shows", title); });
    player.song_changed.connect_once([](const std::string& title) { say("first song only:", title); });
    say("slots connected:", player.song_changed.count());
    player.song_changed.emit("Intro");
    player.song_changed.emit("Second song");
    say("slots left:", player.song_changed.count());
    return kaa::make_finished<void>();
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
};

// Starts section `i`; when its operation has finished (either way), starts the
// next one. After the last one, stops the loop.
void run_sections_from(std::size_t i) {
    if (i == std::size(sections)) {
        section("7. Stop");
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
