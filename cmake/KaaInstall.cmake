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

# pkg-config files, for Meson, autotools and plain Makefiles. Relocatable:
# the prefix is found from the .pc file's own directory.
set(KAA_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig CACHE STRING
    "Where kaa.pc is installed, relative to the prefix")
file(RELATIVE_PATH KAA_PC_PREFIX_FROM_PCDIR /prefix/${KAA_INSTALL_PKGCONFIGDIR} /prefix)
string(REGEX REPLACE "/$" "" KAA_PC_PREFIX_FROM_PCDIR "${KAA_PC_PREFIX_FROM_PCDIR}")
# Boost has no .pc file of its own: its include and library directories are
# named when they are not the compiler's own.
set(KAA_PC_BOOST_CFLAGS "")
get_target_property(KAA_BOOST_INCLUDES Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
foreach(dir IN LISTS KAA_BOOST_INCLUDES)
  if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND KAA_PC_BOOST_CFLAGS " -I${dir}")
  endif()
endforeach()
set(KAA_PC_BOOST_LIBS "-lboost_context")
get_target_property(KAA_BOOST_CONTEXT_LIB Boost::context IMPORTED_LOCATION_RELEASE)
if(KAA_BOOST_CONTEXT_LIB)
  get_filename_component(KAA_BOOST_LIBDIR ${KAA_BOOST_CONTEXT_LIB} DIRECTORY)
  if(NOT KAA_BOOST_LIBDIR IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
    set(KAA_PC_BOOST_LIBS "-L${KAA_BOOST_LIBDIR} -lboost_context")
  endif()
endif()
# A static libkaa brings its dependencies to every link; a shared one only to
# static links (pkg-config --static).
get_target_property(KAA_LIBRARY_TYPE kaa TYPE)
if(KAA_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(KAA_PC_LIBS " ${KAA_PC_BOOST_LIBS} -pthread")
  set(KAA_PC_LIBS_PRIVATE "")
else()
  set(KAA_PC_LIBS "")
  set(KAA_PC_LIBS_PRIVATE " ${KAA_PC_BOOST_LIBS} -pthread")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/kaa.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/kaa.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/kaa.pc DESTINATION ${KAA_INSTALL_PKGCONFIGDIR})
if(TARGET kaa_glib)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/kaa-glib.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/kaa-glib.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/kaa-glib.pc DESTINATION ${KAA_INSTALL_PKGCONFIGDIR})
endif()
if(TARGET kaa_qt)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/kaa-qt.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/kaa-qt.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/kaa-qt.pc DESTINATION ${KAA_INSTALL_PKGCONFIGDIR})
endif()
