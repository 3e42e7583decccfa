// SPDX-License-Identifier: BSL-1.0
// Private: the machinery behind IOChannel, Socket, Listener and IOMonitor.
//
// ChannelCore holds everything a byte stream needs that does not depend on
// the Asio object: the input buffer, the queues of read requests and writes,
// the signals. StreamCore<Stream> adds the Asio stream (a descriptor or a
// socket) and issues the operations; the only virtual calls are one per
// started operation, next to a system call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include "handler_slot.hpp"
#include "kaa/detail/loop_access.hpp"
#include "kaa/errors.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/io_channel.hpp"

namespace kaa::detail {

/// An I/O object that must be closed before the loop's io_context goes away.
/// Every live one is linked in a per-thread list that the loop's shutdown
/// hook walks.
class IoObject {
public:
    IoObject() = default;
    virtual ~IoObject();
    IoObject(const IoObject&) = delete;
    IoObject& operator=(const IoObject&) = delete;

    /// Closes the Asio object (the loop shuts down).
    virtual void loop_shutdown() noexcept = 0;

protected:
    /// Joins the list that the loop's shutdown walks (once; before the first
    /// Asio object is created). @throws LoopError without a loop.
    void io_link();

private:
    bool linked_ = false;
    friend void shutdown_io_objects();
    IoObject* prev_ = nullptr;
    IoObject* next_ = nullptr;
};

/// The exception for a failed I/O operation: ConnectionReset,
/// ConnectionClosed, ConnectionRefused or IOError, by `ec`.
std::exception_ptr io_error(const boost::system::error_code& ec, const std::string& what);
/// Whether `ec` means "the peer is gone" at the end of a stream.
bool is_eof(const boost::system::error_code& ec) noexcept;
/// Sets SIGPIPE to ignore if it is at its default (once per process).
void ignore_sigpipe_once();
/// Throws WrongThread off the loop thread, LoopError without a loop.
void check_loop_thread(const char* what);

/// Runs `release` (which closes or stops an I/O core and drops it) where the
/// core may be touched: at once on the loop thread or with no loop, posted
/// to the loop from any other thread. So the last handle of a channel may go
/// anywhere -- a lambda that captured a Socket and ran on a worker -- and
/// the core is still closed and destroyed on the loop thread, as the Asio
/// objects inside it require (doc/io.md). kaa::Process does the same.
template <class F>
void release_on_loop(F&& release) noexcept {
    if (loop_context() != LoopContext::other_thread) {
        release();
        return;
    }
    try {
        post_to_loop(UniqueFunction<void()>(std::forward<F>(release)));
    } catch (...) {
        // Only allocation fails here; the core then goes on this thread.
        report_unhandled(std::current_exception(), "releasing an I/O object from another thread");
    }
}

class ChannelCore : public IoObject, public std::enable_shared_from_this<ChannelCore> {
public:
    ChannelCore() = default;
    ~ChannelCore() override;

    InProgress<std::string> read();
    InProgress<std::string> read_bytes(std::size_t n);
    InProgress<std::string> readline();
    InProgress<void> write(std::string&& data);
    void close(const char* why = "the channel was closed");

    bool is_open() const noexcept { return open_; }
    /// Whether it was ever open (a Socket before its connect() is not).
    bool was_opened() const noexcept { return was_opened_; }
    bool at_eof() const noexcept { return (eof_ || read_error_) && begin_ == end_; }
    std::size_t buffered() const noexcept { return end_ - begin_; }
    IOChannel::Signals& signals();
    virtual int native() const noexcept = 0;

    /// Makes a user handle: an aliasing shared_ptr whose owner closes the
    /// channel when the last handle goes.
    static std::shared_ptr<ChannelCore> make_handle(std::shared_ptr<ChannelCore> core);

    void loop_shutdown() noexcept override;
    /// The last user handle went: close (a Socket also gives up connecting).
    virtual void handles_gone();

    /// Name used in error messages ("IOChannel", "Socket").
    const char* kind = "IOChannel";

protected:
    /// Starts one read of at most `n` bytes into `p`; completion calls
    /// on_read().
    virtual void start_read_op(char* p, std::size_t n) = 0;
    /// Writes what it can now without blocking.
    virtual std::size_t write_now(const char* p, std::size_t n, boost::system::error_code& ec) = 0;
    /// Waits until the stream is writable; completion calls on_writable().
    virtual void start_write_wait() = 0;
    /// Cancels every pending Asio operation (they complete with
    /// operation_aborted, having transferred nothing).
    virtual void cancel_ops() noexcept = 0;
    /// Closes and releases the Asio object.
    virtual void close_stream() noexcept = 0;

    void on_read(const boost::system::error_code& ec, std::size_t n);
    void on_writable(const boost::system::error_code& ec);

