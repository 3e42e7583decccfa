// SPDX-License-Identifier: BSL-1.0
// Generators (kaa.generator): a producer -- a coroutine or a threaded job --
// that hands out a sequence of values one at a time, consumed one InProgress
// per value, or as a range inside a coroutine.
//
//   kaa::Generator<int> squares = kaa::generator<int>([](kaa::Yield<int>& yield) {
//       for (int i = 1; i <= 3; ++i)
//           yield(i * i);     // suspends the producer until a consumer takes the value
//   });
//   for (int v : squares)     // inside a coroutine: each step waits for the next value
//       use(v);
//
// kaa::generator<T>(fn, args...) runs `fn(yield, args...)` as a coroutine
// (CoroutineOptions may come first); kaa::generator<T>(ThreadOptions, fn,
// args...) runs it as a threaded job. `yield(value)` hands a value over.
// Generator<T>::next() is the next value as an InProgress<std::optional<T>>:
// std::nullopt once the producer has returned.
//
// Guarantees (doc/generators.md):
//  * The producer starts at once, as kaa::coroutine() and kaa::threaded()
//    start, and runs at most one value ahead of its consumer: yield(v)
//    returns once a next() has taken v. Until then a coroutine producer is
//    suspended (only it) and a threaded producer blocks its worker thread.
//    A next() that finds a value waiting returns it finished and lets the
//    producer go on -- a coroutine producer runs to its next suspension
//    inside that call, as a Python generator runs inside next().
//  * Values are delivered on the loop thread, in the order they were
//    yielded, each to exactly one next(); every next() after the end
//    finishes with std::nullopt.
//  * An exception escaping the producer is the failure of the next item (the
//    next() pending or the next one called); after it the generator is
//    finished. A failure nobody reads is reported when the generator goes,
//    as for any InProgress.
//  * Aborting a pending next() -- directly, or by aborting a coroutine that
//    waits on it (the cascade) -- stops the producer with the same
//    InProgressAborted, as do Generator::abort() and destroying the last
//    Generator handle: a coroutine producer unwinds from its suspension
//    point (its stack is released), a threaded producer's wait in yield()
//    throws InProgressAborted and its thread goes back to the pool (a queued
//    one never runs). The generator is then finished: next() gives
//    std::nullopt.
//  * next(), abort() and the Generator's destruction belong on the loop
//    thread. One next() at a time: the previous one must have finished.
#pragma once

#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kaa/coroutine.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/signal.hpp"
#include "kaa/threaded.hpp"

namespace kaa {

template <class T>
class Generator;
template <class T>
class Yield;

namespace detail {

[[noreturn]] void throw_generator_busy();
[[noreturn]] void throw_generator_not_in_coroutine();
[[noreturn]] void throw_yield_outside_coroutine();
[[noreturn]] void throw_yield_on_loop_thread();
/// What a producer sees when its generator is gone or stopped.
InProgressAborted generator_stopped();
void check_generator_thread(const char* what);

/// The loop-side half of a generator: the value waiting for a consumer, the
/// next() waiting for a value, and the producer's InProgress. Owned by the
/// Generator handles; the producer refers to it weakly (it must not keep
/// itself alive through its own consumer), so that the last handle's
/// destruction stops the producer.
template <class T>
class GeneratorCore : public std::enable_shared_from_this<GeneratorCore<T>> {
public:
    using Item = std::optional<T>;

    GeneratorCore() = default;
    GeneratorCore(const GeneratorCore&) = delete;
    GeneratorCore& operator=(const GeneratorCore&) = delete;
    ~GeneratorCore() {
        // Without a loop everything was shut down: nothing left to stop.
        if (loop_context() != LoopContext::loop_thread)
            return;
        try {
            stop(nullptr);
        } catch (...) {
            report_unhandled(std::current_exception(), "kaa::Generator destruction");
        }
    }

    /// Called once the producer started (it may have ended already).
    void attach(InProgressRef producer) {
        producer_ = std::move(producer);
        std::weak_ptr<GeneratorCore> weak = this->weak_from_this();
        producer_.connect_finished([weak] {
            if (auto core = weak.lock())
                core->producer_ended();
        });
    }

