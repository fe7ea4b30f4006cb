# Helpers shared by every room.
#
# sn_room(NAME name DEPS ...): a library `supernode_<name>` from <name>/src/**.cpp with
#   include/ public and src/ private. Files ending in _avx2.cpp or _avx512.cpp are compiled
#   with that ISA's flags only; everything else targets x86-64-v3 (AVX2, FMA, F16C), the
#   oldest CPU we run on. AVX-512 code is reached only through run-time CPUID dispatch.
# sn_warnings(target): our warning set, errors included.

set(SN_BASE_ARCH_FLAGS -march=x86-64-v3 -mtune=generic)
set(SN_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(SN_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavx2 -mfma -mf16c)

function(sn_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false -Wrestrict positives inside libstdc++'s string concatenation
    # (GCC bug 105651); nothing of ours can trigger the real warning through std::string.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()

function(sn_sanitize target)
  if(SUPERNODE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${SUPERNODE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${SUPERNODE_SANITIZE})
  endif()
endfunction()

function(sn_target_defaults target)
  target_compile_options(${target} PRIVATE ${SN_BASE_ARCH_FLAGS})
  sn_warnings(${target})
  sn_sanitize(${target})
endfunction()

function(sn_room)
  cmake_parse_arguments(R "" "NAME" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/src/*.h)
  add_library(supernode_${R_NAME} STATIC ${srcs})
  target_include_directories(supernode_${R_NAME} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(supernode_${R_NAME} PUBLIC ${R_DEPS} PRIVATE ${R_PRIVATE_DEPS})
  sn_target_defaults(supernode_${R_NAME})
  foreach(src IN LISTS srcs)
    if(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${SN_AVX2_FLAGS}")
    elseif(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${SN_AVX512_FLAGS}")
    endif()
  endforeach()
endfunction()
