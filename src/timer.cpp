// SPDX-License-Identifier: BSL-1.0
#include "kaa/timer.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kaa/main_loop.hpp"
#include "work_registry.hpp"
#include "loop_timer.hpp"

namespace asio = boost::asio;

namespace kaa {

namespace detail {

namespace {

using SysClock = std::chrono::system_clock;

// An AtTimer never waits on the steady clock for longer than this before
// looking at the wall clock again, so that the wall clock being set forward
// (or the machine resuming from suspend, which the steady clock does not
// count) delays a firing by at most this much.
constexpr Duration wall_clock_recheck = std::chrono::minutes(1);

// How long an AtTimer's steady wait may be. A virtual loop's wall clock moves
// with its steady clock, so nothing can set it forward behind the timer's
// back: one wait to the deadline (one jump, not one a minute).
Duration wall_wait(Duration wait) {
    return current_virtual_time() ? wait : std::min(wait, wall_clock_recheck);
}

struct AtSchedule {
    std::set<int> hours;
    std::set<int> minutes;
    std::set<int> seconds{0};
    std::set<int> weekdays;
};

void check_range(const std::set<int>& values, int last, const char* what) {
    for (int v : values) {
        if (v < 0 || v > last)
            throw std::invalid_argument("kaa::AtTimer: " + std::string(what) + " " + std::to_string(v) +
                                        " is out of range (0-" + std::to_string(last) + ")");
    }
}

void validate(const std::set<int>& hours, const std::set<int>& minutes, const std::set<int>& seconds,
              const std::set<int>& weekdays) {
    check_range(hours, 23, "hour");
    check_range(minutes, 59, "minute");
    check_range(seconds, 59, "second");
    check_range(weekdays, 6, "weekday (0 = Sunday ... 6 = Saturday)");
}

void check_interval(Duration interval, const char* what) {
    if (interval < Duration::zero())
        throw std::invalid_argument(std::string(what) + ": the interval must not be negative");
}

// The first value >= from in `values` (any value below `limit` if empty).
std::optional<int> first_at_least(const std::set<int>& values, int limit, int from) {
    if (values.empty())
        return from < limit ? std::optional<int>(from) : std::nullopt;
    auto it = values.lower_bound(from);
    return it != values.end() ? std::optional<int>(*it) : std::nullopt;
}

std::chrono::local_seconds next_local(std::chrono::local_seconds after, const std::set<int>& hours,
                                      const std::set<int>& minutes, const std::set<int>& seconds,
                                      const std::set<int>& weekdays) {
    using namespace std::chrono;
    local_seconds from = after + std::chrono::seconds(1);
    local_days first_day = floor<days>(from);
    hh_mm_ss<std::chrono::seconds> hms(from - first_day);
    const int fh = static_cast<int>(hms.hours().count());
    const int fm = static_cast<int>(hms.minutes().count());
    const int fs = static_cast<int>(hms.seconds().count());
    // Every set is non-empty or means "any", so each matching weekday has a
    // match; the first day may have none left, hence eight days.
    for (int i = 0; i <= 7; ++i) {
        local_days day = first_day + days(i);
        if (!weekdays.empty() && !weekdays.contains(static_cast<int>(weekday(day).c_encoding())))
            continue;
        const bool same_day = i == 0;
        for (auto h = first_at_least(hours, 24, same_day ? fh : 0); h;
             h = first_at_least(hours, 24, *h + 1)) {
            const bool same_hour = same_day && *h == fh;
            for (auto m = first_at_least(minutes, 60, same_hour ? fm : 0); m;
                 m = first_at_least(minutes, 60, *m + 1)) {
                const bool same_minute = same_hour && *m == fm;
                if (auto s = first_at_least(seconds, 60, same_minute ? fs : 0))
                    return day + std::chrono::hours(*h) + std::chrono::minutes(*m) + std::chrono::seconds(*s);
            }
        }
    }
    throw std::logic_error("kaa::AtTimer::next_after: no matching time within a week (internal error)");
}

std::chrono::local_seconds to_local(SysClock::time_point t) {
    using namespace std::chrono;
    std::time_t tt = SysClock::to_time_t(time_point_cast<SysClock::duration>(floor<std::chrono::seconds>(t)));
    std::tm tm{};
    if (!localtime_r(&tt, &tm))
        throw std::runtime_error("kaa::AtTimer: localtime_r failed");
    return local_days(year(tm.tm_year + 1900) / month(static_cast<unsigned>(tm.tm_mon + 1)) /
                      day(static_cast<unsigned>(tm.tm_mday))) +
           std::chrono::hours(tm.tm_hour) + std::chrono::minutes(tm.tm_min) + std::chrono::seconds(tm.tm_sec);
}

long utc_offset(SysClock::time_point t) {
    std::time_t tt = SysClock::to_time_t(t);
    std::tm tm{};
    if (!localtime_r(&tt, &tm))
        throw std::runtime_error("kaa::AtTimer: localtime_r failed");
    return tm.tm_gmtoff;
}

// The earliest system time after `after` at which the local time is `t`
// (it occurs twice in the hour repeated when summer time ends). If there is
// none, the system time mktime() gives: not after `after`, or, for a local
// time skipped when summer time starts, the moment the clock passed it.
SysClock::time_point to_sys(std::chrono::local_seconds t, SysClock::time_point after) {
    using namespace std::chrono;
    local_days d = floor<days>(t);
    year_month_day ymd(d);
    hh_mm_ss<std::chrono::seconds> hms(t - d);
    std::tm base{};
    base.tm_year = static_cast<int>(ymd.year()) - 1900;
    base.tm_mon = static_cast<int>(static_cast<unsigned>(ymd.month())) - 1;
    base.tm_mday = static_cast<int>(static_cast<unsigned>(ymd.day()));
    base.tm_hour = static_cast<int>(hms.hours().count());
    base.tm_min = static_cast<int>(hms.minutes().count());
    base.tm_sec = static_cast<int>(hms.seconds().count());
    std::optional<SysClock::time_point> best;
    for (int dst : {0, 1}) {
        std::tm tm = base;
        tm.tm_isdst = dst;
        std::time_t r = std::mktime(&tm);
        if (r == static_cast<std::time_t>(-1))
            continue;
        SysClock::time_point p = SysClock::from_time_t(r);
        if (p > after && to_local(p) == t && (!best || p < *best))
            best = p;
    }
    if (best)
        return *best;
    std::tm tm = base;
    tm.tm_isdst = -1;
    return SysClock::from_time_t(std::mktime(&tm));
}

// The first matching local time, searching the local calendar forward from
// `cursor`, whose system time is after `after`.
SysClock::time_point search_forward(SysClock::time_point after, std::chrono::local_seconds cursor,
                                    const std::set<int>& hours, const std::set<int>& minutes,
                                    const std::set<int>& seconds, const std::set<int>& weekdays) {
    // Candidates not after `after` lie in a repeated hour; the bound only
    // guards against a broken zone.
    for (int i = 0; i < 100000; ++i) {
        std::chrono::local_seconds candidate = next_local(cursor, hours, minutes, seconds, weekdays);
        SysClock::time_point t = to_sys(candidate, after);
        if (t > after)
            return t;
        cursor = candidate;
    }
    throw std::runtime_error("kaa::AtTimer::next_after: the local time zone never reaches a matching time");
}

} // namespace

class TimerService;

/// What a Timer handle points to: the callback and the schedule. Handlers
/// queued in Asio or on the loop hold it weakly and carry the generation they
/// were armed for, so a stale or orphaned handler does nothing.
///
/// Everything but the atomics is touched on the loop thread only.
class TimerCore : public std::enable_shared_from_this<TimerCore> {
public:
    TimerCore(TimerKind kind, UniqueFunction<bool()> callback, std::weak_ptr<void> owner, bool weak)
        : kind_(kind), weak_(weak), callback_(std::move(callback)), owner_(std::move(owner)) {}
    ~TimerCore();

