// SPDX-License-Identifier: BSL-1.0
#include "kaa/io_channel.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "io_core.hpp"
#include "kaa/main_loop.hpp"

namespace asio = boost::asio;

namespace kaa {

namespace detail {

namespace {

struct IoRegistry {
    IoObject* head = nullptr;
    MainLoop* hooked = nullptr;
    std::unordered_set<IoObject*>* live = nullptr; // during shutdown_io_objects()
};
thread_local IoRegistry t_io;

constexpr std::size_t max_chunk = 256 * 1024;
// Reads one channel may complete within one loop iteration before its next
// read waits for the next iteration (fairness towards the loop's queues).
constexpr unsigned reads_per_iteration = 16;

} // namespace

void shutdown_io_objects() {
    IoRegistry& r = t_io;
    r.hooked = nullptr;
    // Closing one object runs callbacks that may destroy others: those
    // leave `live` in their destructor, so the walk never touches them.
    std::unordered_set<IoObject*> live;
    std::vector<IoObject*> order;
    for (IoObject* o = r.head; o; o = o->next_) {
        live.insert(o);
        order.push_back(o);
    }
    r.live = &live;
    for (IoObject* o : order)
        if (live.count(o))
            o->loop_shutdown();
    r.live = nullptr;
    // Everything is closed: leave the list, so that an object destroyed
    // later -- on another thread, once no loop is left to post its release
    // to -- touches no neighbour.
    for (IoObject* o = r.head; o;) {
        IoObject* next = o->next_;
        o->linked_ = false;
        o->prev_ = o->next_ = nullptr;
        o = next;
    }
    r.head = nullptr;
}

void IoObject::io_link() {
    if (linked_)
        return;
    MainLoop& loop = MainLoop::current(); // throws LoopError before linking
    linked_ = true;
    IoRegistry& r = t_io;
    next_ = r.head;
    if (r.head)
        r.head->prev_ = this;
    r.head = this;
    if (r.hooked != &loop) {
        r.hooked = &loop;
        add_shutdown_hook(loop, [] { shutdown_io_objects(); });
    }
}

IoObject::~IoObject() {
    if (!linked_)
        return;
    IoRegistry& r = t_io;
    if (r.live)
        r.live->erase(this);
    if (prev_)
        prev_->next_ = next_;
    else if (r.head == this)
        r.head = next_;
    if (next_)
        next_->prev_ = prev_;
}

bool is_eof(const boost::system::error_code& ec) noexcept {
    return ec == asio::error::eof || ec == asio::error::broken_pipe || ec == asio::error::shut_down ||
           ec == asio::error::not_connected;
}

std::exception_ptr io_error(const boost::system::error_code& ec, const std::string& what) {
    std::error_code code = ec;
    if (ec == asio::error::connection_reset)
        return std::make_exception_ptr(ConnectionReset(code, what + ": the peer reset the connection"));
    if (ec == asio::error::connection_refused)
        return std::make_exception_ptr(
            ConnectionRefused(code, what + ": connection refused (nothing listens at that address)"));
    if (is_eof(ec))
        return std::make_exception_ptr(ConnectionClosed(code, what + ": the peer closed the connection"));
    return std::make_exception_ptr(IOError(code, what));
}

void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction old {};
        if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
            struct sigaction ign {};
            ign.sa_handler = SIG_IGN;
            sigemptyset(&ign.sa_mask);
            sigaction(SIGPIPE, &ign, nullptr);
        }
    });
}

void check_loop_thread(const char* what) {
    // One call on the hot path (every read() and write()); the slow path
    // says why: no loop (LoopError from current()) or another thread.
    if (loop_context() == LoopContext::loop_thread) [[likely]]
        return;
    MainLoop::current();
    throw WrongThread(std::string(what) +
                      ": I/O objects belong to the loop thread; post() the call to the loop, or "
                      "use kaa::threaded(kaa::main_thread, ...) from a worker");
}

namespace {

std::exception_ptr closed_error(const char* kind, const char* what) {
    return std::make_exception_ptr(ConnectionClosed(std::make_error_code(std::errc::operation_canceled),
                                                    std::string(kind) + ": " + what));
}

} // namespace

