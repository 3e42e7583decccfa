// SPDX-License-Identifier: BSL-1.0
#include "kaa/in_progress.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <stop_token>
#include <thread>
#include <typeinfo>

#include "kaa/main_loop.hpp"
#include "kaa/signal.hpp"

namespace kaa {

namespace detail {

namespace {
// An abort is intentional: whoever aborted knows. A timeout is an error.
bool is_silent_abort(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const TimeoutError&) {
        return false;
    } catch (const InProgressAborted&) {
        return true;
    } catch (...) {
        return false;
    }
}
} // namespace

StateBase::StateBase() noexcept = default;

StateBase::~StateBase() {
    // (Out of line so that Signal and Progress are complete here.)
    if (status() == Status::failed && !observed_.load(std::memory_order_relaxed) && !aborted_ &&
        !is_silent_abort(error_))
        report_unobserved(error_, origin_ ? ("InProgress of " + *origin_ + " (failed, and nobody observed the exception)").c_str()
                                          : "InProgress (failed, and nobody observed the exception)");
}

void StateBase::set_origin(std::string origin) { origin_ = std::make_unique<std::string>(std::move(origin)); }

namespace {
// Threads blocked in wait_until() (rare: workers waiting for the loop) share
// one condition variable; completion notifies it only when someone waits.
std::mutex g_wait_mutex;
// _any: it can also wait for a stop token (a threaded job that is aborted
// while it blocks here wakes up).
std::condition_variable_any g_wait_cv;
} // namespace

bool in_coroutine() noexcept;
bool job_would_deadlock(const StateBase& s);
std::stop_token current_stop_token();

void StateBase::complete(Status final, const std::shared_ptr<StateBase>& self) {
    // seq_cst, paired with wait_until(): the store must not be reordered
    // after the load of blocking_waiters_ (in deliver()), or a waiter that
    // registered just before could miss the notification and block forever.
    status_.store(final, std::memory_order_seq_cst);
    deliver(self);
}

bool StateBase::complete_unclaimed(Status final, const std::shared_ptr<StateBase>& self) {
    // One seq_cst read-modify-write claims and publishes (and orders the
    // load of blocking_waiters_ after it, as the store in complete()).
    Status expected = Status::pending;
    if (!status_.compare_exchange_strong(expected, final, std::memory_order_seq_cst))
        return false;
    deliver(self);
    return true;
}

bool StateBase::fail_unclaimed(std::exception_ptr e, const std::shared_ptr<StateBase>& self) {
    if (status() != Status::pending)
        return false;
    error_ = std::move(e);
    // Aborted earlier by an abort whose handler finishes the work later (a
    // Scope, say): the failure is the abort's exception, stored as such.
    if (aborted_) [[unlikely]]
        store_abort_error();
    if (complete_unclaimed(Status::failed, self))
        return true;
    error_ = nullptr;
    weak_error_ = false;
    return false;
}

void StateBase::store_abort_error() {
    aborted_ = true;
    // The stored copy must not keep this operation (or the origin of its
    // abort) alive through itself; reads strengthen it (strong_error).
    try {
        std::rethrow_exception(error_);
    } catch (const InProgressAborted& a) {
        error_ = a.stored_by(this);
        weak_error_ = true;
    } catch (...) {
    }
}

void StateBase::deliver(const std::shared_ptr<StateBase>& self) {
    if (blocking_waiters_.load(std::memory_order_seq_cst) != 0) {
        // Taking the mutex orders this after a waiter's check-then-wait.
        { std::lock_guard lock(g_wait_mutex); }
        g_wait_cv.notify_all();
    }
    abort_hook_.reset();

    // Fast path: one callback (or none), the common case.
    if (more_.empty()) {
        if (!first_.fn)
            return;
        Callback fn = std::move(first_.fn);
        listeners_ = 0;
        try {
            fn(*this);
        } catch (...) {
            report_unhandled(std::current_exception(), "InProgress callback");
        }
        return;
    }

    // With several callbacks, one of them may drop the last handle while the
    // others still need this state.
    std::shared_ptr<StateBase> keep_alive = self;
    // Take the callbacks out first: a callback may connect more (they run at
    // once, the operation being finished) or drop the last handle.
    Entry first = std::move(first_);
    std::vector<Entry> more = std::move(more_);
    listeners_ = 0;
    Running running{&first, &more};
    running_ = &running;  // keep_alive holds this state until the end
    struct Reset {
        Running*& r;
        ~Reset() { r = nullptr; }
    } reset{running_};
    if (first.fn && first.id) {
        try {
            first.fn(*this);
        } catch (...) {
            report_unhandled(std::current_exception(), "InProgress callback");
        }
    }
    for (Entry& e : more) {
        if (!e.fn || !e.id)
            continue;
        try {
            e.fn(*this);
        } catch (...) {
            report_unhandled(std::current_exception(), "InProgress callback");
        }
    }
}

void StateBase::fail_claimed(std::exception_ptr e, const std::shared_ptr<StateBase>& self, bool aborted) {
    error_ = std::move(e);
    // Aborted now, or earlier by an abort whose handler finishes the work
    // later (a Scope, an unwinding coroutine): either way the failure is the
    // abort's exception, which names this operation.
    if (aborted || aborted_)
        store_abort_error();
    complete(Status::failed, self);
}

std::uint32_t StateBase::add_callback(Callback&& cb, bool counted) {
    if (finished()) {
        // As for callbacks run by complete(): an exception is reported, not
        // thrown at whoever connected.
        try {
            cb(*this);
        } catch (...) {
            report_unhandled(std::current_exception(), "InProgress callback");
        }
        return 0;
    }
    std::uint32_t id = ++next_id_;
    if (!first_.fn && more_.empty()) {
        first_.id = id;
        first_.counted = counted;
        first_.fn = std::move(cb);
    } else
        more_.push_back(Entry{id, counted, std::move(cb)});
    if (counted)
        ++listeners_;
    return id;
}

bool StateBase::remove_callback(std::uint32_t id) noexcept {
    if (id == 0)
        return false;
    if (running_) {
        // complete() is running the callbacks: one that has not run yet is
        // skipped (id 0); its callable stays until complete() ends, as the
        // one running now may be the caller.
        for (Entry* e = running_->first; e; e = nullptr)
            if (e->id == id && e->fn) {
                e->id = 0;
                return true;
            }
        for (Entry& e : *running_->more)
            if (e.id == id && e.fn) {
                e.id = 0;
                return true;
            }
        return false;
    }
    if (first_.id == id && first_.fn) {
        first_.fn.reset();
        if (first_.counted)
            --listeners_;
        return true;
    }
    for (Entry& e : more_) {
        if (e.id == id && e.fn) {
            e.fn.reset();
            if (e.counted)
                --listeners_;
            return true;
        }
    }
    return false;
}

bool StateBase::abortable() const noexcept {
    switch (abortable_) {
    case Abortable::yes:
        return true;
    case Abortable::no:
        return false;
    case Abortable::automatic:
        break;
    }
    return static_cast<bool>(abort_hook_) || (abort_signal_ && !abort_signal_->empty());
}

Signal<void(const InProgressAborted&)>& StateBase::abort_signal() {
    if (!abort_signal_)
        abort_signal_ = std::make_unique<Signal<void(const InProgressAborted&)>>();
    return *abort_signal_;
}

bool StateBase::abort(std::shared_ptr<StateBase> self, const InProgressAborted& exc) {
    // Finished: the abort came too late, which is normal, not an error
    // (decision 22, as asio's cancel()).
    if (finished())
        return false;
    // Already being aborted (a coroutine still unwinding, or an abort
    // handler aborting again): the outcome is decided, by the first abort.
    // (During the first abort the producer's hook is out of the state, so
    // it would otherwise look unabortable.)
    if (aborted_ && status() == Status::pending)
        return false;
    if (!abortable())
        throw NotAbortable("abort(): this operation cannot be aborted (it has no abort handler, or it "
                           "is a noabort() view); abort the operation it stands for instead");
    // Claimed but not yet finished (from another thread, or chained with
    // finish(other)): its outcome is decided elsewhere.
    if (status() != Status::pending)
        return false;
    InProgressRef me(self);
    InProgressRef origin = exc.origin() ? exc.origin() : me;
    std::exception_ptr eptr = exc.with(me, origin);
    const InProgressAborted* typed = nullptr;
    try {
        std::rethrow_exception(eptr);
    } catch (const InProgressAborted& e) {
        typed = &e;
        // The exception object lives on in eptr; the reference stays valid.
    }
    aborted_ = true;
    // As kaa: the abort handlers that others connected run first, then the
    // producer stops the work, then the exception callbacks run.
    if (abort_signal_ && !abort_signal_->empty())
        abort_signal_->emit(*typed);
    bool finishes_itself = false;
    if (abort_hook_) {
        // Called from a local: the hook may end the operation, which drops
        // the hook. If it stays unfinished, the hook goes back (a second
        // abort of an aborted-but-still-unwinding coroutine is then a no-op).
        AbortHook hook = std::move(abort_hook_);
        finishes_itself = hook(*typed, eptr);
        if (status() == Status::pending && !abort_hook_)
            abort_hook_ = std::move(hook);
    }
    if (finishes_itself)
        return true;
    if (claim()) {
        fail_claimed(eptr, self, true);
        return true;
    }
    // Another thread finished it while the abort handlers ran: the abort
    // lost the race, as if it had come later.
    aborted_ = false;
    return false;
}

void StateBase::fail_from(StateBase& upstream, const std::shared_ptr<StateBase>& self) {
    // Responsibility for the failure moves to this operation; a failure
    // caused by abort() stays one (never reported), and, as in kaa, the
    // abort travels on: this operation's exception callbacks run, then its
    // abort signal (decision 28).
    std::exception_ptr e = upstream.take_error();
    if (!upstream.aborted()) {
        fail_claimed(std::move(e), self);
        return;
    }
    std::shared_ptr<StateBase> keep = self;  // the callbacks may drop the last handle
    fail_claimed(e, self, true);
    if (!abort_signal_ || abort_signal_->empty())
        return;
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted& a) {
        abort_signal_->emit(a);
    } catch (...) {
    }
}