    TimerCore(const TimerCore&) = delete;
    TimerCore& operator=(const TimerCore&) = delete;

    // Any thread.
    void request_start(Duration interval, bool now) {
        check_interval(interval, "kaa::Timer::start()");
        if (!in_loop_context()) {
            post_to_loop([self = shared_from_this(), interval, now] { self->start(interval, now); });
            return;
        }
        start(interval, now);
    }

    void request_start_at(AtSchedule schedule) {
        validate(schedule.hours, schedule.minutes, schedule.seconds, schedule.weekdays);
        if (!in_loop_context()) {
            post_to_loop([self = shared_from_this(), s = std::move(schedule)]() mutable {
                self->start_at(std::move(s));
            });
            return;
        }
        start_at(std::move(schedule));
    }

    void request_stop() {
        if (!in_loop_context()) {
            post_to_loop([self = shared_from_this()] { self->stop(); });
            return;
        }
        stop();
    }

    // The handle is going away: nothing may call back from now on.
    void release() noexcept {
        released_.store(true, std::memory_order_release);
        if (in_loop_context()) {
            stop();
            return;
        }
        try {
            post_to_loop([self = shared_from_this()] { self->stop(); });
        } catch (...) {
            // Without the post, `released_` still keeps the callback from
            // running; the Asio wait ends on its own.
        }
    }

