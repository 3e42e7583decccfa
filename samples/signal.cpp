// SPDX-License-Identifier: BSL-1.0
// kaa::Signal: connection kinds, emission order, deferred emission and next().
//
// doc/signal.md quotes this program.

#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/signal.hpp>

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

void on_volume(int level) { say("on_volume:", level); }

void connection_kinds() {
    say("\n-- connect, connect_first, connect_once --");
    kaa::Signal<void(int)> volume_changed;
    volume_changed.connect([](int v) { say("connect:", v); });
    volume_changed.connect_once([](int v) { say("connect_once:", v); });
    volume_changed.connect_first([](int v) { say("connect_first:", v); });
    volume_changed.connect(on_volume);
    volume_changed.emit(5);
    volume_changed.emit(6);
    volume_changed.disconnect(on_volume); // by function (or by Connection)
    volume_changed.emit(7);
    say("slots:", volume_changed.count());
}

struct Window {
    void show(const std::string& title) { say("window shows", title); }
};

void weak_connection() {
    say("\n-- connect_weak: the slot lives as long as its owner --");
    kaa::Signal<void(const std::string&)> title_changed;
    auto window = std::make_shared<Window>();
    title_changed.connect_weak(window, [w = window.get()](const std::string& t) { w->show(t); });
    title_changed.emit("Album");
    window.reset();
    title_changed.emit("Nobody sees this");
    say("slots after the window is gone:", title_changed.count());
}

void changed_signal() {
    say("\n-- changed(): slots come and go --");
    kaa::Signal<void()> clicked;
    clicked.changed().connect([](kaa::SignalChange c) {
        say(c == kaa::SignalChange::connected ? "a slot was connected" : "a slot was disconnected");
    });
    kaa::Connection c = clicked.connect([] {});
    c.disconnect();
}

void exceptions_in_slots() {
    say("\n-- an exception escaping a slot --");
    kaa::Signal<void()> clicked;
    clicked.connect([] { throw std::runtime_error("broken slot"); });
    clicked.connect([] { say("the next slot still runs"); });
    clicked.emit(); // The exception goes to the loop's `exception` signal.
}

void deferred_emission() {
    say("\n-- emit_deferred(): delivered by the loop, on the loop thread --");
    kaa::Signal<void(int)> progress;
    progress.connect([](int percent) { say("progress", percent, "on the main thread:", kaa::is_main_thread()); });
    std::thread worker([&progress] { progress.emit_deferred(50); });
    worker.join();
    say("emitted from a worker; not delivered yet");
    progress.emit_deferred(100);
    kaa::main_loop().step(); // One iteration delivers both, in order.
}

void waiting_with_next() {
    say("\n-- next(): the next emission as an InProgress --");
    kaa::Signal<void(int, const std::string&)> track_changed;
    kaa::InProgress<std::tuple<int, std::string>> next_track = track_changed.next();
    next_track.connect([](const std::tuple<int, std::string>& t) {
        say("next() finished: track", std::get<0>(t), std::get<1>(t));
    });
    track_changed.emit(2, "Second song");
    track_changed.emit(3, "Third song"); // next() saw only the first emission
    say("slots left:", track_changed.count());
}

} // namespace

int main() {
    kaa::MainLoop loop;
    loop.signals().exception.connect([](std::exception_ptr e) { say("exception signal:", kaa::describe(e)); });

    connection_kinds();
    weak_connection();
    changed_signal();
    exceptions_in_slots();
    deferred_emission();
    waiting_with_next();
    return 0;
}
