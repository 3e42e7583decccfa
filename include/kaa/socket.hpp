// SPDX-License-Identifier: BSL-1.0
// Socket and Listener: TCP (IPv4/IPv6) and Unix-domain stream sockets.
//
//   kaa::Socket sock;
//   await(sock.connect("example.org", 80));     // name resolution included
//   await(sock.write("GET / HTTP/1.0\r\n\r\n"));
//   std::string status = await(sock.readline());
//
//   kaa::Listener server;
//   server.listen("127.0.0.1", 0);              // port 0: the system picks one
//   server.signals().new_client.connect([](const kaa::Socket& client) { ... });
//
// A Socket is an IOChannel (read, read_bytes, readline, write, close, the
// read/readline/closed signals -- see io_channel.hpp for their guarantees)
// that can connect. In addition:
//  * connect() resolves the name on a worker thread (kaa::threaded), then
//    tries each address in turn. It fails with ConnectionRefused when nothing
//    listens, ResolveError for an unknown name, IOError otherwise. Aborting it
//    stops the resolution or cancels the Asio connect; the socket is then
//    unconnected again and may connect anew.
//  * TCP sockets have TCP_NODELAY set (kaa queues writes itself, as asyncio
//    does).
//  * A Listener accepts while someone waits in accept() or a slot is
//    connected to `new_client` (lazy, as kaa). accept() calls are served
//    first, in order; aborting one cancels the Asio accept if nobody else
//    wants a client.
// Both are shared handles used on the loop thread; the loop's shutdown closes
// them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kaa/in_progress.hpp"
#include "kaa/io_channel.hpp"
#include "kaa/signal.hpp"

namespace kaa {

namespace detail {
class SocketCore;
class ListenerCore;
} // namespace detail

class Socket : public IOChannel {
public:
    /// An empty handle; connect() creates the connection in it.
    Socket() noexcept = default;

    /// Connects over TCP to `host` (a name, or an IPv4/IPv6 address) and
    /// `port`. Numeric addresses skip the resolver thread.
    /// @throws UsageError if this socket is connected or connecting;
    /// LoopError, WrongThread. The InProgress fails with ConnectionRefused,
    /// ResolveError or IOError.
    InProgress<void> connect(const std::string& host, std::uint16_t port);
    /// Connects to the Unix-domain socket at `path`.
    InProgress<void> connect_unix(const std::string& path);

    /// Ends the sending direction (the peer reads end of stream) while this
    /// side can still read. @throws NotConnected if not connected.
    void shutdown_write() const;

    /// The peer's address as "host:port" ("[v6]:port", or the Unix path);
    /// "" when not connected.
    std::string peer_address() const;
    /// This end's address, formatted as peer_address().
    std::string local_address() const;

    /// Library plumbing.
    explicit Socket(std::shared_ptr<detail::ChannelCore> core) noexcept : IOChannel(std::move(core)) {}

private:
    detail::SocketCore* socket_core() const noexcept;
};

class Listener {
public:
    struct Signals {
        /// A client connected (when no accept() was waiting for it).
        /// Connecting a slot starts accepting.
        Signal<void(const Socket&)> new_client;
    };

    /// Not listening.
    Listener() noexcept = default;

    /// Binds to `host` and `port` and listens. `host` is a numeric IPv4 or
    /// IPv6 address, "localhost" (127.0.0.1), or "" for every interface
    /// (IPv6 and IPv4 where possible). Port 0 lets the system pick one: see
    /// port(). SO_REUSEADDR is set.
    /// @throws UsageError if already listening or `host` is a name (resolve
    /// it first); IOError if binding fails; LoopError, WrongThread.
    void listen(const std::string& host, std::uint16_t port, int backlog = 1024);
    /// Listens on a Unix-domain socket at `path`, which must not exist; it
    /// is removed again by close().
    void listen_unix(const std::string& path, int backlog = 1024);

    bool is_listening() const noexcept;
    /// The bound TCP port (0 for Unix sockets or when not listening).
    std::uint16_t port() const noexcept;
    /// The bound address, formatted as Socket::peer_address().
    std::string address() const;

    /// The next client. @throws NotConnected if not listening. Fails with
    /// ConnectionClosed if the listener is closed first, IOError on errors
    /// (e.g. out of descriptors).
    InProgress<Socket> accept() const;

    /// @throws NotConnected if not listening.
    Signals& signals() const;

    /// Stops listening; pending accept() calls fail with ConnectionClosed.
    /// Connected clients are not affected.
    void close() const;

private:
    detail::ListenerCore& checked(const char* what) const;
    std::shared_ptr<detail::ListenerCore> core_;
};

} // namespace kaa
