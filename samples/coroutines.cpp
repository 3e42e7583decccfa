// SPDX-License-Identifier: BSL-1.0
// Coroutines: starting one, waiting, time slices, the abort rules, policies
// and lifetime, one function each.
//
// doc/coroutines.md quotes this program. Like samples/in_progress.cpp it runs
// without loop.run(): main() drives the loop with InProgress::wait(), which
// runs loop iterations until the operation has finished.

#include <atomic>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kaa/coroutine.hpp>
#include <kaa/errors.hpp>
#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;
using kaa::this_coroutine::await;
using kaa::this_coroutine::yield;

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

// What an aborted coroutine saw.
void report(const kaa::InProgressAborted& e, const kaa::InProgressRef& waited_on, const kaa::InProgressRef& self) {
    say("  the coroutine sees InProgressAborted: inprogress() is what it waited on:",
        e.inprogress() == waited_on, "- origin() is the coroutine:", e.origin() == self);
}

void first_step_runs_at_once() {
    say("\n-- the first step runs at once; a waiter resumes inside finish() --");
    kaa::InProgress<int> reply;
    auto ip = kaa::coroutine([reply] {
        say("coroutine: started, waiting for the reply");
        int value = await(reply);
        say("coroutine: resumed with", value);
        return value + 1;
    });
    say("kaa::coroutine() returned; finished() =", ip.finished());
    say("before finish()");
    reply.finish(41);
    say("after finish(); the coroutine already finished with", ip.result());
}

void options_and_progress() {
    say("\n-- options: a name, an interval between time slices, a Progress --");
    kaa::CoroutineOptions options;
    options.name = "importer";
    options.interval = 20ms;
    options.progress = true;
    auto import = kaa::coroutine(options, [] {
        kaa::Progress& progress = kaa::this_coroutine::progress();
        progress.set(0, 4);
        for (int i = 0; i < 4; ++i) {
            yield(); // resumes 20 ms later (the interval)
            progress.update();
        }
        return kaa::this_coroutine::name() + " done";
    });
    import.progress()->changed().connect(
        [](const kaa::Progress& p) { say(p.bar(20), p.percentage(), "%"); });
    say(import.wait());
}

void exceptions_fail_the_inprogress() {
    say("\n-- an exception escaping the body fails the InProgress --");
    auto parse = kaa::coroutine([]() -> int { throw std::invalid_argument("bad header"); });
    say("kaa::coroutine() did not throw; failed() =", parse.failed());
    try {
        parse.result();
    } catch (const std::invalid_argument& e) {
        say("result() rethrows:", e.what());
    }
}

// ---- the abort rules: one function per row of doc/coroutines.md's table ----

void abort_while_waiting_on_a_delay() {
    say("\n-- abort a coroutine waiting on delay(): the delay is aborted too --");
    kaa::InProgress<void> nap = kaa::delay(1h);
    kaa::InProgress<void> sleeper(nullptr);
    sleeper = kaa::coroutine([&] {
        try {
            await(nap);
        } catch (const kaa::InProgressAborted& e) {
            report(e, nap, sleeper);
            throw;
        }
    });
    sleeper.abort(); // does not throw: the caller asked for it
    say("delay failed() =", nap.failed(), "- coroutine failed() =", sleeper.failed());
}

void abort_while_waiting_on_noabort() {
    say("\n-- ... on delay().noabort(): the delay goes on --");
    kaa::InProgress<void> nap = kaa::delay(20ms);
    kaa::InProgress<void> shielded = nap.noabort();
    kaa::InProgress<void> sleeper(nullptr);
    sleeper = kaa::coroutine([&] {
        try {
            await(shielded);
        } catch (const kaa::InProgressAborted& e) {
            report(e, shielded, sleeper);
            throw;
        }
    });
    sleeper.abort();
    say("delay finished() =", nap.finished());
    nap.wait();
    say("later the delay finishes normally: failed() =", nap.failed());
}

void abort_while_waiting_on_a_nested_coroutine() {
    say("\n-- ... on a coroutine nobody else waits on: the inner one unwinds first --");
    kaa::InProgress<void> never; // no producer, so not abortable: the cascade stops here
    kaa::InProgress<void> outer(nullptr), inner(nullptr);
    outer = kaa::coroutine([&] {
        inner = kaa::coroutine([&] {
            try {
                await(never);
            } catch (const kaa::InProgressAborted&) {
                say("  inner cleans up");
                throw;
            }
        });
        try {
            await(inner);
        } catch (const kaa::InProgressAborted& e) {
            say("  outer cleans up");
            report(e, inner, outer);
            throw;
        }
    });
    outer.abort();
    say("inner failed() =", inner.failed(), "- outer failed() =", outer.failed());
}

void abort_while_waiting_on_a_shared_operation() {
    say("\n-- ... on an operation another coroutine waits on too: it is spared --");
    kaa::InProgress<std::string> download;
    download.abort_signal().connect([](const kaa::InProgressAborted&) { say("  never: not aborted"); });
    auto impatient = kaa::coroutine([&] { return await(download); });
    auto patient = kaa::coroutine([&] { return await(download); });
    impatient.abort();
    say("download finished() =", download.finished());
    download.finish("file.ogg");
    say("the other waiter still gets it:", patient.result());
}

