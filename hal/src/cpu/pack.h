// Interleaved ("packed") weight layouts for the AVX-512 matmul kernels, built once per
// weight by CpuBackend::prepare (pack.cpp) and read by pack_avx512.cpp.
//
// Rows go in groups of kPackRows = 16 (the last group padded with zero rows: scale 0,
// quants that decode to 0). Within a group the 16 rows' quants are interleaved so that one
// 64-byte load (after nibble unpacking for 4-bit types) is a zmm whose 32-bit lane r holds 4
// consecutive elements of row r: vpdpbusd with a broadcast of 4 activation bytes then adds
// those 4 products into lane r, and lane r of every accumulator is output row r, with no
// horizontal reduction. Quants are stored unsigned (q8_0 as q + 128, q4_0 nibbles, q6_K
// 6-bit values); the offsets are corrected with per-token activation sums (quant.h).
//
// One "element group" g is elements 4g..4g+3 of a block; a "chunk" is 64 bytes.
//   q4_0 (per block of 32): chunk j (0..3), byte 4r+i = nib(r, 4j+i) | nib(r, 4(j+4)+i) << 4.
//   q8_0 (per block of 32): chunk k (0..7), byte 4r+i = q(r, 4k+i) + 128.
//     A group of nb blocks: [quants: nb x 256 (q4_0) or 512 (q8_0)][f16 d: nb x 16 rows].
//   q4_K (per super-block, inline): [quants: 8 sub-blocks x 4 chunks as q4_0's][scales u8
//     [sub-block j][row r]: 128][mins u8 [pair p][row r][2] (sub-blocks 2p, 2p+1): 128]
//     [f16 d x 16][f16 dmin x 16] = 2368 bytes.
//   q6_K (per super-block, inline): [low nibbles: 16 sub-blocks x 2 chunks: chunk 2s+h,
//     byte 4r+i = lo(r, 16s + 4h + i) | lo(r, 16s + 4(h+2) + i) << 4][high 2 bits: 16
//     chunks: chunk s, byte 4r+i bits 2k..2k+1 = hi(r, 16s + 4k + i)][scales i8 [s][r]:
//     256][f16 d x 16][pad to 64] = 3392 bytes.
// Every group starts 64-byte aligned.
//
// Thread safety: pure functions; pack_group of distinct groups may run concurrently.
#pragma once

#include <cstdint>

#include "supernode/hal/dtype.h"

namespace sn::hal::cpu {

inline constexpr int kPackRows = 16;

// Whether `type` has a packed layout (q4_0, q8_0, q4_K, q6_K).
[[nodiscard]] bool pack_supported(DType type);

// Bytes of one packed group of kPackRows rows of `cols` elements (a multiple of 64).
// REQUIRES: pack_supported(type), cols a multiple of the block size.
[[nodiscard]] int64_t pack_group_bytes(DType type, int64_t cols);

// Packs rows [0, n_rows) (n_rows <= kPackRows; the rest are zero rows) of a row-major weight
// (row r at w + r * row_bytes) into one group at dst (pack_group_bytes bytes, 64-aligned).
void pack_group(DType type, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t cols, uint8_t* dst);

}  // namespace sn::hal::cpu
