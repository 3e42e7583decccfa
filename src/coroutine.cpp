#include "kaa/coroutine.hpp"

#include <cstdint>
#include <new>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/context/detail/fcontext.hpp>

#include "fiber_switch.hpp"
#include "kaa/main_loop.hpp"
#include "stack.hpp"

namespace fc = boost::context::detail;

namespace kaa {

namespace detail {

namespace {

class CoroutineCore;

// Coroutines that started and have not ended, on this thread (= the loop
// thread). They stay alive here while nobody else holds their InProgress, and
// are aborted (unwound) when the loop shuts down.
struct Registry {
    CoroutineCore* head = nullptr;
    std::size_t count = 0;
    MainLoop* hooked = nullptr;  // the loop whose shutdown aborts them
};
thread_local Registry t_registry;
thread_local CoroutineCore* t_current = nullptr;

void abort_all_coroutines();

class CoroutineCore {
public:
    CoroutineCore(std::shared_ptr<StateBase> state, Stack stack, const CoroutineOptions& opts,
                  UniqueFunction<void()> body)
        : state_(std::move(state)), stack_(stack), body_(std::move(body)),
          name_(opts.name), interval_(opts.interval) {}

    static CoroutineCore* create(MainLoop& loop, std::shared_ptr<StateBase> state, const CoroutineOptions& opts,
                                 UniqueFunction<void()> body) {
        Stack stack = StackPool::local().acquire(opts.stack_size);
        char* top = stack.top();
        auto addr = reinterpret_cast<std::uintptr_t>(top - sizeof(CoroutineCore)) & ~std::uintptr_t(63);
        void* mem = reinterpret_cast<void*>(addr);
        CoroutineCore* c;
        try {
            c = ::new (mem) CoroutineCore(std::move(state), stack, opts, std::move(body));
        } catch (...) {
            StackPool::local().release(stack);
            throw;
        }
        // The context starts below the control block; the stack belongs to
        // the pool and goes back there only after the block is destroyed.
        char* ctx_top = static_cast<char*>(mem) - 64;
        c->self_ = fc::make_fcontext(ctx_top, static_cast<std::size_t>(ctx_top - (stack.base + stack.guard)),
                                     &CoroutineCore::trampoline);
        c->link(loop);
        return c;
    }

    // ---- switching ---------------------------------------------------------

    /// Switches into the coroutine until it suspends or ends. The core may be
    /// gone when this returns (ended: see end()).
    void resume() {
        running_ = true;
        CoroutineCore* prev = t_current;
        RunningStackInfo prev_info = t_running_stack;
        t_current = this;
        t_running_stack = RunningStackInfo{stack_.base, stack_.base + stack_.guard, name().c_str(), stack_.usable()};
        {
            FiberSwitch sw(fiber_);
            sw.enter(stack_.base + stack_.guard, stack_.usable());
            fc::transfer_t t = fc::jump_fcontext(self_, this);
            sw.returned();
            self_ = t.fctx;  // where it suspended (unused once it ended)
        }
        t_current = prev;
        t_running_stack = prev_info;
        running_ = false;
        if (ended_)
            end();
    }

    /// On the coroutine's stack: switches back to whoever resumed it.
    void suspend() {
        fiber_.leave();
        fc::transfer_t t = fc::jump_fcontext(caller_, nullptr);
        caller_ = t.fctx;  // the next resumer
        fiber_.arrived();
    }

    /// The first frame on the coroutine's stack. It never returns: the last
    /// jump leaves the stack for good and the resumer releases it.
    static void trampoline(fc::transfer_t t) {
        auto* c = static_cast<CoroutineCore*>(t.data);
        c->caller_ = t.fctx;
        c->fiber_.arrived();
        c->body_();
        c->body_.reset();
        c->ended_ = true;
        c->fiber_.leave_for_good();
        fc::jump_fcontext(c->caller_, nullptr);
        __builtin_unreachable();
    }

    // ---- waiting -----------------------------------------------------------

