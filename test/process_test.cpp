// SPDX-License-Identifier: BSL-1.0
#include "kaa/process.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kaa/coroutine.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace kaa::test {
namespace {

std::set<int> open_fds();

class ProcessTest : public LoopTest {
protected:
    // Runs one child so that the loop's Asio reactor (epoll, eventfd and
    // timerfd descriptors) exists before a test counts descriptors.
    std::set<int> fds_after_warm_up() {
        {
            Process warm_up({"true"});
            wait_for(warm_up.start());
        }
        return open_fds();
    }

    template <class T>
    T wait_for(const InProgress<T>& ip) {
        EXPECT_TRUE(step_until([&] { return ip.finished(); })) << "the operation did not finish";
        return ip.result();
    }
    void wait_for(const InProgress<void>& ip) {
        EXPECT_TRUE(step_until([&] { return ip.finished(); })) << "the operation did not finish";
        ip.result();
    }
};

// The descriptors open in this process, from /proc/self/fd.
std::set<int> open_fds() {
    std::set<int> fds;
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir)
        return fds;
    const int own = ::dirfd(dir);
    while (dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.')
            continue;
        int fd = std::atoi(e->d_name);
        if (fd != own)
            fds.insert(fd);
    }
    ::closedir(dir);
    return fds;
}

// True if `pid` is no child of ours any more (reaped), i.e. not a zombie.
bool reaped(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) < 0 && errno == ECHILD;
}

std::vector<std::string> sh(const std::string& script) { return {"sh", "-c", script}; }

TEST_F(ProcessTest, StdoutAndStderrLinesIncludingAPartialLastLine) {
    Process p(sh("echo one; echo two >&2; echo; echo three; printf partial"));
    std::vector<std::string> out, err;
    p.signals().stdout_line.connect([&](std::string line) { out.push_back(std::move(line)); });
    p.signals().stderr_line.connect([&](std::string line) { err.push_back(std::move(line)); });
    std::optional<ExitStatus> signalled;
    p.signals().exited.connect([&](ExitStatus st) { signalled = st; });
    InProgress<ExitStatus> done = p.start();
    EXPECT_TRUE(p.running());
    EXPECT_GT(p.pid(), 0);
    const ExitStatus& st = wait_for(done);
    // The output is delivered before the exit.
    EXPECT_THAT(out, ElementsAre("one", "", "three", "partial"));
    EXPECT_THAT(err, ElementsAre("two"));
    EXPECT_TRUE(st.success());
    EXPECT_EQ(signalled, st);
    EXPECT_FALSE(p.running());
    EXPECT_EQ(p.exit_status(), st);
    EXPECT_TRUE(reaped(p.pid()));
}

TEST_F(ProcessTest, ReadlineReturnsLinesWithNewlineThenThePartialLineThenEmpty) {
    Process p(sh("printf 'a\\nb\\n'; printf 'c' >&2; printf 'last'"));
    p.start();
    EXPECT_EQ(wait_for(p.readline()), "a\n");
    EXPECT_EQ(wait_for(p.readline()), "b\n");
    EXPECT_EQ(wait_for(p.readline()), "last");
    EXPECT_EQ(wait_for(p.readline()), "");
    EXPECT_EQ(wait_for(p.readline()), "");
    EXPECT_EQ(wait_for(p.read(Process::err)), "c");
    EXPECT_EQ(wait_for(p.read(Process::err)), "");
    EXPECT_TRUE(wait_for(p.exited()).success());
}

TEST_F(ProcessTest, StdinRoundTripThroughCatInACoroutine) {
    Process p({"cat"});
    p.start();
    auto co = coroutine([&] {
        std::vector<std::string> got;
        this_coroutine::await(p.write("hello\n"));
        got.push_back(this_coroutine::await(p.readline()));
        p.write("world");
        p.close_stdin();
        got.push_back(this_coroutine::await(p.readline()));
        got.push_back(this_coroutine::await(p.readline()));
        ExitStatus st = this_coroutine::await(p.exited());
        got.push_back(st.to_string());
        return got;
    });
    EXPECT_THAT(wait_for(co), ElementsAre("hello\n", "world", "", "exit code 0"));
}

