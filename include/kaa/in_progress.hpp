// SPDX-License-Identifier: BSL-1.0
// InProgress<T>: the result of every asynchronous operation in kaa.
//
// An InProgress is a shared handle to one operation: copies refer to the same
// operation. It finishes exactly once, with a value (finish) or an exception
// (fail, abort). Callbacks connected with connect()/connect_exception() run
// once, when it finishes.
//
// Guarantees a caller relies on (see doc/in_progress.md):
//  * Callbacks always run on the loop thread. finish()/fail() from another
//    thread claims the result at once (so finishing twice is an error there
//    too) and delivers it on the loop thread on a later iteration.
//  * connect() on an InProgress that is already finished calls the callback
//    at once, before connect() returns (from another thread: on the loop).
//  * Callbacks run in connection order. An exception escaping one goes to the
//    loop's `exception` signal; the others still run.
//  * A failure that nobody observes -- no exception callback ran, result() or
//    exception() was never read, no coroutine waited on it -- is reported to
//    the loop's `exception` signal (or stderr) when the last handle goes.
//    Failures caused by abort() are never reported: the aborter knows.
//  * abort() runs the operation's abort handlers (which stop the work), then
//    fails it with InProgressAborted. Result callbacks of an aborted operation
//    never run; exception callbacks do. abort() on finished work is harmless
//    and returns false; it returns true when this call aborted it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kaa/detail/function.hpp"
#include "kaa/detail/state_alloc.hpp"
#include "kaa/detail/loop_access.hpp"
#include "kaa/errors.hpp"
#include "kaa/fwd.hpp"

namespace kaa {

namespace detail {

enum class Status : std::uint8_t { pending, claimed, succeeded, failed };

/// Loop-confined state shared by the handles of one operation. Only status_
/// (and the reference count) are touched from other threads.
class StateBase {
public:
    using Callback = UniqueFunction<void(StateBase&)>;
    /// The producer's abort handler: stops the work. Returns true when the
    /// producer finishes the state itself (coroutines unwind first).
    using AbortHook = UniqueFunction<bool(const InProgressAborted&, std::exception_ptr)>;

    // User-provided (defaulted out of line, not here), so that
    // make_shared's value initialisation does not zero the whole state
    // before the member initialisers run: every member has an initialiser.
    StateBase() noexcept;
    StateBase(const StateBase&) = delete;
    StateBase& operator=(const StateBase&) = delete;
    virtual ~StateBase();

    Status status() const noexcept { return status_.load(std::memory_order_acquire); }
    bool finished() const noexcept {
        Status s = status();
        return s == Status::succeeded || s == Status::failed;
    }
    bool failed() const noexcept { return status() == Status::failed; }

    /// Takes the right to finish. False if someone already did.
    bool claim() noexcept {
        Status expected = Status::pending;
        return status_.compare_exchange_strong(expected, Status::claimed, std::memory_order_acq_rel);
    }

    /// After claim(), on the loop thread: publish the outcome and run the
    /// callbacks. The value (State<T>) or error_ must be set before. `self`
    /// (a handle to this state) keeps it alive while several callbacks run.
    void complete(Status final, const std::shared_ptr<StateBase>& self);
    /// Loop thread, unclaimed state whose value (State<T>) or error_ is set:
    /// claims and publishes in one compare-exchange (pending -> `final`),
    /// then runs the callbacks. False (nothing done) if someone claimed it
    /// first; the caller then discards what it set.
    bool complete_unclaimed(Status final, const std::shared_ptr<StateBase>& self);
    /// complete_unclaimed(failed) with `e`; false (e dropped) if already claimed.
    bool fail_unclaimed(std::exception_ptr e, const std::shared_ptr<StateBase>& self);
    /// claim() + complete(failed) with `e`; loop thread. `aborted` failures
    /// are never reported as unhandled.
    void fail_claimed(std::exception_ptr e, const std::shared_ptr<StateBase>& self, bool aborted = false);

    /// Adds a callback (loop thread). If already finished, calls it at once
    /// and returns 0; otherwise returns an id for remove_callback().
    /// Internal bookkeeping passes `counted = false` so that it does not look
    /// like somebody waiting (see listener_count).
    std::uint32_t add_callback(Callback&& cb, bool counted = true);
    bool remove_callback(std::uint32_t id) noexcept;
    /// How many callbacks wait for this operation (the abort cascade spares
    /// operations that someone else still waits on).
    std::size_t listener_count() const noexcept { return listeners_; }

