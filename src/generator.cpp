// SPDX-License-Identifier: BSL-1.0
#include "kaa/generator.hpp"

#include <string>

namespace kaa::detail {

void throw_generator_busy() {
    throw GeneratorBusy("kaa::Generator::next() while the previous next() is pending: a generator hands out "
                        "one value at a time; wait for that InProgress (or connect() to it) first");
}

void throw_generator_not_in_coroutine() {
    throw NotInCoroutine("iterating a kaa::Generator waits for each value, so it works inside a coroutine "
                         "only (start one with kaa::coroutine(fn)); outside, call next() and connect() to "
                         "each InProgress");
}

void throw_yield_outside_coroutine() {
    throw NotInCoroutine("kaa::Yield: a coroutine generator's yield() was called outside its coroutine "
                         "(from a callback that runs later?); call it from the producer function or code "
                         "it calls while it runs");
}

void throw_yield_on_loop_thread() {
    throw WrongThread("kaa::Yield: a threaded generator's yield() was called on the loop thread, where it "
                      "would block the loop; call it from the producer function, on its worker thread");
}

void check_generator_thread(const char* what) {
    if (loop_context() == LoopContext::other_thread)
        throw WrongThread(std::string(what) + ": a kaa::Generator belongs to the loop thread; from a worker, "
                                              "use kaa::threaded(kaa::main_thread, fn)");
}

InProgressAborted generator_stopped() {
    return InProgressAborted("kaa::Generator stopped: its consumer aborted it or is gone; the producer ends");
}

} // namespace kaa::detail