    /// For subclasses that open later (Socket::connect): marks it open.
    void set_open() noexcept { open_ = was_opened_ = true; }

private:
    enum class Want : unsigned char { any, bytes, line };
    struct ReadRequest {
        Want want;
        std::size_t n;
        std::shared_ptr<State<std::string>> state;
    };
    struct WriteRequest {
        std::string data;
        std::size_t off;
        std::shared_ptr<State<void>> state;
    };

    InProgress<std::string> request(Want want, std::size_t n);
    /// A finished InProgress<void> for a write that went out at once: one
    /// state per channel, made on the first such write and handed out again
    /// (a finished state never changes), so the common write allocates no
    /// state. Writes that go out at once compare equal (doc/io.md).
    InProgress<void> written_at_once();
    /// The result for `want` from the buffer, if it can be served now;
    /// at the end of the stream, the final answer (or an error).
    bool try_serve(Want want, std::size_t n, std::optional<std::string>& value, std::exception_ptr& error);
    std::string take(std::size_t n);
    void recycle(std::string&& written) noexcept;
    bool find_line(std::size_t& len) noexcept;
    void pump();
    /// pump() for a caller that holds a reference to the core.
    void pump_held();
    void serve_requests();
    void emit_unrequested();
    bool want_read() const;
    void start_read();
    /// start_read() from the loop's queue (after a short read; see on_read()).
    void start_read_later();
    struct ReadLater;
    void start_write();
    void fail_writes(std::exception_ptr e);
    void maybe_emit_closed();
    void remove_read(StateBase* s);
    bool remove_write(StateBase* s);

    // Input buffer: bytes [begin_, end_) of buf_ are received and unread.
    std::unique_ptr<char[]> buf_;
    std::size_t cap_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t scan_ = 0;     // bytes in [begin_, scan_) hold no '\n'
    std::size_t emitted_ = 0;  // leading unread bytes already emitted by `read`
    std::size_t next_chunk_ = 4096;
    // The memory of a string that was written out, for the next string a
    // read hands over (see recycle()): a coroutine that echoes or forwards
    // what it reads allocates nothing per message.
    std::string spare_;

    std::deque<ReadRequest> reads_;
    std::deque<WriteRequest> writes_;
    std::shared_ptr<State<void>> written_;  // see written_at_once()
    std::unique_ptr<IOChannel::Signals> signals_;

    std::exception_ptr read_error_;
    std::exception_ptr write_error_;
    bool open_ = false;
    bool was_opened_ = false;
    bool eof_ = false;
    bool reading_ = false;
    bool writing_ = false;
    bool pumping_ = false;
    bool pump_again_ = false;
    bool closed_emitted_ = false;
    bool read_deferred_ = false;  // the next read starts from the loop's queue
    bool short_read_ = false;     // the read being delivered did not fill its space
    // Reads completed in one loop iteration: a stream that always has data
    // would otherwise keep Asio's poll() (and so the iteration) going forever.
    std::uint64_t read_iteration_ = 0;
    unsigned reads_this_iteration_ = 0;
};

/// A ChannelCore over an Asio stream (posix::stream_descriptor,
/// generic::stream_protocol::socket).
template <class Stream>
class StreamCore : public ChannelCore {
public:
    template <class... A>
    explicit StreamCore(A&&... a) {
        io_link();
        stream_.emplace(std::forward<A>(a)...);
    }
    ~StreamCore() override { StreamCore::close_stream(); }

    Stream& stream() { return *stream_; }
    bool has_stream() const noexcept { return stream_.has_value() && stream_->is_open(); }
    int native() const noexcept override {
        return stream_ && stream_->is_open() ? const_cast<Stream&>(*stream_).native_handle() : -1;
    }

protected:
    void start_read_op(char* p, std::size_t n) override {
        // One read is outstanding at a time: its memory is read_slot_.
        stream_->async_read_some(
            boost::asio::buffer(p, n),
            boost::asio::bind_allocator(ReadAllocator(&read_slot_),
                                        [self = shared_from_this()](const boost::system::error_code& ec,
                                                                    std::size_t got) {
                                            static_cast<StreamCore&>(*self).on_read(ec, got);
                                        }));
    }
    std::size_t write_now(const char* p, std::size_t n, boost::system::error_code& ec) override {
        return stream_->write_some(boost::asio::buffer(p, n), ec);
    }
    void start_write_wait() override {
        stream_->async_wait(Stream::wait_write, [self = shared_from_this()](const boost::system::error_code& ec) {
            static_cast<StreamCore&>(*self).on_writable(ec);
        });
    }
    void cancel_ops() noexcept override {
        boost::system::error_code ignored;
        if (stream_)
            stream_->cancel(ignored);
    }
    void close_stream() noexcept override {
        if (stream_) {
            boost::system::error_code ignored;
            stream_->close(ignored);
            stream_.reset();
        }
    }

    // Before stream_: the stream's operations go first.
    using ReadSlot = HandlerSlot<256>;
    using ReadAllocator = SlotAllocator<void, ReadSlot>;
    ReadSlot read_slot_;
    std::optional<Stream> stream_;
};

} // namespace kaa::detail
