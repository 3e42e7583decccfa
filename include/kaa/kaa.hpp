// The whole of kaa in one include: the main loop, InProgress, signals,
// coroutines, progress, timers and the error types. Each concept's header can also be included
// alone (they are self-contained); add a line here for every new public header.
#pragma once

#include "kaa/coroutine.hpp"
#include "kaa/errors.hpp"
#include "kaa/fwd.hpp"
#include "kaa/in_progress.hpp"
#include "kaa/main_loop.hpp"
#include "kaa/progress.hpp"
#include "kaa/signal.hpp"
#include "kaa/timer.hpp"