    bool active() const noexcept {
        return active_.load(std::memory_order_acquire) && !(weak_ && owner_.expired());
    }

    std::optional<Duration> interval() const noexcept {
        if (!active())
            return std::nullopt;
        return Duration(interval_rep_.load(std::memory_order_relaxed));
    }

    std::optional<SysClock::time_point> next() const noexcept {
        if (!active())
            return std::nullopt;
        return SysClock::time_point(SysClock::duration(next_rep_.load(std::memory_order_relaxed)));
    }

    const AtSchedule& schedule() const noexcept { return schedule_; }

    // Loop thread.
    void start(Duration interval, bool now) {
        auto keep = shared_from_this();
        attach();
        stop();
        if (weak_ && owner_.expired())
            return;
        if (now) {
            invoke();
            if (released_.load(std::memory_order_acquire))
                return;
        }
        at_ = false;
        interval_ = interval;
        due_ = loop_now() + interval;
        interval_rep_.store(interval.count(), std::memory_order_relaxed);
        activate();
        arm_later();
    }

    void start_once_at(SysClock::time_point when) {
        auto keep = shared_from_this();
        attach();
        stop();
        at_ = true;
        next_ = when;
        last_scheduled_ = when;
        next_rep_.store(when.time_since_epoch().count(), std::memory_order_relaxed);
        SysClock::time_point now = loop_wall_now();
        Duration wait = when > now ? std::chrono::ceil<Duration>(when - now) : Duration::zero();
        due_ = loop_now() + wall_wait(wait);
        activate();
        arm_later();
    }

    void start_at(AtSchedule schedule) {
        auto keep = shared_from_this();
        attach();
        stop();
        if (weak_ && owner_.expired())
            return;
        at_ = true;
        schedule_ = std::move(schedule);
        SysClock::time_point base = loop_wall_now();
        if (last_scheduled_ && *last_scheduled_ > base)
            base = *last_scheduled_;
        schedule_next_at(base);
        activate();
        arm_later();
    }

    void stop() noexcept {
        ++generation_;
        active_.store(false, std::memory_order_release);
        // A fire-and-forget call is over once it is stopped; every caller
        // holds a reference of its own, so this is not the last one.
        self_.reset();
        if (timer_)
            timer_->cancel();  // the generation check makes an orphaned wait harmless
    }

