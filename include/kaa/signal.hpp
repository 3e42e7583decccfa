// SPDX-License-Identifier: BSL-1.0
// Signal<void(Args...)>: kaa's signals, on Boost.Signals2.
//
// A Signal calls its connected callbacks (slots) in order when emitted.
// Beyond Signals2 it gives kaa's conveniences: one-shot and weak connections,
// connect_first, disconnect by callable, deferred emission through the loop, a
// `changed` signal when slots come and go, and next() -- the next emission as
// an InProgress, so a coroutine can wait for a signal.
//
// Guarantees:
//  * emit() calls the slots synchronously, on the emitting thread, in order
//    (connect_first slots first, the last such connected first). Slots
//    connected during an emission are not called in it.
//  * An exception escaping a slot goes to the loop's `exception` signal (or
//    stderr) and the remaining slots still run -- except InProgressAborted,
//    which propagates (an abort unwinding a coroutine must not be swallowed).
//  * A weak slot never runs once its object is gone: Signals2 holds the object
//    alive for the duration of each call.
//  * emit_deferred() delivers on the loop thread on a later iteration, from
//    any thread; into a signal with no slot then, it is held, and delivered
//    inside the next connect() to every slot connected at that moment (as
//    kaa): nothing emitted with deferral is lost.
//  * Signals are thread-safe in the Signals2 sense (connect/disconnect/emit
//    from several threads), but slots run where emit() is called.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kaa/version.hpp"

#include <boost/signals2/signal.hpp>

#include "kaa/errors.hpp"
#include "kaa/in_progress.hpp"

namespace kaa {

/// What happened, for Signal::changed().
enum class SignalChange { connected, disconnected };

namespace detail {

class SignalCoreBase {
public:
    virtual ~SignalCoreBase() = default;
    virtual void notify(SignalChange change) = 0;
};

/// Signals2 combiner: every slot runs even if an earlier one threw.
struct ReportingCombiner {
    using result_type = void;
    template <class It>
    void operator()(It first, It last) const {
        for (; first != last; ++first) {
            try {
                *first;
            } catch (const InProgressAborted&) {
                throw;
            } catch (...) {
                report_unhandled(std::current_exception(), "signal slot");
            }
        }
    }
};

template <class... Args>
struct NextResult {
    using type = std::tuple<std::decay_t<Args>...>;
};
template <>
struct NextResult<> {
    using type = void;
};
template <class A>
struct NextResult<A> {
    using type = std::decay_t<A>;
};

} // namespace detail

/// One connection of a slot to a Signal.
class Connection {
public:
    Connection() = default;
    Connection(boost::signals2::connection c, std::weak_ptr<detail::SignalCoreBase> core)
        : c_(std::move(c)), core_(std::move(core)) {}

    /// Still connected (false once disconnected, fired as a once-slot, or its
    /// weak object died).
    bool connected() const { return c_.connected(); }
    /// Disconnects; returns whether it was connected.
    bool disconnect() {
        if (!c_.connected())
            return false;
        c_.disconnect();
        if (auto core = core_.lock())
            core->notify(SignalChange::disconnected);
        return true;
    }
    const boost::signals2::connection& boost_connection() const noexcept { return c_; }

private:
    boost::signals2::connection c_;
    std::weak_ptr<detail::SignalCoreBase> core_;
};

template <class Signature>
class Signal;

template <class... Args>
class Signal<void(Args...)> {
    using Boost = boost::signals2::signal<void(Args...), detail::ReportingCombiner>;

    struct Core final : detail::SignalCoreBase {
        Boost sig;
        std::unique_ptr<Signal<void(SignalChange)>> changed;
        // Set by the first connect: emitting a signal that never had a slot
        // (the loop's `step`, most abort signals) skips Signals2's mutex.
        std::atomic<bool> ever_connected{false};
        // Deferred emissions that found no slot, for the next connect().
        std::atomic<bool> has_held{false};
        std::mutex held_mutex;
        std::vector<std::tuple<std::decay_t<Args>...>> held;
        void notify(SignalChange change) override {
            if (changed)
                changed->emit(change);
        }
        /// Emits the held emissions, in order, to the slots connected now.
        void flush_held() {
            std::vector<std::tuple<std::decay_t<Args>...>> now;
            {
                std::lock_guard lock(held_mutex);
                now.swap(held);
                has_held.store(false, std::memory_order_relaxed);
            }
            for (auto& a : now)
                std::apply([&](auto&... v) { sig(v...); }, a);
        }
    };

public:
    /// What next() finishes with: nothing, the single argument, or a tuple.
    using next_type = typename detail::NextResult<Args...>::type;

    Signal() : core_(std::make_shared<Core>()) {}
    Signal(const Signal&) = delete;
    Signal& operator=(const Signal&) = delete;

    /// Connects `f(Args...)` at the end.
    template <class F>
    Connection connect(F&& f) {
        return added(connecting().connect(std::forward<F>(f)));
    }

    /// Connects `f` at the front: it runs before the slots already there.
    template <class F>
    Connection connect_first(F&& f) {
        // (Position after the slot: Signals2 reads connect(at_front, f) as
        // connect(group 0, f), which appends.)
        return added(connecting().connect(std::forward<F>(f), boost::signals2::at_front));
    }

    /// Connects `f` for one emission: it is disconnected before it runs.
    template <class F>
    Connection connect_once(F&& f) {
        return added(connecting().connect_extended(once_slot(std::forward<F>(f))));
    }

