// SPDX-License-Identifier: BSL-1.0
// Boost.Asio both ways: Asio operations as InProgress, InProgress as Asio
// operations.
//
// kaa runs on Asio's io_context (MainLoop::context()), so the two models meet
// without threads or copies:
//
//   kaa::InProgress<std::size_t> n = sock.async_read_some(buf, kaa::use_in_progress);
//   std::size_t got = kaa::this_coroutine::await(timer.async_wait(kaa::use_in_progress)), ...;
//   int v = kaa::this_coroutine::await(my_awaitable());        // an asio::awaitable<int>
//   int w = co_await kaa::async_wait(job, asio::use_awaitable); // inside an asio::awaitable
//
// `kaa::use_in_progress` is a completion token: any Asio asynchronous
// operation given it returns an InProgress of its result. `kaa::async_wait()`
// is an Asio asynchronous operation that completes when an InProgress
// finishes, usable with every completion token (use_awaitable, a callback,
// use_future, deferred...). `kaa::spawn()` runs an asio::awaitable on the
// loop and returns its InProgress. See doc/interop.md.
//
// Guarantees:
//  * Results: the completion arguments after the error become the value:
//    none -> InProgress<void>, one -> InProgress<T>, several ->
//    InProgress<std::tuple<...>>.
//  * Errors: an error_code fails the InProgress with kaa's I/O exception
//    family, as kaa's own sockets do (all std::system_error, code() keeps
//    the error): ConnectionReset, ConnectionRefused, ConnectionClosed (eof,
//    broken pipe), ResolveError (host/service not found), IOError for every
//    other code -- including asio::error::operation_aborted when someone
//    else cancelled the operation (timer.cancel(), socket.close()). A
//    std::exception_ptr (co_spawn) fails it with that exception, unchanged.
//    Wrap the token in asio::as_tuple() to get the error_code as part of the
//    value instead (partial reads). A failure nobody observes is reported,
//    as for any InProgress.
//  * abort() on the InProgress emits terminal cancellation on the
//    operation's cancellation slot and fails the InProgress with
//    InProgressAborted at once; the operation's late completion (normally
//    operation_aborted) is discarded. An operation without cancellation
//    support just runs to its end unobserved. Cancellation is emitted on
//    the loop thread: operations given use_in_progress must run on the
//    loop's io_context (or one whose thread is the loop thread).
//  * An operation whose handler is destroyed without being called (its
//    io_context was stopped and destroyed with the operation outstanding)
//    fails its InProgress with LoopError: a waiter never hangs.
//  * async_wait(ip, token): the completion signature is
//    void(std::exception_ptr, T) (void(std::exception_ptr) for
//    InProgress<void>), as co_spawn's: with use_awaitable, co_await returns
//    the value or rethrows the failure. The handler runs on its associated
//    executor (the loop's by default), never inside async_wait(). Terminal
//    or partial cancellation on its slot aborts the InProgress when nobody
//    else waits on it and it is abortable -- the rule of the coroutine
//    abort cascade -- and otherwise only stops waiting (the handler gets an
//    InProgressAborted naming the InProgress). If every handle of the
//    InProgress goes while it is unfinished (nothing can finish it any
//    more), the handler gets LoopError.
//  * Thread: initiating with use_in_progress, calling async_wait() and
//    emitting cancellation happen on the loop thread (async_wait throws
//    WrongThread elsewhere).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#endif

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"

