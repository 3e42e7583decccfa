// SPDX-License-Identifier: BSL-1.0
// Events (kaa.event): named notifications posted from anywhere and delivered
// at the end of a loop iteration to the handlers registered for them.
//
// doc/events.md quotes this program.

#include <iostream>
#include <string>
#include <thread>

#include <kaa/event.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;

int main() {
    kaa::MainLoop loop;

    // A handler for two events, and one for every event.
    kaa::EventHandler player([](const kaa::Event& e) {
        if (e == "volume")
            std::cout << "player: volume " << e.arg<int>() << std::endl;
        else
            std::cout << "player: " << e.name() << std::endl;
    });
    player.register_for({"play", "volume"});
    kaa::EventHandler logger([](const kaa::Event& e) { std::cout << "log: " << e.name() << std::endl; });
    logger.register_for();

    // A handler returning an InProgress holds back the rest of the dispatch.
    kaa::EventHandler fader([](const kaa::Event&) {
        std::cout << "fader: fading out" << std::endl;
        return kaa::delay(20ms);
    });
    fader.register_for({"stop"});

    kaa::Event("play").post();
    kaa::Event("volume").post(80);
    kaa::Event("stop").post();
    std::cout << "posted; nothing delivered yet" << std::endl;

    // From another thread: post() wakes the loop.
    std::thread remote([] { kaa::Event("quit").post(); });
    kaa::EventHandler quit([&loop](const kaa::Event&) { loop.stop(); });
    quit.register_for({"quit"});

    loop.run();
    remote.join();
    std::cout << "done" << std::endl;
}
