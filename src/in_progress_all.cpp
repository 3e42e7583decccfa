// SPDX-License-Identifier: BSL-1.0
#include "kaa/in_progress_all.hpp"

#include <stdexcept>

#include "kaa/detail/await_core.hpp"
#include "kaa/progress.hpp"
#include "kaa/signal.hpp"

namespace kaa {

namespace detail {

namespace {

// What any() and all() share: the members, our callback on each, and the
// rule for letting go of them (abort those nobody else waits on).
class Combination : public std::enable_shared_from_this<Combination> {
public:
    Combination(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members)
        : target_(std::move(target)), members_(std::move(members)), ids_(members_.size(), 0) {}

    void attach(bool with_progress) {
        auto self = shared_from_this();
        target_->set_abort_hook([self](const InProgressAborted& exc, std::exception_ptr) {
            self->release(&exc);
            return false;  // the target fails with the abort
        });
        if (with_progress)
            watch_progress();
        // A member that already finished calls back at once: the callbacks
        // may finish the target while this loop still runs.
        for (std::size_t i = 0; i < members_.size() && !done_; ++i) {
            std::uint32_t id =
                members_[i].state()->add_callback([self, i](StateBase& s) { self->member_done(i, s); }, true);
            if (!done_)
                ids_[i] = id;
        }
    }

    virtual ~Combination() = default;

protected:
    virtual void member_done(std::size_t i, StateBase& s) = 0;

    bool done() const noexcept { return done_; }

    /// Ends the combination: stops listening and, for an abort or a failure,
    /// aborts the members that nobody else waits on.
    void release(const InProgressAborted* exc, bool abort_members = true) {
        if (done_)
            return;
        done_ = true;
        for (auto& c : progress_connections_)
            c.disconnect();
        for (std::size_t i = 0; i < members_.size(); ++i)
            if (ids_[i])
                members_[i].state()->remove_callback(ids_[i]);
        if (!abort_members)
            return;
        InProgressAborted fallback("aborted with the combination it belonged to");
        const InProgressAborted& e = exc ? *exc : fallback;
        InProgressRef origin = exc && exc->origin() ? exc->origin() : InProgressRef(target_);
        for (auto& m : members_)
            abort_if_unwatched(m, InProgressAborted(e.message(), m, origin), "abort of a member of any()/all()");
    }

    void fail(std::exception_ptr e) {
        if (target_->claim())
            target_->fail_claimed(std::move(e), target_);
    }

    std::shared_ptr<StateBase> target_;
    std::vector<InProgressRef> members_;
    std::vector<std::uint32_t> ids_;

private:
    void watch_progress() {
        auto p = std::make_shared<Progress>();
        target_->progress = p;
        std::weak_ptr<Combination> weak = weak_from_this();
        for (auto& m : members_)
            if (auto mp = m.state()->progress)
                progress_connections_.push_back(mp->changed().connect([weak](const Progress&) {
                    if (auto self = weak.lock())
                        self->update_progress();
                }));
        update_progress();
    }

protected:
    void update_progress() {
        auto& p = target_->progress;
        if (!p)
            return;
        // Each member weighs the same, 100 units of a fixed total: a member
        // that reports its own total late (or raises it) cannot make the
        // combined bar jump back, as summing positions and maxima did
        // ("1 of 4", then "2 of 9"). And it never moves back at all: a
        // member's own fraction may shrink, the combined position does not.
        std::int64_t pos = 0;
        for (auto& m : members_) {
            if (m.finished()) {
                pos += 100;
            } else if (auto mp = m.state()->progress; mp && mp->max() > 0) {
                pos += std::min<std::int64_t>(100, mp->pos() * 100 / mp->max());
            }
        }
        const auto max = static_cast<std::int64_t>(members_.size()) * 100;
        p->set(std::max(pos, p->pos()), max);
    }

private:
    bool done_ = false;
    std::vector<Connection> progress_connections_;
};

class AnyCombination final : public Combination {
public:
    AnyCombination(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members, AnyAccept accept)
        : Combination(std::move(target), std::move(members)), accept_(std::move(accept)),
          remaining_(members_.size()) {}

protected:
    void member_done(std::size_t i, StateBase& s) override {
        if (done())
            return;
        ids_[i] = 0;
        const bool last = --remaining_ == 0;
        if (s.failed()) {
            release(nullptr, false);  // the others go on: they may matter to someone else
            fail(s.take_error());
            return;
        }
        if (target_->status() != Status::pending)
            return;
        bool accepted = false;
        try {
            // Stores the AnyResult when the filter takes it (or it is the
            // last member: kaa then finishes with it anyway).
            accepted = accept_(i, last);
        } catch (...) {
            release(nullptr, false);
            fail(std::current_exception());
            return;
        }
        if (!accepted)
            return;
        release(nullptr, false);
        target_->complete_unclaimed(Status::succeeded, target_);
    }

private:
    AnyAccept accept_;
    std::size_t remaining_;
};

class AllCombination final : public Combination {
public:
    AllCombination(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members,
                   UniqueFunction<void()> set_value)
        : Combination(std::move(target), std::move(members)), set_value_(std::move(set_value)),
          remaining_(members_.size()) {}

protected:
    void member_done(std::size_t i, StateBase& s) override {
        if (done())
            return;
        ids_[i] = 0;
        if (s.failed()) {
            std::exception_ptr e = s.take_error();
            release(nullptr, true);
            fail(std::move(e));
            return;
        }
        update_progress();
        if (--remaining_ > 0)
            return;
        release(nullptr, false);
        if (!target_->claim())
            return;
        try {
            set_value_();
        } catch (...) {
            target_->fail_claimed(std::current_exception(), target_);
            return;
        }
        target_->complete(Status::succeeded, target_);
    }

private:
    UniqueFunction<void()> set_value_;
    std::size_t remaining_;
};

} // namespace

namespace {
void require_loop(const char* what) {
    if (!in_loop_context())
        throw WrongThread(std::string(what) + ": combine operations on the loop thread (their callbacks "
                                              "run there)");
}
} // namespace

void attach_any(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members, AnyAccept accept) {
    require_loop("kaa::any()");
    if (members.empty())
        throw std::invalid_argument("kaa::any(): no members: an empty any() could never finish");
    for (auto& m : members)
        if (!m.valid())
            throw_empty_handle();
    std::make_shared<AnyCombination>(std::move(target), std::move(members), std::move(accept))->attach(false);
}

void attach_all(std::shared_ptr<StateBase> target, std::vector<InProgressRef> members,
                UniqueFunction<void()> set_value) {
    require_loop("kaa::all()");
    for (auto& m : members)
        if (!m.valid())
            throw_empty_handle();
    if (members.empty()) {
        if (target->claim()) {
            set_value();
            target->complete(Status::succeeded, target);
        }
        return;
    }
    std::make_shared<AllCombination>(std::move(target), std::move(members), std::move(set_value))->attach(true);
}

} // namespace detail

InProgress<AnyResult<InProgressRef>> any(std::vector<InProgressRef> members) {
    InProgress<AnyResult<InProgressRef>> out;
    auto* raw = out.typed_ptr().get();
    std::vector<InProgressRef> copy = members;
    detail::attach_any(out.state(), std::move(members), [raw, copy = std::move(copy)](std::size_t i, bool) {
        raw->set_value(AnyResult<InProgressRef>{i, copy[i]});
        return true;
    });
    return out;
}

InProgress<void> all(std::vector<InProgressRef> members) {
    InProgress<void> out;
    detail::attach_all(out.state(), std::move(members), [] {});
    return out;
}

} // namespace kaa