ChannelCore::~ChannelCore() {
    // The abort hooks of pending reads and writes refer to this core: a
    // handle to one of them may outlive it (a core goes without close() only
    // when no loop is left to close it).
    for (auto& r : reads_)
        r.state->clear_abort_hook();
    for (auto& w : writes_)
        if (w.state)
            w.state->clear_abort_hook();
}

std::shared_ptr<ChannelCore> ChannelCore::make_handle(std::shared_ptr<ChannelCore> core) {
    ChannelCore* raw = core.get();
    // The owner's deleter runs when the last user handle goes: it closes the
    // channel, and drops the reference that kept the core alive; pending
    // Asio handlers hold their own.
    std::shared_ptr<ChannelCore> owner(raw, [core = std::move(core)](ChannelCore*) mutable {
        release_on_loop([core = std::move(core)]() mutable {
            if (MainLoop::current_or_null())
                core->handles_gone();
            core.reset();
        });
    });
    return owner;
}

void ChannelCore::handles_gone() {
    if (open_)
        close("the last handle to the channel was dropped");
}

IOChannel::Signals& ChannelCore::signals() {
    if (!signals_) {
        signals_ = std::make_unique<IOChannel::Signals>();
        // Lazy subscription: a slot connected to `read` or `readline` starts
        // reading, from the loop (not inside connect()), with what is
        // already buffered delivered first.
        auto on_change = [weak = weak_from_this()](SignalChange change) {
            if (change != SignalChange::connected)
                return;
            post_to_loop([weak] {
                if (auto self = weak.lock())
                    self->pump();
            });
        };
        signals_->read.changed().connect(on_change);
        signals_->readline.changed().connect(on_change);
    }
    return *signals_;
}

// ---- reading ---------------------------------------------------------------

bool ChannelCore::find_line(std::size_t& len) noexcept {
    if (scan_ < begin_)
        scan_ = begin_;
    if (scan_ < end_) {
        const void* nl = std::memchr(buf_.get() + scan_, '\n', end_ - scan_);
        if (nl) {
            len = static_cast<std::size_t>(static_cast<const char*>(nl) - (buf_.get() + begin_)) + 1;
            return true;
        }
        scan_ = end_;
    }
    return false;
}

std::string ChannelCore::take(std::size_t n) {
    std::string out;
    if (n > out.capacity() && n <= spare_.capacity())
        out = std::move(spare_);  // its memory, not a new allocation
    out.assign(buf_.get() + begin_, n);
    begin_ += n;
    emitted_ = emitted_ > n ? emitted_ - n : 0;
    return out;
}

void ChannelCore::recycle(std::string&& written) noexcept {
    // Small strings only: the spare is held for as long as the channel
    // lives. One that does not fit in the string itself has nothing to give.
    constexpr std::size_t kMaxSpare = 2048;
    const std::size_t cap = written.capacity();
    if (cap > std::string().capacity() && cap <= kMaxSpare && cap > spare_.capacity()) {
        spare_ = std::move(written);
        spare_.clear();
    }
}

bool ChannelCore::try_serve(Want want, std::size_t n, std::optional<std::string>& value, std::exception_ptr& error) {
    std::size_t avail = end_ - begin_;
    switch (want) {
    case Want::any:
        if (avail > 0) {
            value.emplace(take(avail));
            return true;
        }
        break;
    case Want::bytes:
        if (avail >= n) {
            value.emplace(take(n));
            return true;
        }
        break;
    case Want::line: {
        std::size_t len = 0;
        if (find_line(len)) {
            value.emplace(take(len));
            return true;
        }
        break;
    }
    }
    // Not servable from the buffer. At the end of the stream the answer is
    // final; after an error, the error (once the data before it was read).
    if (read_error_) {
        error = read_error_;
        return true;
    }
    if (eof_) {
        if (want == Want::bytes) {
            error = std::make_exception_ptr(ConnectionClosed(
                std::make_error_code(std::errc::connection_aborted),
                std::string(kind) + "::read_bytes(" + std::to_string(n) + "): the stream ended after " +
                    std::to_string(avail) + " bytes (they stay buffered)"));
        } else {
            value.emplace(take(avail)); // the last unterminated line, or ""
        }
        return true;
    }
    if (!open_) {
        error = closed_error(kind, "the channel is closed");
        return true;
    }
    return false;
}