    // The loop's io_context is going away (see TimerService::shutdown).
    void detach_from_loop() noexcept {
        stop();
        if (keeps_itself_) {
            // A pending fire-and-forget call dies with the loop; its callback
            // may hold what the loop's destruction releases.
            UniqueFunction<bool()> dropped = std::move(callback_);
        }
        timer_.reset();
        service_ = nullptr;
        if (breaks_cycle_) {
            // delay(): the callback holds the InProgress whose abort hook
            // holds this core. Nothing will fire it any more, so let go.
            UniqueFunction<bool()> dropped = std::move(callback_);
        }
    }

    // Marks a core whose callback owns it through a reference cycle (delay()).
    void set_breaks_cycle() noexcept { breaks_cycle_ = true; }

    // A fire-and-forget call (call_later, call_at): while it is started, the
    // core keeps itself alive, since no handle has to.
    void set_keeps_itself() noexcept { keeps_itself_ = true; }

    // Any thread: a one-shot at a wall-clock time (call_at).
    void request_start_once_at(SysClock::time_point when) {
        if (!in_loop_context()) {
            post_to_loop([self = shared_from_this(), when] { self->start_once_at(when); });
            return;
        }
        start_once_at(when);
    }

    // For kaa::live_work() (loop thread).
    WorkSite site;
    const StateBase* finishes = nullptr;  // delay(): the InProgress it finishes
    void describe(WorkRecord& r) const {
        r.kind = WorkKind::timer;
        r.callable = std::string(site.function);
        set_site(r, site);
        if (finishes) {
            r.name = "delay()";
            r.callable.clear();
        } else if (at_) {
            r.name = "AtTimer";
        } else {
            r.name = kind_ == TimerKind::one_shot ? "OneShotTimer" : "Timer";
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due_ - Clock::now());
        char buf[96];
        if (at_)
            std::snprintf(buf, sizeof buf, "armed, fires in %.3f s", static_cast<double>(left.count()) / 1000);
        else
            std::snprintf(buf, sizeof buf, "armed (interval %.3f s), fires in %.3f s",
                          std::chrono::duration<double>(interval_).count(), static_cast<double>(left.count()) / 1000);
        r.state = buf;
    }
    bool armed() const noexcept { return active_.load(std::memory_order_relaxed) && !released_.load(); }

private:
    void attach();

    void activate() noexcept {
        ++generation_;
        active_.store(true, std::memory_order_release);
        if (keeps_itself_)
            self_ = shared_from_this();
    }

    // A timer started now must not fire in the current iteration, even if it
    // is already due or its interval is zero: the first deadline is armed
    // (or the first zero-interval tick runs) from the next iteration's queue.
    void arm_later() {
        MainLoop::current().post([weak = weak_from_this(), gen = generation_] {
            if (auto self = weak.lock())
                self->on_posted(gen);
        });
    }

    void on_posted(std::uint64_t gen) {
        if (gen != generation_)
            return;
        if (!at_ && interval_ == Duration::zero())
            fire(gen);
        else
            arm_now();
    }

    void arm_now() {
        if (!timer_)
            timer_.emplace(MainLoop::current().context());
        timer_->expires_at(due_);
        timer_->async_wait([weak = weak_from_this(), gen = generation_](const boost::system::error_code& ec) {
            if (ec)
                return;
            if (auto self = weak.lock())
                self->fire(gen);
        });
    }