    const std::exception_ptr& error() const noexcept { return error_; }
    /// Reads the error and marks it observed. The failure of an abort is
    /// stored with weak references (no cycle); a read hands out a copy with
    /// strong ones (see InProgressAborted).
    std::exception_ptr take_error() {
        observed_.store(true, std::memory_order_relaxed);
        if (weak_error_) [[unlikely]]
            return strong_error();
        return error_;
    }
    void mark_observed() noexcept { observed_.store(true, std::memory_order_relaxed); }
    /// Whether it failed (or is failing) because of abort().
    bool aborted() const noexcept { return aborted_; }

    bool abortable() const noexcept;
    void set_abortable(bool yes) noexcept { abortable_ = yes ? Abortable::yes : Abortable::no; }
    void set_abort_hook(AbortHook hook) { abort_hook_ = std::move(hook); }
    void clear_abort_hook() noexcept { abort_hook_.reset(); }
    Signal<void(const InProgressAborted&)>& abort_signal();
    /// The abort algorithm (loop thread). See InProgressRef::abort.
    bool abort(std::shared_ptr<StateBase> self, const InProgressAborted& exc);
    /// Claimed by a finish(other) chain: fails like `upstream`, which failed;
    /// an abort travels on (exception callbacks, then the abort signal).
    void fail_from(StateBase& upstream, const std::shared_ptr<StateBase>& self);

    /// The coroutine or threaded job producing this operation, if any
    /// (library plumbing).
    void* coroutine = nullptr;
    void* job = nullptr;
    /// The operation's progress, if its producer reports any.
    std::shared_ptr<Progress> progress;
    /// The operation this one finishes like (finish(other), noabort(),
    /// timeout()): kaa::live_work() follows wait chains through it.
    std::weak_ptr<StateBase> source;

    /// Names the producer ("coroutine 'x' started at a.cpp:12") in the report
    /// of a failure that nobody observes. Set by producers that failed.
    void set_origin(std::string origin);

    /// Marks, for its lifetime, one reference to the state as held only by
    /// the code finishing it (library plumbing: an I/O channel serving a
    /// read), which will not read the value (see value_takeable).
    class FinisherRef {
    public:
        explicit FinisherRef(StateBase& s) noexcept : s_(s) { ++s_.finisher_refs_; }
        ~FinisherRef() { --s_.finisher_refs_; }
        FinisherRef(const FinisherRef&) = delete;
        FinisherRef& operator=(const FinisherRef&) = delete;

    private:
        StateBase& s_;
    };
    /// Loop thread, finished state: whether a holder of one of its
    /// `use_count` references, about to give it up, is the last one who can
    /// see the value -- no other handle but a finisher's, and no callback
    /// still to run -- and so may move the value out instead of copying it.
    bool value_takeable(long use_count) const noexcept {
        return running_ == nullptr && use_count == 1 + finisher_refs_;
    }

    /// Blocks a non-loop thread until finished, or until `deadline`.
    bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) const;

protected:
    void set_error(std::exception_ptr e) noexcept { error_ = std::move(e); }

private:
    std::exception_ptr strong_error() const;
    // error_ is an abort's exception: keeps it in its stored (weak) form.
    void store_abort_error();
    /// After the status became final: wakes blocking waiters, drops the
    /// abort hook, runs the callbacks.
    void deliver(const std::shared_ptr<StateBase>& self);

    enum class Abortable : std::uint8_t { automatic, yes, no };
    struct Entry {
        std::uint32_t id = 0;
        bool counted = true;
        Callback fn;
    };