InProgress<std::string> ChannelCore::read() { return request(Want::any, 0); }
InProgress<std::string> ChannelCore::read_bytes(std::size_t n) { return request(Want::bytes, n); }
InProgress<std::string> ChannelCore::readline() { return request(Want::line, 0); }

InProgress<std::string> ChannelCore::request(Want want, std::size_t n) {
    // Served at once from the buffer, or with the final answer at the end of
    // the stream; the usual read() of an empty buffer skips straight to
    // queueing.
    if (reads_.empty() && (end_ > begin_ || eof_ || read_error_ || !open_ || (want == Want::bytes && n == 0))) {
        std::optional<std::string> value;
        std::exception_ptr error;
        if (try_serve(want, n, value, error)) {
            if (error)
                return make_failed<std::string>(std::move(error));
            return make_finished<std::string>(std::move(*value));
        }
    }
    auto state = make_state<State<std::string>>();
    StateBase* raw = state.get();
    // The hook may refer to the core: every path that takes a request out
    // of reads_ clears it, and so does the destructor.
    state->set_abort_hook([this, raw](const InProgressAborted&, std::exception_ptr) {
        remove_read(raw);
        return false;
    });
    reads_.push_back(ReadRequest{want, n, state});
    if (!pumping_ && !reading_)
        start_read();
    return InProgress<std::string>(std::move(state));
}

void ChannelCore::remove_read(StateBase* s) {
    auto it = std::find_if(reads_.begin(), reads_.end(), [s](const ReadRequest& r) { return r.state.get() == s; });
    if (it == reads_.end())
        return;
    reads_.erase(it);
    // Nothing is left half-registered: if nobody wants data any more, the
    // Asio read is cancelled (a cancelled read has consumed nothing).
    if (reading_ && !want_read()) {
        cancel_ops();
    }
}

bool ChannelCore::want_read() const {
    if (!reads_.empty())
        return true;
    return signals_ && (!signals_->read.empty() || !signals_->readline.empty());
}

void ChannelCore::start_read() {
    if (reading_ || read_deferred_ || !open_ || eof_ || read_error_)
        return;
    if (reads_this_iteration_ >= reads_per_iteration) {
        if (loop_iteration() == read_iteration_) {
            read_deferred_ = true;
            post_to_loop([weak = weak_from_this()] {
                if (auto self = weak.lock()) {
                    self->read_deferred_ = false;
                    self->reads_this_iteration_ = 0;
                    if (self->want_read())
                        self->start_read();
                }
            });
            return;
        }
        reads_this_iteration_ = 0;
    }
    if (begin_ == end_) {
        begin_ = end_ = scan_ = 0;
        emitted_ = 0;
    }
    // Room for the next chunk: compact, then grow. Only here, with no read
    // pending, may the buffer move.
    std::size_t need = next_chunk_;
    if (!reads_.empty() && reads_.front().want == Want::bytes) {
        std::size_t missing = reads_.front().n - std::min(reads_.front().n, end_ - begin_);
        need = std::max(need, std::min(missing, max_chunk));
    }
    if (cap_ - end_ < need) {
        std::size_t used = end_ - begin_;
        if (cap_ >= used + need && begin_ > 0) {
            std::memmove(buf_.get(), buf_.get() + begin_, used);
        } else {
            std::size_t cap = std::max(cap_ * 2, used + need);
            auto nb = std::make_unique<char[]>(cap);
            if (used)
                std::memcpy(nb.get(), buf_.get() + begin_, used);
            buf_ = std::move(nb);
            cap_ = cap;
        }
        scan_ -= std::min(scan_, begin_);
        begin_ = 0;
        end_ = used;
    }
    reading_ = true;
    try {
        start_read_op(buf_.get() + end_, cap_ - end_);
    } catch (...) {
        reading_ = false;
        read_error_ = std::current_exception();
        pump();
    }
}

