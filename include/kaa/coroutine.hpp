// SPDX-License-Identifier: BSL-1.0
// Stackful coroutines: ordinary functions that can suspend anywhere in their
// call tree.
//
// kaa::coroutine(fn, args...) runs `fn` on a stack of its own and returns a
// CoroutineInProgress<R> for its result. The first step runs at once, in the
// caller, up to the first suspension; a coroutine that never suspends returns
// an InProgress that is already finished. Inside, the functions of
// kaa::this_coroutine suspend only this coroutine:
//
//   kaa::this_coroutine::await(ip)  waits for any InProgress: returns its value
//                                   or rethrows its exception;
//   kaa::this_coroutine::yield()    gives the loop a time slice (kaa's
//                                   `yield NotFinished`) and resumes on a later
//                                   iteration (or after `interval`).
//
// abort() raises InProgressAborted inside the coroutine at its suspension
// point and cascades into what it waits on, if nothing else waits on that and
// it is abortable (noabort() shields it). See doc/coroutines.md.
//
// Coroutines run on the loop thread only; this header does not expose
// Boost.Context.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kaa/detail/work_site.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/progress.hpp"

namespace kaa {

/// What a reusable Coroutine definition does when called again while an
/// earlier call is unfinished (kaa's POLICY_*).
enum class Policy {
    none,          ///< every call runs independently
    singleton,     ///< a call returns the unfinished instance; args are ignored
    synchronized,  ///< calls queue and run one after another
    pass_last,     ///< every call runs and receives the previous unfinished instance
};

class CoroutineGroup;

/// How a coroutine runs.
struct CoroutineOptions {
    /// Shown in reports (unhandled exceptions, stack overflow).
    std::string name;
    /// Pause before resuming after a time slice (yield()) or after a waited
    /// operation finishes; zero resumes on the next iteration, or directly.
    Duration interval = Duration::zero();
    /// Usable stack bytes; 0 = the default (128 KiB, only touched pages
    /// take memory). The stack has a guard page; an overflow is reported
    /// with the coroutine's name and ends the process.
    std::size_t stack_size = 0;
    /// Create a Progress for each call: InProgressRef::progress() outside,
    /// this_coroutine::progress() inside.
    bool progress = false;
    /// For Coroutine definitions: the call policy.
    Policy policy = Policy::none;
    /// For Coroutine definitions: share the policy with other definitions
    /// (kaa's group=): e.g. two synchronized methods that must not overlap.
    std::shared_ptr<CoroutineGroup> group;
    /// Where the options were written: the creation site that kaa::live_work()
    /// and reports show. Options written in the call, coroutine({...}, fn),
    /// record the call; a Coroutine definition records the definition.
    std::source_location site = std::source_location::current();
};

namespace detail {

/// Attaches a coroutine to `state` and runs its first step. `body` runs on
/// the coroutine's stack, stores the value into the state, and reports an
/// escaping exception with coroutine_failed().
void start_coroutine(std::shared_ptr<StateBase> state, const CoroutineOptions& opts, const WorkSite& site,
                     UniqueFunction<void()> body);
/// Called by `body` with the exception that escaped the user's function.
void coroutine_failed(std::exception_ptr e) noexcept;
/// Suspends the current coroutine until `ip` finished. Throws
/// InProgressAborted if the coroutine is aborted meanwhile.
void await_state(const InProgressRef& ip);
Duration coroutine_interval(const StateBase& s);
void set_coroutine_interval(StateBase& s, Duration d);
bool coroutine_active(const StateBase& s) noexcept;
[[noreturn]] void throw_policy_without_definition();

/// Coroutine stacks of the calling thread (tests, diagnostics): handed out
/// to running coroutines, and kept in the pool for reuse.
struct CoroutineStackCounts {
    std::size_t live = 0;
    std::size_t pooled = 0;
};
CoroutineStackCounts coroutine_stack_counts() noexcept;
/// Test hook: the next `n` stack mappings fail as if mmap returned ENOMEM
/// (while it is armed, pooled stacks are not reused).
void fail_next_stack_maps(std::size_t n) noexcept;

} // namespace detail

/// The InProgress of a coroutine call.
template <class T>
class CoroutineInProgress : public InProgress<T> {
public:
    using InProgress<T>::InProgress;
    CoroutineInProgress(const InProgress<T>& ip) : InProgress<T>(ip) {}