    std::atomic<Status> status_{Status::pending};
    std::atomic<bool> observed_{false};
    mutable std::atomic<std::uint32_t> blocking_waiters_{0};
    Abortable abortable_ = Abortable::automatic;
    bool aborted_ = false;
    bool weak_error_ = false;  // error_ is an abort's stored form (see take_error)
    std::uint8_t finisher_refs_ = 0;  // see FinisherRef
    std::uint32_t next_id_ = 0;
    std::uint32_t listeners_ = 0;
    Entry first_;               // the first callback, stored inline (the common case)
    std::vector<Entry> more_;   // further callbacks
    // While complete() runs several callbacks (taken out of first_/more_),
    // where they are: a callback may remove one that has not run yet (a
    // coroutine aborted by an earlier callback stops waiting), and it must
    // then not run.
    struct Running {
        Entry* first;
        std::vector<Entry>* more;
    };
    Running* running_ = nullptr;
    std::exception_ptr error_;
    AbortHook abort_hook_;
    std::unique_ptr<Signal<void(const InProgressAborted&)>> abort_signal_;
    std::unique_ptr<std::string> origin_;  // see set_origin()

    friend class kaa::InProgressRef;
};

template <class T>
class State : public StateBase {
public:
    State() noexcept {}  // user-provided: no zero-fill before construction (see StateBase())
    template <class... A>
    void set_value(A&&... a) {
        value_.emplace(std::forward<A>(a)...);
    }
    T& value() noexcept { return *value_; }
    void reset_value() noexcept { value_.reset(); }
    /// Moves the value out (see StateBase::value_takeable).
    T take_value() { return std::move(*value_); }

private:
    std::optional<T> value_;
};

template <>
class State<void> : public StateBase {
public:
    State() noexcept {}
    void set_value() noexcept {}
    void reset_value() noexcept {}
};

/// Makes `out` finish like `guarded`, or fail with TimeoutError after `d`
/// (and abort `guarded` too when `abort`). See InProgress::timeout.
void arm_timeout(std::shared_ptr<StateBase> guarded, std::shared_ptr<StateBase> out, Duration d, bool abort,
                 UniqueFunction<void(StateBase&)> copy_value);

/// Fails `s` with LoopError if it is still claimed (see ClaimedCompletion).
void fail_dropped_completion(const std::shared_ptr<StateBase>& s) noexcept;

/// Held by the task that finish()/fail() off the loop thread posts after
/// claiming the operation. If the loop goes away with the task unrun, the
/// operation fails with LoopError instead of staying claimed forever (a
/// thread blocked in wait() on it would never wake). take() disarms it.
class ClaimedCompletion {
public:
    explicit ClaimedCompletion(std::shared_ptr<StateBase> s) noexcept : s_(std::move(s)) {}
    ClaimedCompletion(ClaimedCompletion&&) noexcept = default;
    ClaimedCompletion& operator=(ClaimedCompletion&&) = delete;
    ~ClaimedCompletion() {
        if (s_)
            fail_dropped_completion(s_);
    }
    std::shared_ptr<StateBase> take() noexcept { return std::move(s_); }

private:
    std::shared_ptr<StateBase> s_;
};

[[noreturn]] void throw_empty_handle();
[[noreturn]] void throw_already_finished(const char* what);
[[noreturn]] void throw_not_ready();

} // namespace detail

/// A type-erased handle to an operation of any result type: enough to ask
/// whether it finished, to abort it, and to wait for it. Every InProgress<T>
/// is an InProgressRef.
class InProgressRef {
public:
    InProgressRef() noexcept = default;
    explicit InProgressRef(std::shared_ptr<detail::StateBase> s) noexcept : state_(std::move(s)) {}