    void fire(std::uint64_t gen) {
        if (gen != generation_ || released_.load(std::memory_order_acquire))
            return;
        auto keep = shared_from_this();
        std::shared_ptr<void> owner;
        if (weak_) {
            owner = owner_.lock();
            if (!owner) {
                stop();
                return;
            }
        }
        if (at_) {
            // The steady wait is over; the wall clock decides.
            SysClock::time_point now = loop_wall_now();
            if (now < next_) {
                due_ = loop_now() +
                       wall_wait(std::chrono::ceil<Duration>(next_ - now));
                arm_now();
                return;
            }
        }
        if (kind_ == TimerKind::one_shot) {
            stop();
            invoke();
            return;
        }
        bool keep_going = invoke();
        if (gen != generation_ || released_.load(std::memory_order_acquire))
            return; // restarted, stopped or released by the callback
        if (!keep_going) {
            stop();
            return;
        }
        if (at_) {
            schedule_next_at(std::max(next_, loop_wall_now()));
            arm_now();
        } else if (interval_ == Duration::zero()) {
            // Posted from this iteration's queue, so it runs in the next one.
            arm_later();
        } else {
            // Phase-locked: keep the original cadence, drop missed ticks.
            Clock::time_point now = loop_now();
            due_ += interval_;
            if (due_ <= now)
                due_ += ((now - due_) / interval_ + 1) * interval_;
            arm_now();
        }
    }

    void schedule_next_at(SysClock::time_point after) {
        next_ = AtTimer::next_after(after, schedule_.hours, schedule_.minutes, schedule_.seconds,
                                    schedule_.weekdays);
        last_scheduled_ = next_;
        next_rep_.store(next_.time_since_epoch().count(), std::memory_order_relaxed);
        SysClock::time_point now = loop_wall_now();
        Duration wait = next_ > now ? std::chrono::ceil<Duration>(next_ - now) : Duration::zero();
        due_ = loop_now() + wall_wait(wait);
    }

    bool invoke() {
        try {
            return callback_ ? callback_() : false;
        } catch (...) {
            report_unhandled(std::current_exception(), "timer callback");
            return true;
        }
    }

    const TimerKind kind_;
    const bool weak_;
    bool at_ = false;
    bool breaks_cycle_ = false;
    bool keeps_itself_ = false;
    std::shared_ptr<TimerCore> self_; // see set_keeps_itself()
    UniqueFunction<bool()> callback_;
    const std::weak_ptr<void> owner_;

    std::uint64_t generation_ = 0;
    Duration interval_{};
    Clock::time_point due_{};
    std::optional<LoopTimer> timer_;
    TimerService* service_ = nullptr;

    AtSchedule schedule_;
    SysClock::time_point next_{};
    std::optional<SysClock::time_point> last_scheduled_;

    std::atomic<bool> active_{false};
    std::atomic<bool> released_{false};
    std::atomic<Duration::rep> interval_rep_{0};
    std::atomic<SysClock::duration::rep> next_rep_{0};
};

/// Registered with the loop's io_context: when the context is destroyed it
/// stops the timers and destroys their Asio timer objects while Asio's timer
/// machinery still exists (a Timer may outlive the loop).
class TimerService final : public asio::execution_context::service {
public:
    static asio::execution_context::id id;

    explicit TimerService(asio::io_context& io) : asio::execution_context::service(io) {
        // Services shut down in reverse order of creation. Making sure Asio's
        // timer service exists before this one means ours shuts down first.
        asio::steady_timer probe(io);
    }

    void add(TimerCore* core) { cores_.insert(core); }
    void remove(TimerCore* core) noexcept { cores_.erase(core); }
    const std::unordered_set<TimerCore*>& cores() const noexcept { return cores_; }

private:
    void shutdown() override {
        std::vector<std::shared_ptr<TimerCore>> cores;
        cores.reserve(cores_.size());
        for (TimerCore* core : cores_) {
            if (auto strong = core->weak_from_this().lock())
                cores.push_back(std::move(strong));
        }
        cores_.clear();
        for (auto& core : cores)
            core->detach_from_loop();
    }

