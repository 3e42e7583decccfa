// SPDX-License-Identifier: BSL-1.0
// Testing timeout-heavy code on virtual time: a retry loop with a timeout per
// try and exponential back-off, run on a loop whose clock jumps to the next
// deadline whenever nothing else can happen. The 39 seconds it waits take
// microseconds, and the output is the same on every run.
#include <chrono>
#include <cstdio>
#include <functional>

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/timer.hpp"
#include "kaa/virtual_clock.hpp"

using namespace std::chrono_literals;

namespace {

long long seconds_since(kaa::Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::seconds>(kaa::main_loop().now() - start).count();
}

// The code under test: up to `tries` attempts, 10 s each, with a pause of
// 1 s, 2 s, 4 s ... between them. It knows nothing of virtual time.
kaa::InProgress<int> with_retries(std::function<kaa::InProgress<int>()> attempt, int tries) {
    return kaa::coroutine([attempt, tries] {
        const kaa::Clock::time_point start = kaa::main_loop().now();
        kaa::Duration pause = 1s;
        for (int i = 1;; ++i) {
            std::printf("%3lld s: try %d\n", seconds_since(start), i);
            try {
                return kaa::this_coroutine::await(attempt().timeout(10s));
            } catch (const kaa::TimeoutError&) {
                if (i == tries)
                    throw;
            }
            std::printf(
                "%3lld s: try %d timed out; next in %lld s\n", seconds_since(start), i,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(pause).count()));
            kaa::this_coroutine::await(kaa::delay(pause));
            pause *= 2;
        }
    });
}

} // namespace

int main() {
    // The test: a server that does not answer the first three tries and
    // answers the fourth after 2 s.
    kaa::VirtualClock clock;
    kaa::MainLoop loop(clock);

    int calls = 0;
    auto server = [&calls]() -> kaa::InProgress<int> {
        if (++calls < 4)
            return kaa::InProgress<int>(); // never finishes
        return kaa::coroutine([] {
            kaa::this_coroutine::await(kaa::delay(2s));
            return 42;
        });
    };
    int answer = with_retries(server, 5).wait();

    std::printf(
        "answer %d after %d tries, %lld virtual seconds, %llu jumps\n", answer, calls,
        static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(clock.elapsed()).count()),
        static_cast<unsigned long long>(clock.jumps()));
}
