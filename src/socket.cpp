// SPDX-License-Identifier: BSL-1.0
#include "kaa/socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include "io_core.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/threaded.hpp"

namespace asio = boost::asio;
using generic_stream = asio::generic::stream_protocol;

namespace kaa {

namespace detail {

namespace {

std::string format_endpoint(const generic_stream::endpoint& ep) {
    const sockaddr* sa = ep.data();
    if (ep.size() == 0)
        return {};
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        asio::ip::tcp::endpoint tcp;
        std::memcpy(tcp.data(), sa, std::min<std::size_t>(ep.size(), sizeof(sockaddr_in6)));
        tcp.resize(ep.size());
        if (tcp.address().is_v6())
            return "[" + tcp.address().to_string() + "]:" + std::to_string(tcp.port());
        return tcp.address().to_string() + ":" + std::to_string(tcp.port());
    }
    if (sa->sa_family == AF_UNIX) {
        const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
        std::size_t len = ep.size() > offsetof(sockaddr_un, sun_path) ? ep.size() - offsetof(sockaddr_un, sun_path) : 0;
        std::string path(un->sun_path, strnlen(un->sun_path, len));
        return path;
    }
    return "?";
}

void set_nodelay(generic_stream::socket& s) {
    boost::system::error_code ec;
    int family = s.local_endpoint(ec).protocol().family();
    if (!ec && (family == AF_INET || family == AF_INET6)) {
        int one = 1;
        ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/// Parses what listen() accepts: a numeric address, "localhost", or "".
bool listen_address(const std::string& host, asio::ip::address& out) {
    if (host == "localhost") {
        out = asio::ip::address_v4::loopback();
        return true;
    }
    boost::system::error_code ec;
    out = asio::ip::make_address(host, ec);
    return !ec;
}

} // namespace

using SocketStream = StreamCore<generic_stream::socket>;

class SocketCore final : public SocketStream {
public:
    explicit SocketCore(asio::io_context& io) : SocketStream(io) { kind = "Socket"; }
    SocketCore(generic_stream::socket&& accepted) : SocketStream(std::move(accepted)) {
        kind = "Socket";
        finish_open();
    }

    InProgress<void> connect(std::vector<generic_stream::endpoint> endpoints, InProgressRef resolving,
                             const std::string& what) {
        if (is_open() || connect_ || opened_once_)
            throw UsageError(what + ": this socket is already connected, connecting or closed; use a new "
                                    "Socket for a new connection");
        auto state = make_state<State<void>>();
        connect_ = state;
        what_ = what;
        state->set_abort_hook([weak = weak_from_this()](const InProgressAborted&, std::exception_ptr) {
            if (auto self = std::static_pointer_cast<SocketCore>(weak.lock()))
                self->abort_connect();
            return false;
        });
        if (resolving) {
            resolving_ = resolving;
        } else {
            endpoints_ = std::move(endpoints);
            next_ = 0;
            try_next();
        }
        return InProgress<void>(std::move(state));
    }

    /// The resolver thread's answer.
    void resolved(std::vector<generic_stream::endpoint> endpoints) {
        resolving_ = InProgressRef();
        if (!connect_)
            return;
        endpoints_ = std::move(endpoints);
        next_ = 0;
        try_next();
    }
    void resolve_failed(std::exception_ptr e) {
        resolving_ = InProgressRef();
        if (connect_)
            fail_connect(std::move(e));
    }

    void shutdown_write() {
        boost::system::error_code ec;
        stream_->shutdown(asio::socket_base::shutdown_send, ec);
    }
    std::string peer() const {
        if (!stream_ || !stream_->is_open())
            return {};
        boost::system::error_code ec;
        auto ep = stream_->remote_endpoint(ec);
        return ec ? std::string() : format_endpoint(ep);
    }
    std::string local() const {
        if (!stream_ || !stream_->is_open())
            return {};
        boost::system::error_code ec;
        auto ep = stream_->local_endpoint(ec);
        return ec ? std::string() : format_endpoint(ep);
    }

private:
    void handles_gone() override {
        if (connect_)
            fail_connect(std::make_exception_ptr(ConnectionClosed(std::make_error_code(std::errc::operation_canceled),
                                                                  what_ + ": the last handle to the socket was dropped")));
        ChannelCore::handles_gone();
    }

    void finish_open() {
        opened_once_ = true;
        boost::system::error_code ec;
        stream_->non_blocking(true, ec);
        if (ec)
            throw IOError(ec, "Socket: cannot make the socket non-blocking");
        set_nodelay(*stream_);
        set_open();
    }

    void try_next() {
        if (next_ >= endpoints_.size()) {
            boost::system::error_code ec = last_error_ ? last_error_ : asio::error::host_not_found;
            fail_connect(io_error(ec, what_));
            return;
        }
        const generic_stream::endpoint& ep = endpoints_[next_++];
        boost::system::error_code ec;
        if (stream_->is_open())
            stream_->close(ec);
        stream_->open(ep.protocol(), ec);
        if (ec) {
            last_error_ = ec;
            try_next();
            return;
        }
        ++attempt_;
        stream_->async_connect(ep, [self = std::static_pointer_cast<SocketCore>(shared_from_this()),
                                    attempt = attempt_](const boost::system::error_code& ec) {
            self->connected(attempt, ec);
        });
    }

    void connected(std::uint64_t attempt, const boost::system::error_code& ec) {
        if (attempt != attempt_ || !connect_)
            return; // aborted meanwhile
        if (ec) {
            last_error_ = ec;
            try_next();
            return;
        }
        try {
            finish_open();
        } catch (...) {
            fail_connect(std::current_exception());
            return;
        }
        auto s = std::move(connect_);
        s->clear_abort_hook();
        InProgress<void>(std::move(s)).finish();
    }

    void fail_connect(std::exception_ptr e) {
        boost::system::error_code ignored;
        if (stream_)
            stream_->close(ignored);
        auto s = std::move(connect_);
        if (!s)
            return;
        s->clear_abort_hook();
        InProgress<void>(std::move(s)).fail(std::move(e));
    }

    void abort_connect() {
        connect_.reset();
        ++attempt_;
        if (resolving_) {
            InProgressRef r = std::move(resolving_);
            resolving_ = InProgressRef();
            if (!r.finished())
                r.abort();
        }
        boost::system::error_code ignored;
        if (stream_)
            stream_->close(ignored); // cancels the Asio connect
        endpoints_.clear();
        last_error_ = {};
    }

    void loop_shutdown() noexcept override {
        if (connect_) {
            try {
                fail_connect(std::make_exception_ptr(ConnectionClosed(
                    std::make_error_code(std::errc::operation_canceled), what_ + ": the main loop shut down")));
            } catch (...) {
            }
        }
        ChannelCore::loop_shutdown();
        close_stream();
    }

    std::shared_ptr<State<void>> connect_;
    InProgressRef resolving_;
    std::vector<generic_stream::endpoint> endpoints_;
    std::size_t next_ = 0;
    std::uint64_t attempt_ = 0;
    boost::system::error_code last_error_;
    std::string what_;
    bool opened_once_ = false;
};

// ---- Listener --------------------------------------------------------------

namespace {
// Accepts one listener may complete within one loop iteration (fairness).
constexpr unsigned accepts_per_iteration = 64;
} // namespace

class ListenerCore : public IoObject, public std::enable_shared_from_this<ListenerCore> {
    using Acceptor = asio::basic_socket_acceptor<generic_stream>;

public:
    /// A user handle whose owner closes the listener when the last handle
    /// goes (the pending accept holds the core itself).
    static std::shared_ptr<ListenerCore> make_handle(std::shared_ptr<ListenerCore> core) {
        ListenerCore* raw = core.get();
        return std::shared_ptr<ListenerCore>(raw, [core = std::move(core)](ListenerCore*) mutable {
            release_on_loop([core = std::move(core)]() mutable {
                if (MainLoop::current_or_null())
                    core->close("the last handle to the listener was dropped");
                core.reset();
            });
        });
    }

    ListenerCore() { io_link(); }
    ~ListenerCore() override { close_acceptor(); }

    void listen(const generic_stream::endpoint& ep, int backlog, bool v6_dual) {
        acceptor_.emplace(MainLoop::current().context());
        boost::system::error_code ec;
        acceptor_->open(ep.protocol(), ec);
        if (!ec && ep.protocol().family() != AF_UNIX)
            acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec && v6_dual) {
            int off = 0;
            ::setsockopt(acceptor_->native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        }
        if (!ec)
            acceptor_->bind(ep, ec);
        if (!ec)
            acceptor_->listen(backlog, ec);
        if (!ec)
            acceptor_->non_blocking(true, ec);
        if (ec) {
            close_acceptor();
            throw IOError(ec, "Listener::listen(" + format_endpoint(ep) + ")");
        }
        boost::system::error_code ignored;
        local_ = acceptor_->local_endpoint(ignored);
        if (ep.protocol().family() == AF_UNIX)
            unix_path_ = format_endpoint(ep);
    }

    bool listening() const noexcept { return acceptor_ && acceptor_->is_open(); }
    std::uint16_t port() const noexcept {
        const sockaddr* sa = local_.data();
        if (!listening() || local_.size() == 0)
            return 0;
        if (sa->sa_family == AF_INET)
            return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
        if (sa->sa_family == AF_INET6)
            return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
        return 0;
    }
    std::string address() const { return listening() ? format_endpoint(local_) : std::string(); }

    InProgress<Socket> accept() {
        if (!listening())
            return make_failed<Socket>(std::make_exception_ptr(ConnectionClosed(
                std::make_error_code(std::errc::operation_canceled), "Listener::accept(): the listener is closed")));
        auto state = make_state<State<Socket>>();
        StateBase* raw = state.get();
        state->set_abort_hook([weak = weak_from_this(), raw](const InProgressAborted&, std::exception_ptr) {
            if (auto self = weak.lock())
                self->remove(raw);
            return false;
        });
        requests_.push_back(state);
        start_accept();
        return InProgress<Socket>(std::move(state));
    }

    Listener::Signals& signals() {
        if (!signals_) {
            signals_ = std::make_unique<Listener::Signals>();
            signals_->new_client.changed().connect([weak = weak_from_this()](SignalChange c) {
                if (c != SignalChange::connected)
                    return;
                post_to_loop([weak] {
                    if (auto self = weak.lock())
                        self->start_accept();
                });
            });
        }
        return *signals_;
    }

    void close(const char* why = "the listener was closed") {
        close_acceptor();
        auto pending = std::move(requests_);
        requests_.clear();
        for (auto& s : pending) {
            s->clear_abort_hook();
            InProgress<Socket>(std::move(s))
                .fail(ConnectionClosed(std::make_error_code(std::errc::operation_canceled),
                                       std::string("Listener::accept(): ") + why));
        }
    }

    void loop_shutdown() noexcept override {
        try {
            close("the main loop shut down");
        } catch (...) {
            report_unhandled(std::current_exception(), "listener shutdown");
        }
    }

private:
    bool wanted() const { return !requests_.empty() || (signals_ && !signals_->new_client.empty()); }

    void remove(StateBase* s) {
        auto it = std::find_if(requests_.begin(), requests_.end(), [s](const auto& r) { return r.get() == s; });
        if (it != requests_.end())
            requests_.erase(it);
        if (accepting_ && !wanted()) {
            boost::system::error_code ignored;
            acceptor_->cancel(ignored);
        }
    }

    void start_accept() {
        if (accepting_ || deferred_ || !listening() || !wanted())
            return;
        std::uint64_t it = loop_iteration();
        if (it != iteration_) {
            iteration_ = it;
            accepted_this_iteration_ = 0;
        } else if (accepted_this_iteration_ >= accepts_per_iteration) {
            deferred_ = true;
            post_to_loop([weak = weak_from_this()] {
                if (auto self = weak.lock()) {
                    self->deferred_ = false;
                    self->start_accept();
                }
            });
            return;
        }
        accepting_ = true;
        acceptor_->async_accept([self = shared_from_this()](const boost::system::error_code& ec,
                                                            generic_stream::socket s) {
            self->accepted(ec, std::move(s));
        });
    }

    void accepted(const boost::system::error_code& ec, generic_stream::socket s) {
        accepting_ = false;
        if (!listening())
            return;
        auto keep = shared_from_this();
        if (ec == asio::error::operation_aborted || ec == asio::error::connection_aborted) {
            start_accept();
            return;
        }
        if (ec) {
            auto error = io_error(ec, "Listener::accept()");
            if (!requests_.empty()) {
                auto st = std::move(requests_.front());
                requests_.pop_front();
                st->clear_abort_hook();
                InProgress<Socket>(std::move(st)).fail(error);
                start_accept();
            } else {
                // Callback style: report, and try again a little later
                // (out of descriptors is usually temporary).
                report_unhandled(error, "Listener new_client");
                retry_later();
            }
            return;
        }
        ++accepted_this_iteration_;
        Socket client;
        try {
            client = Socket(ChannelCore::make_handle(std::make_shared<SocketCore>(std::move(s))));
        } catch (...) {
            report_unhandled(std::current_exception(), "Listener accept");
            start_accept();
            return;
        }
        if (!requests_.empty()) {
            auto st = std::move(requests_.front());
            requests_.pop_front();
            st->clear_abort_hook();
            start_accept();
            InProgress<Socket>(std::move(st)).finish(std::move(client));
        } else if (signals_ && !signals_->new_client.empty()) {
            start_accept();
            signals_->new_client.emit(client);
        }
        // Otherwise nobody wants it any more (an abort raced with the
        // accept): the client is closed as its handle goes.
    }

    void retry_later() {
        if (!timer_)
            timer_.emplace(MainLoop::current().context());
        timer_->expires_after(std::chrono::milliseconds(100));
        timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (!ec)
                if (auto self = weak.lock())
                    self->start_accept();
        });
    }