    /// True until the coroutine has ended (returned, thrown, or been aborted
    /// and unwound).
    bool active() const { return detail::coroutine_active(this->st()); }
    Duration interval() const { return detail::coroutine_interval(this->st()); }
    /// Changes the pause between time slices, including the slice already
    /// scheduled, which is rescheduled `d` from now (as kaa).
    void set_interval(Duration d) const { detail::set_coroutine_interval(this->st(), d); }
};

namespace detail {

template <class R, class F, class Tuple>
UniqueFunction<void()> make_coroutine_body(State<R>* s, F&& fn, Tuple&& args) {
    // The value goes into the state only while it is pending: if someone
    // finished the coroutine's InProgress from outside meanwhile, the result
    // they set stays, and the ending coroutine reports its outcome as
    // discarded (AwaitCore::settle).
    return [s, fn = std::forward<F>(fn), args = std::forward<Tuple>(args)]() mutable {
        try {
            if constexpr (std::is_void_v<R>) {
                std::apply(fn, std::move(args));
            } else {
                R value = std::apply(fn, std::move(args));
                if (s->status() == Status::pending)
                    s->set_value(std::move(value));
            }
        } catch (...) {
            coroutine_failed(std::current_exception());
        }
    };
}

template <class F, class... A>
using coroutine_result_t = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>...>>;

template <class F, class... A>
auto start_coroutine_call(const CoroutineOptions& opts, const std::source_location& where, F&& fn, A&&... args) {
    using R = coroutine_result_t<F, A...>;
    if (opts.policy != Policy::none)
        throw_policy_without_definition();
    auto state = make_state<State<R>>();
    CoroutineInProgress<R> ip(state);
    State<R>* raw = state.get();
    start_coroutine(std::move(state), opts, WorkSite{where, type_name_v<std::decay_t<F>>},
                    make_coroutine_body<R>(raw, std::forward<F>(fn), std::make_tuple(std::forward<A>(args)...)));
    return ip;
}

inline const CoroutineOptions& default_coroutine_options() noexcept {
    static const CoroutineOptions defaults = [] {
        CoroutineOptions o;
        o.site = {};  // no site: the call's own is recorded, if any
        return o;
    }();
    return defaults;
}

} // namespace detail

/// Starts `fn(args...)` as a coroutine and runs it to its first suspension.
/// The arguments are copied (moved) into the coroutine. `opts.site` is the
/// creation site kaa::live_work() shows.
/// @throws WrongThread off the loop thread; LoopError without a MainLoop;
/// UsageError if `opts` asks for a policy (use a Coroutine definition).
template <class F, class... A>
auto coroutine(const CoroutineOptions& opts, F&& fn, A&&... args) {
    return detail::start_coroutine_call(opts, opts.site, std::forward<F>(fn), std::forward<A>(args)...);
}

/// The same with default options; the call is the creation site.
template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CoroutineOptions>)
auto coroutine(F&& fn, std::source_location site = std::source_location::current()) {
    return detail::start_coroutine_call(detail::default_coroutine_options(), site, std::forward<F>(fn));
}

/// The same with arguments: no creation site is recorded (a defaulted
/// source_location cannot follow them); write coroutine({}, fn, args...)
/// to have one.
template <class F, class A0, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CoroutineOptions> &&
             !std::is_same_v<std::remove_cvref_t<A0>, std::source_location>)
auto coroutine(F&& fn, A0&& arg0, A&&... args) {
    return detail::start_coroutine_call(detail::default_coroutine_options(), std::source_location(),
                                        std::forward<F>(fn), std::forward<A0>(arg0), std::forward<A>(args)...);
}

/// Shared policy state of one or more Coroutine definitions (kaa's group).
class CoroutineGroup : public std::enable_shared_from_this<CoroutineGroup> {
public:
    explicit CoroutineGroup(Policy policy) : policy_(policy) {}
    Policy policy() const noexcept { return policy_; }

    /// Library plumbing for Coroutine<>.
    /// The calls not known to be finished, oldest first; the last entry is
    /// exact (unfinished), older ones may have finished meanwhile. Finished
    /// calls are swept from the whole list only when it has doubled since the
    /// last sweep, so that a long queue of synchronized calls costs linear
    /// time, not quadratic.
    std::vector<InProgressRef>& unfinished() {
        while (!unfinished_.empty() && unfinished_.back().finished())
            unfinished_.pop_back();
        if (unfinished_.size() >= 2 * swept_size_ + 16) {
            std::erase_if(unfinished_, [](const InProgressRef& r) { return r.finished(); });
            swept_size_ = unfinished_.size();
        }
        return unfinished_;
    }
    /// Runs `start` now if no synchronized call is running, else queues it.
    void run_or_queue(InProgressRef ip, detail::UniqueFunction<void()> start);

private:
    void release();
    void release_when_done(const InProgressRef& ip);
    Policy policy_;
    std::vector<InProgressRef> unfinished_;
    std::size_t swept_size_ = 0;
    bool busy_ = false;
    const detail::StateBase* current_ = nullptr;  // the running call
    bool releasing_ = false;
    bool release_again_ = false;
    std::deque<std::pair<InProgressRef, detail::UniqueFunction<void()>>> queue_;
};

template <class Signature>
class Coroutine;