TEST_F(ProcessTest, LargeOutputNobodyReadsAtFirstIsHeldBackThenReadCompletely) {
    // Nobody reads at first: the pipe fills and the child waits until reads
    // start.
    Process p(sh("head -c 1000000 /dev/zero"));
    InProgress<ExitStatus> done = p.start();
    step_n(20);
    std::size_t total = 0;
    for (;;) {
        std::string chunk = wait_for(p.read());
        if (chunk.empty())
            break;
        total += chunk.size();
    }
    EXPECT_EQ(total, 1000000u);
    EXPECT_TRUE(wait_for(done).success());
}

TEST_F(ProcessTest, LargeStdinWriteIsQueuedAndFinishesWhenWritten) {
    Process p(sh("wc -c"));
    p.start();
    std::string big(500000, 'x');
    InProgress<void> w = p.write(big);
    p.close_stdin();
    EXPECT_EQ(wait_for(p.readline()), "500000\n");
    EXPECT_TRUE(w.finished());
    EXPECT_TRUE(wait_for(p.exited()).success());
}

TEST_F(ProcessTest, ExitCode) {
    Process p(sh("exit 3"));
    const ExitStatus& st = wait_for(p.start());
    EXPECT_TRUE(st.exited());
    EXPECT_FALSE(st.killed());
    EXPECT_FALSE(st.success());
    EXPECT_EQ(st.code, 3);
    EXPECT_EQ(st.to_string(), "exit code 3");
}

TEST_F(ProcessTest, KilledBySignal) {
    Process p(sh("kill -KILL $$"));
    const ExitStatus& st = wait_for(p.start());
    EXPECT_TRUE(st.killed());
    EXPECT_EQ(st.signal, SIGKILL);
    EXPECT_EQ(st.code, -1);
    EXPECT_EQ(st.to_string(), "killed by signal 9 (SIGKILL)");

    Process q({"cat"});
    InProgress<ExitStatus> done = q.start();
    EXPECT_TRUE(q.send_signal(SIGTERM));
    EXPECT_EQ(wait_for(done).signal, SIGTERM);
    EXPECT_FALSE(q.send_signal(SIGTERM)) << "the child is gone";
}

TEST_F(ProcessTest, StopEndsACooperativeChildWithSigterm) {
    Process p({"cat"});
    p.start();
    InProgress<ExitStatus> stopping = p.stop();
    EXPECT_EQ(wait_for(stopping).signal, SIGTERM);
    // After the exit, stop() is finished at once.
    EXPECT_EQ(p.stop().result().signal, SIGTERM);
}

TEST_F(ProcessTest, StopKillsAChildThatIgnoresSigterm) {
    // The child waits on its stdin, not on a clock.
    Process p(sh("trap '' TERM; echo ready; read line; echo never"));
    p.start();
    EXPECT_EQ(wait_for(p.readline()), "ready\n"); // the trap is in place
    InProgress<ExitStatus> first = p.stop(50ms);
    InProgress<ExitStatus> second = p.stop(1h);
    EXPECT_EQ(first, second) << "a second stop() shares the first one";
    const ExitStatus& st = wait_for(first);
    EXPECT_EQ(st.signal, SIGKILL);
    EXPECT_EQ(wait_for(p.readline()), "");
}

TEST_F(ProcessTest, AbortingStopCancelsTheSigkill) {
    Process p(sh("trap '' TERM; echo ready; read line; echo got $line"));
    p.start();
    EXPECT_EQ(wait_for(p.readline()), "ready\n");
    InProgress<ExitStatus> stopping = p.stop(1ms);
    stopping.abort();
    step_n(5);
    EXPECT_TRUE(p.running());
    p.write("it\n");
    EXPECT_EQ(wait_for(p.readline()), "got it\n");
    EXPECT_TRUE(wait_for(p.exited()).success());
}

TEST_F(ProcessTest, AbortingAnExitWaitDoesNotTouchTheChild) {
    Process p({"cat"});
    InProgress<ExitStatus> kept = p.start();
    InProgress<ExitStatus> dropped = p.exited();
    dropped.abort();
    EXPECT_TRUE(holds<InProgressAborted>(dropped.exception()));
    step_n(5);
    EXPECT_TRUE(p.running());
    p.close_stdin();
    EXPECT_TRUE(wait_for(kept).success());
}