namespace kaa {

/// The completion token type of kaa::use_in_progress. Copyable, stateless
/// but for the name that error messages give the operation.
class UseInProgress {
public:
    constexpr UseInProgress() noexcept = default;
    constexpr explicit UseInProgress(const char* what) noexcept : what_(what) {}
    /// The same token, naming the operation in error messages:
    /// `timer.async_wait(kaa::use_in_progress("wait for the retry timer"))`.
    constexpr UseInProgress operator()(const char* what) const noexcept { return UseInProgress(what); }
    constexpr const char* what() const noexcept { return what_; }

private:
    const char* what_ = "Asio operation";
};

/// Completion token: an Asio asynchronous operation given it returns an
/// InProgress of its result (see the header's guarantees).
inline constexpr UseInProgress use_in_progress{};

namespace detail {

/// The kaa exception for an Asio error code (see the header: the I/O family).
std::exception_ptr asio_error(const boost::system::error_code& ec, const char* what);
/// An Asio handler for `s` was destroyed without being called: fails `s`
/// with LoopError if it is still pending (and not being aborted).
void abandon_asio_operation(const std::shared_ptr<StateBase>& s, const char* what) noexcept;
/// The handler's exception for async_wait: the InProgress went away
/// unfinished.
std::exception_ptr abandoned_wait_error();
/// The handler's exception for async_wait: cancelled, stopped waiting.
std::exception_ptr stopped_waiting_error(const InProgressRef& ip);
[[noreturn]] void throw_async_wait_wrong_thread();

/// An InProgress state that owns the cancellation signal of the Asio
/// operation producing it: the signal lives as long as the handler (which
/// holds the state), and abort() emits on it.
template <class T>
class AsioState final : public State<T> {
public:
    AsioState() noexcept {}
    boost::asio::cancellation_signal cancel;
};

enum class AsioErrorKind { none, error_code, exception };

/// The value an InProgress gets from the completion arguments after the
/// error: none -> void, one -> itself, several -> a tuple.
template <class... V>
struct ValueOf {
    using type = std::tuple<V...>;
};
template <>
struct ValueOf<> {
    using type = void;
};
template <class V>
struct ValueOf<V> {
    using type = V;
};

/// What an Asio completion signature void(Args...) becomes: the kind of its
/// first argument, and the (decayed) value arguments after it.
template <class... Args>
struct AsioCompletion {
    static constexpr AsioErrorKind kind = AsioErrorKind::none;
    using values = std::tuple<std::decay_t<Args>...>;
    using value_type = typename ValueOf<std::decay_t<Args>...>::type;
};
template <class First, class... Rest>
    requires std::is_same_v<std::decay_t<First>, boost::system::error_code>
struct AsioCompletion<First, Rest...> {
    static constexpr AsioErrorKind kind = AsioErrorKind::error_code;
    using values = std::tuple<std::decay_t<Rest>...>;
    using value_type = typename ValueOf<std::decay_t<Rest>...>::type;
};
template <class First, class... Rest>
    requires std::is_same_v<std::decay_t<First>, std::exception_ptr>
struct AsioCompletion<First, Rest...> {
    static constexpr AsioErrorKind kind = AsioErrorKind::exception;
    using values = std::tuple<std::decay_t<Rest>...>;
    using value_type = typename ValueOf<std::decay_t<Rest>...>::type;
};

/// The completion handler behind use_in_progress: finishes or fails the
/// InProgress, unless it was aborted (or finished by hand) meanwhile.
template <class T, AsioErrorKind Kind, class... Values>
class InProgressHandler {
public:
    using cancellation_slot_type = boost::asio::cancellation_slot;

    InProgressHandler(std::shared_ptr<AsioState<T>> s, const char* what) noexcept
        : state_(std::move(s)), what_(what) {}
    InProgressHandler(InProgressHandler&& o) noexcept : state_(std::move(o.state_)), what_(o.what_) {}
    InProgressHandler& operator=(InProgressHandler&&) = delete;
    ~InProgressHandler() {
        if (state_)
            abandon_asio_operation(state_, what_);
    }

    cancellation_slot_type get_cancellation_slot() const noexcept { return state_->cancel.slot(); }

    void operator()(Values... values)
        requires(Kind == AsioErrorKind::none)
    {
        finish(std::move(values)...);
    }
    void operator()(const boost::system::error_code& ec, Values... values)
        requires(Kind == AsioErrorKind::error_code)
    {
        if (ec)
            fail([&] { return asio_error(ec, what_); });
        else
            finish(std::move(values)...);
    }
    void operator()(std::exception_ptr e, Values... values)
        requires(Kind == AsioErrorKind::exception)
    {
        if (e)
            fail([&] { return std::move(e); });
        else
            finish(std::move(values)...);
    }

private:
    // Late: aborted (an abort's own completion, operation_aborted), or
    // finished by someone else. Being aborted counts too: an operation may
    // complete inside the cancellation that the abort emits.
    static bool settled(const StateBase& s) noexcept { return s.status() != Status::pending || s.aborted(); }

    void finish(Values... values) {
        std::shared_ptr<AsioState<T>> s = std::move(state_);
        if (settled(*s))
            return;
        try {
            InProgress<T>(std::move(s)).finish(std::move(values)...);
        } catch (const AlreadyFinished&) {
            // Finished from another thread meanwhile: theirs stands.
        }
    }

    template <class MakeError>
    void fail(MakeError&& make) {
        std::shared_ptr<AsioState<T>> s = std::move(state_);
        if (settled(*s))
            return;
        try {
            InProgress<T>(std::move(s)).fail(make());
        } catch (const AlreadyFinished&) {
        }
    }