std::exception_ptr StateBase::strong_error() const {
    try {
        std::rethrow_exception(error_);
    } catch (const InProgressAborted& a) {
        return a.strengthened();
    } catch (...) {
        return error_;
    }
}

bool StateBase::wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) const {
    blocking_waiters_.fetch_add(1, std::memory_order_seq_cst);
    struct Release {
        const StateBase* s;
        ~Release() { s->blocking_waiters_.fetch_sub(1, std::memory_order_relaxed); }
    } release{this};
    // Inside a threaded job, an abort of the job (or the loop shutting down,
    // which stops running jobs) ends the wait: otherwise a job blocked on
    // something only the loop finishes would hold up the shutdown, which
    // waits for running jobs on the loop thread.
    std::stop_token stop = current_stop_token();
    std::unique_lock lock(g_wait_mutex);
    auto done = [&] { return finished(); };
    bool ok = deadline ? g_wait_cv.wait_until(lock, stop, *deadline, done) : g_wait_cv.wait(lock, stop, done);
    if (!ok && stop.stop_requested())
        throw InProgressAborted("InProgress::wait(): the threaded job that was waiting was aborted");
    return ok;
}

void fail_dropped_completion(const std::shared_ptr<StateBase>& s) noexcept {
    if (s->status() != Status::claimed)
        return;
    try {
        s->fail_claimed(std::make_exception_ptr(LoopError("the main loop went away before the result of this "
                                                          "operation, finished from another thread, was delivered")),
                        s);
    } catch (...) {
        report_unhandled(std::current_exception(), "dropped InProgress result");
    }
}

