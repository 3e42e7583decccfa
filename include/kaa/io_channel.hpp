// SPDX-License-Identifier: BSL-1.0
// IOChannel: a byte stream (pipe, terminal, socket...) read and written
// through InProgress operations, or through signals in callback style.
//
//   kaa::IOChannel out(pipe_fd);                  // takes ownership of the fd
//   std::string line = await(out.readline());     // in a coroutine
//   out.signals().readline.connect([](const std::string& l) { ... });  // callback style
//
// Guarantees (doc/io.md):
//  * Every operation runs on the loop thread and returns an InProgress; an
//    operation that can complete from what is already buffered (or written
//    at once) returns one that is already finished.
//  * Reads are served in the order they were asked for. Data nobody asked for
//    stays buffered, or goes to the `read` / `readline` signals while slots
//    are connected to them (connecting one starts reading: lazy, as kaa).
//  * End of stream: read() finishes with "" and readline() with the last
//    unterminated line, then ""; read_bytes(n) fails with ConnectionClosed,
//    leaving the bytes it saw buffered. A reset fails reads with
//    ConnectionReset once the data received before it has been read.
//  * write() queues: the data goes out in call order; its InProgress finishes
//    when all of it was handed to the kernel.
//  * abort() of a pending read removes it and cancels the Asio read if
//    nobody else wants data; no data is lost (what arrived stays buffered).
//    abort() of a write that has not sent a byte yet removes it; once some of
//    its bytes went out it cannot be aborted (NotAbortable; close() instead),
//    so the stream never carries half a message silently.
//  * close() (or dropping the last handle) closes the descriptor: pending
//    operations fail with ConnectionClosed, `closed` is emitted.
//  * The loop's shutdown closes every channel still open.
//  * The first IOChannel sets SIGPIPE to "ignore" if it is at its default
//    (terminate): a write to a closed pipe then fails with ConnectionClosed.
//
// IOChannel is a shared handle: copies refer to the same channel, which is
// closed when the last handle goes. Use it on the loop thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kaa/in_progress.hpp"
#include "kaa/signal.hpp"

namespace kaa {

namespace detail {
class ChannelCore;
} // namespace detail

class IOChannel {
public:
    /// Signals for callback style. Slots run on the loop thread.
    struct Signals {
        /// Data that no read() asked for, chunk by chunk. Connecting a slot
        /// starts reading.
        Signal<void(const std::string&)> read;
        /// Each complete line (with its '\n'; the last one at the end of the
        /// stream may lack it) of data that no read() asked for. Connecting a
        /// slot starts reading.
        Signal<void(const std::string&)> readline;
        /// Once, when the stream ended: end of file, an error, or close().
        /// Connecting to it alone does not start reading.
        Signal<void()> closed;
    };

    /// A channel that is not open (reads and writes throw NotConnected).
    IOChannel() noexcept = default;
    /// Takes ownership of `fd` (a pipe end, a socket, a terminal...) and puts
    /// it in non-blocking mode. The descriptor is closed with the channel.
    /// @throws std::invalid_argument for a negative fd; IOError if Asio
    /// cannot register it; LoopError without a MainLoop; WrongThread off the
    /// loop thread.
    explicit IOChannel(int fd);

    /// True until close() (or the loop's shutdown); an ended stream (EOF)
    /// stays open until closed.
    bool is_open() const noexcept;
    /// True once the end of the stream was seen (and no buffered data is left).
    bool at_eof() const noexcept;
    /// The descriptor, or -1 when not open.
    int native_handle() const noexcept;
    /// Bytes received and not read yet.
    std::size_t buffered() const noexcept;

    /// Whatever is available, at least one byte; "" at the end of the stream.
    /// @throws NotConnected if the channel was never opened; WrongThread.
    /// Fails with ConnectionReset / IOError on errors, ConnectionClosed if
    /// closed meanwhile.
    InProgress<std::string> read() const;
    /// Exactly `n` bytes. Fails with ConnectionClosed if the stream ends
    /// first (the bytes received stay buffered for read()).
    InProgress<std::string> read_bytes(std::size_t n) const;
    /// The next line, with its '\n'. A partial line stays buffered until its
    /// end arrives; at the end of the stream the rest comes without '\n',
    /// then "".
    InProgress<std::string> readline() const;

    /// Queues `data`; finishes when all of it was written. Fails with
    /// ConnectionClosed (peer gone, or closed locally first),
    /// ConnectionReset, IOError.
    /// @throws NotConnected if the channel was never opened; WrongThread.
    InProgress<void> write(std::string data) const;

    /// Closes the descriptor now: pending reads and queued writes fail with
    /// ConnectionClosed, `closed` is emitted (once). Closing again does
    /// nothing. To close after the data went out, wait for the write first.
    void close() const;

    /// The channel's signals (created on first use).
    /// @throws NotConnected if the channel was never opened.
    Signals& signals() const;

    friend bool operator==(const IOChannel& a, const IOChannel& b) noexcept { return a.core_ == b.core_; }

    /// Library plumbing.
    explicit IOChannel(std::shared_ptr<detail::ChannelCore> core) noexcept : core_(std::move(core)) {}
    const std::shared_ptr<detail::ChannelCore>& core() const noexcept { return core_; }

protected:
    detail::ChannelCore& checked(const char* what) const;

    /// Points at the channel; its control block is the user handles' owner,
    /// which closes the channel when the last handle goes.
    std::shared_ptr<detail::ChannelCore> core_;
};

} // namespace kaa
