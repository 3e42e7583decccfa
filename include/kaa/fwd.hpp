// SPDX-License-Identifier: BSL-1.0
// Forward declarations of kaa's public types.
#pragma once

#include <chrono>

#include "kaa/version.hpp"

namespace kaa {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;

class MainLoop;
class InProgressRef;
template <class T>
class InProgress;
template <class Signature>
class Signal;
class Connection;
class InProgressAborted;
class TimeoutError;
class Timer;
class OneShotTimer;
class WeakTimer;
class AtTimer;
class Progress;
class VirtualClock;

namespace detail {
class StateBase;
template <class T>
class State;
} // namespace detail

} // namespace kaa
