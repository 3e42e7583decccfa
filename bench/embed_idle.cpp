// SPDX-License-Identifier: BSL-1.0
// Idle cost of guest mode: how often the process wakes up while nothing
// happens, with kaa attached to a GLib loop, against the bare GLib loop --
// and, when kaa::qt is built, to a Qt event loop (guest and threaded mode)
// against a bare QCoreApplication.
//
// Each case runs a GLib main loop for an idle period (2 s; --quick: 0.2 s)
// and counts the process's voluntary context switches (getrusage ru_nvcsw,
// all threads): every sleep-and-wake of any thread is one. Cases:
//   bare GLib         g_main_loop_run with nothing but the quit timeout
//   kaa attached      the same with a kaa::glib::Guest, a kaa Timer of 10 s
//                     pending and a thread pool with an idle worker
//   polling (10 ms)   what embeddings without a guest mode do: a GLib
//                     timeout that steps kaa every 10 ms (for scale)
//   bare Qt           QCoreApplication::exec with nothing but the quit timer
//   kaa Qt guest      the same with a kaa::qt::Guest and the busy loop above
//   kaa Qt threaded   the same with a kaa::qt::ThreadedHost (its waiting
//                     thread counts too)
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

#if KAA_EMBED_IDLE_QT
#include <kaa/qt.hpp>

#include <QCoreApplication>
#include <QTimer>
#endif

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

#if KAA_EMBED_IDLE_QT
// Runs the Qt event loop idle for `ms`; returns the switches it cost.
Count idle_qt(int ms) {
    QTimer::singleShot(ms, [] { QCoreApplication::exit(0); });
    Count before = switches();
    QCoreApplication::exec();
    Count after = switches();
    return {after.voluntary - before.voluntary, after.involuntary - before.involuntary};
}
#endif

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

#if KAA_EMBED_IDLE_QT
    Count qt_bare, qt_guest, qt_threaded;
    {
        int qargc = 1;
        char* qargv[] = {argv[0], nullptr};
        QCoreApplication app(qargc, qargv);
        idle_qt(50); // warm-up
        qt_bare = idle_qt(static_cast<int>(ms));
        {
            BusyLoop busy;
            kaa::qt::Guest guest(busy.loop);
            idle_qt(50);
            qt_guest = idle_qt(static_cast<int>(ms));
        }
        {
            BusyLoop busy;
            kaa::qt::ThreadedHost host(busy.loop);
            idle_qt(50);
            qt_threaded = idle_qt(static_cast<int>(ms));
        }
    }
    auto qt_ratio = [&](const Count& c) {
        return qt_bare.voluntary > 0 ? static_cast<double>(c.voluntary) / static_cast<double>(qt_bare.voluntary)
                                     : static_cast<double>(c.voluntary);
    };
    std::printf("\n| Case (Qt) | voluntary | involuntary | ratio to bare Qt |\n|---|---:|---:|---:|\n");
    std::printf("| bare QCoreApplication::exec | %ld | %ld | 1.00 |\n", qt_bare.voluntary, qt_bare.involuntary);
    std::printf("| kaa attached (kaa::qt::Guest, 10 s timer pending, idle pool thread) | %ld | %ld | %.2f |\n",
                qt_guest.voluntary, qt_guest.involuntary, qt_ratio(qt_guest));
    std::printf("| kaa threaded mode (kaa::qt::ThreadedHost, same) | %ld | %ld | %.2f |\n", qt_threaded.voluntary,
                qt_threaded.involuntary, qt_ratio(qt_threaded));
    if (qt_bare.voluntary == 0)
        std::printf("\n(the bare Qt loop did not switch at all; ratios are absolute counts)\n");
#endif
    return 0;
}
