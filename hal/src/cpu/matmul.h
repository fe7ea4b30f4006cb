// The matmul kernel interface between CpuBackend::matmul (backend_matmul.cpp: activation
// quantization, threading) and the per-ISA kernels (matmul.cpp scalar reference,
// matmul_avx2.cpp, matmul_avx512.cpp).
//
// A kernel computes y for a range of weight rows and a range of tokens. Every kernel
// computes each (row, token) output with the same sequence of operations whatever the
// ranges, the tile shape or the thread it runs on (batch invariance): tiles only decide
// which outputs are computed together, never how one is computed.
//
// Thread safety: kernels are pure functions over their arguments; distinct row ranges of
// one task may run concurrently.
#pragma once

#include <cstdint>

#include "cpu/quant.h"
#include "supernode/hal/cpu_features.h"
#include "supernode/hal/dtype.h"

namespace sn::hal::cpu {

struct MatmulTask {
  const uint8_t* w = nullptr;  // row r at w + r * row_bytes (packed: group g at w + g * row_bytes)
  int64_t row_bytes = 0;
  int64_t rows = 0;            // valid rows (packed kernels compute padding rows past it, store none)
  int64_t cols = 0;
  ActLayout layout;              // token t's activations: act_row(layout, act + t * layout.token_bytes)
  const uint8_t* act = nullptr;  // 64-byte aligned (except kF32: the caller's x)
  float* y = nullptr;            // y[t * y_stride + r]
  int64_t y_stride = 0;
};

// Computes y for rows [r0, r1) and tokens [t0, t1).
using MatmulKernel = void (*)(const MatmulTask& task, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

inline constexpr int kMatmulTableSize = 32;  // indexed by DType value
struct MatmulKernelTable {
  MatmulKernel by_type[kMatmulTableSize];
};

// The tables of each family (null entries: type not handled by that family).
const MatmulKernelTable& matmul_kernels_scalar();
const MatmulKernelTable& matmul_kernels_avx2();
const MatmulKernelTable& matmul_kernels_avx512();

// The kernel for `type` in family `isa`, or nullptr when `type` has no matmul.
[[nodiscard]] MatmulKernel matmul_kernel(Isa isa, DType type);

// The AVX-512 kernel over packed weights (pack.h) of `type`, or nullptr. Its row ranges
// start at multiples of kPackRows; task.w is the packed weight, task.row_bytes the bytes
// of one group.
[[nodiscard]] MatmulKernel packed_kernel_avx512(DType type);

}  // namespace sn::hal::cpu
