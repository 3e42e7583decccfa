// SPDX-License-Identifier: BSL-1.0
#include "kaa/qt.hpp"

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include <sys/eventfd.h>
#include <unistd.h>

#include <QAbstractEventDispatcher>
#include <QCoreApplication>
#include <QEvent>
#include <QObject>
#include <QSocketNotifier>
#include <QThread>

#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded_host.hpp"
#include "tsan_handoff.hpp"

namespace kaa::qt {

namespace {

QEvent::Type call_event_type() {
    static const auto type = static_cast<QEvent::Type>(QEvent::registerEventType());
    return type;
}

using Call = detail::UniqueFunction<void()>;

// Carries a function to the thread of the object it is posted to. Posted
// from kaa's waiting thread in threaded mode: Qt's queue orders the two
// threads, which TSan cannot see inside Qt (tsan_handoff.hpp).
class CallEvent final : public QEvent {
public:
    explicit CallEvent(Call fn) : QEvent(call_event_type()), fn_(std::move(fn)) { detail::handoff_release(); }
    void run() { fn_(); }

private:
    Call fn_;
};

// Runs the CallEvents posted to it. It has no signals or slots of its own, so
// it needs no Q_OBJECT and no moc. Deleting it drops the events still queued
// for it (~QObject removes them), which is how a Guest or ThreadedHost that
// goes away cancels its pending dispatches.
class Receiver final : public QObject {
public:
    bool event(QEvent* e) override {
        detail::handoff_acquire(); // before reading the event
        if (e->type() != call_event_type())
            return QObject::event(e);
        static_cast<CallEvent*>(e)->run();
        return true;
    }
};

void post_call(QObject* receiver, Call fn, Qt::EventPriority priority) {
    QCoreApplication::postEvent(receiver, new CallEvent(std::move(fn)), priority);
}

void check_host_thread(MainLoop& loop, const char* who) {
    if (!loop.is_main_thread())
        throw WrongThread(std::string(who) +
                          " must be created on the loop thread (the thread that created the MainLoop), "
                          "and that thread must run the Qt event loop (app.exec() or QThread::exec())");
    if (!QCoreApplication::instance())
        throw UsageError(std::string(who) + " needs a QCoreApplication (or QGuiApplication/QApplication): "
                                            "create it before attaching kaa to Qt");
    if (!QAbstractEventDispatcher::instance())
        throw UsageError(std::string(who) + " needs a Qt event dispatcher on the loop thread: use it on the "
                                            "application's thread, or inside a running QThread");
}

// What loop.stop() does with GuestOptions::quit_on_stop: end the event loop
// that drives kaa, whichever thread it runs on.
void quit_qt_loop() {
    QCoreApplication* app = QCoreApplication::instance();
    if (app && app->thread() == QThread::currentThread())
        QCoreApplication::exit(0);
    else
        QThread::currentThread()->exit(0);
}

// The eventfd that posts from other threads write to (through the loop's
// wakeup hook). Shared with the hook, so that a hook call racing with the
// Guest's destruction still writes to a valid fd.
struct WakeFd {
    int fd;
    WakeFd() : fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd < 0)
            throw std::system_error(errno, std::generic_category(), "kaa::qt::Guest: eventfd");
    }
    ~WakeFd() { ::close(fd); }
    WakeFd(const WakeFd&) = delete;
    WakeFd& operator=(const WakeFd&) = delete;

    void signal() const noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(fd, &one, sizeof one); // EAGAIN: already readable
    }
    void drain() const noexcept {
        std::uint64_t value;
        [[maybe_unused]] auto n = ::read(fd, &value, sizeof value);
    }
};

} // namespace

// --- Guest ---------------------------------------------------------------------

struct Guest::Impl {
    MainLoop& loop;
    // Members are destroyed bottom-up: the notifiers go before the receiver
    // and the eventfd they watch.
    std::shared_ptr<WakeFd> wake = std::make_shared<WakeFd>();
    Receiver receiver;
    std::unique_ptr<QSocketNotifier> io_notifier;
    std::unique_ptr<QSocketNotifier> wake_notifier;
    bool continuation_queued = false;
    bool loop_gone = false; // the MainLoop was destroyed while attached
    // Set by the destructor for the innermost dispatch() running: a kaa
    // callback may destroy the Guest, and the dispatch frames below it must
    // then not touch it again.
    bool* destroyed_flag = nullptr;

