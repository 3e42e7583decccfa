// SPDX-License-Identifier: BSL-1.0
// Structured scopes: a Scope owns the coroutines, threaded jobs and other
// operations started through it (Trio's nursery, with kaa's abort model).
//
//   class PlayerWindow {
//       kaa::Scope tasks_{"player window"};  // last member: goes first
//   public:
//       void on_open(std::string url) {
//           tasks_.coroutine([this, url] { show(kaa::this_coroutine::await(fetch(url))); });
//       }
//   };  // destroying the window aborts its coroutines: none resumes into a dead window
//
// Guarantees (doc/interop.md#structured-scopes):
//  * The scope's InProgress (join()) cannot finish before every child has
//    ended. A threaded child has ended when its InProgress finished and its
//    function has returned on its thread (or will never run).
//  * join() lets it finish: it succeeds once join() was called and the last
//    child ended. Children may still start children meanwhile.
//  * The first child that fails (an exception other than an abort) makes
//    the scope abort the others and close; once they have ended, the scope
//    fails with that first failure. Later failures of other children are
//    not swallowed: the scope does not observe them, so the usual rule
//    reports each one that nobody else observes (the loop's `exception`
//    signal). A child ended by abort() -- the scope's, its own, anyone's --
//    is not a failure; a TimeoutError is.
//  * abort() (or aborting join()'s InProgress) aborts every child and closes
//    the scope; it fails with InProgressAborted once the children have
//    ended. The destructor does the same: a scope that is a member of a
//    widget aborts the widget's coroutines when the widget goes (they unwind
//    inside the destructor, before the widget's other members). A threaded
//    child is asked to stop; the destructor does not wait for its thread, so
//    its function must not touch the owner once its stop_token is requested.
//  * A closed scope (aborted or failed) refuses new children with UsageError.
//  * Loop thread only (WrongThread elsewhere). Children are ordinary
//    InProgress objects: await them, connect to them, abort them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/threaded.hpp"

namespace kaa {

namespace detail {

/// What a scope shares with its children's callbacks (loop thread only).
class ScopeCore : public std::enable_shared_from_this<ScopeCore> {
public:
    /// A threaded child's function: 0 not started, 1 running, 2 returned,
    /// 3 will never run (its InProgress ended while it was queued).
    using ThreadPhase = std::atomic<int>;

    explicit ScopeCore(std::string name);

    /// Throws WrongThread off the loop thread, UsageError when closed.
    void check_open(const char* what) const;
    /// Makes `ip` a child. `phase` for threaded children.
    void add(const InProgressRef& ip, std::shared_ptr<ThreadPhase> phase = nullptr);
    /// A threaded child's function returned (posted from its thread).
    void thread_returned(std::uint64_t id);
    /// Aborts the children and closes; the scope fails with `eptr` (an
    /// InProgressAborted) once they have ended.
    void abort_all(std::exception_ptr eptr);
    void join();
    bool closed() const noexcept { return closed_; }
    std::size_t active() const noexcept { return children_.size(); }
    const InProgress<void>& done() const noexcept { return done_; }
    const std::string& name() const noexcept { return name_; }
    /// For a threaded child's wrapper: the id the next add() gives.
    std::uint64_t next_id() const noexcept { return next_id_; }

private:
    struct Child {
        InProgressRef ip;
        std::shared_ptr<ThreadPhase> phase;
        bool finished = false;
        bool returned = false;
    };
    void on_finished(std::uint64_t id, StateBase& s);
    void end(std::uint64_t id);
    void abort_children(const InProgressAborted& why);
    void maybe_finish();

    std::string name_;
    InProgress<void> done_;
    std::unordered_map<std::uint64_t, Child> children_;
    std::uint64_t next_id_ = 1;
    std::exception_ptr failure_;  // the first child failure
    std::exception_ptr aborted_;  // the abort the scope fails with
    bool joined_ = false;
    bool closed_ = false;
};

/// Posts `thread_returned(id)` to the loop (from a worker).
void scope_thread_returned(std::weak_ptr<ScopeCore> core, std::uint64_t id) noexcept;
[[noreturn]] void throw_scope_child_never_runs();

} // namespace detail

/// Owns child coroutines, threaded jobs and operations (see the header).
/// Not copyable or movable: children refer to it.
class Scope {
public:
    /// An open scope. `name` appears in abort messages.
    explicit Scope(std::string name = "scope");
    /// Aborts the children that have not ended (see abort()).
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

