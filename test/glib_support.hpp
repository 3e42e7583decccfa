// SPDX-License-Identifier: BSL-1.0
// GLib helpers shared by the tests that run a real GMainLoop (glib_test,
// threaded_host_test): the host application's callbacks, and running a
// GMainLoop with a fail-safe.
#pragma once

#include <glib.h>

#include <functional>
#include <utility>
#include <vector>

namespace kaa::test {

/// Callbacks a test queues on a GMainContext as idle sources, the way a host
/// application's own code would run. The ones that never ran refer to a
/// finished test's locals: they are dropped with this object (or clear()).
class GlibCallbacks {
public:
    GlibCallbacks() = default;
    GlibCallbacks(const GlibCallbacks&) = delete;
    GlibCallbacks& operator=(const GlibCallbacks&) = delete;
    ~GlibCallbacks() { clear(); }

    /// Queues `fn` on `context` (nullptr: the default context).
    void post(GMainContext* context, std::function<void()> fn, int priority = G_PRIORITY_DEFAULT_IDLE) {
        GSource* source = g_idle_source_new();
        g_source_set_priority(source, priority);
        g_source_set_callback(
            source,
            [](gpointer data) -> gboolean {
                (*static_cast<std::function<void()>*>(data))();
                return G_SOURCE_REMOVE;
            },
            new std::function<void()>(std::move(fn)),
            [](gpointer data) { delete static_cast<std::function<void()>*>(data); });
        g_source_attach(source, context);
        sources_.push_back(source); // our reference: destroy() below is safe after it ran
    }

    void clear() {
        for (GSource* s : sources_) {
            g_source_destroy(s);
            g_source_unref(s);
        }
        sources_.clear();
    }

private:
    std::vector<GSource*> sources_;
};

/// Runs `loop` until something quits it; false if the 30 s fail-safe had to
/// (it bounds a hang; it is not a timing check). A loop on a context of its
/// own runs with that context pushed as the thread's default, as an
/// application's worker loop would.
inline bool run_glib_loop(GMainLoop* loop) {
    GMainContext* context = g_main_loop_get_context(loop);
    struct Failsafe {
        GMainLoop* loop;
        bool fired = false;
    } failsafe{loop};
    GSource* source = g_timeout_source_new_seconds(30);
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
            auto* f = static_cast<Failsafe*>(data);
            f->fired = true;
            g_main_loop_quit(f->loop);
            return G_SOURCE_REMOVE;
        },
        &failsafe, nullptr);
    g_source_attach(source, context);
    const bool own_context = context != g_main_context_default();
    if (own_context)
        g_main_context_push_thread_default(context);
    g_main_loop_run(loop);
    if (own_context)
        g_main_context_pop_thread_default(context);
    g_source_destroy(source);
    g_source_unref(source);
    return !failsafe.fired;
}

} // namespace kaa::test
