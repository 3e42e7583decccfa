// SPDX-License-Identifier: BSL-1.0
// InProgress::timeout(): a view of an operation that fails with TimeoutError
// when the time runs out first.
#include <cstdio>
#include <memory>
#include <string>

#include "kaa/in_progress.hpp"
#include "kaa/timer.hpp"

namespace kaa::detail {

namespace {

// Exactly one of three things ends a timeout: the guarded operation
// finishing (its outcome is relayed), the timer firing, or the view being
// aborted. `done_` makes sure only the first one acts.
class TimeoutCore : public std::enable_shared_from_this<TimeoutCore> {
public:
    TimeoutCore(std::shared_ptr<StateBase> guarded, std::shared_ptr<StateBase> out, Duration d, bool abort,
                UniqueFunction<void(StateBase&)> copy_value)
        : guarded_(std::move(guarded)), out_(std::move(out)), d_(d), abort_(abort), copy_(std::move(copy_value)) {}

    void arm() {
        auto self = shared_from_this();
        relay_id_ = guarded_->add_callback([self](StateBase& g) { self->relay(g); }, true);
        if (done_)
            return;
        std::weak_ptr<TimeoutCore> weak = self;
        timer_ = std::make_unique<OneShotTimer>([weak] {
            if (auto s = weak.lock())
                s->expired();
        });
        timer_->start(d_);
        out_->set_abort_hook([self](const InProgressAborted& exc, std::exception_ptr) {
            self->view_aborted(exc);
            return false;
        });
    }

private:
    void relay(StateBase& g) {
        if (done_)
            return;
        done_ = true;
        relay_id_ = 0;
        stop_timer();
        if (!out_->claim())
            return;
        if (g.status() == Status::succeeded) {
            copy_(g);
            out_->complete(Status::succeeded, out_);
        } else {
            out_->fail_claimed(g.take_error(), out_);  // responsibility moves to the view
        }
    }

    void expired() {
        if (done_)
            return;
        done_ = true;
        guarded_->remove_callback(relay_id_);
        auto keep = shared_from_this();
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", std::chrono::duration<double>(d_).count());
        TimeoutError exc(std::string("InProgress timed out after ") + seconds + " s", InProgressRef(guarded_),
                         InProgressRef());
        if (abort_ && guarded_->status() == Status::pending) {
            try {
                guarded_->abort(guarded_, exc);
            } catch (const AlreadyFinished&) {
                // Finished from another thread while aborting: nothing is lost.
            } catch (...) {
                report_unhandled(std::current_exception(), "timeout(abort=true)");
            }
        }
        if (out_->claim())
            out_->fail_claimed(std::make_exception_ptr(exc), out_);
        timer_.reset();
    }

    void view_aborted(const InProgressAborted& exc) {
        if (done_)
            return;
        done_ = true;
        guarded_->remove_callback(relay_id_);
        stop_timer();
        if (abort_ && guarded_->status() == Status::pending && guarded_->abortable()) {
            try {
                guarded_->abort(guarded_, exc);
            } catch (const AlreadyFinished&) {
                // Finished from another thread while aborting: nothing is lost.
            } catch (...) {
                report_unhandled(std::current_exception(), "abort of a timeout view");
            }
        }
    }

    void stop_timer() {
        if (timer_)
            timer_->stop();
    }

    std::shared_ptr<StateBase> guarded_;
    std::shared_ptr<StateBase> out_;
    Duration d_;
    bool abort_;
    UniqueFunction<void(StateBase&)> copy_;
    std::unique_ptr<OneShotTimer> timer_;
    std::uint32_t relay_id_ = 0;
    bool done_ = false;
};

} // namespace

void arm_timeout(std::shared_ptr<StateBase> guarded, std::shared_ptr<StateBase> out, Duration d, bool abort,
                 UniqueFunction<void(StateBase&)> copy_value) {
    if (!in_loop_context())
        throw WrongThread("InProgress::timeout(): call it on the loop thread");
    // A claimed operation (a noabort() view, a chained finish(other), a
    // result in flight) cannot be aborted either, whatever handlers it has.
    if (abort && !guarded->finished() && (guarded->status() == Status::claimed || !guarded->abortable()))
        throw NotAbortable("InProgress::timeout(d, abort=true): this operation cannot be aborted, so the "
                           "timeout could not stop it; use timeout(d) (the operation goes on) or make it "
                           "abortable");
    out->source = guarded;  // live_work() follows a wait on the view to the operation
    std::make_shared<TimeoutCore>(std::move(guarded), std::move(out), d, abort, std::move(copy_value))->arm();
}

} // namespace kaa::detail
