// Tensor element types, numbered as GGUF/ggml number them, with their block geometry.
// Quantized types store `block_elems` elements in `block_bytes` bytes; a row of n elements
// (n a multiple of block_elems) takes n / block_elems * block_bytes bytes.
//
// Used by the GGUF reader (to validate tensor sizes) and by every kernel.
// Thread safety: pure functions over constant tables.
#pragma once

#include <cstdint>
#include <optional>

namespace sn::hal {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct DTypeInfo {
  const char* name;     // ggml's name: "f32", "q4_0", "q6_K", ...
  int64_t block_elems;  // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool computable;      // our kernels implement it (weights of this type can be used)
};

// Geometry of a raw GGUF type id; nullopt for ids that ggml never defined.
[[nodiscard]] std::optional<DTypeInfo> dtype_info(uint32_t raw_type);
// REQUIRES: `type` is a defined id.
[[nodiscard]] DTypeInfo dtype_info(DType type);
[[nodiscard]] const char* dtype_name(DType type);

// Bytes of a row of `n` elements; nullopt when n is not a multiple of the block size.
[[nodiscard]] std::optional<int64_t> dtype_row_bytes(DType type, int64_t n);

}  // namespace sn::hal