void throw_empty_handle() {
    throw EmptyHandle("empty InProgress handle: it was moved from or constructed with nullptr; "
                      "create one with InProgress<T>()");
}

void throw_already_finished(const char* what) {
    throw AlreadyFinished(std::string(what) +
                          ": the InProgress is already finished (an operation finishes exactly "
                          "once; check finished() first if several producers race)");
}

void throw_not_ready() {
    throw ResultNotReady("result(): the InProgress has not finished yet; connect() a callback, wait "
                         "for it in a coroutine, or wait() for it");
}

} // namespace detail

std::exception_ptr InProgressRef::exception() const {
    detail::StateBase& s = st();
    switch (s.status()) {
    case detail::Status::succeeded:
        return nullptr;
    case detail::Status::failed:
        return s.take_error();
    default:
        detail::throw_not_ready();
    }
}

bool InProgressRef::abort() const { return abort(InProgressAborted("InProgress aborted by abort()")); }

bool InProgressRef::abort(const InProgressAborted& exc) const {
    detail::StateBase& s = st();
    if (!detail::in_loop_context()) {
        // Only the loop thread may run the abort handlers; the outcome is
        // decided there. An operation that cannot be aborted is reported on
        // the loop (the `exception` signal), not thrown here: this thread
        // cannot ask abortable() (loop-confined) without racing.
        if (s.finished())
            return false;
        auto self = state_;
        auto copy = exc.with(exc.inprogress(), exc.origin());
        detail::post_to_loop([self, copy] {
            try {
                std::rethrow_exception(copy);
            } catch (const InProgressAborted& e) {
                try {
                    self->abort(self, e);
                } catch (...) {
                    detail::report_unhandled(std::current_exception(), "abort() from another thread");
                }
            }
        });
        return true;
    }
    return s.abort(state_, exc);
}

Signal<void(const InProgressAborted&)>& InProgressRef::abort_signal() const { return st().abort_signal(); }

