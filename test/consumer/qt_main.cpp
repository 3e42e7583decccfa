// SPDX-License-Identifier: BSL-1.0
// Uses kaa::qt from the installed package: without a QCoreApplication, the
// Guest must refuse with a UsageError that says what to do.
#include <cstdio>

#include <kaa/errors.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/qt.hpp>

int main() {
    kaa::MainLoop loop;
    try {
        kaa::qt::Guest guest(loop);
    } catch (const kaa::UsageError& e) {
        std::printf("kaa::qt from the package: %s\n", e.what());
        return 0;
    }
    std::printf("kaa::qt::Guest attached without a QCoreApplication\n");
    return 1;
}