    std::shared_ptr<AsioState<T>> state_;
    const char* what_;
};

template <class T, AsioErrorKind Kind, class Tuple>
struct HandlerFor;
template <class T, AsioErrorKind Kind, class... Values>
struct HandlerFor<T, Kind, std::tuple<Values...>> {
    using type = InProgressHandler<T, Kind, Values...>;
};

/// async_wait()'s operation: waits on the InProgress as one more callback,
/// and owns the handler until it is called.
template <class T, class Handler>
class WaitOp : public std::enable_shared_from_this<WaitOp<T, Handler>> {
public:
    using Executor = boost::asio::associated_executor_t<Handler, boost::asio::io_context::executor_type>;

    WaitOp(Handler&& h, const InProgress<T>& ip)
        : handler_(std::move(h)),
          work_(boost::asio::get_associated_executor(handler_, MainLoop::current().context().get_executor())),
          state_(ip.typed_ptr()) {}

    /// Loop thread.
    void start(const InProgress<T>& ip) {
        auto self = this->shared_from_this();
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) {
            slot_ = slot;
            slot.template emplace<CancelHandler>(std::weak_ptr<WaitOp>(self));
        }
        starting_ = true;
        callback_ = ip.state()->add_callback(Watch{self});
        starting_ = false;
    }

private:
    struct CancelHandler {
        std::weak_ptr<WaitOp> op;
        void operator()(boost::asio::cancellation_type type) {
            using boost::asio::cancellation_type;
            if ((type & (cancellation_type::terminal | cancellation_type::partial)) == cancellation_type::none)
                return;
            if (auto o = op.lock())
                o->cancel();
        }
    };

    // The callback on the InProgress. If it is destroyed unrun, the
    // InProgress went away unfinished (nothing can finish it): the handler
    // learns it instead of waiting forever.
    struct Watch {
        std::shared_ptr<WaitOp> op;
        Watch(std::shared_ptr<WaitOp> o) noexcept : op(std::move(o)) {}
        Watch(Watch&&) noexcept = default;
        Watch& operator=(Watch&&) = delete;
        ~Watch() {
            if (op && !op->done_) {
                try {
                    op->complete(abandoned_wait_error(), /*post=*/true);
                } catch (...) {
                    // No memory to post the completion: the handler goes
                    // with the operation, as Asio drops handlers it cannot run.
                }
            }
        }
        void operator()(StateBase& s) {
            std::shared_ptr<WaitOp> o = std::move(op);
            if (o->done_)
                return;
            if (s.failed()) {
                o->complete(s.take_error(), o->starting_);
            } else if constexpr (std::is_void_v<T>) {
                o->complete(nullptr, o->starting_);
            } else {
                o->complete(nullptr, o->starting_, static_cast<State<T>&>(s).value());
            }
        }
    };

    void cancel() {
        if (done_)
            return;
        auto self = this->shared_from_this();
        std::shared_ptr<State<T>> s = state_.lock();
        if (s && s->status() == Status::pending && !s->aborted() && s->listener_count() <= 1 && s->abortable()) {
            // Only we wait on it: the abort cascades into it (its failure
            // then reaches the handler through the callback).
            try {
                InProgressRef(s).abort();
            } catch (const UsageError&) {
                // Finished or claimed meanwhile: its outcome comes as usual.
            }
            if (done_)
                return;
        }
        if (!s || s->status() == Status::pending) {
            // Someone else waits on it, or it cannot be aborted: stop waiting.
            // (done_ first: removing the callback destroys its Watch.)
            done_ = true;
            if (s)
                s->remove_callback(callback_);
            complete(stopped_waiting_error(InProgressRef(s)), /*post=*/true);
        }
    }

    template <class... V>
    void complete(std::exception_ptr e, bool post, V&&... v) {
        done_ = true;
        if (slot_.is_connected())
            slot_.clear();
        auto ex = work_.get_executor();
        work_.reset();
        auto run = [&](auto&& bound) {
            if (post)
                boost::asio::post(ex, std::move(bound));
            else
                boost::asio::dispatch(ex, std::move(bound));
        };
        if constexpr (std::is_void_v<T>)
            run(boost::asio::append(std::move(handler_), std::move(e)));
        else if constexpr (sizeof...(V) == 0)
            run(boost::asio::append(std::move(handler_), std::move(e), T{}));
        else
            run(boost::asio::append(std::move(handler_), std::move(e), T(std::forward<V>(v)...)));
    }

