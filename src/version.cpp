// SPDX-License-Identifier: BSL-1.0
#include "kaa/version.hpp"

namespace kaa {

unsigned runtime_version() noexcept { return KAA_VERSION; }

const char* runtime_version_string() noexcept { return KAA_VERSION_STRING; }

} // namespace kaa
