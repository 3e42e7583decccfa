// GLib helpers shared by the tests that run a real GMainLoop (glib_test,
// threaded_host_test).
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

} // namespace kaa::test