void InProgressRef::on_done(detail::StateBase::Callback&& cb) const {
    detail::StateBase& s = st();
    if (detail::in_loop_context()) {
        s.add_callback(std::move(cb));
        return;
    }
    detail::post_to_loop([p = state_, cb = std::move(cb)]() mutable { p->add_callback(std::move(cb)); });
}

bool InProgressRef::wait_for(std::optional<Duration> timeout) const {
    detail::StateBase& s = st();
    std::optional<Clock::time_point> deadline;
    if (timeout)
        deadline = Clock::now() + *timeout;
    MainLoop* loop = MainLoop::current_or_null();
    if (!s.finished() && detail::in_coroutine())
        throw UsageError("InProgress::wait() inside a coroutine would block the whole loop: use "
                         "kaa::this_coroutine::await(ip) to suspend just this coroutine");
    if (!s.finished() && detail::job_would_deadlock(s))
        throw WouldDeadlock("InProgress::wait() on a threaded job queued behind the calling job on its "
                            "own pool, which has no other thread to run it: it could never finish");
    if (loop && loop->is_main_thread()) {
        // On the loop thread: run nested iterations until it finishes. The
        // time is the loop's (virtual on a VirtualClock loop).
        if (timeout)
            deadline = loop->now() + *timeout;
        while (!s.finished()) {
            if (deadline) {
                auto left = *deadline - loop->now();
                if (left <= Duration::zero())
                    return false;
                loop->step(left);
            } else {
                loop->step();
            }
        }
        return true;
    }
    if (!loop && !s.finished())
        throw LoopError("InProgress::wait(): no kaa::MainLoop exists, so nothing can finish this "
                        "operation while the caller blocks");
    return s.wait_until(deadline);
}

// ---------------------------------------------------------------------------

InProgressAborted::InProgressAborted(std::string message) : message_(std::move(message)) {}

InProgressAborted::InProgressAborted(std::string message, InProgressRef inprogress, InProgressRef origin)
    : message_(std::move(message)), inprogress_{inprogress.state(), {}}, origin_{origin.state(), {}} {}

InProgressAborted::InProgressAborted(const InProgressAborted&) = default;
InProgressAborted& InProgressAborted::operator=(const InProgressAborted&) = default;
InProgressAborted::~InProgressAborted() = default;

InProgressRef InProgressAborted::inprogress() const { return InProgressRef(inprogress_.get()); }
InProgressRef InProgressAborted::origin() const { return InProgressRef(origin_.get()); }

std::exception_ptr InProgressAborted::with_inprogress(const InProgressRef& ip) const {
    return copy_with(Ref{ip.state(), {}}, Ref{origin_.get(), {}});
}

std::exception_ptr InProgressAborted::with(const InProgressRef& ip, const InProgressRef& origin) const {
    return copy_with(Ref{ip.state(), {}}, Ref{origin.state(), {}});
}

std::exception_ptr InProgressAborted::stored_by(const detail::StateBase* self) const {
    // The origin is weak in every stored failure: it is the operation itself,
    // or one upstream of it in the cascade, which (as a coroutine that waited
    // on this one) holds it through its own failure's inprogress.
    std::shared_ptr<detail::StateBase> ip = inprogress_.get();
    Ref in = ip.get() == self ? Ref{nullptr, ip} : Ref{ip, {}};
    return copy_with(std::move(in), Ref{nullptr, origin_.get()});
}

std::exception_ptr InProgressAborted::strengthened() const {
    return copy_with(Ref{inprogress_.get(), {}}, Ref{origin_.get(), {}});
}

std::exception_ptr InProgressAborted::copy_with(Ref inprogress, Ref origin) const {
    InProgressAborted copy(*this);
    copy.inprogress_ = std::move(inprogress);
    copy.origin_ = std::move(origin);
    return std::make_exception_ptr(copy);
}

std::exception_ptr TimeoutError::copy_with(Ref inprogress, Ref origin) const {
    TimeoutError copy(*this);
    copy.inprogress_ = std::move(inprogress);
    copy.origin_ = std::move(origin);
    return std::make_exception_ptr(copy);
}

std::string describe(std::exception_ptr e) {
    if (!e)
        return "no exception";
    std::string type = "unknown exception";
    std::string message;
    try {
        std::rethrow_exception(e);
    } catch (const InProgressAborted& x) {
        message = x.message();
    } catch (const std::exception& x) {
        message = x.what();
    } catch (...) {
    }
    try {
        std::rethrow_exception(e);
    } catch (...) {
        if (const std::type_info* ti = abi::__cxa_current_exception_type()) {
            int status = 0;
            char* name = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
            type = (status == 0 && name) ? name : ti->name();
            std::free(name);
        }
    }
    return message.empty() ? type : type + ": " + message;
}

} // namespace kaa
