// SPDX-License-Identifier: BSL-1.0
#include "kaa/io_channel.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kaa/coroutine.hpp"
#include "test_support.hpp"

using namespace kaa;
using kaa::test::holds;

namespace {

class IOChannelTest : public kaa::test::LoopTest {
protected:
    void SetUp() override {
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        reader = IOChannel(fds[0]);
        writer = IOChannel(fds[1]);
    }
    IOChannel reader;
    IOChannel writer;

    /// Reads "one" with a read whose callback asks for the next read at
    /// once, into `second`: a short read, so that read's start is queued in
    /// the loop, and it is still pending.
    void read_one_then_ask_again(InProgress<std::string>& second) {
        auto first = reader.read();
        first.connect([&](const std::string&) { second = reader.read(); });
        writer.write("one");
        ASSERT_TRUE(step_until([&] { return first.finished(); }));
        EXPECT_EQ(first.result(), "one");
        ASSERT_TRUE(second);
        ASSERT_FALSE(second.finished());
    }
};

template <class T>
bool finished_ok(const InProgress<T>& ip) {
    return ip.finished() && !ip.failed();
}

} // namespace

TEST_F(IOChannelTest, ReadGetsWhatWasWritten) {
    auto w = writer.write("hello");
    EXPECT_TRUE(finished_ok(w)); // a small write goes out at once
    auto r = reader.read();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "hello");
}

// A channel reuses the memory of strings it has written for the strings its
// reads hand over (an echo allocates nothing per message). What a read
// returns is only ever what was read, whatever the recycled string held.
TEST_F(IOChannelTest, ReadsReturnExactlyWhatArrivedWhileWrittenStringsAreRecycled) {
    // `reader`'s own writes fill its spare buffer; use a socket pair so
    // that one channel both reads and writes.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    IOChannel a(sv[0]), b(sv[1]);
    const std::vector<std::string> messages = {std::string(100, 'x'), std::string(40, 'y'), "short",
                                               std::string(3000, 'z'), std::string(1500, 'w'),
                                               std::string(20, 'v')};
    for (const std::string& m : messages) {
        // a writes a long string (recycled), then reads b's message.
        EXPECT_TRUE(finished_ok(a.write(std::string(1000, '#'))));
        auto r = a.read_bytes(m.size());
        EXPECT_TRUE(finished_ok(b.write(m)));
        ASSERT_TRUE(step_until([&] { return r.finished(); }));
        EXPECT_EQ(r.result(), m);
        auto drained = b.read_bytes(1000);
        ASSERT_TRUE(step_until([&] { return drained.finished(); }));
        EXPECT_EQ(drained.result(), std::string(1000, '#'));
    }
}

// Writes that go out at once share one finished state per channel (no
// allocation per write); each still behaves as a finished InProgress.
TEST_F(IOChannelTest, AWriteThatWentOutAtOnceIsANormalFinishedInProgress) {
    auto w1 = writer.write("one");
    auto w2 = writer.write("two");
    auto empty = writer.write("");
    for (const InProgress<void>* w : {&w1, &w2, &empty}) {
        EXPECT_TRUE(finished_ok(*w));
        int called = 0, finished = 0;
        w->connect([&] { ++called; });  // already finished: called at once
        w->connect_finished([&] { ++finished; });
        w->connect_exception([&](std::exception_ptr) { ADD_FAILURE() << "no failure expected"; });
        EXPECT_EQ(called, 1);
        EXPECT_EQ(finished, 1);
        EXPECT_NO_THROW(w->result());
        EXPECT_EQ(w->exception(), nullptr);
        EXPECT_FALSE(w->abort());
    }
    // Connecting to one did not leave anything behind for the next write.
    int later = 0;
    auto w3 = writer.write("three");
    w3.connect([&] { ++later; });
    EXPECT_EQ(later, 1);
    // In a coroutine, await returns at once.
    auto co = coroutine([&] {
        this_coroutine::await(writer.write("four"));
        return 4;
    });
    EXPECT_TRUE(finished_ok(co));
    auto r = reader.read_bytes(15);
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "onetwothreefour");
    // Once the channel is closed, a write fails on its own state.
    writer.close();
    auto failed = writer.write("x");
    EXPECT_TRUE(failed.failed());
    EXPECT_TRUE(holds<ConnectionClosed>(failed.exception()));
    EXPECT_TRUE(finished_ok(w1));
}