/// A reusable coroutine definition (kaa's @coroutine decorator): options,
/// including a call policy, and the function. For methods, make the
/// definition a member so that the policy is per object, as in kaa.
///
///   kaa::Coroutine<int(std::string)> fetch({.name = "fetch", .policy = kaa::Policy::singleton},
///                                          [](std::string url) { ... });
///   auto ip = fetch("http://...");
///
/// With Policy::pass_last the function takes the previous unfinished call's
/// InProgress<R> (empty if none) as its first parameter.
template <class R, class... Args>
class Coroutine<R(Args...)> {
public:
    template <class F>
    Coroutine(CoroutineOptions opts, F&& fn)
        : opts_(std::move(opts)), function_(detail::type_name_v<std::decay_t<F>>) {
        if constexpr (std::is_invocable_v<F&, const InProgress<R>&, Args...>) {
            fn_ = std::forward<F>(fn);
        } else {
            static_assert(std::is_invocable_v<F&, Args...>, "the function does not take these arguments");
            if (opts_.policy == Policy::pass_last)
                throw UsageError("Coroutine with Policy::pass_last: the function must take the previous "
                                 "call's InProgress<R> as its first parameter");
            fn_ = [f = std::forward<F>(fn)](const InProgress<R>&, Args... a) mutable -> R {
                return f(std::forward<Args>(a)...);
            };
        }
        group_ = opts_.group ? opts_.group : std::make_shared<CoroutineGroup>(opts_.policy);
        if (group_->policy() != opts_.policy && opts_.policy != Policy::none)
            throw UsageError("Coroutine: the options' policy differs from its group's policy");
        policy_ = group_->policy();
        opts_.policy = Policy::none;
        opts_.group.reset();
    }
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, CoroutineOptions>)
    explicit Coroutine(F&& fn, std::source_location site = std::source_location::current())
        : Coroutine(options_at(site), std::forward<F>(fn)) {}

    CoroutineInProgress<R> operator()(Args... args) {
        auto& unfinished = group_->unfinished();
        InProgress<R> last(nullptr);
        if (!unfinished.empty()) {
            auto typed = std::dynamic_pointer_cast<detail::State<R>>(unfinished.back().state());
            if (typed)
                last = InProgress<R>(std::move(typed));
        }
        if (policy_ == Policy::singleton && last.valid())
            return CoroutineInProgress<R>(last);

        auto state = detail::make_state<detail::State<R>>();
        CoroutineInProgress<R> ip(state);
        detail::State<R>* raw = state.get();
        auto body = detail::make_coroutine_body<R>(raw, fn_,
                                                   std::make_tuple(last, std::forward<Args>(args)...));
        unfinished.push_back(ip);
        try {
            if (policy_ == Policy::synchronized) {
                // The options are copied: a queued call may start after this
                // definition is gone.
                group_->run_or_queue(ip, [state = std::move(state), opts = opts_, site = site(),
                                          body = std::move(body)]() mutable {
                    detail::start_coroutine(std::move(state), opts, site, std::move(body));
                });
            } else {
                detail::start_coroutine(std::move(state), opts_, site(), std::move(body));
            }
        } catch (...) {
            // Not started (no stack, say): it must not count as running.
            std::erase(group_->unfinished(), InProgressRef(ip));
            throw;
        }
        return ip;
    }

    const CoroutineOptions& options() const noexcept { return opts_; }

private:
    detail::WorkSite site() const noexcept { return {opts_.site, function_}; }
    static CoroutineOptions options_at(std::source_location site) {
        CoroutineOptions o;
        o.site = site;
        return o;
    }

    CoroutineOptions opts_;
    std::string_view function_;  // the callable's type (a static string)
    Policy policy_ = Policy::none;
    std::function<R(const InProgress<R>&, Args...)> fn_;
    std::shared_ptr<CoroutineGroup> group_;
};

namespace this_coroutine {

/// Suspends this coroutine until `ip` finishes and returns its value (a
/// copy), or rethrows its exception (which counts as observing it). An
/// InProgress that is already finished returns at once, without suspending.
/// @throws NotInCoroutine outside a coroutine; SuspendAfterAbort after this
/// coroutine was aborted; InProgressAborted if it is aborted while waiting.
template <class T>
std::remove_cvref_t<T> await(const InProgress<T>& ip) {
    detail::await_state(ip);
    if constexpr (std::is_void_v<T>)
        ip.result();
    else
        return ip.result();
}

/// The same for a handle the caller gives up -- a temporary, as in
/// `await(channel.read())`, or `std::move(ip)`: the value is moved out
/// instead of copied when nobody else can see it any more (no other handle,
/// no callback still to run; see InProgress::result() &&).
template <class T>
std::remove_cvref_t<T> await(InProgress<T>&& ip) {
    detail::await_state(ip);
    if constexpr (std::is_void_v<T>)
        ip.result();
    else
        return std::move(ip).result();
}

/// Gives the loop a time slice: resumes on a later iteration (after the
/// coroutine's interval, if it has one). Two coroutines that yield in turn
/// interleave step by step.
/// @throws NotInCoroutine, SuspendAfterAbort, InProgressAborted (see await).
void yield();

/// True when called inside a coroutine.
bool inside() noexcept;

/// The name of the running coroutine. @throws NotInCoroutine.
const std::string& name();

/// The Progress of the running coroutine (CoroutineOptions::progress).
/// @throws NotInCoroutine; UsageError if it has none.
Progress& progress();

} // namespace this_coroutine

/// Number of coroutines on this thread that have started and not ended.
std::size_t active_coroutines() noexcept;

} // namespace kaa