    void check_can_suspend() {
        if (pending_abort_) {
            // Aborted while running (by itself, or by code it called): this
            // suspension point is where the abort is raised.
            std::rethrow_exception(std::exchange(pending_abort_, nullptr));
        }
        if (aborted_)
            throw SuspendAfterAbort("coroutine '" + name() +
                                    "' was aborted and cannot suspend again: catch InProgressAborted "
                                    "only to clean up without waiting (start independent cleanup work "
                                    "as a new coroutine, or shield it with noabort())");
    }

    void raise_pending_abort() {
        if (pending_abort_)
            std::rethrow_exception(std::exchange(pending_abort_, nullptr));
    }

    void await(const InProgressRef& ip) {
        StateBase& s = *ip.state();
        waiting_on_ = ip;
        std::uint32_t token = token_;
        wait_id_ = s.add_callback([this, token](StateBase&) { wake(token); });
        suspend();
        waiting_on_ = InProgressRef();
        raise_pending_abort();
    }

    void yield() {
        std::uint32_t token = token_;
        if (interval_ > Duration::zero())
            schedule_timer(interval_, token);
        else
            MainLoop::current().post([s = state_, token] {
                if (auto* c = static_cast<CoroutineCore*>(s->coroutine))
                    c->resume_if(token);
            });
        suspend();
        raise_pending_abort();
    }

    /// What finished a wait calls: resume directly (kaa's interval-0 fast
    /// path, inside the finisher's call) or after the interval.
    void wake(std::uint32_t token) {
        if (token != token_ || ended_ || running_)
            return;
        ++token_;
        if (interval_ > Duration::zero())
            schedule_timer(interval_, token_);
        else
            resume();
    }

    void resume_if(std::uint32_t token) {
        if (token != token_ || ended_ || running_)
            return;
        ++token_;
        resume();
    }

    void schedule_timer(Duration d, std::uint32_t token) {
        if (!timer_)
            timer_ = std::make_unique<boost::asio::steady_timer>(MainLoop::current().context());
        timer_->expires_after(d);
        timer_->async_wait([s = state_, token](const boost::system::error_code& ec) {
            if (ec)
                return;
            if (auto* c = static_cast<CoroutineCore*>(s->coroutine))
                c->resume_if(token);
        });
    }

    // ---- abort -------------------------------------------------------------

    bool on_abort(const InProgressAborted& exc, std::exception_ptr eptr) {
        if (aborted_ || ended_)
            return true;
        aborted_ = true;
        abort_exc_ = eptr;
        InProgressRef origin = exc.origin();
        if (running_) {
            pending_abort_ = exc.with(InProgressRef(), origin);
            return true;
        }
        ++token_;  // scheduled resumptions (time slice, interval timer) are void now
        if (timer_)
            timer_->cancel();
        InProgressRef waited = std::move(waiting_on_);
        waiting_on_ = InProgressRef();
        if (waited) {
            StateBase& ws = *waited.state();
            ws.remove_callback(wait_id_);
            // Cascade: abort what it waits on if nobody else waits on it.
            if (ws.status() == Status::pending && ws.listener_count() == 0 && ws.abortable()) {
                try {
                    ws.abort(waited.state(), exc);
                } catch (...) {
                    report_unhandled(std::current_exception(), "abort cascade");
                }
            }
        }
        pending_abort_ = exc.with(waited, origin);
        resume();  // unwinds it from its suspension point; `this` may be gone
        return true;
    }

    // ---- end ---------------------------------------------------------------

    void failed(std::exception_ptr e) noexcept { error_ = std::move(e); }

    /// After the coroutine's last switch out: releases the stack and finishes
    /// the InProgress (on the resumer's stack, so callbacks do not eat into a
    /// coroutine stack).
    void end() {
        std::shared_ptr<StateBase> state = std::move(state_);
        unlink();
        state->coroutine = nullptr;
        state->clear_abort_hook();
        std::exception_ptr error = std::move(error_);
        std::exception_ptr abort_exc = std::move(abort_exc_);
        bool aborted = aborted_;
        Stack stack = stack_;
        this->~CoroutineCore();
        StackPool::local().release(stack);

        if (!aborted && !error && state->complete_unclaimed(Status::succeeded, state))
            return;  // the common case: claim, publish and call back in one go
        if (!state->claim()) {
            report_unhandled(std::make_exception_ptr(UsageError(
                                 "the InProgress of a coroutine was finished by someone else; the "
                                 "coroutine's own outcome was discarded")),
                             "coroutine");
            return;
        }
        if (aborted) {
            if (error && !is_abort(error))
                report_unhandled(error, "coroutine cleanup after abort");
            state->fail_claimed(abort_exc, state, true);
        } else if (error) {
            state->fail_claimed(error, state);
        } else {
            state->complete(Status::succeeded, state);
        }
    }