TEST_F(IOChannelTest, ReadlineKeepsPartialLinesBuffered) {
    auto l1 = reader.readline();
    writer.write("first li");
    step_n(3);
    EXPECT_FALSE(l1.finished());
    writer.write("ne\nsecond\nthi");
    ASSERT_TRUE(step_until([&] { return l1.finished(); }));
    EXPECT_EQ(l1.result(), "first line\n");
    auto l2 = reader.readline();
    ASSERT_TRUE(l2.finished()); // already buffered
    EXPECT_EQ(l2.result(), "second\n");
    auto l3 = reader.readline();
    step_n(3);
    EXPECT_FALSE(l3.finished());
    EXPECT_EQ(reader.buffered(), 3u);
    writer.close();
    ASSERT_TRUE(step_until([&] { return l3.finished(); }));
    EXPECT_EQ(l3.result(), "thi"); // the last line, without '\n'
    auto l4 = reader.readline();
    ASSERT_TRUE(l4.finished());
    EXPECT_EQ(l4.result(), "");
    EXPECT_TRUE(reader.at_eof());
    EXPECT_EQ(reader.read().result(), "");
}

TEST_F(IOChannelTest, ReadBytesWaitsForAllOfThem) {
    auto r = reader.read_bytes(10);
    writer.write("12345");
    step_n(3);
    EXPECT_FALSE(r.finished());
    writer.write("67890abc");
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "1234567890");
    EXPECT_EQ(reader.read().result(), "abc");
}

TEST_F(IOChannelTest, ReadBytesAtEndOfStreamIsConnectionClosedAndKeepsTheData) {
    auto r = reader.read_bytes(10);
    writer.write("1234");
    writer.close();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(r.exception()));
    auto rest = reader.read();
    ASSERT_TRUE(rest.finished());
    EXPECT_EQ(rest.result(), "1234");
    EXPECT_EQ(reader.read().result(), "");
}

TEST_F(IOChannelTest, ReadsAreServedInOrder) {
    auto a = reader.readline();
    auto b = reader.read_bytes(3);
    auto c = reader.read();
    writer.write("line\nabcdef");
    ASSERT_TRUE(step_until([&] { return c.finished(); }));
    EXPECT_EQ(a.result(), "line\n");
    EXPECT_EQ(b.result(), "abc");
    EXPECT_EQ(c.result(), "def");
}

TEST_F(IOChannelTest, AbortedReadLosesNoData) {
    auto r = reader.read();
    step_n(2);
    r.abort();
    EXPECT_TRUE(r.failed());
    writer.write("kept");
    step_n(3);
    auto again = reader.read();
    ASSERT_TRUE(step_until([&] { return again.finished(); }));
    EXPECT_EQ(again.result(), "kept");
}

// A read that got less than it offered has probably drained the stream, so
// the next read is started from the loop's queue rather than at once (one
// system call fewer per message on a request/response stream). A read asked
// for in that window behaves like any other pending read.
TEST_F(IOChannelTest, AReadAskedForRightAfterAShortReadGetsTheNextData) {
    InProgress<std::string> second;
    ASSERT_NO_FATAL_FAILURE(read_one_then_ask_again(second));
    writer.write("two");
    ASSERT_TRUE(step_until([&] { return second.finished(); }));
    EXPECT_EQ(second.result(), "two");
}

TEST_F(IOChannelTest, AReadAbortedBeforeItsDeferredStartLosesNoData) {
    InProgress<std::string> second;
    ASSERT_NO_FATAL_FAILURE(read_one_then_ask_again(second));
    second.abort(); // its start is still queued in the loop
    EXPECT_TRUE(holds<InProgressAborted>(second.exception()));
    writer.write("kept");
    step_n(3); // the queued start finds nobody waiting and reads nothing
    auto again = reader.read();
    ASSERT_TRUE(step_until([&] { return again.finished(); }));
    EXPECT_EQ(again.result(), "kept");
}

