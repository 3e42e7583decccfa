// SPDX-License-Identifier: BSL-1.0
#include "kaa/glib.hpp"

#include <exception>
#include <utility>

#include "kaa/errors.hpp"

namespace kaa::glib {

struct Guest::State {
    MainLoop* loop = nullptr;
    GMainContext* context = nullptr; // referenced and acquired while attached
    GMainLoop* main_loop = nullptr;  // referenced, or null
    GSource* events = nullptr;
    GSource* continuations = nullptr;
    gpointer fd_tag = nullptr;

    // Runs one kaa iteration for a GLib dispatch. Exceptions must not cross
    // GLib's C frames; step() reports what callbacks throw itself, so only
    // the loop's own failures (allocation) arrive here.
    void dispatch() noexcept {
        if (!loop)
            return;
        try {
            loop->step(Duration::zero());
        } catch (...) {
            loop->handle_exception(std::current_exception(), "GLib dispatch");
        }
    }

    void remove_sources() noexcept {
        for (GSource** s : {&events, &continuations}) {
            if (*s) {
                g_source_destroy(*s);
                g_source_unref(*s);
                *s = nullptr;
            }
        }
    }

    // Everything but the loop: used by detach() and when the loop goes first.
    void release_glib() noexcept {
        remove_sources();
        if (context) {
            g_main_context_release(context);
            g_main_context_unref(context);
            context = nullptr;
        }
        if (main_loop) {
            g_main_loop_unref(main_loop);
            main_loop = nullptr;
        }
    }
};

namespace {

struct KaaSource {
    GSource base;
    Guest::State* state;
};

Guest::State& state_of(GSource* s) { return *reinterpret_cast<KaaSource*>(s)->state; }

// The event source: ready when Asio's epoll fd is readable (timers, I/O,
// Asio's own wake-ups) or work was posted from other threads (the loop's
// wake-up hook made GLib iterate, and prepare() sees it). No timeout: the fd
// carries every deadline, so GLib's poll() sleeps until something happens.
gboolean events_prepare(GSource* s, gint* timeout) {
    *timeout = -1;
    Guest::State& st = state_of(s);
    return st.loop && st.loop->has_posted_work();
}

gboolean events_check(GSource* s) {
    Guest::State& st = state_of(s);
    if (!st.loop)
        return FALSE;
    // Any condition other than G_IO_IN would mean the epoll fd itself broke;
    // dispatching then lets Asio see (and report) it instead of spinning.
    if (g_source_query_unix_fd(s, st.fd_tag) != 0)
        return TRUE;
    return st.loop->has_posted_work();
}

// The continuation source: ready while the loop has work queued for its next
// iteration (time slices, callbacks posted from the loop thread).
gboolean continuations_prepare(GSource* s, gint* timeout) {
    *timeout = -1;
    Guest::State& st = state_of(s);
    return st.loop && st.loop->has_ready_work();
}

gboolean continuations_check(GSource* s) {
    Guest::State& st = state_of(s);
    return st.loop && st.loop->has_ready_work();
}

gboolean kaa_dispatch(GSource* s, GSourceFunc, gpointer) {
    state_of(s).dispatch();
    return G_SOURCE_CONTINUE;
}

GSourceFuncs g_events_funcs = {events_prepare, events_check, kaa_dispatch, nullptr, nullptr, nullptr};
GSourceFuncs g_continuations_funcs = {continuations_prepare, continuations_check, kaa_dispatch,
                                      nullptr, nullptr, nullptr};

GSource* make_source(GSourceFuncs* funcs, Guest::State* st, const char* name, int priority) {
    GSource* s = g_source_new(funcs, sizeof(KaaSource));
    reinterpret_cast<KaaSource*>(s)->state = st;
    g_source_set_name(s, name);
    g_source_set_priority(s, priority);
    // kaa's step() is re-entrant (InProgress::wait nests it), so a nested
    // GLib iteration inside a kaa callback (a modal dialog's loop) keeps
    // kaa running instead of freezing it until the callback returns.
    g_source_set_can_recurse(s, TRUE);
    return s;
}

std::unique_ptr<Guest::State> attach_state(MainLoop& loop, GMainContext* context, GMainLoop* main_loop,
                                           Priorities priorities) {
    if (!loop.is_main_thread())
        throw WrongThread("kaa::glib::Guest: attach on the MainLoop's thread (the thread that created it), "
                          "which must be the thread that runs the GLib main loop");
    if (!context)
        context = g_main_context_default();
    // The guest dispatches kaa from GLib's callbacks, so GLib must iterate
    // this context on the loop thread; holding the context for the guest's
    // lifetime makes sure no other thread can.
    if (!g_main_context_acquire(context))
        throw WrongThread("kaa::glib::Guest: another thread owns this GMainContext; create the MainLoop on "
                          "the thread that runs the GLib main loop, or give the guest a context of its own");
    auto st = std::make_unique<Guest::State>();
    st->loop = &loop;
    st->context = g_main_context_ref(context);
    if (main_loop)
        st->main_loop = g_main_loop_ref(main_loop);
    Guest::State* raw = st.get();
    HostHooks hooks;
    // Thread-safe and non-blocking; the loop calls it under its queue lock
    // and clears it in detach_host(), before the context is unreferenced.
    hooks.wakeup = [context = st->context] { g_main_context_wakeup(context); };
    if (main_loop)
        hooks.quit = [raw] {
            if (raw->main_loop)
                g_main_loop_quit(raw->main_loop);
        };
    hooks.detached = [raw] {
        raw->loop = nullptr;
        raw->release_glib();
    };
    int fd;
    try {
        fd = loop.attach_host(std::move(hooks));
    } catch (...) {
        raw->loop = nullptr;
        raw->release_glib();
        throw;
    }
    st->events = make_source(&g_events_funcs, raw, "kaa events", priorities.events);
    st->fd_tag = g_source_add_unix_fd(st->events, fd, G_IO_IN);
    st->continuations = make_source(&g_continuations_funcs, raw, "kaa continuations", priorities.continuations);
    g_source_attach(st->events, context);
    g_source_attach(st->continuations, context);
    return st;
}

} // namespace

Guest::Guest(MainLoop& loop, GMainContext* context, Priorities priorities)
    : state_(attach_state(loop, context, nullptr, priorities)) {}

Guest::Guest(MainLoop& loop, GMainLoop* main_loop, Priorities priorities)
    : state_(attach_state(loop, main_loop ? g_main_loop_get_context(main_loop) : nullptr, main_loop,
                          priorities)) {}

Guest::~Guest() { detach(); }

Guest::Guest(Guest&& other) noexcept = default;

Guest& Guest::operator=(Guest&& other) noexcept {
    if (this != &other) {
        detach();
        state_ = std::move(other.state_);
    }
    return *this;
}

void Guest::detach() noexcept {
    if (!state_ || !state_->loop)
        return;
    MainLoop& loop = *state_->loop;
    if (!loop.is_main_thread()) {
        loop.handle_exception(std::make_exception_ptr(WrongThread(
                                  "kaa::glib::Guest::detach(): detach on the loop thread; nothing was detached")),
                              "kaa::glib::Guest");
        return;
    }
    // The loop first: it drops the wake-up hook (which points at the
    // context) under its queue lock, so no worker calls into GLib after this.
    // Then the sources see a null loop until they are gone.
    state_->loop = nullptr;
    loop.detach_host();
    state_->release_glib();
}

bool Guest::attached() const noexcept { return state_ && state_->loop; }

GMainContext* Guest::context() const noexcept { return state_ ? state_->context : nullptr; }

Guest attach(MainLoop& loop, GMainContext* context, Priorities priorities) {
    return Guest(loop, context, priorities);
}

Guest attach(MainLoop& loop, GMainLoop* main_loop, Priorities priorities) {
    return Guest(loop, main_loop, priorities);
}

} // namespace kaa::glib
