// SPDX-License-Identifier: BSL-1.0
// Events (kaa.event): named notifications posted to the loop and delivered to
// every EventHandler registered for that name.
//
// An Event is a name and an optional argument; two events are equal when
// their names are. Event::post() queues a copy for delivery; an EventHandler
// calls its function with each delivered event it is registered for (all of
// them when registered with no names). Handlers that return an InProgress
// make the dispatch wait: events are a serialized stream, as kaa's
// EventManager (a synchronized coroutine) makes them.
//
// Guarantees:
//  * post() is safe from any thread and always wakes the loop (kaa's
//    main-thread post did not: decision 17). The event is delivered on the
//    loop thread at the end of an iteration, in the `step` emission, after
//    that iteration's timers, I/O and posted work: posted on the loop thread,
//    at the end of the current iteration (the next one when posted during a
//    dispatch, or outside any iteration); posted from another thread, at the
//    end of the iteration that receives it. Events are delivered in the
//    order they were posted.
//  * The handlers of an event run in registration order; the set is taken
//    when the event's dispatch begins (a handler registered meanwhile sees
//    the next event), and a handler unregistered or destroyed meanwhile is
//    no longer called.
//  * A handler that returns an unfinished InProgress holds back the event's
//    remaining handlers, and every later event, until it finishes; the rest
//    of the dispatch then runs from inside that finish.
//  * An exception escaping a handler (or the failure of the InProgress it
//    returned) is reported -- to the loop's `exception` signal, or stderr,
//    as MainLoop::report() does; it never stops the loop -- and the event's
//    remaining handlers are skipped. An InProgressAborted from an aborted
//    InProgress only skips them.
//  * EventHandler is an RAII handle: destroying it unregisters it. A
//    WeakEventHandler is not called once its owner object is gone, and the
//    owner is kept alive during each call.
//  * register_for(), unregister() and destruction belong on the loop thread
//    (or anywhere while no MainLoop exists). Events still queued when the
//    loop shuts down are dropped, as kaa drops its per-run `step` slots.
#pragma once

#include <any>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kaa/detail/function.hpp"
#include "kaa/in_progress.hpp"

namespace kaa {

/// A named notification with an optional argument (kaa's Event). Copyable,
/// and safe to copy to and post from any thread if its argument is.
class Event {
public:
    /// An event without an argument.
    explicit Event(std::string name) : name_(std::move(name)) {}
    /// An event carrying `arg` (several values: pass a tuple or a struct).
    template <class T>
    Event(std::string name, T arg) : name_(std::move(name)), arg_(std::move(arg)) {}

    const std::string& name() const noexcept { return name_; }
    /// Whether it carries an argument (kaa's `arg` is None otherwise).
    bool has_arg() const noexcept { return arg_.has_value(); }
    /// The argument. @throws std::bad_any_cast if it is not a T (or absent).
    template <class T>
    const T& arg() const {
        return std::any_cast<const T&>(arg_);
    }
    const std::any& any_arg() const noexcept { return arg_; }

    /// Posts a copy of this event for delivery to the registered handlers.
    /// Safe from any thread; wakes the loop.
    /// @throws LoopError if no MainLoop exists.
    void post() const;
    /// Posts a copy that carries `arg` instead (kaa's `post(*args)`).
    template <class T>
    void post(T arg) const {
        Event(name_, std::move(arg)).post();
    }

    /// Events compare by name, as in kaa.
    friend bool operator==(const Event& a, const Event& b) noexcept { return a.name_ == b.name_; }
    friend bool operator==(const Event& a, std::string_view name) noexcept { return a.name_ == name; }

private:
    std::string name_;
    std::any arg_;
};

namespace detail {

/// What an EventHandler registers with the dispatcher (src/event.cpp).
struct EventHandlerCore {
    UniqueFunction<InProgressRef(const Event&)> fn;
    std::vector<std::string> names; // empty: every event
    std::weak_ptr<void> owner;      // for WeakEventHandler
    bool weak = false;
    bool registered = false;
};

void register_event_handler(const std::shared_ptr<EventHandlerCore>& core, std::vector<std::string> names);
void unregister_event_handler(EventHandlerCore& core) noexcept;

template <class F>
UniqueFunction<InProgressRef(const Event&)> event_function(F&& f) {
    using R = std::invoke_result_t<std::decay_t<F>&, const Event&>;
    if constexpr (std::is_convertible_v<R, InProgressRef>)
        return [f = std::forward<F>(f)](const Event& e) mutable -> InProgressRef { return f(e); };
    else
        return [f = std::forward<F>(f)](const Event& e) mutable -> InProgressRef {
            f(e);
            return InProgressRef();
        };
}

} // namespace detail

/// Calls a function with the events it is registered for (kaa's
/// EventHandler). The function takes `const Event&` and returns nothing or
/// an InProgress (the dispatch waits for it). Created unregistered.
class EventHandler {
public:
    template <class F>
        requires std::is_invocable_v<std::decay_t<F>&, const Event&>
    explicit EventHandler(F&& fn) : core_(std::make_shared<detail::EventHandlerCore>()) {
        core_->fn = detail::event_function(std::forward<F>(fn));
    }
    /// Unregisters it.
    ~EventHandler() { unregister(); }
    EventHandler(EventHandler&&) noexcept = default;
    EventHandler& operator=(EventHandler&& other) noexcept {
        if (this != &other) {
            unregister();
            core_ = std::move(other.core_);
        }
        return *this;
    }

    /// Registers it for the events named `names` -- every event when empty
    /// (kaa's `register(events=[])`). Registering again replaces the names
    /// and keeps the handler's place in the registration order.
    /// @throws WrongThread off the loop thread.
    void register_for(std::vector<std::string> names = {}) { detail::register_event_handler(core_, std::move(names)); }
    void register_for(std::initializer_list<std::string> names) { register_for(std::vector<std::string>(names)); }
    /// Stops deliveries to it; no-op if not registered. Loop thread.
    void unregister() noexcept {
        if (core_)
            detail::unregister_event_handler(*core_);
    }
    /// Registered (false again once a weak handler's owner is gone and an
    /// event found it so).
    bool active() const noexcept { return core_ && core_->registered; }

protected:
    EventHandler() : core_(std::make_shared<detail::EventHandlerCore>()) {}
    std::shared_ptr<detail::EventHandlerCore> core_;
};

/// An EventHandler that lives only as long as `owner` (kaa's
/// WeakEventHandler): once the owner is destroyed the function is never
/// called again and the handler unregisters itself; during a call the owner
/// is kept alive.
class WeakEventHandler : public EventHandler {
public:
    template <class T, class F>
        requires std::is_invocable_v<std::decay_t<F>&, const Event&>
    WeakEventHandler(const std::weak_ptr<T>& owner, F&& fn) {
        core_->fn = detail::event_function(std::forward<F>(fn));
        core_->owner = owner;
        core_->weak = true;
    }
    template <class T, class F>
        requires std::is_invocable_v<std::decay_t<F>&, const Event&>
    WeakEventHandler(const std::shared_ptr<T>& owner, F&& fn)
        : WeakEventHandler(std::weak_ptr<T>(owner), std::forward<F>(fn)) {}
};

} // namespace kaa