void ChannelCore::on_read(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (!open_)
        return;
    if (ec == asio::error::operation_aborted) {
        // Our own cancel(): restart if someone asked meanwhile.
        pump();
        return;
    }
    if (ec) {
        if (ec == asio::error::eof)
            eof_ = true;
        else
            read_error_ = io_error(ec, std::string(kind) + "::read()");
    } else if (n == 0) {
        eof_ = true;
    } else {
        // A read that got less than the space offered has most likely
        // drained the socket: another read at once would only return
        // EAGAIN and register with the reactor (one wasted system call per
        // message on a request/response stream). The next read is started
        // from the loop's queue instead, after the rest of this iteration's
        // completions -- by then the peer has often answered. (pump())
        short_read_ = n < cap_ - end_;
        std::uint64_t it = loop_iteration();
        if (it != read_iteration_) {
            read_iteration_ = it;
            reads_this_iteration_ = 0;
        }
        ++reads_this_iteration_;
        // A read that filled the space offered suggests more is coming:
        // offer more next time (up to max_chunk).
        if (n == cap_ - end_ && next_chunk_ < max_chunk)
            next_chunk_ *= 2;
        end_ += n;
    }
    pump_held();  // the Asio handler that called this holds the core
}

void ChannelCore::pump() {
    // Keeps the core alive while callbacks run (they may drop the last
    // handle); a nested call only asks the running pump to go round again.
    std::shared_ptr<ChannelCore> keep;
    if (!pumping_)
        keep = shared_from_this();
    pump_held();
}

void ChannelCore::pump_held() {
    if (pumping_) {
        pump_again_ = true;
        return;
    }
    pumping_ = true;
    struct Reset {
        ChannelCore& c;
        ~Reset() { c.pumping_ = false; }
    } reset{*this};
    do {
        pump_again_ = false;
        serve_requests();
        if (reads_.empty())
            emit_unrequested();
    } while (pump_again_);
    maybe_emit_closed();
    const bool defer = short_read_;
    short_read_ = false;
    if (open_ && !reading_ && !read_deferred_ && want_read()) {
        if (defer)
            start_read_later();
        else
            start_read();
    }
}

// The task start_read_later() queues: named, so that the loop's queue may
// move it by byte copy (a shared_ptr has no pointer into itself).
struct ChannelCore::ReadLater {
    using trivially_relocatable = void;
    std::shared_ptr<ChannelCore> self;
    void operator()() const {
        self->read_deferred_ = false;
        if (self->want_read())
            self->start_read();
    }
};

void ChannelCore::start_read_later() {
    read_deferred_ = true;
    post_to_loop(ReadLater{shared_from_this()});
}

void ChannelCore::serve_requests() {
    while (!reads_.empty()) {
        ReadRequest& front = reads_.front();
        std::optional<std::string> value;
        std::exception_ptr error;
        if (!try_serve(front.want, front.n, value, error))
            return;
        std::shared_ptr<State<std::string>> s = std::move(front.state);
        reads_.pop_front();
        s->clear_abort_hook();
        // Finishing may resume a coroutine right here, which may read again
        // (queued behind the rest) or close the channel. This handle is
        // only the finisher's: a coroutine awaiting the read may take the
        // string instead of copying it.
        StateBase& state = *s;
        InProgress<std::string> ip(std::move(s));
        StateBase::FinisherRef finisher(state);  // goes before `ip`
        if (error)
            ip.fail(std::move(error));
        else
            ip.finish(std::move(*value));
    }
}

void ChannelCore::emit_unrequested() {
    if (!signals_)
        return;
    bool to_read = !signals_->read.empty();
    bool to_lines = !signals_->readline.empty();
    if (!to_read && !to_lines)
        return;
    std::size_t avail = end_ - begin_;
    if (to_read && avail > emitted_) {
        std::string chunk(buf_.get() + begin_ + emitted_, avail - emitted_);
        if (to_lines) {
            emitted_ = avail;
        } else {
            begin_ = end_;
            emitted_ = 0;
        }
        signals_->read.emit(chunk);
        if (!reads_.empty())
            return; // a slot asked with read(): serve it first
    }
    if (to_lines && !signals_->readline.empty()) {
        std::size_t len = 0;
        while (reads_.empty() && find_line(len)) {
            std::string line = take(len);
            signals_->readline.emit(line);
        }
        if (reads_.empty() && (eof_ || read_error_) && end_ > begin_) {
            std::string last = take(end_ - begin_);
            signals_->readline.emit(last);
        }
    }
}