    /// Producer side, loop thread: hands `value` to the pending next() and
    /// returns true, or keeps it until a consumer takes it and returns false;
    /// `taken` is finished then (or dropped, unfinished, if the generator
    /// stops first: the producer is being stopped anyway).
    bool offer(T&& value, InProgress<void> taken) {
        if (stopped_)
            throw generator_stopped();
        if (request_.valid()) {
            InProgress<Item> r = std::exchange(request_, nullptr);
            r.finish(Item(std::move(value)));
            return true;
        }
        parked_.emplace(std::move(value));
        taken_ = std::move(taken);
        return false;
    }

    InProgress<Item> next() {
        check_generator_thread("kaa::Generator::next()");
        if (request_.valid())
            throw_generator_busy();
        if (parked_) {
            auto ip = make_finished<Item>(std::move(parked_));
            parked_.reset();
            // The producer goes on; a coroutine producer runs inside this
            // call, up to its next suspension.
            InProgress<void> taken = std::exchange(taken_, nullptr);
            taken.finish();
            return ip;
        }
        if (final_.valid()) {
            InProgress<Item> f = final_;
            if (f.failed())
                final_ = make_finished<Item>(std::nullopt);  // the failure goes out once
            return f;
        }
        request_ = InProgress<Item>();
        std::weak_ptr<GeneratorCore> weak = this->weak_from_this();
        request_.abort_signal().connect([weak](const InProgressAborted& exc) {
            if (auto core = weak.lock()) {
                core->request_ = nullptr;  // failing now, by the abort
                core->stop(&exc);
            }
        });
        return request_;
    }

    bool abort() {
        check_generator_thread("kaa::Generator::abort()");
        if (request_.valid())
            return InProgress<Item>(request_).abort();  // its abort signal stops the producer
        if (stopped_ || final_.valid())
            return false;
        return stop(nullptr);
    }

    const InProgressRef& producer() const noexcept { return producer_; }

private:
    /// Stops the producer (with `exc`, or a fresh abort) and finishes the
    /// generator; a pending next() is aborted. Returns whether the producer
    /// was stopped by this call.
    bool stop(const InProgressAborted* exc) {
        if (stopped_)
            return false;
        stopped_ = true;
        parked_.reset();
        taken_ = nullptr;
        InProgress<Item> r = std::exchange(request_, nullptr);
        bool stopped = false;
        if (producer_.valid() && !producer_.finished())
            stopped = exc ? producer_.abort(*exc) : producer_.abort();
        if (!final_.valid() || !final_.failed())
            final_ = make_finished<Item>(std::nullopt);
        if (r.valid() && !r.finished())
            r.abort();
        return stopped;
    }

    void producer_ended() {
        std::exception_ptr e = producer_.exception();  // observes it
        if (stopped_)
            return;
        stopped_ = true;
        InProgress<Item> r = std::exchange(request_, nullptr);
        if (r.valid()) {
            final_ = make_finished<Item>(std::nullopt);
            if (e)
                r.fail(std::move(e));
            else
                r.finish(std::nullopt);
        } else {
            final_ = e ? make_failed<Item>(std::move(e)) : make_finished<Item>(std::nullopt);
        }
    }

    InProgressRef producer_;
    std::optional<T> parked_;            // yielded, not taken yet
    InProgress<void> taken_{nullptr};    // finished when parked_ is taken
    InProgress<Item> request_{nullptr};  // a next() waiting for a value
    InProgress<Item> final_{nullptr};    // once the producer ended: the end, or its failure
    bool stopped_ = false;               // no more values will be accepted
};

} // namespace detail

/// What a generator's producer calls to hand out values: `yield(value)`.
/// Passed to the producer function by reference; it may be handed on to
/// code the producer calls (a parser's callback, say), as long as that code
/// runs in the producer -- inside its coroutine, or on its worker thread.
template <class T>
class Yield {
public:
    Yield(const Yield&) = delete;
    Yield& operator=(const Yield&) = delete;
    Yield(Yield&&) noexcept = default;

