// SPDX-License-Identifier: BSL-1.0
// Built against the installed package only (find_package(kaa), kaa::kaa): proves
// that the exported target carries its include path, its Boost and thread
// dependencies, and that the installed headers are complete.
#include <cstdio>

#include <kaa/in_progress.hpp>
#include <kaa/main_loop.hpp>

int main() {
    kaa::MainLoop loop;
    kaa::InProgress<int> ip;
    int got = 0;
    ip.connect([&](int v) { got = v; });
    loop.post([&] {
        ip.finish(42);
        loop.stop();
    });
    loop.run();
    if (!ip.finished() || got != 42) {
        std::fprintf(stderr, "consumer: expected 42, got %d\n", got);
        return 1;
    }
    std::printf("consumer: ok (%d)\n", got);
    return 0;
}