    void close_acceptor() noexcept {
        boost::system::error_code ignored;
        if (timer_) {
            timer_->cancel();
            timer_.reset();
        }
        if (acceptor_) {
            acceptor_->close(ignored);
            acceptor_.reset();
        }
        accepting_ = false;
        if (!unix_path_.empty()) {
            ::unlink(unix_path_.c_str());
            unix_path_.clear();
        }
    }

    std::optional<Acceptor> acceptor_;
    std::optional<asio::steady_timer> timer_;
    generic_stream::endpoint local_;
    std::string unix_path_;
    std::deque<std::shared_ptr<State<Socket>>> requests_;
    std::unique_ptr<Listener::Signals> signals_;
    bool accepting_ = false;
    bool deferred_ = false;
    std::uint64_t iteration_ = 0;
    unsigned accepted_this_iteration_ = 0;
};

} // namespace detail

// ---- Socket ----------------------------------------------------------------

detail::SocketCore* Socket::socket_core() const noexcept { return static_cast<detail::SocketCore*>(core_.get()); }

InProgress<void> Socket::connect(const std::string& host, std::uint16_t port) {
    detail::check_loop_thread("Socket::connect()");
    detail::ignore_sigpipe_once();
    if (!core_)
        core_ = detail::ChannelCore::make_handle(std::make_shared<detail::SocketCore>(MainLoop::current().context()));
    std::string what = "Socket::connect(" + host + ", " + std::to_string(port) + ")";
    boost::system::error_code ec;
    asio::ip::address addr = asio::ip::make_address(host, ec);
    if (!ec)
        return socket_core()->connect({generic_stream::endpoint(asio::ip::tcp::endpoint(addr, port))}, {}, what);

    // The name is resolved by a blocking getaddrinfo() on kaa's thread pool,
    // not by asio::async_resolve: Asio would resolve on a private thread of
    // its own and complete through the io_context directly, while kaa's
    // threaded() completes through the loop's queue -- which is what a host
    // loop (guest mode) sees and wakes for.
    auto resolving = threaded([host, port] {
        asio::io_context local;
        asio::ip::tcp::resolver resolver(local);
        boost::system::error_code rec;
        auto results = resolver.resolve(host, std::to_string(port), rec);
        if (rec)
            throw ResolveError(rec, "Socket::connect(): cannot resolve '" + host + "'");
        std::vector<generic_stream::endpoint> eps;
        for (const auto& r : results)
            eps.emplace_back(r.endpoint());
        return eps;
    });
    auto ip = socket_core()->connect({}, resolving, what);
    std::weak_ptr<detail::ChannelCore> weak = core_;
    resolving.connect_both(
        [weak](const std::vector<generic_stream::endpoint>& eps) {
            if (auto c = weak.lock())
                static_cast<detail::SocketCore&>(*c).resolved(eps);
        },
        [weak](std::exception_ptr e) {
            if (auto c = weak.lock())
                static_cast<detail::SocketCore&>(*c).resolve_failed(std::move(e));
        });
    return ip;
}

