// The scalar reference matmul kernels (one per weight type, through vec_dot_ref) and the
// per-ISA kernel lookup. See matmul.h.
#include "cpu/matmul.h"

namespace sn::hal::cpu {
namespace {

template <DType kType>
void matmul_scalar(const MatmulTask& task, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t) {
    const ActRow a = act_row(task.layout, task.act + t * task.layout.token_bytes);
    float* y = task.y + t * task.y_stride;
    for (int64_t r = r0; r < r1; ++r) y[r] = vec_dot_ref(kType, task.w + r * task.row_bytes, a, task.cols);
  }
}

constexpr MatmulKernelTable make_scalar_table() {
  MatmulKernelTable t{};
  t.by_type[static_cast<int>(DType::kF32)] = matmul_scalar<DType::kF32>;
  t.by_type[static_cast<int>(DType::kF16)] = matmul_scalar<DType::kF16>;
  t.by_type[static_cast<int>(DType::kBF16)] = matmul_scalar<DType::kBF16>;
  t.by_type[static_cast<int>(DType::kQ4_0)] = matmul_scalar<DType::kQ4_0>;
  t.by_type[static_cast<int>(DType::kQ4_1)] = matmul_scalar<DType::kQ4_1>;
  t.by_type[static_cast<int>(DType::kQ5_0)] = matmul_scalar<DType::kQ5_0>;
  t.by_type[static_cast<int>(DType::kQ5_1)] = matmul_scalar<DType::kQ5_1>;
  t.by_type[static_cast<int>(DType::kQ8_0)] = matmul_scalar<DType::kQ8_0>;
  t.by_type[static_cast<int>(DType::kQ4_K)] = matmul_scalar<DType::kQ4_K>;
  t.by_type[static_cast<int>(DType::kQ5_K)] = matmul_scalar<DType::kQ5_K>;
  t.by_type[static_cast<int>(DType::kQ6_K)] = matmul_scalar<DType::kQ6_K>;
  return t;
}

constexpr MatmulKernelTable kScalarTable = make_scalar_table();

}  // namespace

const MatmulKernelTable& matmul_kernels_scalar() { return kScalarTable; }

MatmulKernel matmul_kernel(Isa isa, DType type) {
  const auto i = static_cast<uint32_t>(type);
  if (i >= kMatmulTableSize) return nullptr;
  switch (isa) {
    case Isa::kAvx512: return matmul_kernels_avx512().by_type[i];
    case Isa::kAvx2: return matmul_kernels_avx2().by_type[i];
    case Isa::kScalar: break;
  }
  return matmul_kernels_scalar().by_type[i];
}

}  // namespace sn::hal::cpu