    /// False for an empty handle (default-constructed InProgressRef, moved-from).
    bool valid() const noexcept { return state_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    /// Finished with a value or an exception. Loop-thread accurate; from other
    /// threads it becomes true once the loop has delivered the result.
    bool finished() const { return st().finished(); }
    /// Finished with an exception (including an abort).
    bool failed() const { return st().failed(); }

    /// The exception it failed with (nullptr if it succeeded); counts as
    /// observing it. @throws ResultNotReady if not finished.
    std::exception_ptr exception() const;

    /// Whether abort() would be accepted: explicitly set, or the producer (or
    /// anyone) connected an abort handler.
    bool abortable() const { return st().abortable(); }
    void set_abortable(bool yes) const { st().set_abortable(yes); }

    /// Aborts the operation: its abort signal runs, its abort handler stops
    /// the work, then it fails with InProgressAborted (inprogress = this, or
    /// for a coroutine what it waited on; origin = this unless `exc` names
    /// one) and its exception callbacks run. A coroutine is unwound from its
    /// suspension point first. Aborting finished work is harmless, as in asio
    /// and std::stop_source (decision 22).
    /// @returns true when this call aborted it; false when it had already
    /// finished (or its outcome was decided: claimed, being aborted, or
    /// finished from another thread during the abort). From another thread
    /// the abort is posted to the loop and the result is true unless it had
    /// already finished; the outcome is decided on the loop.
    /// @throws NotAbortable if it cannot be aborted (on the loop thread; from
    /// another thread it is reported to the loop's `exception` signal).
    bool abort() const;
    bool abort(const InProgressAborted& exc) const;

    /// Emitted on abort(), before the operation fails. Connecting makes the
    /// operation abortable (as in kaa).
    Signal<void(const InProgressAborted&)>& abort_signal() const;

    /// Calls `f(std::exception_ptr)` if it fails (observing the failure).
    template <class F>
    const InProgressRef& connect_exception(F&& f) const {
        on_done([f = std::forward<F>(f)](detail::StateBase& s) mutable {
            if (s.failed())
                f(s.take_error());
        });
        return *this;
    }

    /// Calls `f()` when it finishes either way (does not observe a failure).
    template <class F>
    const InProgressRef& connect_finished(F&& f) const {
        on_done([f = std::forward<F>(f)](detail::StateBase&) mutable { f(); });
        return *this;
    }

    /// The operation's Progress, or nullptr if its producer reports none.
    std::shared_ptr<Progress> progress() const { return st().progress; }

    /// Blocks until finished, at most `timeout`; returns whether it finished.
    /// On the loop thread it runs nested loop iterations (kaa's wait()), and
    /// `timeout` is the loop's time (virtual on a VirtualClock loop);
    /// elsewhere it blocks the thread for real time.
    /// @throws UsageError inside a coroutine (use this_coroutine::await);
    /// WouldDeadlock when the wait could never end (a worker waiting for a
    /// job queued behind itself on its own serial thread); LoopError when no
    /// loop exists to finish it.
    bool wait_for(std::optional<Duration> timeout) const;

    friend bool operator==(const InProgressRef& a, const InProgressRef& b) noexcept {
        return a.state_ == b.state_;
    }

    /// Library plumbing: the shared state.
    const std::shared_ptr<detail::StateBase>& state() const noexcept { return state_; }

protected:
    detail::StateBase& st() const {
        if (!state_)
            detail::throw_empty_handle();
        return *state_;
    }
    /// Adds a raw completion callback, on the loop thread (posted from others).
    void on_done(detail::StateBase::Callback&& cb) const;

    std::shared_ptr<detail::StateBase> state_;
};

/// The result of an asynchronous operation producing a T (or nothing, for
/// InProgress<void>). Default construction creates a new pending operation
/// that the creator finishes.
template <class T>
class InProgress : public InProgressRef {
    using StateT = detail::State<T>;

public:
    using value_type = T;

    /// A new, pending operation.
    InProgress() : InProgressRef(detail::make_state<StateT>()) {}
    /// An empty handle (no operation).
    InProgress(std::nullptr_t) noexcept {}
    /// Adopts a state (library plumbing).
    explicit InProgress(std::shared_ptr<StateT> s) noexcept : InProgressRef(std::move(s)) {}

    /// Finishes with a value; callbacks run (on the loop thread). Returns
    /// this InProgress, as kaa: `InProgress<int>().finish(7)`.
    /// @throws AlreadyFinished if it already finished (or was claimed).
    template <class... A>
        requires(std::is_void_v<T> ? sizeof...(A) == 0 : std::is_constructible_v<T, A...>)
    const InProgress& finish(A&&... a) const {
        StateT& s = typed();
        const detail::LoopContext where = detail::loop_context();
        if (where == detail::LoopContext::loop_thread) {
            // Only the loop thread stores values, so while the status is
            // pending nobody reads this one; claim and publish are then one
            // compare-exchange, which loses only to a claim from another
            // thread (whose own delivery comes later, on this thread).
            if (s.status() != detail::Status::pending)
                detail::throw_already_finished("finish()");
            s.set_value(std::forward<A>(a)...);
            if (!s.complete_unclaimed(detail::Status::succeeded, state_)) {
                s.reset_value();
                detail::throw_already_finished("finish()");
            }
        } else {
            // No loop (any thread may finish: claim before touching the
            // value), or another thread (deliver on the loop).
            if (!s.claim())
                detail::throw_already_finished("finish()");
            if (where == detail::LoopContext::no_loop) {
                s.set_value(std::forward<A>(a)...);
                s.complete(detail::Status::succeeded, state_);
            } else if constexpr (std::is_void_v<T>) {
                detail::post_to_loop([g = detail::ClaimedCompletion(state_)]() mutable {
                    auto p = g.take();
                    p->complete(detail::Status::succeeded, p);
                });
            } else {
                detail::post_to_loop([g = detail::ClaimedCompletion(state_), v = T(std::forward<A>(a)...)]() mutable {
                    std::shared_ptr<detail::StateBase> b = g.take();
                    static_cast<StateT&>(*b).set_value(std::move(v));
                    b->complete(detail::Status::succeeded, b);
                });
            }
        }
        return *this;
    }