InProgress<void> Socket::connect_unix(const std::string& path) {
    detail::check_loop_thread("Socket::connect_unix()");
    detail::ignore_sigpipe_once();
    if (!core_)
        core_ = detail::ChannelCore::make_handle(std::make_shared<detail::SocketCore>(MainLoop::current().context()));
    return socket_core()->connect({generic_stream::endpoint(asio::local::stream_protocol::endpoint(path))}, {},
                                  "Socket::connect_unix(" + path + ")");
}

void Socket::shutdown_write() const {
    checked("Socket::shutdown_write()");
    socket_core()->shutdown_write();
}

std::string Socket::peer_address() const { return core_ ? socket_core()->peer() : std::string(); }
std::string Socket::local_address() const { return core_ ? socket_core()->local() : std::string(); }

// ---- Listener --------------------------------------------------------------

void Listener::listen(const std::string& host, std::uint16_t port, int backlog) {
    detail::check_loop_thread("Listener::listen()");
    if (core_ && core_->listening())
        throw UsageError("Listener::listen(): already listening; close() first or use another Listener");
    detail::ignore_sigpipe_once();
    asio::ip::address addr;
    bool dual = false;
    if (host.empty()) {
        addr = asio::ip::address_v6::any();
        dual = true;
    } else if (!detail::listen_address(host, addr)) {
        throw UsageError("Listener::listen(): '" + host +
                         "' is not a numeric address; give one (\"127.0.0.1\", \"::1\", \"\" for all "
                         "interfaces) or \"localhost\"");
    }
    auto core = std::make_shared<detail::ListenerCore>();
    try {
        core->listen(generic_stream::endpoint(asio::ip::tcp::endpoint(addr, port)), backlog, dual);
    } catch (const IOError&) {
        if (!dual)
            throw;
        // No IPv6 here: every IPv4 interface instead.
        core->listen(generic_stream::endpoint(asio::ip::tcp::endpoint(asio::ip::address_v4::any(), port)), backlog,
                     false);
    }
    core_ = detail::ListenerCore::make_handle(std::move(core));
}

