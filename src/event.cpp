// SPDX-License-Identifier: BSL-1.0
// The event dispatcher: kaa's EventManager, a serialized dispatch that runs
// from the loop's `step` emission.
#include "kaa/event.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "kaa/errors.hpp"
#include "kaa/main_loop.hpp"

namespace kaa {
namespace detail {
namespace {

// Loop thread only, so no lock. The handler list is process-wide (handlers
// outlive loops, as kaa's do); the delivery state belongs to one run of one
// loop and is reset by a shutdown hook.
struct EventManager {
    std::vector<std::shared_ptr<EventHandlerCore>> handlers; // registration order
    MainLoop* loop = nullptr;                                // the loop the delivery state is for
    std::deque<Event> pending;                               // posted, for the next `step` emission
    Connection step_slot;
    std::deque<Event> queue; // delivered, waiting for their dispatch
    std::optional<Event> current;
    std::vector<std::shared_ptr<EventHandlerCore>> snapshot;
    std::size_t next = 0;
    bool waiting = false;     // a handler's InProgress holds the dispatch
    bool dispatching = false; // guards against re-entry from a nested step()
    std::uint64_t generation = 0;
};

EventManager& manager() {
    static EventManager m;
    return m;
}

void reset_delivery(EventManager& m) {
    m.step_slot.disconnect();
    m.pending.clear();
    m.queue.clear();
    m.current.reset();
    m.snapshot.clear();
    m.next = 0;
    m.waiting = false;
    m.loop = nullptr;
    ++m.generation;
}

void require_loop_thread(const char* what) {
    if (!kaa::is_main_thread())
        throw WrongThread(std::string(what) + " must be called on the loop thread");
}

bool matches(const EventHandlerCore& h, const std::string& name) {
    return h.names.empty() || std::find(h.names.begin(), h.names.end(), name) != h.names.end();
}

void report_failure(std::exception_ptr e, const std::string& name) {
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted&) {
        return; // an aborted handler only ends the event's dispatch
    } catch (...) {
    }
    if (MainLoop* loop = MainLoop::current_or_null())
        loop->report(std::move(e), "event handler for \"" + name + "\"");
}

void dispatch(EventManager& m);

// The InProgress a handler returned has finished: its failure ends the
// event's dispatch, then the dispatch goes on.
void resume(const InProgressRef& ip, std::uint64_t generation) {
    EventManager& m = manager();
    if (m.generation != generation)
        return; // the loop shut down meanwhile
    m.waiting = false;
    if (ip.failed()) {
        report_failure(ip.exception(), m.current->name());
        m.current.reset();
    }
    dispatch(m);
}

void dispatch(EventManager& m) {
    if (m.dispatching)
        return;
    m.dispatching = true;
    while (!m.waiting) {
        if (!m.current) {
            if (m.queue.empty())
                break;
            m.current.emplace(std::move(m.queue.front()));
            m.queue.pop_front();
            m.snapshot = m.handlers;
            m.next = 0;
        }
        if (m.next == m.snapshot.size()) {
            m.current.reset();
            continue;
        }
        std::shared_ptr<EventHandlerCore> h = m.snapshot[m.next++];
        if (!h->registered || !matches(*h, m.current->name()))
            continue;
        std::shared_ptr<void> owner;
        if (h->weak && !(owner = h->owner.lock())) {
            unregister_event_handler(*h);
            continue;
        }
        InProgressRef ip;
        try {
            ip = h->fn(*m.current);
        } catch (...) {
            report_failure(std::current_exception(), m.current->name());
            m.current.reset();
            continue;
        }
        if (!ip.valid())
            continue;
        if (!ip.finished()) {
            m.waiting = true;
            std::weak_ptr<StateBase> weak = ip.state();
            const std::uint64_t generation = m.generation;
            ip.connect_finished([weak, generation] {
                if (auto s = weak.lock())
                    resume(InProgressRef(std::move(s)), generation);
            });
            break;
        }
        if (ip.failed()) {
            report_failure(ip.exception(), m.current->name());
            m.current.reset();
        }
    }
    m.dispatching = false;
}

void deliver() {
    EventManager& m = manager();
    while (!m.pending.empty()) {
        m.queue.push_back(std::move(m.pending.front()));
        m.pending.pop_front();
    }
    dispatch(m);
}

void enqueue(MainLoop& loop, Event e) {
    EventManager& m = manager();
    if (m.loop != &loop) {
        reset_delivery(m);
        m.loop = &loop;
        add_shutdown_hook(loop, [] { reset_delivery(manager()); });
    }
    m.pending.push_back(std::move(e));
    if (!m.step_slot.connected()) {
        // Connected during a `step` emission, it runs in the next one.
        m.step_slot = loop.signals().step.connect_once([] { deliver(); });
        // Make sure that iteration comes: the loop must not sleep on an
        // event that is only waiting for the end of an iteration.
        loop.post([] {});
    }
}

} // namespace

void register_event_handler(const std::shared_ptr<EventHandlerCore>& core, std::vector<std::string> names) {
    require_loop_thread("EventHandler::register_for()");
    core->names = std::move(names);
    if (core->registered)
        return;
    core->registered = true;
    manager().handlers.push_back(core);
}

void unregister_event_handler(EventHandlerCore& core) noexcept {
    if (!core.registered)
        return;
    core.registered = false;
    auto& hs = manager().handlers;
    std::erase_if(hs, [&core](const std::shared_ptr<EventHandlerCore>& h) { return h.get() == &core; });
}

} // namespace detail

void Event::post() const {
    MainLoop& loop = MainLoop::current();
    if (loop.is_main_thread()) {
        detail::enqueue(loop, *this);
        return;
    }
    loop.post([e = *this]() mutable {
        if (MainLoop* l = MainLoop::current_or_null())
            detail::enqueue(*l, std::move(e));
    });
}

} // namespace kaa
