// SPDX-License-Identifier: BSL-1.0
// kaa inside a Qt console program: QCoreApplication::exec() is the only loop,
// and it runs kaa's timers, a coroutine and a threaded job beside a QTimer.
// kaa's loop.stop() ends it. By default kaa is Qt's guest (Qt waits on kaa's
// fds); with --threaded a kaa thread does the waiting and posts each dispatch
// to Qt's thread instead.
//
// doc/embedding.md quotes this program. Build with kaa::qt; like any program
// that mixes Qt with Boost.Signals2-style signals, it is compiled with
// QT_NO_KEYWORDS (Qt's `emit` macro would rewrite kaa's Signal::emit()).

#include <cstdint>
#include <iostream>
#include <optional>
#include <string_view>

#include <kaa/coroutine.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/qt.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

#include <QCoreApplication>
#include <QThread>
#include <QTimer>

using namespace std::chrono_literals;

namespace {

// Blocking work, for a worker thread.
std::uint64_t count_primes(std::uint64_t below) {
    std::uint64_t n = 0;
    for (std::uint64_t i = 2; i < below; ++i) {
        bool prime = true;
        for (std::uint64_t d = 2; d * d <= i && prime; ++d)
            prime = i % d != 0;
        n += prime;
    }
    return n;
}

bool on_qt_thread() { return QThread::currentThread() == QCoreApplication::instance()->thread(); }

} // namespace

int main(int argc, char** argv) {
    const bool threaded_mode = argc > 1 && std::string_view(argv[1]) == "--threaded";
    std::cout << std::boolalpha;

    QCoreApplication app(argc, argv);
    kaa::MainLoop loop; // this thread is kaa's main thread -- and Qt's
    std::optional<kaa::qt::Guest> guest;
    std::optional<kaa::qt::ThreadedHost> threaded_host;
    if (threaded_mode)
        threaded_host.emplace(loop); // a kaa thread waits, Qt's thread dispatches
    else
        guest.emplace(loop); // Qt waits on kaa's fds and dispatches
    std::cout << (threaded_mode ? "threaded mode" : "guest mode") << '\n';

    // A kaa timer and a Qt timer in the same event loop.
    kaa::OneShotTimer kaa_timer([] { std::cout << "kaa timer, on the Qt thread: " << on_qt_thread() << '\n'; });
    kaa_timer.start(10ms);
    QTimer::singleShot(30, [] { std::cout << "Qt timer\n"; });

    // A coroutine waits on a delay and a threaded job; Qt keeps running.
    auto primes = kaa::coroutine([] {
        kaa::this_coroutine::await(kaa::delay(60ms));
        std::cout << "coroutine: counting primes in a worker thread\n";
        auto n = kaa::this_coroutine::await(kaa::threaded(count_primes, std::uint64_t{100000}));
        std::cout << "coroutine: back on the Qt thread: " << on_qt_thread() << '\n';
        return n;
    });
    primes.connect([&loop](std::uint64_t n) {
        std::cout << n << " primes below 100000\n";
        loop.stop(); // quits app.exec()
    });

    const int rc = QCoreApplication::exec();
    // Detach from Qt, then shut kaa down while Qt still exists.
    guest.reset();
    threaded_host.reset();
    loop.shutdown();
    std::cout << "app.exec() returned " << rc << '\n';
    return rc;
}
