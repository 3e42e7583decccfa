// SPDX-License-Identifier: BSL-1.0
#include <optional>
#include <utility>

#include "kaa/glib.hpp"

namespace kaa::glib {

namespace {

// Queues `task` on `context`'s thread. g_source_attach is thread-safe and
// wakes the context; g_main_context_invoke is not usable here, as it runs the
// function at once on the calling thread whenever it can acquire the context.
void invoke_on(GMainContext* context, HostTask task, int priority) {
    GSource* source = g_idle_source_new();
    g_source_set_priority(source, priority);
    g_source_set_name(source, "kaa dispatch");
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
            (*static_cast<HostTask*>(data))();
            return G_SOURCE_REMOVE;
        },
        new HostTask(std::move(task)), [](gpointer data) { delete static_cast<HostTask*>(data); });
    g_source_attach(source, context);
    g_source_unref(source);
}

} // namespace

struct ThreadedHost::State {
    // Referenced for the host's lifetime; released after the waiting thread
    // (the only user of the invokers) is joined.
    GMainContext* context;
    GMainLoop* main_loop = nullptr;
    std::optional<kaa::ThreadedHost> host;

    State(GMainContext* c, GMainLoop* l)
        : context(g_main_context_ref(c ? c : g_main_context_default())), main_loop(l ? g_main_loop_ref(l) : nullptr) {}
    ~State() {
        host.reset();
        if (main_loop)
            g_main_loop_unref(main_loop);
        g_main_context_unref(context);
    }
    State(const State&) = delete;
    State& operator=(const State&) = delete;

    void start(MainLoop& loop, Priorities priorities) {
        GMainContext* c = context;
        ThreadedHostOptions options;
        options.invoke_idle = [c, p = priorities.continuations](HostTask t) { invoke_on(c, std::move(t), p); };
        if (main_loop)
            options.quit = [l = main_loop] { g_main_loop_quit(l); };
        host.emplace(
            loop, [c, p = priorities.events](HostTask t) { invoke_on(c, std::move(t), p); }, std::move(options));
    }
};

ThreadedHost::ThreadedHost(MainLoop& loop, GMainContext* context, Priorities priorities)
    : state_(std::make_unique<State>(context, nullptr)) {
    state_->start(loop, priorities);
}

ThreadedHost::ThreadedHost(MainLoop& loop, GMainLoop* main_loop, Priorities priorities)
    : state_(std::make_unique<State>(g_main_loop_get_context(main_loop), main_loop)) {
    state_->start(loop, priorities);
}

ThreadedHost::~ThreadedHost() = default;

MainLoop& ThreadedHost::loop() const noexcept { return state_->host->loop(); }

} // namespace kaa::glib