TEST_F(ProcessTest, AbortingAReadLosesNoData) {
    Process p({"cat"});
    p.start();
    InProgress<std::string> line = p.readline();
    step_n(3);
    line.abort();
    p.write("kept\n");
    EXPECT_EQ(wait_for(p.readline()), "kept\n");
    p.close_stdin();
    wait_for(p.exited());
}

TEST_F(ProcessTest, ASlotConnectedLateGetsTheBufferedLines) {
    Process p(sh("echo a; echo b"));
    wait_for(p.start());
    std::vector<std::string> out;
    p.signals().stdout_line.connect([&](std::string line) { out.push_back(std::move(line)); });
    EXPECT_TRUE(step_until([&] { return out.size() == 2; }));
    EXPECT_THAT(out, ElementsAre("a", "b"));
}

TEST_F(ProcessTest, AProgramThatDoesNotExistIsAProcessError) {
    std::set<int> before = fds_after_warm_up();
    Process p({"kaa-no-such-program-xyz", "arg"});
    try {
        p.start();
        FAIL() << "start() should throw";
    } catch (const ProcessError& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_EQ(e.program(), "kaa-no-such-program-xyz");
        EXPECT_THAT(e.what(), HasSubstr("kaa-no-such-program-xyz"));
    }
    EXPECT_FALSE(p.running());
    EXPECT_EQ(open_fds(), before);
    EXPECT_THROW(p.exited(), UsageError);

    Process absolute({"/nonexistent/kaa-prog"});
    EXPECT_THROW(absolute.start(), ProcessError);
}

TEST_F(ProcessTest, EnvironmentIsExtendedOrReplaced) {
    Process extended(sh("echo \"$KAA_TEST_VAR\"; test -n \"$PATH\" && echo has-path"),
                     {.env = {{"KAA_TEST_VAR", "forty two"}}});
    extended.start();
    EXPECT_EQ(wait_for(extended.readline()), "forty two\n");
    EXPECT_EQ(wait_for(extended.readline()), "has-path\n");

    Process replaced({"/usr/bin/env"}, {.env = {{"ONLY", "1"}}, .replace_env = true});
    std::vector<std::string> lines;
    replaced.signals().stdout_line.connect([&](std::string l) { lines.push_back(std::move(l)); });
    EXPECT_TRUE(wait_for(replaced.start()).success());
    EXPECT_THAT(lines, ElementsAre("ONLY=1"));
}

TEST_F(ProcessTest, WorkingDirectory) {
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("kaa-process-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    Process p({"pwd"}, {.cwd = dir.string()});
    p.start();
    EXPECT_EQ(wait_for(p.readline()), dir.string() + "\n");
    wait_for(p.exited());
    std::filesystem::remove(dir);

    Process missing({"pwd"}, {.cwd = (dir / "gone").string()});
    try {
        missing.start();
        FAIL() << "start() should throw";
    } catch (const ProcessError& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_THAT(e.what(), HasSubstr("working directory"));
    }
}

TEST_F(ProcessTest, OnlyStdioReachesTheChild) {
    // A descriptor the application opened without O_CLOEXEC stays out too.
    int leaky = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaky, 3);
    Process p(sh("ls /proc/$$/fd"));
    std::set<std::string> fds;
    p.signals().stdout_line.connect([&](std::string l) { fds.insert(std::move(l)); });
    EXPECT_TRUE(wait_for(p.start()).success());
    ::close(leaky);
    EXPECT_FALSE(fds.contains(std::to_string(leaky)));
    EXPECT_TRUE(fds.contains("0") && fds.contains("1") && fds.contains("2"));
    for (const std::string& fd : fds)
        EXPECT_LE(std::atoi(fd.c_str()), 2) << "descriptor " << fd << " leaked into the child";
}