    std::unordered_set<TimerCore*> cores_;
};

asio::execution_context::id TimerService::id;

TimerCore::~TimerCore() {
    if (service_)
        service_->remove(this);
}

void TimerCore::attach() {
    if (service_)
        return;
    service_ = &asio::use_service<TimerService>(MainLoop::current().context());
    service_->add(this);
}

std::shared_ptr<TimerCore> make_timer_core(TimerKind kind, UniqueFunction<bool()> callback,
                                           std::weak_ptr<void> owner, bool weak) {
    return std::make_shared<TimerCore>(kind, std::move(callback), std::move(owner), weak);
}

ScheduledCall schedule_call_later(Duration d, UniqueFunction<bool()> callback) {
    check_interval(d, "kaa::call_later()");
    MainLoop::current(); // fail before scheduling anything if there is no loop
    auto core = make_timer_core(TimerKind::one_shot, std::move(callback), {}, false);
    core->set_keeps_itself();
    core->request_start(d, false);
    return ScheduledCall(core);
}

ScheduledCall schedule_call_at(std::chrono::system_clock::time_point t, UniqueFunction<bool()> callback) {
    MainLoop::current();
    auto core = make_timer_core(TimerKind::one_shot, std::move(callback), {}, false);
    core->set_keeps_itself();
    core->request_start_once_at(t);
    return ScheduledCall(core);
}

void check_timed_options(const TimedOptions& opts) {
    check_interval(opts.interval, "kaa::Timed");
    switch (opts.policy) {
    case TimedPolicy::many:
    case TimedPolicy::once:
    case TimedPolicy::restart:
        return;
    }
    throw std::invalid_argument("kaa::Timed: unknown policy " + std::to_string(static_cast<int>(opts.policy)) +
                                "; use TimedPolicy::many, once or restart");
}

void throw_timed_wrong_thread() {
    throw WrongThread("kaa::Timed: call it on the loop thread (post() the call there from other threads)");
}

void collect_timers(MainLoop& loop, std::vector<WorkRecord>& out, std::vector<const StateBase*>& states) {
    if (!asio::has_service<TimerService>(loop.context()))
        return;
    for (TimerCore* core : asio::use_service<TimerService>(loop.context()).cores()) {
        if (!core->armed())
            continue;
        WorkRecord r;
        core->describe(r);
        out.push_back(std::move(r));
        states.push_back(core->finishes);
    }
}

void throw_empty_timer_callback() {
    throw EmptyHandle("kaa timer: the callback is empty (a null function pointer or an empty "
                      "std::function); pass something callable");
}

} // namespace detail

namespace {

[[noreturn]] void throw_empty_timer() {
    throw EmptyHandle("kaa timer: this timer was moved from; use the timer it was moved to");
}

} // namespace

Timer::Timer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback, std::weak_ptr<void> owner,
             bool weak)
    : core_(detail::make_timer_core(kind, std::move(callback), std::move(owner), weak)) {}

Timer::Timer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback, const detail::WorkSite& site)
    : core_(detail::make_timer_core(kind, std::move(callback), {}, false)) {
    core_->site = site;
}

Timer& Timer::operator=(Timer&& other) noexcept {
    if (this != &other) {
        if (core_)
            core_->release();
        core_ = std::move(other.core_);
    }
    return *this;
}

Timer::~Timer() {
    if (core_)
        core_->release();
}

detail::TimerCore& Timer::core() const {
    if (!core_)
        throw_empty_timer();
    return *core_;
}

void Timer::start(Duration interval, bool now) & { core().request_start(interval, now); }

void Timer::stop() { core().request_stop(); }

bool Timer::active() const { return core().active(); }

std::optional<Duration> Timer::interval() const { return core().interval(); }

bool ScheduledCall::cancel() const {
    auto core = core_.lock();
    if (!core)
        return false;
    const bool pending = core->active();
    core->request_stop();
    return pending;
}

bool ScheduledCall::active() const noexcept {
    auto core = core_.lock();
    return core && core->active();
}

AtTimer::AtTimer(detail::TimerKind kind, detail::UniqueFunction<bool()> callback)
    : core_(detail::make_timer_core(kind, std::move(callback), {}, false)) {}

AtTimer& AtTimer::operator=(AtTimer&& other) noexcept {
    if (this != &other) {
        if (core_)
            core_->release();
        core_ = std::move(other.core_);
    }
    return *this;
}

