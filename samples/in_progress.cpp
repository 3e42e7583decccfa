// SPDX-License-Identifier: BSL-1.0
// InProgress<T>: the guarantees a caller relies on, one function each.
//
// doc/in_progress.md quotes this program. It runs without loop.run(): each
// part drives the loop with InProgress::wait(), which runs loop iterations on
// the main thread until the operation has finished.

#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

#include <kaa/errors.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>

using namespace std::chrono_literals;

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

void finished_later() {
    say("\n-- finished later: callbacks run in connection order --");
    kaa::InProgress<int> size;
    size.connect([](int bytes) { say("first callback:", bytes, "bytes"); });
    size.connect([](int bytes) { say("second callback:", bytes, "bytes"); });
    kaa::main_loop().post([size] { size.finish(4096); });
    size.wait(); // Runs loop iterations until the posted work has finished it.
}

void connect_when_finished() {
    say("\n-- connect() on a finished InProgress --");
    kaa::InProgress<std::string> title = kaa::make_finished<std::string>("Intro");
    say("before connect()");
    title.connect([](const std::string& t) { say("called at once:", t); });
    say("after connect()");
}

void finished_by_a_thread() {
    say("\n-- finished by another thread, delivered on the loop thread --");
    kaa::InProgress<int> checksum;
    checksum.connect([](int sum) { say("callback on the main thread:", kaa::is_main_thread(), "sum =", sum); });
    std::thread worker([checksum] {
        checksum.finish(0xbeef); // Claims the result now; the loop delivers it.
        try {
            checksum.finish(1);
        } catch (const kaa::AlreadyFinished&) {
            say("a second finish() is rejected at once, even on the worker thread");
        }
    });
    worker.join();
    say("worker joined; delivered yet:", checksum.finished());
    checksum.wait();
    say("after wait(): delivered:", checksum.finished());
}

void failure() {
    say("\n-- failure: connect_exception(), result() rethrows --");
    kaa::InProgress<int> parse;
    parse.connect([](int) { say("not called: the operation failed"); });
    parse.connect_exception([](std::exception_ptr e) { say("exception callback:", kaa::describe(e)); });
    parse.fail(std::invalid_argument("bad header"));
    try {
        parse.result();
    } catch (const std::invalid_argument& e) {
        say("result() rethrows:", e.what());
    }
}

void chaining() {
    say("\n-- finish(other): adopt another operation's outcome --");
    kaa::InProgress<int> download;
    kaa::InProgress<int> public_result;
    public_result.finish(download); // public_result is now claimed, still pending
    public_result.connect([](int bytes) { say("public result:", bytes); });
    download.finish(512);
}

void aborting() {
    say("\n-- abort(): abort handlers, then exception callbacks --");
    kaa::InProgress<std::string> request;
    request.abort_signal().connect([](const kaa::InProgressAborted& e) {
        say("abort handler stops the work:", e.message()); // connecting makes it abortable
    });
    request.connect([](const std::string&) { say("not called: aborted"); });
    request.connect_exception([](std::exception_ptr e) { say("exception callback:", kaa::describe(e)); });
    request.abort();
    say("abort() returned; failed() =", request.failed());
}

void noabort_view() {
    say("\n-- noabort(): a view that abort() cannot reach --");
    kaa::InProgress<int> shared_job;
    shared_job.abort_signal().connect([](const kaa::InProgressAborted&) {});
    kaa::InProgress<int> view = shared_job.noabort();
    try {
        view.abort();
    } catch (const kaa::NotAbortable& e) {
        say("NotAbortable:", e.what());
    }
    shared_job.finish(7);
    say("the view finishes with the job:", view.result());
}

void waiting_with_a_timeout() {
    say("\n-- wait(timeout) --");
    kaa::InProgress<void> never;
    try {
        never.wait(20ms);
    } catch (const kaa::TimeoutError& e) {
        say("TimeoutError:", e.message(), "- the operation itself is untouched; finished() =", never.finished());
    }
}

void misuse() {
    say("\n-- misuse is a UsageError with a remedy in its message --");
    kaa::InProgress<int> pending;
    try {
        pending.result();
    } catch (const kaa::UsageError& e) {
        say("ResultNotReady:", e.what());
    }
    try {
        pending.abort();
    } catch (const kaa::UsageError& e) {
        say("NotAbortable:", e.what());
    }
    pending.finish(1);
    try {
        pending.finish(2);
    } catch (const kaa::UsageError& e) {
        say("AlreadyFinished:", e.what());
    }
}

} // namespace

int main() {
    kaa::MainLoop loop;
    loop.signals().exception.connect([](std::exception_ptr e) { say("exception signal:", kaa::describe(e)); });

    finished_later();
    connect_when_finished();
    finished_by_a_thread();
    failure();
    chaining();
    aborting();
    noabort_view();
    waiting_with_a_timeout();
    misuse();
    return 0;
}