void ChannelCore::maybe_emit_closed() {
    if (closed_emitted_ || (open_ && !eof_ && !read_error_))
        return;
    // At the end of the stream, `closed` waits until the readers that use
    // signals have had the rest.
    if (open_ && end_ > begin_ && signals_ && (!signals_->read.empty() || !signals_->readline.empty()))
        return;
    closed_emitted_ = true;
    if (signals_)
        signals_->closed.emit();
}

// ---- writing ---------------------------------------------------------------
//
// Bytes go out only through write_now(), called here; what waits in Asio is
// at most a readiness wait, which transfers nothing. So a write that is
// aborted before its first byte went out is really not sent, even if its
// wait had already completed when abort() ran.

InProgress<void> ChannelCore::written_at_once() {
    if (!written_) {
        auto s = std::make_shared<State<void>>();
        InProgress<void>(s).finish();
        written_ = std::move(s);
    }
    return InProgress<void>(written_);
}

InProgress<void> ChannelCore::write(std::string&& data) {
    if (!open_)
        return make_failed<void>(closed_error(kind, "write(): the channel is closed"));
    if (write_error_)
        return make_failed<void>(write_error_);
    std::size_t off = 0;
    if (writes_.empty()) {
        if (data.empty())
            return written_at_once();
        // Most writes fit in the kernel's buffer: try at once, and finish
        // without a trip through the loop.
        boost::system::error_code ec;
        off = write_now(data.data(), data.size(), ec);
        if (!ec && off == data.size()) {
            recycle(std::move(data));
            return written_at_once();
        }
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            write_error_ = io_error(ec, std::string(kind) + "::write()");
            return make_failed<void>(write_error_);
        }
    }
    auto state = make_state<State<void>>();
    if (off == 0) {
        StateBase* raw = state.get();
        // As for reads (request()): cleared whenever the write leaves writes_.
        state->set_abort_hook([this, raw](const InProgressAborted&, std::exception_ptr) {
            remove_write(raw);
            return false;
        });
    } else {
        state->set_abortable(false);
    }
    writes_.push_back(WriteRequest{std::move(data), off, state});
    start_write();
    return InProgress<void>(std::move(state));
}

bool ChannelCore::remove_write(StateBase* s) {
    auto it = std::find_if(writes_.begin(), writes_.end(), [s](const WriteRequest& w) { return w.state.get() == s; });
    if (it == writes_.end())
        return false;
    writes_.erase(it);
    // Nothing stays registered for nothing: with no write left, cancel the
    // readiness wait (a read pending beside it restarts in on_read).
    if (writes_.empty() && writing_)
        cancel_ops();
    return true;
}

void ChannelCore::start_write() {
    if (writing_ || writes_.empty() || !open_)
        return;
    writing_ = true;
    try {
        start_write_wait();
    } catch (...) {
        writing_ = false;
        write_error_ = std::current_exception();
        fail_writes(write_error_);
    }
}

void ChannelCore::on_writable(const boost::system::error_code& ec) {
    writing_ = false;
    if (!open_)
        return;
    auto keep = shared_from_this();
    if (ec && ec != asio::error::operation_aborted) {
        write_error_ = io_error(ec, std::string(kind) + "::write()");
        fail_writes(write_error_);
        return;
    }
    while (open_ && !writing_ && !writes_.empty()) {
        WriteRequest& w = writes_.front();
        boost::system::error_code wec;
        std::size_t n = write_now(w.data.data() + w.off, w.data.size() - w.off, wec);
        if (wec == asio::error::would_block || wec == asio::error::try_again) {
            start_write();
            return;
        }
        if (wec) {
            write_error_ = io_error(wec, std::string(kind) + "::write()");
            fail_writes(write_error_);
            return;
        }
        if (n > 0 && w.off == 0) {
            // Its first bytes are out: from now on it cannot be aborted.
            w.state->clear_abort_hook();
            w.state->set_abortable(false);
        }
        w.off += n;
        if (w.off < w.data.size())
            continue;
        std::shared_ptr<State<void>> s = std::move(w.state);
        recycle(std::move(w.data));
        writes_.pop_front();
        s->clear_abort_hook();
        // Its callbacks may write more (queued behind the rest) or close.
        InProgress<void>(std::move(s)).finish();
    }
}

