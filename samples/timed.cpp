// SPDX-License-Identifier: BSL-1.0
// Fire-and-forget timers (kaa::call_later, kaa::call_at) and Timed definitions
// (kaa.timed) with their policies many, once and restart.
//
// doc/timer.md quotes this program.

#include <chrono>
#include <iostream>
#include <string>

#include <kaa/main_loop.hpp>
#include <kaa/timer.hpp>

using namespace std::chrono_literals;

namespace {

template <class... Args>
void say(const Args&... args) {
    const char* separator = "";
    std::cout << std::boolalpha;
    ((std::cout << separator << args, separator = " "), ...);
    std::cout << std::endl;
}

// A member Timed definition: its policy and its timers are per object, and
// they stop when the object goes.
class Download {
public:
    explicit Download(std::string name) : name_(std::move(name)) {}

    // Polls every 20 ms until the function returns false. With the `once`
    // policy, calling it again while it polls does nothing.
    kaa::Timed<bool()> poll{{.interval = 20ms, .policy = kaa::TimedPolicy::once}, [this] {
                                percent_ += 25;
                                say(name_, "at", percent_, "%");
                                return percent_ < 100;
                            }};

    // Shows a status line 30 ms after the last call: `restart` replaces the
    // pending timer and its arguments (a debounce).
    kaa::Timed<void(std::string)> status{
        {.interval = 30ms, .policy = kaa::TimedPolicy::restart, .one_shot = true},
        [this](const std::string& text) { say(name_, "status:", text); }};

private:
    std::string name_;
    int percent_ = 0;
};

} // namespace

int main() {
    kaa::MainLoop loop;

    // Fire-and-forget: nothing needs to be kept for the call to happen.
    kaa::call_later(10ms, [] { say("call_later: 10 ms have passed"); });
    kaa::call_at(std::chrono::system_clock::now() + 50ms, [] { say("call_at: the wall clock reached it"); });
    // The handle, while held, can cancel the call.
    kaa::ScheduledCall reminder = kaa::call_later(40ms, [] { say("never printed"); });
    say("cancelled:", reminder.cancel());

    Download file("file");
    say("poll started:", file.poll());
    say("poll started again:", file.poll());
    file.status("connecting");
    file.status("downloading");  // replaces "connecting"

    kaa::call_later(200ms, [&loop] { loop.stop(); });
    loop.run();
    say("done");
}