TEST_F(ProcessTest, StdioCanBeInheritedOrNull) {
    Process p(sh("read x || echo eof; echo to-null; echo err >&2"),
              {.stdin_mode = Stdio::null, .stdout_mode = Stdio::null, .stderr_mode = Stdio::pipe});
    p.start();
    EXPECT_EQ(wait_for(p.readline(Process::err)), "err\n");
    EXPECT_THROW(p.readline(), UsageError);
    EXPECT_THROW(p.write("x"), UsageError);
    EXPECT_TRUE(wait_for(p.exited()).success());
}

TEST_F(ProcessTest, ManyProcessesAtOnceLeaveNoFdsAndNoZombies) {
    std::set<int> before = fds_after_warm_up();
    constexpr int n = 50;
    std::vector<pid_t> pids;
    {
        std::vector<std::unique_ptr<Process>> procs;
        std::vector<InProgress<ExitStatus>> exits;
        std::vector<std::string> lines(n);
        for (int i = 0; i < n; ++i) {
            // With sh -c, $0 is the first argument after the script.
            procs.push_back(std::make_unique<Process>(
                std::vector<std::string>{"sh", "-c", "echo $0; exit $(($0 % 7))", std::to_string(i)}));
            procs.back()->signals().stdout_line.connect(
                [&lines, i](std::string l) { lines[i] = std::move(l); });
            exits.push_back(procs.back()->start());
            pids.push_back(procs.back()->pid());
        }
        EXPECT_TRUE(step_until([&] {
            for (auto& e : exits)
                if (!e.finished())
                    return false;
            return true;
        }));
        for (int i = 0; i < n; ++i) {
            EXPECT_EQ(lines[i], std::to_string(i));
            EXPECT_EQ(exits[i].result().code, i % 7);
        }
    }
    step_n(3);
    for (pid_t pid : pids)
        EXPECT_TRUE(reaped(pid)) << "pid " << pid;
    EXPECT_EQ(open_fds(), before);
}

TEST_F(ProcessTest, DestroyingARunningProcessKillsAndReapsIt) {
    std::set<int> before = fds_after_warm_up();
    InProgress<ExitStatus> done;
    InProgress<std::string> pending;
    IOChannel kept_channel;
    pid_t pid = -1;
    {
        Process p({"cat"});
        p.signals().stdout_line.connect([](std::string) {});
        done = p.start();
        pending = p.readline();
        kept_channel = p.stdout_channel();
        pid = p.pid();
    }
    EXPECT_FALSE(kept_channel.is_open()) << "the Process closes its pipes, whoever holds a handle";
    ASSERT_TRUE(pending.finished());
    EXPECT_TRUE(holds<ConnectionClosed>(pending.exception()));
    EXPECT_EQ(wait_for(done).signal, SIGKILL);
    step_n(3);
    EXPECT_TRUE(reaped(pid));
    kept_channel = IOChannel();
    EXPECT_EQ(open_fds(), before);
}

TEST_F(ProcessTest, LoopShutdownKillsAndReapsRunningChildren) {
    std::set<int> before = fds_after_warm_up();
    Process p(sh("echo started; exec cat"));
    InProgress<ExitStatus> done = p.start();
    EXPECT_EQ(wait_for(p.readline()), "started\n");
    InProgress<std::string> pending = p.readline();
    run_in_loop([&] { loop.stop(); });
    ASSERT_TRUE(done.finished());
    EXPECT_EQ(done.result().signal, SIGKILL);
    ASSERT_TRUE(pending.finished());
    EXPECT_TRUE(holds<ConnectionClosed>(pending.exception()));
    EXPECT_TRUE(reaped(p.pid()));
    EXPECT_EQ(open_fds(), before);
}

TEST_F(ProcessTest, AllOutputIsDeliveredBeforeTheExit) {
    Process p({"seq", "1", "20000"});
    std::size_t lines = 0;
    std::string last;
    p.signals().stdout_line.connect([&](std::string l) {
        ++lines;
        last = std::move(l);
    });
    std::size_t lines_at_exit = 0;
    p.signals().exited.connect([&](ExitStatus) { lines_at_exit = lines; });
    EXPECT_TRUE(wait_for(p.start()).success());
    EXPECT_EQ(lines_at_exit, 20000u);
    EXPECT_EQ(last, "20000");
}

