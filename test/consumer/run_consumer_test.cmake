# SPDX-License-Identifier: BSL-1.0
# Run with cmake -P (see test/CMakeLists.txt). Installs the kaa build tree at
# KAA_BINARY_DIR into a scratch prefix, then configures, builds and runs the
# consumer project in CONSUMER_SOURCE_DIR against that prefix only.
foreach(var KAA_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer_test.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG RelWithDebInfo)
endif()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(step)
  message(STATUS "consumer_package: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_package: step failed (${rc}): ${ARGN}")
  endif()
endfunction()

step(${CMAKE_COMMAND} --install ${KAA_BINARY_DIR} --prefix ${prefix} --config ${CONFIG})
# CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF and the prefix as the only extra search
# root: the consumer must find this install, never a build tree or /usr/local.
step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
     -DCMAKE_BUILD_TYPE=${CONFIG}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     -DCMAKE_PREFIX_PATH=${prefix}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
step(${CMAKE_COMMAND} --build ${build} --config ${CONFIG})

find_program(consumer kaa_consumer PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
step(${consumer})
# kaa::qt's consumer, when the package has it.
find_program(consumer_qt kaa_consumer_qt PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH)
if(consumer_qt)
  step(${consumer_qt})
endif()
