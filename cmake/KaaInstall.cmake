# SPDX-License-Identifier: BSL-1.0
# Install rules: the public headers, the library and a relocatable CMake package,
# so that another project can say find_package(kaa) and link kaa::kaa.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KAA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/kaa CACHE STRING
    "Where kaaConfig.cmake is installed, relative to the prefix")

install(TARGETS kaa
  EXPORT kaaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The whole tree, detail/ included: the public templates need it.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kaa
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

# The GDB helper: `source <prefix>/share/kaa/gdb/kaa_gdb.py` (doc/debugging.md).
install(FILES ${PROJECT_SOURCE_DIR}/scripts/kaa_gdb.py DESTINATION ${CMAKE_INSTALL_DATADIR}/kaa/gdb)

install(EXPORT kaaTargets
  NAMESPACE kaa::
  FILE kaaTargets.cmake
  DESTINATION ${KAA_INSTALL_CMAKEDIR})

# Optional integrations get export sets of their own, which kaaConfig.cmake
# loads when they were installed and their toolkit is found again.
if(TARGET kaa_glib)
  install(TARGETS kaa_glib
    EXPORT kaaGlibTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT kaaGlibTargets
    NAMESPACE kaa::
    FILE kaaGlibTargets.cmake
    DESTINATION ${KAA_INSTALL_CMAKEDIR})
endif()
if(TARGET kaa_qt)
  install(TARGETS kaa_qt
    EXPORT kaaQtTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT kaaQtTargets
    NAMESPACE kaa::
    FILE kaaQtTargets.cmake
    DESTINATION ${KAA_INSTALL_CMAKEDIR})
endif()

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/kaaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kaaConfig.cmake
  INSTALL_DESTINATION ${KAA_INSTALL_CMAKEDIR})
# 0.x: a new minor version may break the API.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/kaaConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/kaaConfig.cmake
  ${PROJECT_BINARY_DIR}/kaaConfigVersion.cmake
  DESTINATION ${KAA_INSTALL_CMAKEDIR})

# The licence, where Debian and the GNU layout put a package's documents.
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