    explicit Impl(MainLoop& l) : loop(l) {}
    ~Impl() {
        if (destroyed_flag)
            *destroyed_flag = true;
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    void queue_continuation(Qt::EventPriority priority) {
        continuation_queued = true;
        post_call(
            &receiver,
            [this] {
                continuation_queued = false;
                if (!loop_gone)
                    dispatch();
            },
            priority);
    }

    // One non-blocking loop iteration, then, if work is left that no fd will
    // announce (time slices, posts made on the loop thread), a posted event
    // for the next one. Low priority for pure time slicing: Qt delivers the
    // events already queued first, and an event posted while Qt delivers
    // events waits for its next round, so timers, sockets, input and paint
    // get their turn between two slices.
    void dispatch() {
        bool destroyed = false;
        bool* const outer = std::exchange(destroyed_flag, &destroyed);
        try {
            loop.step(Duration::zero());
        } catch (...) {
            // step() throws only on misuse; never let it unwind into Qt.
            loop.handle_exception(std::current_exception(), "kaa::qt::Guest dispatch");
        }
        if (destroyed) { // by a callback; tell the dispatch this one is nested in
            if (outer)
                *outer = true;
            return;
        }
        destroyed_flag = outer;
        if (continuation_queued || !loop.has_ready_work())
            return;
        queue_continuation(loop.has_posted_work() ? Qt::NormalEventPriority : Qt::LowEventPriority);
    }
};

Guest::Guest(MainLoop& loop, GuestOptions options) {
    check_host_thread(loop, "kaa::qt::Guest");
    impl_ = std::make_unique<Impl>(loop);
    Impl& im = *impl_;

    HostHooks hooks;
    hooks.wakeup = [wake = im.wake] { wake->signal(); };
    if (options.quit_on_stop)
        hooks.quit = [] { quit_qt_loop(); };
    // The MainLoop destroyed before the Guest: stop watching its fd, drop
    // what is queued, and leave the loop alone from then on.
    hooks.detached = [&im] {
        im.io_notifier.reset();
        im.wake_notifier.reset();
        im.loop_gone = true;
    };
    const int fd = loop.attach_host(std::move(hooks));
    try {
        im.io_notifier = std::make_unique<QSocketNotifier>(fd, QSocketNotifier::Read);
        QObject::connect(im.io_notifier.get(), &QSocketNotifier::activated, &im.receiver,
                         [&im] { im.dispatch(); });
        im.wake_notifier = std::make_unique<QSocketNotifier>(im.wake->fd, QSocketNotifier::Read);
        QObject::connect(im.wake_notifier.get(), &QSocketNotifier::activated, &im.receiver, [&im] {
            im.wake->drain();
            im.dispatch();
        });
    } catch (...) {
        loop.detach_host();
        throw;
    }
    // Work that is already queued (posted before the Guest existed) would
    // otherwise wait for the first fd event.
    if (loop.has_ready_work())
        im.queue_continuation(Qt::NormalEventPriority);
}

Guest::~Guest() {
    impl_->io_notifier.reset();
    impl_->wake_notifier.reset();
    if (!impl_->loop_gone)
        impl_->loop.detach_host();
}

MainLoop& Guest::loop() const noexcept { return impl_->loop; }

// --- ThreadedHost --------------------------------------------------------------

struct ThreadedHost::Impl {
    // The host is destroyed (its thread joined) before the receiver it posts to.
    Receiver receiver;
    std::optional<kaa::ThreadedHost> host;
};

ThreadedHost::ThreadedHost(MainLoop& loop, GuestOptions options) {
    check_host_thread(loop, "kaa::qt::ThreadedHost");
    impl_ = std::make_unique<Impl>();
    Receiver* receiver = &impl_->receiver;
    ThreadedHostOptions host_options;
    host_options.invoke_idle = [receiver](HostTask task) {
        post_call(receiver, [t = std::move(task)]() mutable { t(); }, Qt::LowEventPriority);
    };
    if (options.quit_on_stop)
        host_options.quit = [] { quit_qt_loop(); };
    impl_->host.emplace(
        loop,
        [receiver](HostTask task) {
            post_call(receiver, [t = std::move(task)]() mutable { t(); }, Qt::NormalEventPriority);
        },
        std::move(host_options));
}

ThreadedHost::~ThreadedHost() = default;

MainLoop& ThreadedHost::loop() const noexcept { return impl_->host->loop(); }

} // namespace kaa::qt
