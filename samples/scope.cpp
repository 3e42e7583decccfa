// SPDX-License-Identifier: BSL-1.0
// Structured scopes (doc/interop.md#structured-scopes): a widget that owns
// its coroutines, and a scope whose first failure stops its siblings.
#include <chrono>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "kaa/coroutine.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/scope.hpp"
#include "kaa/threaded.hpp"
#include "kaa/timer.hpp"

using namespace std::chrono_literals;
using kaa::this_coroutine::await;

namespace {

template <class... A>
void say(const A&... a) {
    ((std::cout << a << ' '), ...) << std::endl;
}

// A window that loads its cover image in a coroutine. The coroutine uses
// `this`: the scope, the last member, aborts it when the window goes, so it
// never resumes into a destroyed window (QCoro's "owner destroyed while a
// coroutine is suspended").
class PlayerWindow {
public:
    explicit PlayerWindow(std::string title) : title_(std::move(title)) {}

    void load_cover(std::string url) {
        tasks_.coroutine([this, url] {
            try {
                await(kaa::delay(1h)); // a slow download
                title_ += " [cover]";
            } catch (const kaa::InProgressAborted&) {
                say("cover download aborted; the window still exists:", title_);
                throw;
            }
        });
    }

private:
    std::string title_;
    kaa::Scope tasks_{"player window"}; // last member: destroyed first
};

} // namespace

int main() {
    kaa::MainLoop loop;

    auto window = std::make_unique<PlayerWindow>("Now playing");
    window->load_cover("http://example.org/cover.jpg");
    say("coroutines running:", kaa::active_coroutines());
    window.reset(); // closing the window aborts its coroutine
    say("window closed; coroutines running:", kaa::active_coroutines());

    // The first failure aborts the siblings; the scope fails with it.
    kaa::Scope import("import");
    import.coroutine([&import] {
        int track = await(import.threaded([] { return 2; })); // a threaded child
        throw std::runtime_error("track " + std::to_string(track) + ": bad tag");
    });
    import.coroutine([] {
        try {
            await(kaa::delay(1h));
        } catch (const kaa::InProgressAborted&) {
            say("track 1: aborted, a sibling failed");
            throw;
        }
    });
    import.join().connect_exception([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            say("import failed:", x.what());
        }
        loop.stop();
    });
    loop.run();
}