    static bool is_abort(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const InProgressAborted&) {
            return true;
        } catch (...) {
            return false;
        }
    }

    // ---- registry ----------------------------------------------------------

    void link(MainLoop& loop) {
        Registry& r = t_registry;
        next_ = r.head;
        if (r.head)
            r.head->prev_ = this;
        r.head = this;
        ++r.count;
        if (r.hooked != &loop) {
            r.hooked = &loop;
            add_shutdown_hook(loop, [] { abort_all_coroutines(); });
        }
    }

    void unlink() noexcept {
        Registry& r = t_registry;
        if (prev_)
            prev_->next_ = next_;
        else
            r.head = next_;
        if (next_)
            next_->prev_ = prev_;
        --r.count;
    }

    StateBase& state() { return *state_; }
    std::shared_ptr<StateBase> state_ptr() const { return state_; }
    const std::string& name() const noexcept {
        static const std::string unnamed = "coroutine";
        return name_.empty() ? unnamed : name_;
    }
    Duration interval() const noexcept { return interval_; }
    void set_interval(Duration d) noexcept { interval_ = d; }
    bool aborted() const noexcept { return aborted_; }
    CoroutineCore* next() const noexcept { return next_; }
    Progress* progress = nullptr;

private:
    std::shared_ptr<StateBase> state_;
    Stack stack_;
    fc::fcontext_t self_ = nullptr;    // the suspended coroutine
    fc::fcontext_t caller_ = nullptr;  // its resumer, while it runs
    UniqueFunction<void()> body_;
    std::string name_;  // empty: "coroutine" (see name())
    Duration interval_;
    std::exception_ptr error_;
    std::exception_ptr pending_abort_;
    std::exception_ptr abort_exc_;
    InProgressRef waiting_on_;
    std::uint32_t wait_id_ = 0;
    std::uint32_t token_ = 0;
    bool running_ = false;
    bool aborted_ = false;
    bool ended_ = false;
    CoroutineCore* prev_ = nullptr;
    CoroutineCore* next_ = nullptr;
    std::unique_ptr<boost::asio::steady_timer> timer_;
    FiberAnnotations fiber_;
};

void abort_all_coroutines() {
    Registry& r = t_registry;
    r.hooked = nullptr;
    // Each abort unwinds one coroutine (and possibly those it waits on);
    // start again from the head after each, since the list changes.
    std::size_t guard = r.count * 2 + 16;
    while (r.head && guard-- > 0) {
        CoroutineCore* c = r.head;
        while (c && c->aborted())
            c = c->next();
        if (!c)
            break;
        std::shared_ptr<StateBase> keep = c->state_ptr();
        try {
            if (keep->status() == Status::pending) {
                InProgressRef(keep).abort(InProgressAborted("the main loop shut down"));
            } else {
                // Its InProgress was finished from outside while the body
                // still runs: no abort() reaches it any more, so unwind the
                // coroutine itself.
                InProgressAborted exc("the main loop shut down", InProgressRef(keep), InProgressRef(keep));
                c->on_abort(exc, std::make_exception_ptr(exc));
            }
        } catch (...) {
            report_unhandled(std::current_exception(), "coroutine abort at shutdown");
        }
    }
}

CoroutineCore* current_or_throw(const char* what) {
    CoroutineCore* c = t_current;
    if (!c)
        throw NotInCoroutine(std::string(what) +
                             " called outside a coroutine: start one with kaa::coroutine(fn), or, "
                             "outside coroutines, connect() a callback or wait() on the InProgress");
    return c;
}

CoroutineCore* core_of(const StateBase& s) { return static_cast<CoroutineCore*>(s.coroutine); }

} // namespace

void start_coroutine(std::shared_ptr<StateBase> state, const CoroutineOptions& opts, UniqueFunction<void()> body) {
    MainLoop& loop = MainLoop::current();
    if (!loop.is_main_thread())
        throw WrongThread("kaa::coroutine(): coroutines run on the loop thread; from a worker, post() the "
                          "start to the loop");
    StateBase* raw = state.get();
    std::shared_ptr<Progress> progress;
    if (opts.progress) {
        progress = std::make_shared<Progress>();
        raw->progress = progress;
    }
    CoroutineCore* c = CoroutineCore::create(loop, std::move(state), opts, std::move(body));
    c->progress = progress.get();
    raw->coroutine = c;
    raw->set_abort_hook([c](const InProgressAborted& exc, std::exception_ptr e) { return c->on_abort(exc, e); });
    c->resume();
}

void coroutine_failed(std::exception_ptr e) noexcept {
    if (CoroutineCore* c = t_current)
        c->failed(std::move(e));
}

void await_state(const InProgressRef& ip) {
    CoroutineCore* c = current_or_throw("kaa::this_coroutine::await()");
    if (!ip.valid())
        throw_empty_handle();
    c->check_can_suspend();
    StateBase& s = *ip.state();
    if (!s.finished())
        c->await(ip);
    if (s.failed()) {
        std::exception_ptr e = s.take_error();
        try {
            std::rethrow_exception(e);
        } catch (const InProgressAborted& a) {
            // As kaa: the abort seen here names what this coroutine waited on.
            if (a.inprogress() != ip)
                std::rethrow_exception(a.with_inprogress(ip));
            throw;
        }
    }
}

bool in_coroutine() noexcept { return t_current != nullptr; }

Duration coroutine_interval(const StateBase& s) {
    CoroutineCore* c = core_of(s);
    return c ? c->interval() : Duration::zero();
}

void set_coroutine_interval(StateBase& s, Duration d) {
    if (CoroutineCore* c = core_of(s))
        c->set_interval(d);
}

bool coroutine_active(const StateBase& s) noexcept { return core_of(s) != nullptr; }

void throw_policy_without_definition() {
    throw UsageError("kaa::coroutine(): a call policy needs state that outlives the call; create a "
                     "kaa::Coroutine<R(Args...)> definition with these options and call it");
}

} // namespace detail

