# Helpers shared by every room.
#
# sn_room(NAME name DEPS ...): a library `supernode_<name>` from <name>/src/**.cpp with
#   include/ public and src/ private. Files ending in _avx2.cpp or _avx512.cpp are compiled
#   with that ISA's flags only; everything else targets x86-64-v3 (AVX2, FMA, F16C), the
#   oldest CPU we run on. AVX-512 code is reached only through run-time CPUID dispatch.
# sn_warnings(target): our warning set, errors included.
# sn_sanitize(target): SUPERNODE_SANITIZE's sanitizers; with SUPERNODE_FUZZ also libFuzzer's
#   coverage instrumentation (-fsanitize=fuzzer-no-link).
# Files under <room>/src/cuda/ are left out of the room's glob: a room that has CUDA code
#   adds them itself when SN_CUDA_ENABLED (see sn_cuda_sources). Compile options of the
#   C/C++ helpers below apply to C and C++ sources only; CUDA sources get SN_CUDA_FLAGS.

set(SN_BASE_ARCH_FLAGS -march=x86-64-v3 -mtune=generic)
set(SN_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(SN_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavx2 -mfma -mf16c)

function(sn_warnings target)
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:-Wall;-Wextra;-Werror;-Wno-missing-field-initializers>")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false -Wrestrict positives inside libstdc++'s string concatenation
    # (GCC bug 105651); nothing of ours can trigger the real warning through std::string.
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:-Wno-restrict>")
  elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # hal/src/cpu/*_avx512.cpp silence a GCC-only warning with `#pragma GCC diagnostic
    # ignored "-Wmaybe-uninitialized"`, which clang reports as unknown: shown, not fatal.
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:-Wno-error=unknown-warning-option>")
  endif()
endfunction()

function(sn_sanitize target)
  if(SUPERNODE_SANITIZE)
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${SUPERNODE_SANITIZE};-fno-omit-frame-pointer;-fno-sanitize-recover=all>")
    target_link_options(${target} PRIVATE -fsanitize=${SUPERNODE_SANITIZE})
  endif()
  if(SUPERNODE_FUZZ)
    # Coverage feedback for libFuzzer from every room; the fuzz targets link libFuzzer itself.
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link>")
  endif()
endfunction()

function(sn_target_defaults target)
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:C,CXX>:${SN_BASE_ARCH_FLAGS}>")
  sn_warnings(${target})
  sn_sanitize(${target})
endfunction()

function(sn_room)
  cmake_parse_arguments(R "" "NAME" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/src/*.h)
  list(FILTER srcs EXCLUDE REGEX "/src/cuda/")
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

# sn_cuda_sources(target): adds <room>/src/cuda/*.cu and *.cpp to `target` (a room built by
#   sn_room), compiles the .cu files with SN_CUDA_FLAGS, lets the .cpp files there include
#   the CUDA runtime headers, and links the static CUDA runtime (which loads the driver
#   at run time, so binaries start on machines without one). Defines SN_HAVE_CUDA=1/0
#   privately either way. A no-op apart from the define when CUDA is off.
function(sn_cuda_sources target)
  if(NOT SN_CUDA_ENABLED)
    target_compile_definitions(${target} PRIVATE SN_HAVE_CUDA=0)
    return()
  endif()
  file(GLOB cuda_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cu
       ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.h
       ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cuh)
  target_sources(${target} PRIVATE ${cuda_srcs})
  target_compile_definitions(${target} PRIVATE SN_HAVE_CUDA=1)
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:${SN_CUDA_FLAGS}>")
  # CUDA's headers are not ours to keep warning-free.
  target_include_directories(${target} SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(${target} PRIVATE CUDA::cudart_static)
endfunction()
