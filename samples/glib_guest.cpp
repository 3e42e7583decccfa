// SPDX-License-Identifier: BSL-1.0
// kaa inside a GLib main loop (guest mode): timers, a coroutine, a threaded
// job and GLib's own sources share one thread, and GLib does the waiting.
//
// doc/embedding.md quotes this program.

#include <glib.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <kaa/coroutine.hpp>
#include <kaa/glib.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

// A coroutine that waits on a kaa timer and on a worker thread, exactly as it
// would under kaa's own loop.
kaa::InProgress<int> fetch_answer() {
    return kaa::coroutine([] {
        kaa::this_coroutine::await(kaa::delay(20ms));
        say("coroutine: delay over; main thread:", kaa::is_main_thread());
        int answer = kaa::this_coroutine::await(kaa::threaded([] {
            std::this_thread::sleep_for(10ms); // blocking work, off the loop thread
            return 42;
        }));
        say("coroutine: the job returned", answer);
        return answer;
    });
}

} // namespace

int main() {
    // The thread that runs GLib's loop creates kaa's loop: it is kaa's main
    // thread, where every kaa callback runs.
    kaa::MainLoop loop;
    GMainLoop* gloop = g_main_loop_new(nullptr, FALSE);
    {
        // Attach to GLib's default context. Passing the GMainLoop makes
        // kaa's loop.stop() quit it.
        kaa::glib::Guest guest(loop, gloop);

        // GLib's own sources keep working beside kaa's.
        g_timeout_add(
            5,
            [](gpointer) -> gboolean {
                say("GLib timeout: main thread:", kaa::is_main_thread());
                return G_SOURCE_REMOVE;
            },
            nullptr);

        fetch_answer().connect([&loop](int answer) {
            say("callback: answer", answer, "- stopping");
            loop.stop(); // quits the GMainLoop
        });

        g_main_loop_run(gloop); // GLib drives kaa from here
        say("GLib loop returned");

        // What kaa's run() does at its end: abort what is still suspended,
        // stop thread pools, emit `shutdown`.
        loop.shutdown();
    } // ~Guest: the sources go, kaa's loop is standalone again
    g_main_loop_unref(gloop);
    say("kaa coroutines left:", kaa::active_coroutines());
}
