// SPDX-License-Identifier: BSL-1.0
// Child processes: run a program and take its output line by line, talk to a
// child over stdin and stdout, and stop one that will not listen.
//
// doc/process.md quotes this program. main() runs one coroutine through the
// parts in order; it ends by itself in well under a second.

#include <chrono>
#include <iostream>
#include <string>

#include <kaa/coroutine.hpp>
#include <kaa/errors.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/process.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await;

namespace {

// Callback style: every line arrives as a signal, the exit status as an
// InProgress. The lines come before the exit.
void list_root() {
    kaa::Process ls({"ls", "-1", "/"});
    int count = 0;
    ls.signals().stdout_line.connect([&count](const std::string& line) {
        if (++count <= 3)
            std::cout << "  ls: " << line << '\n';
    });
    kaa::ExitStatus status = await(ls.start());
    std::cout << "  ls printed " << count << " lines, " << status.to_string() << '\n';
}

// A conversation: write a question to stdin, await the answer's line.
void add_numbers() {
    kaa::Process adder({"sh", "-c", "while read a b; do echo $((a + b)); done"});
    adder.start();
    for (int i = 1; i <= 3; ++i) {
        adder.write(std::to_string(i) + " " + std::to_string(i * 10) + "\n");
        std::string sum = await(adder.readline()); // "11\n"
        std::cout << "  " << i << " + " << i * 10 << " = " << sum;
    }
    adder.close_stdin(); // the child sees end of file and exits
    std::cout << "  adder: " << await(adder.exited()).to_string() << '\n';
}

// stderr, exit codes, and a missing program.
void failures() {
    kaa::Process failing({"sh", "-c", "echo 'something went wrong' >&2; exit 3"});
    failing.start();
    std::cout << "  stderr: " << await(failing.readline(kaa::Process::err));
    std::cout << "  status: " << await(failing.exited()).to_string() << '\n';

    kaa::Process missing({"no-such-program"});
    try {
        missing.start();
    } catch (const kaa::ProcessError& e) {
        std::cout << "  " << e.what() << '\n';
    }
}

// stop(): SIGTERM first, SIGKILL when the grace period is over.
void stop_a_stubborn_child() {
    kaa::Process stubborn({"sh", "-c", "trap '' TERM; echo ready; read line"});
    stubborn.start();
    await(stubborn.readline()); // "ready": the trap is set
    kaa::ExitStatus status = await(stubborn.stop(200ms));
    std::cout << "  stubborn child: " << status.to_string() << '\n';
}

} // namespace

int main() {
    kaa::MainLoop loop;
    auto parts = kaa::coroutine([&loop] {
        std::cout << "callback style:\n";
        list_root();
        std::cout << "stdin and stdout:\n";
        add_numbers();
        std::cout << "failures:\n";
        failures();
        std::cout << "stop():\n";
        stop_a_stubborn_child();
        loop.stop();
    });
    parts.connect_exception([&loop](std::exception_ptr e) {
        std::cerr << kaa::describe(e) << '\n';
        loop.stop();
    });
    loop.run();
    return parts.failed() ? 1 : 0;
}
