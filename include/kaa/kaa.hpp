// SPDX-License-Identifier: BSL-1.0
// The whole of kaa in one include: the main loop, InProgress, signals,
// coroutines (stackful and co_await Tasks), threaded work, generators, any/all
// and timeouts, progress, timers, events, child processes and the error
// types. Each concept's header can also be included alone (they are
// self-contained); add a line here for every new public header.
#pragma once

#include "kaa/asio.hpp"
#include "kaa/coroutine.hpp"
#include "kaa/debug.hpp"
#include "kaa/errors.hpp"
#include "kaa/event.hpp"
#include "kaa/fwd.hpp"
#include "kaa/future.hpp"
#include "kaa/generator.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/in_progress_all.hpp"
#include "kaa/in_progress_callable.hpp"
#include "kaa/io_channel.hpp"
#include "kaa/io_context_host.hpp"
#include "kaa/io_monitor.hpp"
#include "kaa/log.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/process.hpp"
#include "kaa/scope.hpp"
#include "kaa/progress.hpp"
#include "kaa/signal.hpp"
#include "kaa/socket.hpp"
#include "kaa/synchronized.hpp"
#include "kaa/task.hpp"
#include "kaa/threaded.hpp"
#include "kaa/threaded_host.hpp"
#include "kaa/timer.hpp"
#include "kaa/version.hpp"
#include "kaa/virtual_clock.hpp"
