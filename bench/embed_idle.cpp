// Idle cost of guest mode: how often the process wakes up while nothing
// happens, with kaa attached to a GLib loop, against the bare GLib loop.
//
// Each case runs a GLib main loop for an idle period (2 s; --quick: 0.2 s)
// and counts the process's voluntary context switches (getrusage ru_nvcsw,
// all threads): every sleep-and-wake of any thread is one. Cases:
//   bare GLib         g_main_loop_run with nothing but the quit timeout
//   kaa attached      the same with a kaa::glib::Guest, a kaa Timer of 10 s
//                     pending and a thread pool with an idle worker
//   polling (10 ms)   what embeddings without a guest mode do: a GLib
//                     timeout that steps kaa every 10 ms (for scale)
// Prints a Markdown table with the ratio to the bare loop. Not a test: the
// numbers depend on the machine; the claim is "kaa attached ≈ bare".
#include <sys/resource.h>

#include <glib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include <kaa/glib.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

namespace {

struct Count {
    long voluntary;
    long involuntary;
};

Count switches() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return {ru.ru_nvcsw, ru.ru_nivcsw};
}

// Runs GLib's default context idle for `ms`; returns the switches it cost.
Count idle_glib(guint ms) {
    GMainLoop* gloop = g_main_loop_new(nullptr, FALSE);
    g_timeout_add(
        ms,
        [](gpointer l) -> gboolean {
            g_main_loop_quit(static_cast<GMainLoop*>(l));
            return G_SOURCE_REMOVE;
        },
        gloop);
    Count before = switches();
    g_main_loop_run(gloop);
    Count after = switches();
    g_main_loop_unref(gloop);
    return {after.voluntary - before.voluntary, after.involuntary - before.involuntary};
}

// A kaa loop in use: a timer not yet due and a pool whose worker is idle.
struct BusyLoop {
    kaa::MainLoop loop;
    kaa::Timer timer{[] {}};
    BusyLoop() {
        timer.start(std::chrono::seconds(10));
        auto job = kaa::threaded([] { return 1; });
        job.wait(); // the worker thread now exists and idles
    }
    ~BusyLoop() { loop.shutdown(); }
};

} // namespace

int main(int argc, char** argv) {
    bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    guint ms = quick ? 200 : 2000;

    idle_glib(50); // warm-up: GLib's lazily created state
    Count bare = idle_glib(ms);

    Count attached;
    {
        BusyLoop busy;
        kaa::glib::Guest guest(busy.loop);
        idle_glib(50);
        attached = idle_glib(ms);
    }

    Count polling;
    {
        BusyLoop busy;
        guint id = g_timeout_add(
            10,
            [](gpointer l) -> gboolean {
                static_cast<kaa::MainLoop*>(l)->step(kaa::Duration::zero());
                return G_SOURCE_CONTINUE;
            },
            &busy.loop);
        polling = idle_glib(ms);
        g_source_remove(id);
    }

    auto ratio = [&](const Count& c) {
        return bare.voluntary > 0 ? static_cast<double>(c.voluntary) / static_cast<double>(bare.voluntary)
                                  : static_cast<double>(c.voluntary);
    };
    std::printf("\n### Idle wake-ups, %u ms idle (voluntary context switches, all threads)\n\n", ms);
    std::printf("| Case | voluntary | involuntary | ratio to bare GLib |\n|---|---:|---:|---:|\n");
    std::printf("| bare GLib loop | %ld | %ld | 1.00 |\n", bare.voluntary, bare.involuntary);
    std::printf("| kaa attached (kaa::glib::Guest, 10 s timer pending, idle pool thread) | %ld | %ld | %.2f |\n",
                attached.voluntary, attached.involuntary, ratio(attached));
    std::printf("| polling kaa from a 10 ms GLib timeout (no guest mode) | %ld | %ld | %.2f |\n",
                polling.voluntary, polling.involuntary, ratio(polling));
    if (bare.voluntary == 0)
        std::printf("\n(the bare loop did not switch at all; ratios are absolute counts)\n");
    return 0;
}
