// SPDX-License-Identifier: BSL-1.0
#include "kaa/scope.hpp"

#include <vector>

#include "kaa/detail/loop_access.hpp"
#include "kaa/main_loop.hpp"

namespace kaa {

namespace detail {

namespace {

// A child ended by abort() is not a failure of the scope -- unless it is a
// timeout, which is an error like any other.
bool is_failure(const StateBase& s) {
    if (!s.aborted())
        return true;
    try {
        std::rethrow_exception(s.error());
    } catch (const TimeoutError&) {
        return true;
    } catch (...) {
        return false;
    }
}

} // namespace

ScopeCore::ScopeCore(std::string name) : name_(std::move(name)) {}

void ScopeCore::check_open(const char* what) const {
    if (!in_loop_context())
        throw WrongThread(std::string("kaa::") + what + " must be called on the loop thread; post() to it first");
    if (closed_ || done_.finished())
        throw UsageError(std::string("kaa::") + what + ": the scope '" + name_ +
                         "' is closed (it was aborted, or a child failed); start children before that, or in a "
                         "new Scope");
}

void ScopeCore::add(const InProgressRef& ip, std::shared_ptr<ThreadPhase> phase) {
    const std::uint64_t id = next_id_++;
    children_.emplace(id, Child{ip, std::move(phase)});
    // Uncounted: the scope's bookkeeping is not somebody waiting, so a
    // coroutine awaiting a child still cascades its abort into it.
    ip.state()->add_callback(
        [self = shared_from_this(), id](StateBase& s) { self->on_finished(id, s); }, /*counted=*/false);
}

void ScopeCore::on_finished(std::uint64_t id, StateBase& s) {
    auto it = children_.find(id);
    if (it == children_.end())
        return;
    Child& c = it->second;
    c.finished = true;
    if (s.failed() && !failure_ && !aborted_ && is_failure(s)) {
        // The scope carries this failure from now on: it observes it. Later
        // failures it leaves unobserved, so that they are reported unless
        // someone else looks at them.
        failure_ = s.take_error();
        closed_ = true;
        abort_children(InProgressAborted("kaa::Scope '" + name_ + "': a sibling failed"));
        it = children_.find(id);
        if (it == children_.end())
            return;
    }
    if (it->second.phase && !it->second.returned) {
        int expected = 0;
        // Still queued (never started): it will never run. Running: its
        // function's return comes through thread_returned().
        if (!it->second.phase->compare_exchange_strong(expected, 3) && expected == 1)
            return;
    }
    end(id);
}

void ScopeCore::thread_returned(std::uint64_t id) {
    auto it = children_.find(id);
    if (it == children_.end())
        return;
    it->second.returned = true;
    if (it->second.finished)
        end(id);
}

void ScopeCore::end(std::uint64_t id) {
    children_.erase(id);
    maybe_finish();
}

void ScopeCore::abort_children(const InProgressAborted& why) {
    // Aborting one may end others (a coroutine awaiting a sibling): work on
    // a snapshot, and skip what ended meanwhile.
    std::vector<InProgressRef> live;
    live.reserve(children_.size());
    for (auto& [id, c] : children_)
        if (!c.finished)
            live.push_back(c.ip);
    for (InProgressRef& ip : live) {
        if (ip.finished() || !ip.abortable())
            continue;
        try {
            ip.abort(why);
        } catch (const UsageError&) {
            // Finished or being finished meanwhile: it ends by itself.
        }
    }
}

void ScopeCore::abort_all(std::exception_ptr eptr) {
    closed_ = true;
    if (!aborted_)
        aborted_ = std::move(eptr);
    InProgressAborted why("kaa::Scope '" + name_ + "' was aborted");
    try {
        std::rethrow_exception(aborted_);
    } catch (const InProgressAborted& e) {
        why = e;
    } catch (...) {
    }
    abort_children(why);
    maybe_finish();
}

void ScopeCore::join() {
    joined_ = true;
    maybe_finish();
}

void ScopeCore::maybe_finish() {
    if (!children_.empty() || done_.finished())
        return;
    auto keep = shared_from_this(); // finishing may release the last child's callback
    if (failure_)
        done_.fail(failure_);
    else if (aborted_)
        done_.fail(aborted_);
    else if (joined_)
        done_.finish();
}

void scope_thread_returned(std::weak_ptr<ScopeCore> core, std::uint64_t id) noexcept {
    try {
        post_to_loop([core = std::move(core), id] {
            if (auto c = core.lock())
                c->thread_returned(id);
        });
    } catch (...) {
        // No memory to tell the loop: the scope keeps waiting for this child,
        // which is what it must do rather than finish early.
    }
}

void throw_scope_child_never_runs() {
    throw InProgressAborted("kaa::Scope: this job was aborted before it started");
}

} // namespace detail

Scope::Scope(std::string name) : core_(std::make_shared<detail::ScopeCore>(std::move(name))) {
    std::weak_ptr<detail::ScopeCore> weak = core_;
    // Aborting the scope's InProgress is aborting the scope: the hook aborts
    // the children, and the InProgress fails only once they have ended.
    core_->done().state()->set_abort_hook([weak](const InProgressAborted&, std::exception_ptr eptr) {
        if (auto c = weak.lock()) {
            c->abort_all(std::move(eptr));
            return true;
        }
        return false;
    });
}

Scope::~Scope() {
    if (!detail::in_loop_context()) {
        detail::report_unhandled(std::make_exception_ptr(WrongThread(
                                     "kaa::Scope destroyed off the loop thread: its children were not aborted; "
                                     "destroy it on the loop thread")),
                                 "kaa::Scope");
        return;
    }
    try {
        abort_with(InProgressAborted("kaa::Scope '" + core_->name() + "': its owner was destroyed"));
    } catch (...) {
        detail::report_unhandled(std::current_exception(), "kaa::Scope destructor");
    }
}

InProgress<void> Scope::join() {
    core_->join();
    return core_->done();
}

bool Scope::abort() { return abort_with(InProgressAborted("kaa::Scope '" + core_->name() + "' was aborted")); }

bool Scope::abort_with(const InProgressAborted& why) {
    const InProgress<void>& done = core_->done();
    if (done.finished() || done.state()->aborted())
        return false;
    done.abort(why);
    return true;
}

} // namespace kaa
