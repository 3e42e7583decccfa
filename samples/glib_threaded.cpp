// SPDX-License-Identifier: BSL-1.0
// kaa's threaded mode with a GLib main loop: a kaa thread does the waiting
// and hands each dispatch to the GLib thread through a GSource, the way any
// host with a thread-safe "call this on your thread" works. (GLib can also
// take kaa as a guest, which is the better choice for GLib itself; this
// program shows the threaded arrangement with a host everyone has.)
//
// doc/embedding.md quotes this program.

#include <iostream>
#include <string>
#include <thread>
#include <utility>

#include <glib.h>

#include <kaa/coroutine.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/threaded_host.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;

namespace {

// Queues `task` on `context`'s thread at `priority`. g_source_attach is
// thread-safe and wakes the context. (Not g_main_context_invoke: it runs the
// function at once, on the calling thread, when it can acquire the context.)
void invoke_on(GMainContext* context, kaa::HostTask task, int priority) {
    GSource* source = g_idle_source_new();
    g_source_set_priority(source, priority);
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
            (*static_cast<kaa::HostTask*>(data))();
            return G_SOURCE_REMOVE;
        },
        new kaa::HostTask(std::move(task)), [](gpointer data) { delete static_cast<kaa::HostTask*>(data); });
    g_source_attach(source, context);
    g_source_unref(source);
}

} // namespace

int main() {
    std::cout << std::boolalpha;
    GMainLoop* glib_loop = g_main_loop_new(nullptr, FALSE); // the default context
    const auto glib_thread = std::this_thread::get_id();

    kaa::MainLoop loop; // created on the GLib thread: kaa's callbacks run there
    kaa::ThreadedHostOptions options;
    options.invoke_idle = [](kaa::HostTask task) { // time slices: below GLib's events and redraws
        invoke_on(nullptr, std::move(task), G_PRIORITY_DEFAULT_IDLE);
    };
    options.quit = [glib_loop] { g_main_loop_quit(glib_loop); }; // what loop.stop() does
    kaa::ThreadedHost host(
        loop, [](kaa::HostTask task) { invoke_on(nullptr, std::move(task), G_PRIORITY_DEFAULT); },
        std::move(options));

    auto work = kaa::coroutine([&] {
        kaa::this_coroutine::await(kaa::delay(20ms));
        auto text = kaa::this_coroutine::await(kaa::threaded([] { return std::string("made in a worker"); }));
        std::cout << text << "; on the GLib thread: " << (std::this_thread::get_id() == glib_thread) << '\n';
        for (int i = 0; i < 3; ++i)
            kaa::this_coroutine::yield(); // each slice is a G_PRIORITY_DEFAULT_IDLE source
        return text.size();
    });
    work.connect([&loop](std::size_t n) {
        std::cout << "coroutine finished: " << n << '\n';
        loop.stop(); // calls options.quit on this thread
    });

    g_main_loop_run(glib_loop);
    loop.shutdown();
    g_main_loop_unref(glib_loop);
    std::cout << "g_main_loop_run returned\n";
}