    /// connect_first + connect_once.
    template <class F>
    Connection connect_first_once(F&& f) {
        return added(connecting().connect_extended(once_slot(std::forward<F>(f)), boost::signals2::at_front));
    }

    /// Connects `f` for as long as `owner` lives: once it is destroyed the
    /// slot is gone and is never called (Signals2 keeps the owner alive
    /// during each call, so a call never runs into a dead object).
    template <class T, class F>
    Connection connect_weak(const std::shared_ptr<T>& owner, F&& f) {
        return connect_weak(std::weak_ptr<T>(owner), std::forward<F>(f));
    }
    template <class T, class F>
    Connection connect_weak(const std::weak_ptr<T>& owner, F&& f) {
        typename Boost::slot_type slot(std::forward<F>(f));
        slot.track_foreign(owner);
        return added(connecting().connect(slot));
    }

    /// Disconnects one connection; returns whether it was connected.
    bool disconnect(Connection& c) { return c.disconnect(); }

    /// Disconnects every slot equal to `f` (a function pointer or an
    /// equality-comparable function object); returns whether any was.
    template <class F>
    bool disconnect(const F& f) {
        std::size_t before = core_->sig.num_slots();
        core_->sig.disconnect(f);
        bool removed = core_->sig.num_slots() != before;
        if (removed)
            core_->notify(SignalChange::disconnected);
        return removed;
    }

    /// Disconnects everything.
    void disconnect_all() {
        bool had = !core_->sig.empty();
        core_->sig.disconnect_all_slots();
        if (had)
            core_->notify(SignalChange::disconnected);
    }

    /// Calls every connected slot now, on this thread.
    void emit(Args... args) const {
        if (core_->ever_connected.load(std::memory_order_acquire) && !core_->sig.empty())
            core_->sig(std::forward<Args>(args)...);
    }
    void operator()(Args... args) const { emit(std::forward<Args>(args)...); }

    /// Emits from the loop on a later iteration (safe from any thread); the
    /// arguments are copied. If no slot is connected then, the emission is
    /// held and delivered inside the next connect(), in order, to every slot
    /// connected at that moment (kaa's emit_deferred: nothing is lost).
    /// Nothing is emitted if the Signal is destroyed meanwhile.
    void emit_deferred(Args... args) const {
        // Weak: the slots of a destroyed signal often capture its owner.
        detail::post_to_loop([weak = std::weak_ptr<Core>(core_),
                              a = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() mutable {
            auto core = weak.lock();
            if (!core)
                return;
            if (!core->sig.empty() && !core->has_held.load(std::memory_order_acquire)) {
                std::apply([&](auto&... v) { core->sig(v...); }, a);
                return;
            }
            {
                std::lock_guard lock(core->held_mutex);
                core->held.push_back(std::move(a));
                core->has_held.store(true, std::memory_order_release);
            }
            // A slot connected (on another thread) while this was held may
            // have looked before the flag was up: deliver now, in order.
            if (!core->sig.empty())
                core->flush_held();
        });
    }

    /// Number of connected slots (dead weak slots are not counted).
    std::size_t count() const { return core_->sig.num_slots(); }
    bool empty() const { return !core_->ever_connected.load(std::memory_order_acquire) || core_->sig.empty(); }

    /// Emitted with SignalChange::connected / disconnected whenever slots are
    /// added or removed through this Signal or its Connections (a weak slot
    /// whose owner died is noticed when the signal is next counted/emitted,
    /// without a notification).
    Signal<void(SignalChange)>& changed() {
        if (!core_->changed)
            core_->changed = std::make_unique<Signal<void(SignalChange)>>();
        return *core_->changed;
    }

    /// The next emission as an InProgress: void for no arguments, the value
    /// for one, a tuple for several. It is abortable (aborting disconnects),
    /// and dropping every handle to it lets the signal forget it.
    InProgress<next_type> next() {
        InProgress<next_type> ip;
        std::weak_ptr<detail::State<next_type>> weak = ip.typed_ptr();
        // The slot tracks the operation, so once every handle is gone it is
        // disconnected (Signals2 drops expired slots) instead of lingering
        // until the next emission.
        typename Boost::extended_slot_type slot(once_slot([weak](Args... args) {
            if (auto s = weak.lock()) {
                InProgress<next_type> target(std::move(s));
                if (!target.finished())
                    target.finish(std::forward<Args>(args)...);
            }
        }));
        slot.track_foreign(weak);
        Connection c = added(connecting().connect_extended(slot));
        ip.typed().set_abort_hook([c](const InProgressAborted&, std::exception_ptr) mutable {
            c.disconnect();
            return false;
        });
        return ip;
    }

private:
    template <class F>
    auto once_slot(F&& f) {
        std::weak_ptr<Core> weak = core_;
        return [f = std::forward<F>(f), weak](const boost::signals2::connection& c, Args... args) mutable {
            c.disconnect();
            if (auto core = weak.lock())
                core->notify(SignalChange::disconnected);
            f(std::forward<Args>(args)...);
        };
    }

    // The Signals2 signal, for a connect: raises ever_connected first, so
    // that an emit() that can see the slot also sees the flag.
    Boost& connecting() {
        core_->ever_connected.store(true, std::memory_order_release);
        return core_->sig;
    }

    Connection added(boost::signals2::connection c) {
        core_->notify(SignalChange::connected);
        Connection conn(std::move(c), core_);
        if (core_->has_held.load(std::memory_order_acquire)) [[unlikely]]
            core_->flush_held();
        return conn;
    }

    std::shared_ptr<Core> core_;
};

} // namespace kaa