void ChannelCore::fail_writes(std::exception_ptr e) {
    auto pending = std::move(writes_);
    writes_.clear();
    for (auto& w : pending) {
        w.state->clear_abort_hook();
        InProgress<void>(std::move(w.state)).fail(e);
    }
}

// ---- closing ---------------------------------------------------------------

void ChannelCore::close(const char* why) {
    if (!open_)
        return;
    auto keep = shared_from_this();
    open_ = false;
    close_stream();
    reading_ = writing_ = false;
    auto reads = std::move(reads_);
    reads_.clear();
    for (auto& r : reads) {
        r.state->clear_abort_hook();
        InProgress<std::string>(std::move(r.state)).fail(closed_error(kind, why));
    }
    fail_writes(closed_error(kind, why));
    maybe_emit_closed();
}

void ChannelCore::loop_shutdown() noexcept {
    try {
        close("the main loop shut down");
    } catch (...) {
        report_unhandled(std::current_exception(), "I/O channel shutdown");
    }
}

} // namespace detail

// ---- IOChannel -------------------------------------------------------------

namespace {

using DescriptorCore = detail::StreamCore<asio::posix::stream_descriptor>;

class PipeCore final : public DescriptorCore {
public:
    PipeCore(asio::io_context& io, int fd) : DescriptorCore(io) {
        boost::system::error_code ec;
        stream_->assign(fd, ec);
        if (ec) {
            stream_.reset();
            throw IOError(ec, "IOChannel(fd): cannot register descriptor " + std::to_string(fd));
        }
        stream_->non_blocking(true, ec);
        if (ec)
            throw IOError(ec, "IOChannel(fd): cannot make descriptor " + std::to_string(fd) + " non-blocking");
        set_open();
    }
};

} // namespace

IOChannel::IOChannel(int fd) {
    if (fd < 0)
        throw std::invalid_argument("IOChannel(fd): the descriptor is negative");
    detail::check_loop_thread("IOChannel(fd)");
    detail::ignore_sigpipe_once();
    core_ = detail::ChannelCore::make_handle(std::make_shared<PipeCore>(MainLoop::current().context(), fd));
}

detail::ChannelCore& IOChannel::checked(const char* what) const {
    if (!core_ || !core_->was_opened())
        throw NotConnected(std::string(what) + ": the channel was never opened; construct it from a "
                                               "descriptor (or connect the socket, and wait for that) first");
    detail::check_loop_thread(what);
    return *core_;
}

bool IOChannel::is_open() const noexcept { return core_ && core_->is_open(); }
bool IOChannel::at_eof() const noexcept { return core_ && core_->at_eof(); }
int IOChannel::native_handle() const noexcept { return core_ ? core_->native() : -1; }
std::size_t IOChannel::buffered() const noexcept { return core_ ? core_->buffered() : 0; }

InProgress<std::string> IOChannel::read() const { return checked("IOChannel::read()").read(); }
InProgress<std::string> IOChannel::read_bytes(std::size_t n) const {
    return checked("IOChannel::read_bytes()").read_bytes(n);
}
InProgress<std::string> IOChannel::readline() const { return checked("IOChannel::readline()").readline(); }
InProgress<void> IOChannel::write(std::string data) const {
    return checked("IOChannel::write()").write(std::move(data));
}
void IOChannel::close() const {
    if (core_) {
        detail::check_loop_thread("IOChannel::close()");
        core_->close();
    }
}
IOChannel::Signals& IOChannel::signals() const { return checked("IOChannel::signals()").signals(); }

} // namespace kaa