TEST_F(ProcessTest, AReadLoopSeesEveryLineBeforeTheExit) {
    Process p({"seq", "1", "1000"});
    p.start();
    int lines_at_exit = -1;
    int lines = 0;
    p.signals().exited.connect([&](ExitStatus) { lines_at_exit = lines; });
    auto reader = coroutine([&] {
        while (!this_coroutine::await(p.readline()).empty())
            ++lines;
        return this_coroutine::await(p.exited());
    });
    EXPECT_TRUE(wait_for(reader).success());
    EXPECT_EQ(lines, 1000);
    EXPECT_EQ(lines_at_exit, 1000);
}

TEST_F(ProcessTest, AGrandchildHoldingThePipeDoesNotHoldUpTheExit) {
    // The background `sleep` inherits stdout and keeps it open.
    Process p(sh("sleep 60 & echo $!"));
    std::vector<std::string> out;
    p.signals().stdout_line.connect([&](std::string l) { out.push_back(std::move(l)); });
    EXPECT_TRUE(wait_for(p.start()).success());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(p.stdout_channel().is_open() && !p.stdout_channel().at_eof());
    ::kill(std::stoi(out[0]), SIGKILL);
}

TEST_F(ProcessTest, TheChannelsAreIOChannels) {
    Process p(sh("printf abcdef; read x; echo \"$x\" >&2"));
    p.start();
    EXPECT_EQ(wait_for(p.stdout_channel().read_bytes(3)), "abc");
    EXPECT_EQ(wait_for(p.read()), "def");
    wait_for(p.stdin_channel().write("via the channel\n"));
    EXPECT_EQ(wait_for(p.stderr_channel().readline()), "via the channel\n");
    EXPECT_TRUE(wait_for(p.exited()).success());
}

TEST(ProcessLifetime, AProcessMayOutliveTheLoop) {
    std::optional<Process> p;
    InProgress<ExitStatus> done;
    {
        MainLoop loop;
        p.emplace(std::vector<std::string>{"cat"});
        done = p->start();
        loop.step(Duration::zero());
    } // the loop's destruction kills and reaps the child
    ASSERT_TRUE(done.finished());
    EXPECT_EQ(done.result().signal, SIGKILL);
    EXPECT_FALSE(p->running());
    EXPECT_TRUE(reaped(p->pid()));
    p.reset();
}

TEST_F(ProcessTest, WritingToAChildThatExitedFails) {
    Process p({"true"});
    wait_for(p.start());
    InProgress<void> w = p.write("nobody reads this\n");
    ASSERT_TRUE(w.finished());
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception()));
    EXPECT_FALSE(p.stdin_channel().is_open());
}

TEST_F(ProcessTest, AChildClosingItsStdinFailsPendingWrites) {
    // The child closes its stdin and stays alive.
    Process p(sh("exec 0<&-; echo closed; exec sleep 60"));
    p.start();
    EXPECT_EQ(wait_for(p.readline()), "closed\n");
    InProgress<void> w = p.write(std::string(200000, 'x'));
    EXPECT_TRUE(step_until([&] { return w.finished(); }));
    EXPECT_TRUE(holds<ConnectionClosed>(w.exception()));
    wait_for(p.stop());
}

TEST_F(ProcessTest, Misuse) {
    EXPECT_THROW(Process(std::vector<std::string>{}), std::invalid_argument);
    Process p({"cat"});
    EXPECT_THROW(p.read(), UsageError);
    EXPECT_THROW(p.write("x"), UsageError);
    EXPECT_THROW(p.stop(), UsageError);
    EXPECT_THROW(p.send_signal(SIGTERM), UsageError);
    EXPECT_EQ(p.pid(), -1);
    p.start();
    EXPECT_THROW(p.start(), UsageError);
    EXPECT_THROW(p.stop(-1s), std::invalid_argument);
    p.close_stdin();
    p.close_stdin();
    EXPECT_THROW(p.write("x"), UsageError);
    wait_for(p.exited());
    Process moved = std::move(p);
    EXPECT_THROW(p.running(), EmptyHandle); // NOLINT(bugprone-use-after-move): that is the test
    EXPECT_FALSE(moved.running());
}

} // namespace
} // namespace kaa::test
