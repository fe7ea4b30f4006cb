# SUPERNODE_CUDA = AUTO (default) | ON | OFF: whether hal/ builds its CUDA backend.
#   AUTO builds it when nvcc is found (on PATH, or CUDACXX, or /usr/local/cuda/bin/nvcc);
#   ON requires it; OFF never looks. Sets SN_CUDA_ENABLED and SN_CUDA_FLAGS.
#
# Code targets Hopper machine code (sm_90a) plus compute_80 PTX, which the driver compiles
# at start on any other GPU of compute capability 8.0 or newer; two targets keep CUDA
# build time modest on a small CI machine. Override with SUPERNODE_CUDA_GENCODE.
# The CUDA runtime is linked statically (cudart_static loads libcuda.so at run time), so
# every binary starts, and reports "no NVIDIA GPU", on a machine without a driver.
set(SUPERNODE_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE SUPERNODE_CUDA PROPERTY STRINGS AUTO ON OFF)
set(SUPERNODE_CUDA_GENCODE "-gencode=arch=compute_90a,code=sm_90a;-gencode=arch=compute_80,code=compute_80"
    CACHE STRING "nvcc -gencode flags of the CUDA backend")

set(SN_CUDA_ENABLED OFF)
if(NOT SUPERNODE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    find_program(SN_NVCC_ON_PATH nvcc)
    if(NOT SN_NVCC_ON_PATH)
      set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(SN_CUDA_ENABLED ON)
  elseif(SUPERNODE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SUPERNODE_CUDA=ON but no CUDA compiler (nvcc) was found; set CMAKE_CUDA_COMPILER")
  else()
    message(STATUS "CUDA: nvcc not found, the CUDA backend is not built (SUPERNODE_CUDA=AUTO)")
  endif()
endif()

if(SN_CUDA_ENABLED)
  # Architectures come from SUPERNODE_CUDA_GENCODE, not from CMake's own list.
  set(CMAKE_CUDA_ARCHITECTURES OFF)
  set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER} CACHE FILEPATH "Host compiler of nvcc")
  enable_language(CUDA)
  # CMake 3.25 does not know nvcc's C++20 dialect; the .cu files need only C++17.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  if(CCACHE_PROGRAM)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  endif()
  find_package(CUDAToolkit REQUIRED)
  # No fast-math: the kernels rely on IEEE division, square root and round-to-nearest
  # conversions to reproduce the CPU reference's activation quantization bit for bit.
  set(SN_CUDA_FLAGS ${SUPERNODE_CUDA_GENCODE} --expt-relaxed-constexpr -Werror=all-warnings
      -Xcompiler=-Wall,-Wextra,-Werror,-march=x86-64-v3)
  message(STATUS "CUDA: building the CUDA backend with nvcc ${CMAKE_CUDA_COMPILER_VERSION} (${SUPERNODE_CUDA_GENCODE})")
endif()