    /// Hands `value` to the consumer and returns once a next() has taken it.
    /// @throws InProgressAborted when the consumer stopped the generator
    /// (let it propagate: the producer unwinds); NotInCoroutine when a
    /// coroutine producer's yield is called outside that coroutine;
    /// WrongThread when a threaded producer's yield is called on the loop
    /// thread.
    void operator()(T value) {
        if (in_thread_)
            from_thread(std::move(value));
        else
            from_coroutine(std::move(value));
    }

private:
    Yield(std::weak_ptr<detail::GeneratorCore<T>> core, bool in_thread)
        : core_(std::move(core)), in_thread_(in_thread) {}

    void from_coroutine(T&& value) {
        if (!this_coroutine::inside())
            detail::throw_yield_outside_coroutine();
        InProgress<void> taken;
        {
            auto core = core_.lock();
            if (!core)
                throw detail::generator_stopped();
            if (core->offer(std::move(value), taken))
                taken.finish();
        }
        // Suspends until the value is taken; also where a stop of the
        // producer, requested while it ran, is raised.
        this_coroutine::await(taken);
    }

    void from_thread(T&& value) {
        if (detail::in_loop_context())
            detail::throw_yield_on_loop_thread();
        this_job::check_aborted();
        InProgress<void> taken;
        detail::post_to_loop([core = core_, taken, v = std::move(value)]() mutable {
            auto c = core.lock();
            try {
                if (!c)
                    throw detail::generator_stopped();
                if (c->offer(std::move(v), taken))
                    taken.finish();
            } catch (const InProgressAborted& e) {
                taken.fail(e);
            }
        });
        // Blocks this worker until the value is taken; an abort of the job
        // (the generator stopping it, or the loop shutting down) ends the
        // wait with InProgressAborted.
        taken.wait();
    }

    std::weak_ptr<detail::GeneratorCore<T>> core_;
    bool in_thread_;

    template <class U, class F, class... A>
    friend Generator<U> generator(const CoroutineOptions& opts, F&& fn, A&&... args);
    template <class U, class F, class... A>
    friend Generator<U> generator(const ThreadOptions& opts, F&& fn, A&&... args);
};

/// The consumer's handle to a generator. Copies refer to the same
/// generator; the producer is stopped when the last copy is destroyed.
template <class T>
class Generator {
public:
    using value_type = T;

    /// An empty handle (no generator).
    Generator() noexcept = default;

    /// The next value, as an InProgress: finished at once when the producer
    /// already yielded one, otherwise when it does. std::nullopt at the end
    /// (and for every call after it); the producer's exception is the
    /// failure of the next item. Aborting it stops the producer.
    /// @throws GeneratorBusy while the previous next() is pending;
    /// WrongThread off the loop thread; EmptyHandle on an empty handle.
    InProgress<std::optional<T>> next() const { return core().next(); }

    /// Stops the producer (a pending next() is aborted); the generator is
    /// then finished. Returns false when nothing was running any more.
    /// Loop thread.
    bool abort() const { return core().abort(); }

    /// The producer's own InProgress (a CoroutineInProgress<void> or
    /// ThreadInProgress<void>): finished when it returned, failed or was
    /// stopped.
    const InProgressRef& producer() const { return core().producer(); }