    /// Starts `fn(args...)` as a child coroutine (kaa::coroutine).
    /// @throws UsageError if the scope is closed; WrongThread off the loop thread.
    template <class F, class... A>
    auto coroutine(const CoroutineOptions& opts, F&& fn, A&&... args) {
        core_->check_open("Scope::coroutine()");
        auto ip = kaa::coroutine(opts, std::forward<F>(fn), std::forward<A>(args)...);
        core_->add(ip);
        return ip;
    }
    template <class F, class... A>
        requires(!std::is_same_v<std::remove_cvref_t<F>, CoroutineOptions>)
    auto coroutine(F&& fn, A&&... args) {
        return coroutine(CoroutineOptions{}, std::forward<F>(fn), std::forward<A>(args)...);
    }

    /// Runs `fn(args...)` as a child threaded job (kaa::threaded). The scope
    /// does not end before the function has returned on its thread.
    /// @throws UsageError if closed; WrongThread; UnknownPool.
    template <class F, class... A>
    auto threaded(const ThreadOptions& opts, F&& fn, A&&... args) {
        core_->check_open("Scope::threaded()");
        using Fn = std::decay_t<F>;
        auto phase = std::make_shared<detail::ScopeCore::ThreadPhase>(0);
        std::weak_ptr<detail::ScopeCore> core = core_;
        const std::uint64_t id = core_->next_id();
        auto body = [phase, core, id, fn = Fn(std::forward<F>(fn)),
                     args = std::make_tuple(std::forward<A>(args)...)](std::stop_token st) mutable -> decltype(auto) {
            int expected = 0;
            if (!phase->compare_exchange_strong(expected, 1))
                detail::throw_scope_child_never_runs();
            struct Returned {
                detail::ScopeCore::ThreadPhase& phase;
                std::weak_ptr<detail::ScopeCore> core;
                std::uint64_t id;
                ~Returned() {
                    phase.store(2);
                    detail::scope_thread_returned(std::move(core), id);
                }
            } returned{*phase, core, id};
            if constexpr (std::is_invocable_v<Fn&, std::stop_token, std::decay_t<A>...>)
                return std::apply([&](auto&... a) -> decltype(auto) { return fn(st, std::move(a)...); }, args);
            else
                return std::apply([&](auto&... a) -> decltype(auto) { return fn(std::move(a)...); }, args);
        };
        auto ip = kaa::threaded(opts, std::move(body));
        core_->add(ip, std::move(phase));
        return ip;
    }
    template <class F, class... A>
        requires(!std::is_same_v<std::remove_cvref_t<F>, ThreadOptions> &&
                 !std::is_same_v<std::remove_cvref_t<F>, MainThreadTag>)
    auto threaded(F&& fn, A&&... args) {
        return threaded(ThreadOptions{}, std::forward<F>(fn), std::forward<A>(args)...);
    }

    /// Makes any operation a child (a delay, an I/O read, an Asio operation):
    /// the scope waits for it and aborts it like the others.
    /// @throws UsageError if closed; WrongThread; EmptyHandle.
    template <class T>
    InProgress<T> adopt(InProgress<T> ip) {
        core_->check_open("Scope::adopt()");
        core_->add(ip);
        return ip;
    }

    /// Lets the scope finish, and returns its InProgress: it succeeds when
    /// every child has ended, fails with the first child failure, or with
    /// InProgressAborted after abort(). Abortable (aborting it is abort()).
    /// May be called again; children may still be added until it finished.
    InProgress<void> join();

    /// Aborts every child and closes the scope; its InProgress fails with
    /// InProgressAborted once they have ended. Returns false (and does
    /// nothing) if the scope already finished or is being aborted.
    bool abort();

    /// Children that have not ended.
    std::size_t active() const noexcept { return core_->active(); }
    /// True after abort() or a child failure: no new children.
    bool closed() const noexcept { return core_->closed(); }

private:
    bool abort_with(const InProgressAborted& why);
    std::shared_ptr<detail::ScopeCore> core_;
};

} // namespace kaa
