// SPDX-License-Identifier: BSL-1.0
#include "kaa/coroutine.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/context/detail/fcontext.hpp>

#include "fiber_switch.hpp"
#include "loop_timer.hpp"
#include "kaa/main_loop.hpp"
#include "await_support.hpp"
#include "stack.hpp"
#include "work_registry.hpp"

namespace fc = boost::context::detail;

// What scripts/kaa_gdb.py reads to list coroutines ("kaa coroutines" in gdb):
// a plain global, so that a core file is read as a live process is, with no
// thread-local lookup, and the offsets of the fields it reads, so that it
// needs no debug information. Filled when the loop thread's first coroutine
// starts. Bump `version` when the script must change with it.
extern "C" {
struct KaaGdbAnchor {
    char magic[8] = {'k', 'a', 'a', '-', 'g', 'd', 'b', '\0'};
    std::uint64_t version = 1;
    const void* registry = nullptr;  // the loop thread's AwaitRegistry
    std::uint64_t loop_tid = 0;
    // Offsets: in AwaitRegistry, of its first coroutine; in CoroutineCore,
    // of the next one, the running flag (bool), what it waits on (a
    // shared_ptr: non-null first word = suspended on it), the saved context
    // of a suspended coroutine (Boost.Context fcontext_t), its name and
    // creation file (const char*), line (unsigned), and the callable's type
    // name (size, data).
    std::uint64_t registry_head = 0, next = 0, running = 0, waiting_on = 0, self = 0, name = 0, file = 0,
                  line = 0, function_size = 0, function_data = 0;
};
[[gnu::used]] KaaGdbAnchor kaa_gdb_anchor;
}

namespace kaa {

namespace detail {

namespace {

class CoroutineCore;

constinit thread_local AwaitRegistry t_registry{"coroutine"};
thread_local CoroutineCore* t_current = nullptr;

class CoroutineCore final : public AwaitCore {
public:
    CoroutineCore(std::shared_ptr<StateBase> state, Stack stack, const CoroutineOptions& opts,
                  const WorkSite& site, UniqueFunction<void()> body)
        : stack_(stack), body_(std::move(body)),
          name_(opts.name), interval_(opts.interval), site_(site) {
        state_ = std::move(state);
        note_state_change(since_);
        stack_info_ = RunningStackInfo{stack_.base,           stack_.base + stack_.guard, name().c_str(),
                                       stack_.usable(),       site_.where.file_name(),    site_.where.line()};
    }

    static CoroutineCore* create(MainLoop& loop, std::shared_ptr<StateBase> state, const CoroutineOptions& opts,
                                 const WorkSite& site, UniqueFunction<void()> body) {
        Stack stack = StackPool::acquire_local(opts.stack_size);
        char* top = stack.top();
        auto addr = reinterpret_cast<std::uintptr_t>(top - sizeof(CoroutineCore)) & ~std::uintptr_t(63);
        void* mem = reinterpret_cast<void*>(addr);
        CoroutineCore* c;
        try {
            c = ::new (mem) CoroutineCore(std::move(state), stack, opts, site, std::move(body));
        } catch (...) {
            StackPool::release_local(stack);
            throw;
        }
        // The context starts below the control block; the stack belongs to
        // the pool and goes back there only after the block is destroyed.
        char* ctx_top = static_cast<char*>(mem) - 64;
        c->self_ = fc::make_fcontext(ctx_top, static_cast<std::size_t>(ctx_top - (stack.base + stack.guard)),
                                     &CoroutineCore::trampoline);
        t_registry.link(c, loop);
        if (kaa_gdb_anchor.registry != &t_registry) [[unlikely]]
            publish_for_debugger();
        return c;
    }

    /// Points scripts/kaa_gdb.py at this thread's registry (the loop
    /// thread's: coroutines run nowhere else), with the offsets it reads.
    static void publish_for_debugger() noexcept;

    // ---- switching ---------------------------------------------------------