void CoroutineGroup::run_or_queue(InProgressRef ip, detail::UniqueFunction<void()> start) {
    auto release_after = [self = shared_from_this(), ip] {
        ip.state()->add_callback([self](detail::StateBase&) { self->release(); }, false);
    };
    if (!busy_) {
        busy_ = true;
        start();
        release_after();
        return;
    }
    // Queued: abortable, and an abort just removes it (the queue skips
    // finished entries, so the others stay serialized).
    ip.state()->set_abort_hook([](const InProgressAborted&, std::exception_ptr) { return false; });
    queue_.emplace_back(ip, [start = std::move(start), release_after]() mutable {
        start();
        release_after();
    });
}

void CoroutineGroup::release() {
    while (!queue_.empty()) {
        auto [ip, start] = std::move(queue_.front());
        queue_.pop_front();
        if (ip.finished())
            continue;
        start();
        return;
    }
    busy_ = false;
}

namespace this_coroutine {

void yield() {
    detail::CoroutineCore* c = detail::current_or_throw("kaa::this_coroutine::yield()");
    c->check_can_suspend();
    c->yield();
}

bool inside() noexcept { return detail::t_current != nullptr; }

const std::string& name() { return detail::current_or_throw("kaa::this_coroutine::name()")->name(); }

Progress& progress() {
    detail::CoroutineCore* c = detail::current_or_throw("kaa::this_coroutine::progress()");
    if (!c->progress)
        throw UsageError("this_coroutine::progress(): coroutine '" + c->name() +
                         "' has no Progress; start it with CoroutineOptions{.progress = true}");
    return *c->progress;
}

} // namespace this_coroutine

std::size_t active_coroutines() noexcept { return detail::t_registry.count; }

} // namespace kaa
