# SPDX-License-Identifier: BSL-1.0
# checkheaders: compiles every public header (include/kaa/*.hpp, not detail/)
# alone in its own translation unit, so a header that forgets an #include of
# its own breaks the build. Part of the default build whenever tests are on.
file(GLOB KAA_PUBLIC_HEADERS CONFIGURE_DEPENDS
     RELATIVE ${PROJECT_SOURCE_DIR}/include
     ${PROJECT_SOURCE_DIR}/include/kaa/*.hpp)

# Headers of optional integrations compile against their own target, and only
# when it is built: "header=target".
set(KAA_OPTIONAL_HEADERS "kaa/glib.hpp=kaa_glib")
set(KAA_OPTIONAL_CHECKS)
foreach(entry IN LISTS KAA_OPTIONAL_HEADERS)
  string(REPLACE "=" ";" pair ${entry})
  list(GET pair 0 header)
  list(GET pair 1 target)
  list(REMOVE_ITEM KAA_PUBLIC_HEADERS ${header})
  if(TARGET ${target})
    string(MAKE_C_IDENTIFIER ${header} stem)
    set(source ${PROJECT_BINARY_DIR}/checkheaders/${stem}.cpp)
    file(CONFIGURE OUTPUT ${source} CONTENT "#include \"${header}\"\n" @ONLY)
    add_library(checkheaders_${stem} OBJECT ${source})
    target_link_libraries(checkheaders_${stem} PRIVATE ${target})
    target_compile_options(checkheaders_${stem} PRIVATE ${KAA_WARNING_FLAGS})
  endif()
endforeach()

set(KAA_CHECKHEADERS_SOURCES)
foreach(header IN LISTS KAA_PUBLIC_HEADERS)
  string(MAKE_C_IDENTIFIER ${header} stem)
  set(source ${PROJECT_BINARY_DIR}/checkheaders/${stem}.cpp)
  # file(CONFIGURE) rewrites only when the content changes: no spurious rebuilds.
  file(CONFIGURE OUTPUT ${source} CONTENT "#include \"${header}\"\n" @ONLY)
  list(APPEND KAA_CHECKHEADERS_SOURCES ${source})
endforeach()

if(KAA_CHECKHEADERS_SOURCES)
  add_library(checkheaders OBJECT ${KAA_CHECKHEADERS_SOURCES})
  target_link_libraries(checkheaders PRIVATE kaa::kaa)
  target_compile_options(checkheaders PRIVATE ${KAA_WARNING_FLAGS})
endif()