    /// Switches into the coroutine until it suspends or ends. The core may be
    /// gone when this returns (ended: see end()).
    ///
    /// Inlined into its callers on purpose: a stack switch leaves the CPU's
    /// return-address predictor out of step with the stack, so every return
    /// between the switch and the loop's outer frame mispredicts. Each frame
    /// fewer on that path is one mispredicted return fewer per time slice
    /// (with Queue::run_until, ~15% of a NotFinished step; doc/design.md).
    [[gnu::always_inline]] void resume() {
        running_ = true;
        CoroutineCore* prev = t_current;
        RunningStackInfo prev_info = t_running_stack;
        t_current = this;
        t_running_stack = stack_info_;
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

    void check_can_suspend() { AwaitCore::check_can_suspend(name().c_str()); }
    using AwaitCore::rethrow_if_failed;

    void await(const InProgressRef& ip) {
        StateBase& s = *ip.state();
        waiting_on_ = ip;
        std::uint32_t token = token_;
        wait_id_ = s.add_callback([this, token](StateBase&) { wake(token); });
        note_state_change(since_);
        suspend();
        after_wait();
    }

    void yield() {
        note_state_change(since_);
        std::uint32_t token = token_;
        slice_pending_ = true;
        if (interval_ > Duration::zero())
            schedule_timer(interval_, token);
        else
            MainLoop::current().post(TimeSlice(this, token));
        suspend();
        after_wait();
    }

    /// The loop task that resumes a coroutine after its time slice. It is
    /// posted on every yield(), so it refers to the core by pointer and pins
    /// it (a plain count: everything here is on the loop thread) instead of
    /// holding the InProgress state, whose atomic reference count would cost
    /// more than the rest of a time slice. A core that ends while pinned (an
    /// abort or the shutdown unwound it from yield()) stays as a zombie, its
    /// InProgress already finished, until the task has run or was dropped.
    class TimeSlice {
    public:
        using trivially_relocatable = void;  // the loop's queue moves it by byte copy
        TimeSlice(CoroutineCore* c, std::uint32_t token) noexcept : c_(c), token_(token) { ++c->pins_; }
        TimeSlice(TimeSlice&& o) noexcept : c_(std::exchange(o.c_, nullptr)), token_(o.token_) {}
        TimeSlice& operator=(TimeSlice&&) = delete;
        ~TimeSlice() {
            if (c_)
                c_->unpin();
        }
        void operator()() {
            CoroutineCore* c = std::exchange(c_, nullptr);
            if (c->unpin())
                c->resume_if(token_);
        }

    private:
        CoroutineCore* c_;
        std::uint32_t token_;
    };

    /// Drops a pin; false if the core was a zombie (then gone, if that was
    /// the last pin).
    bool unpin() noexcept {
        --pins_;
        if (!zombie_)
            return true;
        if (pins_ == 0)
            destroy();
        return false;
    }

    /// What finished a wait calls: resume directly (kaa's interval-0 fast
    /// path, inside the finisher's call) or after the interval.
    void wake(std::uint32_t token) {
        if (token != token_ || ended_ || running_)
            return;
        ++token_;
        if (interval_ > Duration::zero()) {
            slice_pending_ = true;
            schedule_timer(interval_, token_);
        } else {
            resume();
        }
    }

    void resume_if(std::uint32_t token) {
        if (token != token_ || ended_ || running_)
            return;
        ++token_;
        slice_pending_ = false;
        resume();
    }

    /// A new interval applies to the slice already scheduled too (kaa's
    /// interval setter restarts the step timer): it is rescheduled from now.
    void set_interval(Duration d) {
        interval_ = d;
        if (!slice_pending_ || ended_ || running_ || aborted_)
            return;
        std::uint32_t token = ++token_;  // voids the one scheduled before
        if (d > Duration::zero()) {
            schedule_timer(d, token);
        } else {
            if (timer_)
                timer_->cancel();
            MainLoop::current().post(TimeSlice(this, token));
        }
    }

    void schedule_timer(Duration d, std::uint32_t token) {
        if (!timer_)
            timer_ = std::make_unique<LoopTimer>(MainLoop::current().context());
        timer_->expires_after(d);
        timer_->async_wait([s = state_, token](const boost::system::error_code& ec) {
            if (ec)
                return;
            if (auto* c = static_cast<CoroutineCore*>(s->coroutine))
                c->resume_if(token);
        });
    }

    // ---- abort -------------------------------------------------------------

    bool on_abort(const InProgressAborted& exc, std::exception_ptr eptr) override {
        if (ended_ || !begin_abort(exc, std::move(eptr)))
            return true;
        if (timer_)
            timer_->cancel();
        resume();  // unwinds it from its suspension point; `this` may be gone
        return true;
    }

    // ---- end ---------------------------------------------------------------

    /// After the coroutine's last switch out: releases the stack and finishes
    /// the InProgress (on the resumer's stack, so callbacks do not eat into a
    /// coroutine stack).
    void end() {
        t_registry.unlink(this);
        state_->coroutine = nullptr;
        state_->clear_abort_hook();  // it points here
        // Named in the reports of an outcome that fails or is discarded.
        std::string origin;
        if (error_ || state_->status() != Status::pending) [[unlikely]]
            origin = this->origin();
        Outcome outcome = take_outcome();
        if (pins_ == 0) {
            destroy();
        } else {
            zombie_ = true;  // a queued TimeSlice still refers to it
            timer_.reset();
        }
        settle(std::move(outcome), "coroutine", std::move(origin), {});
    }

    /// "coroutine 'name' started at file.cpp:12" (the name derived from the
    /// callable when none was given).
    std::string origin() const {
        std::string text = "coroutine '" + display_name() + "'";
        std::string where = site_text(site_);
        return where.empty() ? text : text + " " + where;
    }

    std::string display_name() const {
        return name_.empty() ? std::string(site_.function) : name_;
    }

    void describe(WorkRecord& r, std::int64_t now) const override {
        r.kind = WorkKind::coroutine;
        r.name = display_name();
        r.callable = std::string(site_.function);
        set_site(r, site_);
        if (running_)
            r.state = "running";
        else if (waiting_on_)
            r.state = "suspended";
        else
            r.state = interval_ > Duration::zero() ? "time slice (interval)" : "time slice";
        r.in_state = time_since(since_, now);
    }

    void destroy() noexcept {
        Stack stack = stack_;
        this->~CoroutineCore();
        StackPool::release_local(stack);
    }

    const std::string& name() const noexcept {
        static const std::string unnamed = "coroutine";
        return name_.empty() ? unnamed : name_;
    }
    Duration interval() const noexcept { return interval_; }
    Progress* progress = nullptr;

private:
    Stack stack_;
    fc::fcontext_t self_ = nullptr;    // the suspended coroutine
    fc::fcontext_t caller_ = nullptr;  // its resumer, while it runs
    UniqueFunction<void()> body_;
    std::string name_;  // empty: "coroutine" (see name())
    Duration interval_;
    WorkSite site_;
    bool ended_ = false;
    bool slice_pending_ = false;  // a TimeSlice or the timer will resume it
    bool zombie_ = false;      // ended, kept for the TimeSlice tasks that pin it
    std::uint32_t pins_ = 0;   // TimeSlice tasks queued for it
    RunningStackInfo stack_info_;
    std::unique_ptr<LoopTimer> timer_;
    FiberAnnotations fiber_;
};

// offsetof on a class with virtual functions is conditionally supported;
// GCC and Clang support it for classes without virtual bases, as here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
void CoroutineCore::publish_for_debugger() noexcept {
    KaaGdbAnchor& a = kaa_gdb_anchor;
    a.registry_head = AwaitRegistry::head_offset();
    a.next = offsetof(CoroutineCore, next);
    a.running = offsetof(CoroutineCore, running_);
    a.waiting_on = offsetof(CoroutineCore, waiting_on_);
    a.self = offsetof(CoroutineCore, self_);
    a.name = offsetof(CoroutineCore, stack_info_) + offsetof(RunningStackInfo, name);
    a.file = offsetof(CoroutineCore, stack_info_) + offsetof(RunningStackInfo, file);
    a.line = offsetof(CoroutineCore, stack_info_) + offsetof(RunningStackInfo, line);
    // The callable's type name: a string_view, whose two words libstdc++ and
    // libc++ order differently; find out which is which.
    const std::string_view probe("?", 1);
    std::uint64_t words[2];
    static_assert(sizeof probe == sizeof words);
    std::memcpy(words, &probe, sizeof words);
    const std::size_t function = offsetof(CoroutineCore, site_) + offsetof(WorkSite, function);
    a.function_size = function + (words[0] == 1 ? 0 : 8);
    a.function_data = function + (words[0] == 1 ? 8 : 0);
    a.loop_tid = static_cast<std::uint64_t>(::gettid());
    a.registry = &t_registry;
}
#pragma GCC diagnostic pop

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

void start_coroutine(std::shared_ptr<StateBase> state, const CoroutineOptions& opts, const WorkSite& site,
                     UniqueFunction<void()> body) {
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
    CoroutineCore* c = CoroutineCore::create(loop, std::move(state), opts, site, std::move(body));
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
    c->rethrow_if_failed(s, ip);
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
    if (!busy_) {
        busy_ = true;
        try {
            start();
        } catch (...) {
            // Nothing started (no stack, say): the group stays usable.
            busy_ = false;
            throw;
        }
        current_ = ip.state().get();
        release_when_done(ip);
        return;
    }
    // Queued: abortable, and an abort just removes it (the queue skips
    // finished entries, so the others stay serialized).
    ip.state()->set_abort_hook([](const InProgressAborted&, std::exception_ptr) { return false; });
    // Connected now, before any callback the caller connects to this call:
    // its successor starts first (kaa, decision 33).
    release_when_done(ip);
    queue_.emplace_back(std::move(ip), std::move(start));
}

void CoroutineGroup::release_when_done(const InProgressRef& ip) {
    // A call that ends inside start() releases at once, inside this call.
    // Only the running call releases: a queued one that is aborted is just
    // skipped by release().
    ip.state()->add_callback(
        [self = shared_from_this(), st = ip.state().get()](detail::StateBase&) {
            if (self->current_ == st) {
                self->current_ = nullptr;
                self->release();
            }
        },
        false);
}

void CoroutineGroup::release() {
    if (releasing_) {
        // A queued call ended at once, inside the start below: go round the
        // loop instead of recursing (a long queue of calls that never
        // suspend would otherwise nest one frame per call).
        release_again_ = true;
        return;
    }
    releasing_ = true;
    do {
        release_again_ = false;
        busy_ = false;
        while (!queue_.empty()) {
            auto [ip, start] = std::move(queue_.front());
            queue_.pop_front();
            if (ip.finished())
                continue;
            busy_ = true;
            current_ = ip.state().get();  // its callback (connected when queued) releases
            try {
                start();
            } catch (...) {
                // The queued call could not start: its InProgress fails with
                // the reason, and the next one gets its turn.
                busy_ = false;
                current_ = nullptr;
                const auto& s = ip.state();
                if (s->claim())
                    s->fail_claimed(std::current_exception(), s);
                if (busy_)
                    break;  // its callbacks made a new call, which runs now
                continue;
            }
            break;
        }
    } while (release_again_);
    releasing_ = false;
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

std::size_t active_coroutines() noexcept { return detail::t_registry.count(); }

namespace detail {
const AwaitRegistry& coroutine_registry() noexcept { return t_registry; }
} // namespace detail

} // namespace kaa