    /// Finishes with the outcome of `other` when it finishes (chaining);
    /// returns this InProgress. If `other` is aborted, this one fails with
    /// its InProgressAborted (inprogress() = `other`): its exception
    /// callbacks run, then its abort signal (kaa's order for a chain).
    /// @throws AlreadyFinished if this already finished; UsageError if
    /// `other` is this operation.
    const InProgress& finish(const InProgress<T>& other) const;

    /// Fails with `e`. @throws AlreadyFinished if it already finished.
    void fail(std::exception_ptr e) const {
        StateT& s = typed();
        const detail::LoopContext where = detail::loop_context();
        if (where == detail::LoopContext::loop_thread) {
            if (!s.fail_unclaimed(std::move(e), state_))
                detail::throw_already_finished("fail()");
            return;
        }
        if (!s.claim())
            detail::throw_already_finished("fail()");
        if (where == detail::LoopContext::no_loop) {
            s.fail_claimed(std::move(e), state_);
            return;
        }
        detail::post_to_loop([g = detail::ClaimedCompletion(state_), e = std::move(e)]() mutable {
                auto p = g.take();
                p->fail_claimed(std::move(e), p);
            });
    }
    template <class E>
        requires(!std::is_same_v<std::decay_t<E>, std::exception_ptr>)
    void fail(E&& e) const {
        fail(std::make_exception_ptr(std::forward<E>(e)));
    }

    /// Finishes with fn()'s result, or fails with what it throws.
    template <class F>
    const InProgress& execute(F&& fn) const {
        try {
            if constexpr (std::is_void_v<T>) {
                std::forward<F>(fn)();
                finish();
            } else {
                finish(std::forward<F>(fn)());
            }
        } catch (const AlreadyFinished&) {
            throw;
        } catch (...) {
            fail(std::current_exception());
        }
        return *this;
    }

    /// The value; rethrows the failure (which counts as observing it).
    /// @throws ResultNotReady if not finished.
    decltype(auto) result() const& {
        StateT& s = typed();
        Status_check(s);
        if constexpr (!std::is_void_v<T>)
            return static_cast<const T&>(s.value());
    }

    /// The same on a handle the caller gives up (`std::move(ip).result()`,
    /// or a temporary), by value: moved out of the operation when nobody
    /// else can see it any more -- no other handle, no callback still to
    /// run -- and copied otherwise. Loop thread (see result() const&). A
    /// value that cannot be copied comes as from result() const&.
    decltype(auto) result() && {
        if constexpr (std::is_void_v<T> || !std::is_copy_constructible_v<T>) {
            return static_cast<const InProgress&>(*this).result();
        } else {
            StateT& s = typed();
            Status_check(s);
            if (s.value_takeable(state_.use_count()))
                return s.take_value();
            return T(static_cast<const T&>(s.value()));
        }
    }

    /// Calls `f(const T&)` (`f()` for void) when it succeeds.
    template <class F>
    const InProgress& connect(F&& f) const {
        on_done([f = std::forward<F>(f)](detail::StateBase& s) mutable {
            if (s.status() == detail::Status::succeeded) {
                if constexpr (std::is_void_v<T>)
                    f();
                else
                    f(static_cast<const T&>(static_cast<StateT&>(s).value()));
            }
        });
        return *this;
    }