void abort_while_waiting_on_a_thread_job() {
    say("\n-- ... on a threaded job: the job is aborted, and stops cooperatively --");
    std::atomic<bool> saw_abort{false};
    kaa::InProgress<void> job(nullptr);
    std::atomic<bool> started{false};
    auto ip = kaa::coroutine([&] {
        job = kaa::threaded([&] {
            started = true;
            while (!kaa::this_job::aborted())
                std::this_thread::sleep_for(1ms);
            saw_abort = true;
        });
        await(job);
    });
    while (!started)
        std::this_thread::sleep_for(1ms);
    ip.abort();
    say("job failed() =", job.failed(), "at once; the worker stops soon");
    while (!saw_abort)
        std::this_thread::sleep_for(1ms);
    say("the job saw this_job::aborted():", saw_abort.load());
}

void abort_while_time_slicing() {
    say("\n-- ... while time-slicing in yield(): inprogress() is empty --");
    kaa::InProgress<void> worker(nullptr);
    worker = kaa::coroutine([&] {
        try {
            for (;;)
                yield();
        } catch (const kaa::InProgressAborted& e) {
            say("  inprogress() valid:", e.inprogress().valid(), "- origin() is the coroutine:",
                e.origin() == worker);
            throw;
        }
    });
    kaa::main_loop().step(kaa::Duration::zero());
    worker.abort();
}

void cleanup_cannot_suspend() {
    say("\n-- an aborted coroutine may clean up, but not wait again --");
    kaa::InProgress<void> never;
    auto ip = kaa::coroutine([&] {
        try {
            await(never);
        } catch (const kaa::InProgressAborted&) {
            try {
                await(kaa::delay(10ms)); // SuspendAfterAbort
            } catch (const kaa::SuspendAfterAbort& e) {
                say("  SuspendAfterAbort:", e.what());
            }
            throw;
        }
    });
    ip.abort();
}

void caught_abort_still_fails() {
    say("\n-- an aborted coroutine ends aborted, even if it returns a value --");
    kaa::InProgress<int> never;
    auto ip = kaa::coroutine([&] {
        try {
            return await(never);
        } catch (const kaa::InProgressAborted&) {
            return -1; // discarded
        }
    });
    ip.abort();
    try {
        ip.result();
    } catch (const kaa::InProgressAborted& e) {
        say("result() rethrows InProgressAborted:", e.message());
    }
}

// ---- policies ----

void singleton() {
    say("\n-- Policy::singleton: a call while one runs returns that one --");
    kaa::Coroutine<int(int)> rescan({.name = "rescan", .policy = kaa::Policy::singleton}, [](int folder) {
        say("  rescanning folder", folder);
        await(kaa::delay(10ms));
        return folder;
    });
    auto first = rescan(1);
    auto second = rescan(2); // not entered: returns `first`
    say("same operation:", first == second, "- result", second.wait());
}

void synchronized() {
    say("\n-- Policy::synchronized: calls queue; aborting a queued one removes it --");
    kaa::Coroutine<void(std::string)> save({.policy = kaa::Policy::synchronized}, [](std::string name) {
        say("  saving", name);
        await(kaa::delay(10ms));
        say("  saved", name);
    });
    auto a = save("a");
    auto b = save("b");
    auto c = save("c");
    b.abort(); // never runs; c still waits for a
    c.wait();
    say("b failed() =", b.failed());
}

void pass_last() {
    say("\n-- Policy::pass_last: each call gets the previous unfinished one --");
    kaa::Coroutine<int(int)> add({.policy = kaa::Policy::pass_last},
                                 [](const kaa::InProgress<int>& last, int amount) {
                                     int before = last.valid() ? await(last) : 0;
                                     await(kaa::delay(5ms));
                                     return before + amount;
                                 });
    add(1);
    add(2);
    say("chained total:", add(3).wait());
}

void group() {
    say("\n-- a CoroutineGroup: two definitions that must not overlap --");
    auto disk = std::make_shared<kaa::CoroutineGroup>(kaa::Policy::synchronized);
    kaa::Coroutine<void()> read({.policy = kaa::Policy::synchronized, .group = disk}, [] {
        say("  read starts");
        await(kaa::delay(10ms));
        say("  read ends");
    });
    kaa::Coroutine<void()> write({.policy = kaa::Policy::synchronized, .group = disk}, [] {
        say("  write starts");
        await(kaa::delay(10ms));
        say("  write ends");
    });
    read();
    write().wait();
}

// ---- lifetime ----

struct Noisy {
    ~Noisy() { say("destructor on the coroutine's stack runs"); }
};

void suspended_without_handles() {
    say("\n-- a suspended coroutine lives on without handles; shutdown unwinds it --");
    kaa::coroutine([] {
        Noisy on_the_stack;
        kaa::InProgress<void> never;
        await(never);
    }); // the InProgress is dropped here
    say("active coroutines:", kaa::active_coroutines());
}

} // namespace

int main() {
    kaa::MainLoop loop;
    first_step_runs_at_once();
    options_and_progress();
    exceptions_fail_the_inprogress();
    abort_while_waiting_on_a_delay();
    abort_while_waiting_on_noabort();
    abort_while_waiting_on_a_nested_coroutine();
    abort_while_waiting_on_a_shared_operation();
    abort_while_waiting_on_a_thread_job();
    abort_while_time_slicing();
    cleanup_cannot_suspend();
    caught_abort_still_fails();
    singleton();
    synchronized();
    pass_last();
    group();
    suspended_without_handles();
    say("main() returns; the loop's destructor aborts what is left");
    return 0;
}
