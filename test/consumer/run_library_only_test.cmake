# SPDX-License-Identifier: BSL-1.0
# Run with cmake -P (see test/CMakeLists.txt). Configures this source tree as
# the top-level project on a machine without GoogleTest, Google Benchmark and
# Boost.Fiber (their find_package calls are disabled), then builds the library
# and the quick-start sample: both must work, and one message must say what
# was skipped and what to install.
foreach(var SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_library_only_test.cmake: ${var} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})

execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR} -G ${GENERATOR}
                  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0
                  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
                  -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
                  -DCMAKE_DISABLE_FIND_PACKAGE_boost_fiber=ON
                  -DKAA_GLIB=OFF -DKAA_QT=OFF
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "library_only: configuring without the test dependencies failed (${rc}):\n${out}${err}")
endif()
string(REGEX MATCHALL "kaa: not building[^\n]*" skipped "${out}")
list(LENGTH skipped count)
if(NOT count EQUAL 1 OR NOT skipped MATCHES "the tests \\(GoogleTest" OR NOT skipped MATCHES "the benchmarks \\(Google Benchmark")
  message(FATAL_ERROR "library_only: expected one message naming the skipped tests and benchmarks, got ${count}:\n${out}")
endif()
message(STATUS "library_only: ${skipped}")

execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR} --target kaa quick_start
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "library_only: building the library without the test dependencies failed (${rc}):\n${out}${err}")
endif()
execute_process(COMMAND ${WORK_DIR}/samples/quick_start RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "the answer is 42\n")
  message(FATAL_ERROR "library_only: the quick start printed '${out}' (exit ${rc})")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