    /// connect(ok) and connect_exception(err) in one.
    template <class F, class G>
    const InProgress& connect_both(F&& ok, G&& err) const {
        on_done([ok = std::forward<F>(ok), err = std::forward<G>(err)](detail::StateBase& s) mutable {
            if (s.status() == detail::Status::succeeded) {
                if constexpr (std::is_void_v<T>)
                    ok();
                else
                    ok(static_cast<const T&>(static_cast<StateT&>(s).value()));
            } else {
                err(s.take_error());
            }
        });
        return *this;
    }

    /// A view of this operation that abort() does not reach: it finishes like
    /// this one, but aborting it raises NotAbortable, and a coroutine abort
    /// cascading into it stops there.
    InProgress<T> noabort() const {
        InProgress<T> view;
        view.set_abortable(false);
        view.finish(*this);
        return view;
    }

    /// A view that finishes like this operation, or fails with TimeoutError
    /// when `d` passes first (kaa's timeout()). With `abort_on_timeout` the
    /// timeout also aborts this operation; without, it goes on untouched.
    /// Aborting the view stops the timer (and, with `abort_on_timeout`,
    /// aborts this operation too).
    /// @throws NotAbortable at the call if `abort_on_timeout` and this
    /// operation cannot be aborted (kaa raised inside the loop later).
    InProgress<T> timeout(Duration d, bool abort_on_timeout = false) const {
        InProgress<T> out;
        StateT* o = out.typed_ptr().get();
        detail::arm_timeout(state_, out.state_, d, abort_on_timeout, [o](detail::StateBase& from) {
            if constexpr (std::is_void_v<T>)
                o->set_value();
            else
                o->set_value(static_cast<StateT&>(from).value());
        });
        return out;
    }

    /// Blocks until finished and returns result() (see InProgressRef::wait_for).
    /// @throws TimeoutError if `timeout` passes first.
    decltype(auto) wait(std::optional<Duration> timeout = std::nullopt) const;

    StateT& typed() const { return static_cast<StateT&>(st()); }
    std::shared_ptr<StateT> typed_ptr() const { return std::static_pointer_cast<StateT>(state_); }

private:
    static void Status_check(StateT& s) {
        switch (s.status()) {
        case detail::Status::succeeded:
            return;
        case detail::Status::failed:
            std::rethrow_exception(s.take_error());
        default:
            detail::throw_not_ready();
        }
    }
};

template <class T>
const InProgress<T>& InProgress<T>::finish(const InProgress<T>& other) const {
    StateT& s = typed();
    if (other.state_ == state_)
        throw UsageError("InProgress::finish(other): an operation cannot finish with itself");
    (void)other.st(); // an empty `other` throws EmptyHandle before this is claimed
    if (!s.claim())
        detail::throw_already_finished("finish(InProgress)");
    auto self = typed_ptr();
    s.source = other.state_;
    auto relay = [self](detail::StateBase& o) {
        std::shared_ptr<detail::StateBase> base = self;
        if (o.status() == detail::Status::succeeded) {
            if constexpr (std::is_void_v<T>)
                self->set_value();
            else
                self->set_value(static_cast<StateT&>(o).value());
            self->complete(detail::Status::succeeded, base);
        } else {
            self->fail_from(o, base);
        }
    };
    if (detail::in_loop_context())
        other.st().add_callback(std::move(relay));
    else
        detail::post_to_loop([g = detail::ClaimedCompletion(state_), o = other.state_, relay = std::move(relay)]() mutable {
            g.take();
            o->add_callback(std::move(relay));
        });
    return *this;
}

template <class T>
decltype(auto) InProgress<T>::wait(std::optional<Duration> timeout) const {
    if (!wait_for(timeout))
        throw TimeoutError("InProgress::wait(): timed out", *this, InProgressRef());
    return result();
}

/// An InProgress<T> that is already finished with `value`.
template <class T, class... A>
InProgress<T> make_finished(A&&... value) {
    InProgress<T> ip;
    ip.finish(std::forward<A>(value)...);
    return ip;
}

/// An InProgress<T> that already failed with `e`.
template <class T>
InProgress<T> make_failed(std::exception_ptr e) {
    InProgress<T> ip;
    ip.fail(std::move(e));
    return ip;
}

} // namespace kaa
