# SPDX-License-Identifier: BSL-1.0
# Run with cmake -P (see test/CMakeLists.txt). Builds the Debian packages of
# debian/ from a copy of the source tree (dpkg-buildpackage -us -uc -b),
# checks them with lintian (no errors), unpacks them into a scratch root and
# builds and runs the consumer project and the quick start against that root.
foreach(var SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER VERSION)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_debian_package_test.cmake: ${var} is not set")
  endif()
endforeach()
foreach(tool dpkg-buildpackage dpkg-parsechangelog dpkg-deb lintian readelf)
  find_program(have_${tool} ${tool})
  if(NOT have_${tool})
    message(STATUS "debian_package: SKIPPED: ${tool} is not installed (Debian: dpkg-dev debhelper lintian binutils; scripts/run.sh test installs them)")
    return()
  endif()
endforeach()

function(step)
  message(STATUS "debian_package: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "debian_package: step failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(tree ${WORK_DIR}/kaa-${VERSION})
file(MAKE_DIRECTORY ${tree})
# The source tree without build directories.
foreach(item CMakeLists.txt LICENSE README.md cmake debian doc include samples scripts src test)
  file(COPY ${SOURCE_DIR}/${item} DESTINATION ${tree})
endforeach()

execute_process(COMMAND dpkg-parsechangelog -S Version WORKING_DIRECTORY ${tree}
                OUTPUT_VARIABLE deb_version OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT deb_version STREQUAL VERSION)
  message(FATAL_ERROR "debian_package: debian/changelog says ${deb_version}, include/kaa/version.hpp says ${VERSION}: add a changelog entry")
endif()

# -g1 instead of Debian's -g keeps the build short; nothing else differs
# from a real package build.
set(ENV{DEB_CXXFLAGS_APPEND} -g1)
set(ENV{DEB_BUILD_OPTIONS} "parallel=2 noddebs")
execute_process(COMMAND dpkg-buildpackage -us -uc -b WORKING_DIRECTORY ${tree}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "debian_package: dpkg-buildpackage -us -uc -b failed (${rc}):\n${out}")
endif()
file(GLOB debs ${WORK_DIR}/*.deb)
file(GLOB changes ${WORK_DIR}/*.changes)
list(LENGTH debs count)
if(NOT count EQUAL 4)
  message(FATAL_ERROR "debian_package: expected 4 packages (libkaa0.1, libkaa-glib0.1, libkaa-qt0.1, libkaa-dev), got: ${debs}")
endif()

execute_process(COMMAND lintian --fail-on error --no-tag-display-limit ${changes}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "debian_package: lintian:\n${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "debian_package: lintian reports errors (${rc})")
endif()

set(root ${WORK_DIR}/root)
foreach(deb IN LISTS debs)
  step(dpkg-deb -x ${deb} ${root})
endforeach()
file(GLOB_RECURSE libkaa ${root}/usr/lib/*/libkaa.so.${VERSION})
execute_process(COMMAND readelf -d ${libkaa} OUTPUT_VARIABLE dyn)
string(REGEX MATCH "SONAME\\)[^\n]*" soname "${dyn}")
message(STATUS "debian_package: ${libkaa}: ${soname}")
if(NOT soname MATCHES "libkaa\\.so\\.0\\.1")
  message(FATAL_ERROR "debian_package: the packaged libkaa has no SONAME libkaa.so.0.1:\n${dyn}")
endif()
get_filename_component(libdir ${libkaa} DIRECTORY)
set(ENV{LD_LIBRARY_PATH} ${libdir})

foreach(project consumer quick_start)
  if(project STREQUAL consumer)
    set(dir ${SOURCE_DIR}/test/consumer)
  else()
    set(dir ${SOURCE_DIR}/samples/quick_start)
  endif()
  step(${CMAKE_COMMAND} -S ${dir} -B ${WORK_DIR}/build-${project} -G ${GENERATOR}
       -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${root}/usr
       -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/build-${project})
endforeach()
step(${WORK_DIR}/build-consumer/kaa_consumer)
step(${WORK_DIR}/build-consumer/kaa_consumer_qt)
execute_process(COMMAND ${WORK_DIR}/build-quick_start/hello RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "the answer is 42\n")
  message(FATAL_ERROR "debian_package: the quick start against the packages printed '${out}' (exit ${rc})")
endif()
message(STATUS "debian_package: the packages build, pass lintian and serve find_package(kaa)")