TEST_F(IOChannelTest, AChannelClosedBeforeADeferredReadStartsFailsTheRead) {
    InProgress<std::string> second;
    ASSERT_NO_FATAL_FAILURE(read_one_then_ask_again(second));
    reader.close();
    EXPECT_TRUE(holds<ConnectionClosed>(second.exception()));
    step_n(3); // the queued start finds the channel closed
    EXPECT_FALSE(reader.is_open());
}

TEST_F(IOChannelTest, DroppingTheChannelBeforeADeferredReadStartsIsSafe) {
    InProgress<std::string> second;
    ASSERT_NO_FATAL_FAILURE(read_one_then_ask_again(second));
    reader = IOChannel(); // the last handle: closes; the queued start holds the core
    EXPECT_TRUE(holds<ConnectionClosed>(second.exception()));
    step_n(3);
    auto w = writer.write("x");
    ASSERT_TRUE(step_until([&] { return w.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception()));
}

TEST_F(IOChannelTest, LargeWriteArrivesWhole) {
    std::string big(4 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('a' + i % 26);
    auto w = writer.write(big);
    EXPECT_FALSE(w.finished()); // more than a pipe holds
    auto r = reader.read_bytes(big.size());
    ASSERT_TRUE(step_until([&] { return r.finished() && w.finished(); }, 100000));
    EXPECT_FALSE(w.failed());
    EXPECT_TRUE(r.result() == big);
}

TEST_F(IOChannelTest, WritesGoOutInOrder) {
    std::string big(1024 * 1024, 'x');
    auto w1 = writer.write(big);
    auto w2 = writer.write("tail");
    auto r = reader.read_bytes(big.size() + 4);
    ASSERT_TRUE(step_until([&] { return r.finished(); }, 100000));
    EXPECT_TRUE(finished_ok(w1));
    EXPECT_TRUE(finished_ok(w2));
    EXPECT_EQ(r.result().substr(big.size()), "tail");
}

TEST_F(IOChannelTest, AbortingAQueuedWriteRemovesIt) {
    std::string big(1024 * 1024, 'x');
    auto w1 = writer.write(big);
    auto w2 = writer.write("never");
    auto w3 = writer.write("end");
    w2.abort();
    auto r = reader.read_bytes(big.size() + 3);
    ASSERT_TRUE(step_until([&] { return r.finished(); }, 100000));
    EXPECT_EQ(r.result().substr(big.size()), "end");
    EXPECT_TRUE(finished_ok(w3));
}

TEST_F(IOChannelTest, AStartedWriteCannotBeAborted) {
    std::string big(1024 * 1024, 'x');
    auto w = writer.write(big);
    ASSERT_FALSE(w.finished());
    EXPECT_THROW(w.abort(), NotAbortable);
    reader.close();
    ASSERT_TRUE(step_until([&] { return w.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception())); // EPIPE, no SIGPIPE
}

TEST_F(IOChannelTest, CloseFailsPendingOperations) {
    auto r = reader.read();
    int closed = 0;
    reader.signals().closed.connect([&] { ++closed; });
    reader.close();
    EXPECT_TRUE(holds<ConnectionClosed>(r.exception()));
    EXPECT_EQ(closed, 1);
    reader.close();
    EXPECT_EQ(closed, 1);
    EXPECT_TRUE(holds<ConnectionClosed>(reader.read().exception()));
    EXPECT_EQ(reader.native_handle(), -1);
}

TEST_F(IOChannelTest, SignalsDeliverUnrequestedData) {
    std::vector<std::string> lines;
    bool closed = false;
    reader.signals().readline.connect([&](const std::string& l) { lines.push_back(l); });
    reader.signals().closed.connect([&] { closed = true; });
    writer.write("a\nb");
    writer.write("\nc");
    writer.close();
    ASSERT_TRUE(step_until([&] { return closed; }));
    EXPECT_EQ(lines, (std::vector<std::string>{"a\n", "b\n", "c"}));
}

TEST_F(IOChannelTest, ReadSignalGetsChunks) {
    std::string got;
    reader.signals().read.connect([&](const std::string& d) { got += d; });
    writer.write("abc");
    ASSERT_TRUE(step_until([&] { return got.size() == 3; }));
    writer.write("def");
    ASSERT_TRUE(step_until([&] { return got.size() == 6; }));
    EXPECT_EQ(got, "abcdef");
}

TEST_F(IOChannelTest, CoroutineEcho) {
    auto co = kaa::coroutine([&]() {
        std::vector<std::string> out;
        while (true) {
            std::string line = this_coroutine::await(reader.readline());
            if (line.empty())
                break;
            out.push_back(line);
        }
        return out;
    });
    for (int i = 0; i < 100; ++i)
        writer.write("line " + std::to_string(i) + "\n");
    writer.close();
    ASSERT_TRUE(step_until([&] { return co.finished(); }));
    ASSERT_EQ(co.result().size(), 100u);
    EXPECT_EQ(co.result()[99], "line 99\n");
}

TEST_F(IOChannelTest, AbortingACoroutineCancelsItsRead) {
    auto co = kaa::coroutine([&]() { return this_coroutine::await(reader.read()); });
    step_n(2);
    co.abort();
    EXPECT_TRUE(co.failed());
    writer.write("later");
    auto r = reader.read();
    ASSERT_TRUE(step_until([&] { return r.finished(); }));
    EXPECT_EQ(r.result(), "later");
}

TEST_F(IOChannelTest, DroppingTheLastHandleCloses) {
    bool closed = false;
    reader.signals().closed.connect([&] { closed = true; });
    reader = IOChannel();
    EXPECT_TRUE(closed);
    auto w = writer.write("x");
    ASSERT_TRUE(step_until([&] { return w.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception()));
}

TEST_F(IOChannelTest, AStreamThatAlwaysHasDataYieldsToTheLoop) {
    // /dev/zero never runs dry: without a per-iteration budget, one step()
    // would read it forever and posted work would never run.
    int fd = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    IOChannel zero(fd);
    std::size_t chunks = 0;
    zero.signals().read.connect([&](const std::string&) { ++chunks; });
    int posted_ran_after = -1;
    loop.post([&] {
        loop.post([&] { posted_ran_after = static_cast<int>(chunks); });
    });
    ASSERT_TRUE(step_until([&] { return posted_ran_after >= 0; }, 100));
    EXPECT_GT(posted_ran_after, 0);
    zero.close();
}

TEST(IOChannelMisuse, NeverOpenedThrowsNotConnected) {
    MainLoop loop;
    IOChannel ch;
    EXPECT_THROW(ch.read(), NotConnected);
    EXPECT_THROW(ch.write("x"), NotConnected);
    EXPECT_FALSE(ch.is_open());
    EXPECT_THROW(IOChannel(-1), std::invalid_argument);
}

TEST(IOChannelMisuse, LoopShutdownClosesChannels) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    IOChannel keep_after_loop;
    InProgress<std::string> r(nullptr);
    {
        MainLoop loop;
        keep_after_loop = IOChannel(fds[0]);
        r = keep_after_loop.read();
        loop.step(Duration::zero());
    }
    EXPECT_TRUE(holds<ConnectionClosed>(r.exception()));
    EXPECT_FALSE(keep_after_loop.is_open());
    ::close(fds[1]);
}

// The last handle may go on another thread (a lambda that captured the
// channel ran on a worker): the channel still closes on the loop thread.
TEST_F(IOChannelTest, TheLastHandleDroppedOnAnotherThreadClosesOnTheLoop) {
    std::thread::id closed_on;
    reader.signals().closed.connect([&] { closed_on = std::this_thread::get_id(); });
    std::thread([r = std::exchange(reader, IOChannel())]() mutable { r = IOChannel(); }).join();
    EXPECT_EQ(closed_on, std::thread::id());  // not on the worker
    ASSERT_TRUE(step_until([&] { return closed_on != std::thread::id(); }));
    EXPECT_EQ(closed_on, std::this_thread::get_id());
    auto w = writer.write("x");
    ASSERT_TRUE(step_until([&] { return w.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception()));
}
