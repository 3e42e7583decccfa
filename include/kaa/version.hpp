// SPDX-License-Identifier: BSL-1.0
// The version of kaa, for compile-time checks the way BOOST_VERSION,
// GLIB_CHECK_VERSION and QT_VERSION_CHECK are used:
//
//     #if KAA_VERSION >= KAA_VERSION_CHECK(0, 2, 0)
//     #if KAA_CHECK_VERSION(0, 2, 0)           // the same, GLib's spelling
//
// and kaa::runtime_version(), the version of the library the program runs
// with (a shared libkaa may be newer than the headers it was compiled with).
//
// Guarantees: CMake reads the project's version from this file (there is no
// second place to keep in step); KAA_VERSION grows with every release.
//
// The supported Boost is exactly 1.81: the library compiles against Asio
// internals of that release (src/asio_host.cpp) and its public headers use
// Boost.Asio and Boost.Signals2 types, so a program built with another Boost
// would mix two definitions of them. Such a program fails to compile here,
// with the message below, instead of misbehaving at run time.
#pragma once

#include <boost/version.hpp>

#define KAA_VERSION_MAJOR 0
#define KAA_VERSION_MINOR 1
#define KAA_VERSION_PATCH 0
#define KAA_VERSION_STRING "0.1.0"

/// A version as one comparable number: (major << 16) | (minor << 8) | patch.
#define KAA_VERSION_CHECK(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
/// The version of these headers, as KAA_VERSION_CHECK encodes it.
#define KAA_VERSION KAA_VERSION_CHECK(KAA_VERSION_MAJOR, KAA_VERSION_MINOR, KAA_VERSION_PATCH)
/// True when these headers are at least major.minor.patch.
#define KAA_CHECK_VERSION(major, minor, patch) (KAA_VERSION >= KAA_VERSION_CHECK(major, minor, patch))

/// The one Boost release kaa is built and used with (BOOST_VERSION's encoding).
#define KAA_BOOST_VERSION 108100

#if BOOST_VERSION / 100 != KAA_BOOST_VERSION / 100
#error "kaa needs Boost 1.81 exactly (its headers use Boost.Asio and Boost.Signals2, and the library is built against Boost 1.81's Asio); this compiler found another Boost first. Point the include path at Boost 1.81 (Debian 12: libboost1.81-dev)."
#endif

namespace kaa {

/// The version of the kaa library this program runs with, as KAA_VERSION
/// encodes it; compare it with KAA_VERSION to detect a library older than the
/// headers.
[[nodiscard]] unsigned runtime_version() noexcept;

/// The same as "major.minor.patch".
[[nodiscard]] const char* runtime_version_string() noexcept;

} // namespace kaa
