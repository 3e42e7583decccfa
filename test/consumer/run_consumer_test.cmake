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

# The README's quick start, exactly as printed there (doc/check_quotes.py
# keeps the README and samples/quick_start/ the same).
if(DEFINED QUICK_START_DIR)
  step(${CMAKE_COMMAND} -S ${QUICK_START_DIR} -B ${WORK_DIR}/quick_start -G ${GENERATOR}
       -DCMAKE_BUILD_TYPE=${CONFIG} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
       -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/quick_start --config ${CONFIG})
  find_program(hello hello PATHS ${WORK_DIR}/quick_start ${WORK_DIR}/quick_start/${CONFIG} NO_DEFAULT_PATH REQUIRED)
  execute_process(COMMAND ${hello} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "the answer is 42\n")
    message(FATAL_ERROR "consumer_package: the quick start printed '${out}' (exit ${rc}), not 'the answer is 42'")
  endif()
endif()

find_program(consumer kaa_consumer PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH REQUIRED)
step(${consumer})
# kaa::qt's consumer, when the package has it.
find_program(consumer_qt kaa_consumer_qt PATHS ${build} ${build}/${CONFIG} NO_DEFAULT_PATH)
if(consumer_qt)
  step(${consumer_qt})
endif()

# The same program without CMake: one compiler line from pkg-config, as a
# Makefile, Meson or autotools project gets it.
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  file(GLOB pc_dirs ${prefix}/lib*/pkgconfig ${prefix}/lib/*/pkgconfig)
  list(JOIN pc_dirs ":" pc_path)
  set(ENV{PKG_CONFIG_PATH} "${pc_path}")
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs kaa
                  OUTPUT_VARIABLE pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_package: pkg-config --cflags --libs kaa failed (${rc}); PKG_CONFIG_PATH=${pc_path}")
  endif()
  message(STATUS "consumer_package: pkg-config --cflags --libs kaa: ${pc_flags}")
  separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
  step(${CXX_COMPILER} ${CONSUMER_SOURCE_DIR}/main.cpp -o ${WORK_DIR}/kaa_consumer_pc ${pc_flags})
  step(${WORK_DIR}/kaa_consumer_pc)
  foreach(module kaa-glib kaa-qt)
    execute_process(COMMAND ${PKG_CONFIG} --exists ${module} RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      execute_process(COMMAND ${PKG_CONFIG} --cflags --libs ${module}
                      OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
      message(STATUS "consumer_package: pkg-config --cflags --libs ${module}: ${flags}")
    endif()
  endforeach()
else()
  message(STATUS "consumer_package: pkg-config not found, the pkg-config build is skipped")
endif()

# A project with another Boost first on its path is refused by
# find_package(kaa) with a message naming both versions. The real Boost is
# hidden (CMAKE_IGNORE_PREFIX_PATH) and a stand-in Boost 1.83 is offered.
set(fake ${WORK_DIR}/other-boost/lib/cmake/Boost-1.83.0)
file(MAKE_DIRECTORY ${fake})
file(WRITE ${fake}/BoostConfig.cmake "set(Boost_FOUND TRUE)\nset(Boost_VERSION 1.83.0)\n")
file(WRITE ${fake}/BoostConfigVersion.cmake "set(PACKAGE_VERSION 1.83.0)\nif(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)\n  set(PACKAGE_VERSION_EXACT TRUE)\nendif()\nif(NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)\n  set(PACKAGE_VERSION_COMPATIBLE TRUE)\nendif()\n")
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build-other-boost -G ${GENERATOR}
                  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                  "-DCMAKE_PREFIX_PATH=${prefix};${WORK_DIR}/other-boost"
                  "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local;/"
                  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "consumer_package: configuring against Boost 1.83 succeeded; it must fail:\n${out}${err}")
endif()
if(NOT err MATCHES "needs exactly that Boost" OR NOT err MATCHES "1\\.83\\.0" OR NOT err MATCHES "1\\.81\\.0")
  message(FATAL_ERROR "consumer_package: configuring against Boost 1.83 failed without naming both versions:\n${err}")
endif()
message(STATUS "consumer_package: another Boost is refused:\n${err}")
