#include "kaa/in_progress.hpp"

#include <gtest/gtest.h>

#include "kaa/main_loop.hpp"

TEST(InProgress, Smoke) {
    kaa::MainLoop loop;
    kaa::InProgress<int> ip;
    int got = 0;
    ip.connect([&](int v) { got = v; });
    ip.finish(5);
    EXPECT_EQ(got, 5);
    EXPECT_THROW(ip.finish(6), kaa::AlreadyFinished);
}