AtTimer::~AtTimer() {
    if (core_)
        core_->release();
}

detail::TimerCore& AtTimer::core() const {
    if (!core_)
        throw_empty_timer();
    return *core_;
}

void AtTimer::start(std::set<int> hours, std::set<int> minutes, std::set<int> seconds,
                    std::set<int> weekdays) & {
    core().request_start_at(
        detail::AtSchedule{std::move(hours), std::move(minutes), std::move(seconds), std::move(weekdays)});
}

void AtTimer::stop() { core().request_stop(); }

bool AtTimer::active() const { return core().active(); }

std::optional<AtTimer::TimePoint> AtTimer::next() const { return core().next(); }

const std::set<int>& AtTimer::hours() const { return core().schedule().hours; }
const std::set<int>& AtTimer::minutes() const { return core().schedule().minutes; }
const std::set<int>& AtTimer::seconds() const { return core().schedule().seconds; }
const std::set<int>& AtTimer::weekdays() const { return core().schedule().weekdays; }

std::chrono::local_seconds AtTimer::next_after(std::chrono::local_seconds after, const std::set<int>& hours,
                                               const std::set<int>& minutes, const std::set<int>& seconds,
                                               const std::set<int>& weekdays) {
    detail::validate(hours, minutes, seconds, weekdays);
    return detail::next_local(after, hours, minutes, seconds, weekdays);
}

AtTimer::TimePoint AtTimer::next_after(TimePoint after, const std::set<int>& hours,
                                       const std::set<int>& minutes, const std::set<int>& seconds,
                                       const std::set<int>& weekdays) {
    using namespace std::chrono;
    detail::validate(hours, minutes, seconds, weekdays);
    TimePoint found =
        detail::search_forward(after, detail::to_local(after), hours, minutes, seconds, weekdays);
    // If the clocks went back between `after` and `found`, the local times
    // just before the change happen again, possibly earlier than `found`:
    // find the change and search again from the repeated local times.
    const long offset_before = detail::utc_offset(after);
    if (detail::utc_offset(found) < offset_before) {
        TimePoint lo = floor<std::chrono::seconds>(after);
        TimePoint hi = found;
        while (hi - lo > std::chrono::seconds(1)) {
            TimePoint mid = lo + floor<std::chrono::seconds>((hi - lo) / 2);
            (detail::utc_offset(mid) == offset_before ? lo : hi) = mid;
        }
        TimePoint again = detail::search_forward(after, detail::to_local(hi) - std::chrono::seconds(1), hours,
                                                 minutes, seconds, weekdays);
        found = std::min(found, again);
    }
    return found;
}

InProgress<void> delay(Duration d, std::source_location site) {
    detail::check_interval(d, "kaa::delay()");
    MainLoop::current(); // fail before building anything if there is no loop
    InProgress<void> ip;
    std::shared_ptr<detail::State<void>> state = ip.typed_ptr();
    // The core holds the operation and the operation's abort hook holds the
    // core: the pending timer keeps the operation alive for its callbacks
    // even if every handle is dropped. Firing or aborting breaks the cycle
    // (finishing clears the abort hook; aborting consumes it), and so does
    // the loop's destruction (detach_from_loop).
    auto core = detail::make_timer_core(
        detail::TimerKind::one_shot,
        [state] {
            // Someone may have finished it by hand meanwhile; that is theirs.
            if (state->status() == detail::Status::pending) {
                try {
                    InProgress<void>(state).finish();
                } catch (const AlreadyFinished&) {
                }
            }
            return false;
        },
        {}, false);
    core->set_breaks_cycle();
    core->site = detail::WorkSite{site, {}};
    core->finishes = state.get();
    state->set_abort_hook([core](const InProgressAborted&, std::exception_ptr) {
        core->stop();
        return false;
    });
    core->request_start(d, false);
    return ip;
}

} // namespace kaa