    Handler handler_;
    boost::asio::executor_work_guard<Executor> work_;
    std::weak_ptr<State<T>> state_;
    boost::asio::cancellation_slot slot_;
    std::uint32_t callback_ = 0;
    bool starting_ = false;
    bool done_ = false;
};

template <class T>
struct WaitInitiation {
    template <class Handler>
    void operator()(Handler&& handler, InProgress<T> ip) const {
        auto op = std::make_shared<WaitOp<T, std::decay_t<Handler>>>(std::forward<Handler>(handler), ip);
        op->start(ip);
    }
};

template <class T>
struct WaitSignatureOf {
    using type = void(std::exception_ptr, T);
};
template <>
struct WaitSignatureOf<void> {
    using type = void(std::exception_ptr);
};
template <class T>
using WaitSignature = typename WaitSignatureOf<T>::type;

} // namespace detail

/// An Asio asynchronous operation that completes when `ip` finishes, with
/// signature void(std::exception_ptr, T) (void(std::exception_ptr) for
/// InProgress<void>): the exception is null on success. Works with every
/// completion token: `co_await kaa::async_wait(ip, asio::use_awaitable)`
/// returns the value or rethrows the failure. Cancellation (terminal or
/// partial) aborts `ip` if nobody else waits on it and it is abortable,
/// else the wait ends with InProgressAborted and `ip` goes on.
/// T must be default-constructible (the value slot of a failed completion),
/// as for co_spawn.
/// @throws WrongThread off the loop thread; LoopError without a MainLoop;
/// EmptyHandle for an empty `ip`.
template <class T, class Token>
auto async_wait(InProgress<T> ip, Token&& token) {
    static_assert(std::is_void_v<T> || std::is_default_constructible_v<T>,
                  "kaa::async_wait: the value type must be default-constructible (the completion passes T{} "
                  "with a failure, as co_spawn does); wait on an InProgress<std::optional<T>> instead");
    if (!MainLoop::current().is_main_thread()) // LoopError without a loop
        detail::throw_async_wait_wrong_thread();
    (void)ip.finished(); // EmptyHandle for an empty handle, before anything starts
    return boost::asio::async_initiate<Token, detail::WaitSignature<T>>(detail::WaitInitiation<T>{}, token,
                                                                         std::move(ip));
}

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
/// Runs `aw` on the loop's io_context (asio::co_spawn) and returns its
/// InProgress: the value it co_returns, or the exception it throws.
/// abort() cancels it (terminal cancellation reaches the operation it
/// awaits) and fails the InProgress with InProgressAborted.
/// @throws LoopError without a MainLoop.
template <class T, class Executor>
InProgress<T> spawn(boost::asio::awaitable<T, Executor> aw) {
    return boost::asio::co_spawn(MainLoop::current().context(), std::move(aw), use_in_progress("asio::awaitable"));
}

namespace this_coroutine {
/// Suspends this (stackful) coroutine until the awaitable, run on the loop
/// (kaa::spawn), finishes; returns its value or rethrows its exception.
/// Aborting the coroutine cancels the awaitable.
/// @throws as this_coroutine::await().
template <class T, class Executor>
T await(boost::asio::awaitable<T, Executor> aw) {
    return await(kaa::spawn(std::move(aw)));
}
} // namespace this_coroutine
#endif

} // namespace kaa

template <class R, class... Args>
struct boost::asio::async_result<kaa::UseInProgress, R(Args...)> {
    using Completion = kaa::detail::AsioCompletion<Args...>;
    using value_type = typename Completion::value_type;
    using return_type = kaa::InProgress<value_type>;
    using Handler =
        typename kaa::detail::HandlerFor<value_type, Completion::kind, typename Completion::values>::type;

    template <class Initiation, class... InitArgs>
    static return_type initiate(Initiation&& initiation, kaa::UseInProgress token, InitArgs&&... args) {
        auto state = kaa::detail::make_state<kaa::detail::AsioState<value_type>>();
        // The hook lives in the state, the signal too: no cycle, no dangling.
        state->set_abort_hook([s = state.get()](const kaa::InProgressAborted&, std::exception_ptr) {
            s->cancel.emit(boost::asio::cancellation_type::terminal);
            return false; // kaa fails it with the abort now; the late completion is discarded
        });
        return_type ip(state);
        try {
            std::move(initiation)(Handler(std::move(state), token.what()), std::forward<InitArgs>(args)...);
        } catch (...) {
            // The initiation threw to our caller, who never sees `ip`: the
            // handler it dropped must not be reported as an unobserved failure.
            ip.state()->mark_observed();
            throw;
        }
        return ip;
    }
};
