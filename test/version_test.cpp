// SPDX-License-Identifier: BSL-1.0
#include "kaa/version.hpp"

#include <string>

#include <gtest/gtest.h>

namespace {

TEST(Version, TheHeadersVersionIsTheProjectsVersion) {
    EXPECT_EQ(std::string(KAA_VERSION_STRING), KAA_PROJECT_VERSION);
    EXPECT_EQ(std::to_string(KAA_VERSION_MAJOR) + "." + std::to_string(KAA_VERSION_MINOR) + "." +
                  std::to_string(KAA_VERSION_PATCH),
              KAA_VERSION_STRING);
}

TEST(Version, CheckMacrosCompareLikeQtsAndGlibs) {
    static_assert(KAA_VERSION == KAA_VERSION_CHECK(KAA_VERSION_MAJOR, KAA_VERSION_MINOR, KAA_VERSION_PATCH));
    static_assert(KAA_VERSION_CHECK(0, 1, 0) < KAA_VERSION_CHECK(0, 1, 1));
    static_assert(KAA_VERSION_CHECK(0, 9, 9) < KAA_VERSION_CHECK(1, 0, 0));
    static_assert(KAA_CHECK_VERSION(KAA_VERSION_MAJOR, KAA_VERSION_MINOR, KAA_VERSION_PATCH));
    static_assert(KAA_CHECK_VERSION(0, 0, 0));
    static_assert(!KAA_CHECK_VERSION(KAA_VERSION_MAJOR + 1, 0, 0));
    SUCCEED();
}

TEST(Version, TheLibraryReportsTheVersionItWasBuiltAs) {
    EXPECT_EQ(kaa::runtime_version(), static_cast<unsigned>(KAA_VERSION));
    EXPECT_STREQ(kaa::runtime_version_string(), KAA_VERSION_STRING);
}

TEST(Version, TheSupportedBoostIsTheOneInUse) {
    EXPECT_EQ(BOOST_VERSION / 100, KAA_BOOST_VERSION / 100);
}

} // namespace