void Listener::listen_unix(const std::string& path, int backlog) {
    detail::check_loop_thread("Listener::listen_unix()");
    if (core_ && core_->listening())
        throw UsageError("Listener::listen_unix(): already listening; close() first or use another Listener");
    detail::ignore_sigpipe_once();
    auto core = std::make_shared<detail::ListenerCore>();
    core->listen(generic_stream::endpoint(asio::local::stream_protocol::endpoint(path)), backlog, false);
    core_ = detail::ListenerCore::make_handle(std::move(core));
}

detail::ListenerCore& Listener::checked(const char* what) const {
    if (!core_)
        throw NotConnected(std::string(what) + ": the listener does not listen; call listen() first");
    detail::check_loop_thread(what);
    return *core_;
}

bool Listener::is_listening() const noexcept { return core_ && core_->listening(); }
std::uint16_t Listener::port() const noexcept { return core_ ? core_->port() : 0; }
std::string Listener::address() const { return core_ ? core_->address() : std::string(); }
InProgress<Socket> Listener::accept() const { return checked("Listener::accept()").accept(); }
Listener::Signals& Listener::signals() const { return checked("Listener::signals()").signals(); }
void Listener::close() const {
    if (core_) {
        detail::check_loop_thread("Listener::close()");
        core_->close();
    }
}

} // namespace kaa