    bool valid() const noexcept { return core_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    /// Iterates the values inside a coroutine: each step waits (suspends
    /// only this coroutine) for the next value; the producer's exception is
    /// rethrown from the step that would have produced the next value.
    class iterator {
    public:
        using iterator_concept = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;

        iterator() = default;
        T& operator*() const { return *current_; }
        T* operator->() const { return &*current_; }
        iterator& operator++() {
            InProgress<std::optional<T>> ip = gen_->next();
            detail::await_state(ip);  // rethrows the producer's failure
            // Nobody else sees this next()'s value (the end, shared by later
            // calls, is nullopt either way): it is moved, never copied, so
            // move-only values work too.
            current_ = std::move(ip.typed().value());
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.current_; }

    private:
        explicit iterator(const Generator* gen) : gen_(gen) {}
        const Generator* gen_ = nullptr;
        mutable std::optional<T> current_;
        friend class Generator;
    };

    /// Waits for the first value. @throws NotInCoroutine outside a coroutine
    /// (outside one, connect() to each next()).
    iterator begin() const {
        if (!this_coroutine::inside())
            detail::throw_generator_not_in_coroutine();
        iterator it(this);
        ++it;
        return it;
    }
    std::default_sentinel_t end() const noexcept { return {}; }

private:
    explicit Generator(std::shared_ptr<detail::GeneratorCore<T>> core) : core_(std::move(core)) {}
    detail::GeneratorCore<T>& core() const {
        if (!core_)
            detail::throw_empty_handle();
        return *core_;
    }

    std::shared_ptr<detail::GeneratorCore<T>> core_;

    template <class U, class F, class... A>
    friend Generator<U> generator(const CoroutineOptions& opts, F&& fn, A&&... args);
    template <class U, class F, class... A>
    friend Generator<U> generator(const ThreadOptions& opts, F&& fn, A&&... args);
};

/// Starts `fn(yield, args...)` as a coroutine producing T values (kaa's
/// @generator over @coroutine) and returns its Generator. The producer runs
/// at once, up to its first suspension. `fn`'s return value is ignored.
/// @throws what kaa::coroutine() throws (WrongThread, LoopError, UsageError
/// for a policy).
template <class T, class F, class... A>
Generator<T> generator(const CoroutineOptions& opts, F&& fn, A&&... args) {
    static_assert(!std::is_void_v<T> && !std::is_reference_v<T>, "kaa::generator<T>: T is the type of the values");
    static_assert(std::is_invocable_v<std::decay_t<F>&, Yield<T>&, std::decay_t<A>&&...>,
                  "kaa::generator<T>(fn, args...): fn must take (kaa::Yield<T>&, args...)");
    auto core = std::make_shared<detail::GeneratorCore<T>>();
    CoroutineOptions o = opts;
    if (o.name.empty())
        o.name = "generator";
    auto producer = kaa::coroutine(
        o,
        [yield = Yield<T>(core, false), fn = std::decay_t<F>(std::forward<F>(fn)),
         args = std::make_tuple(std::forward<A>(args)...)]() mutable {
            std::apply([&](auto&... a) { (void)fn(yield, std::move(a)...); }, args);
        });
    core->attach(producer);
    return Generator<T>(std::move(core));
}

template <class T, class F, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CoroutineOptions> &&
             !std::is_same_v<std::remove_cvref_t<F>, ThreadOptions>)
Generator<T> generator(F&& fn, A&&... args) {
    static const CoroutineOptions defaults{};
    return generator<T>(defaults, std::forward<F>(fn), std::forward<A>(args)...);
}

/// Starts `fn(yield, args...)` as a threaded job producing T values (kaa's
/// @generator over @threaded) and returns its Generator. Each yield blocks
/// the worker until the value is taken on the loop thread; the job holds its
/// thread until it returns or the generator stops it.
/// @throws what kaa::threaded() throws (UnknownPool, LoopError).
template <class T, class F, class... A>
Generator<T> generator(const ThreadOptions& opts, F&& fn, A&&... args) {
    static_assert(!std::is_void_v<T> && !std::is_reference_v<T>, "kaa::generator<T>: T is the type of the values");
    static_assert(std::is_invocable_v<std::decay_t<F>&, Yield<T>&, std::decay_t<A>&&...>,
                  "kaa::generator<T>(opts, fn, args...): fn must take (kaa::Yield<T>&, args...)");
    detail::check_generator_thread("kaa::generator()");
    auto core = std::make_shared<detail::GeneratorCore<T>>();
    auto producer = kaa::threaded(
        opts, [yield = Yield<T>(core, true), fn = std::decay_t<F>(std::forward<F>(fn)),
               args = std::make_tuple(std::forward<A>(args)...)]() mutable {
            std::apply([&](auto&... a) { (void)fn(yield, std::move(a)...); }, args);
        });
    core->attach(producer);
    return Generator<T>(std::move(core));
}

} // namespace kaa
