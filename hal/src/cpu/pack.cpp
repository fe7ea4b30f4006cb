// Scalar packers of the interleaved layouts described in pack.h. Run once per weight at
// model load (CpuBackend::prepare), so clarity beats speed here.
#include "cpu/pack.h"

#include <cstring>

#include "cpu/quant.h"
#include "supernode/base/check.h"

namespace sn::hal::cpu {
namespace {

constexpr int64_t kQ4_0Quants = 256, kQ8_0Quants = 512;  // per block of 16 rows
constexpr int64_t kQ4_KBytes = 2368, kQ6_KBytes = 3392;  // per super-block of 16 rows

int64_t align64(int64_t n) { return (n + 63) & ~int64_t{63}; }

// Element e (0..255) of a q4_K block: its 4-bit value.
int q4k_nib(const BlockQ4_K& b, int e) {
  const int j = e / 32, l = e % 32;
  const uint8_t byte = b.qs[(j / 2) * 32 + l];
  return (j & 1) ? byte >> 4 : byte & 0xF;
}

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void pack_q4_0(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t nb, uint8_t* dst) {
  uint8_t* quants = dst;
  uint8_t* scales = dst + nb * kQ4_0Quants;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const BlockQ4_0*>(w + r * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      auto nib = [&](int e) { return e < 16 ? row[b].qs[e] & 0xF : row[b].qs[e - 16] >> 4; };
      uint8_t* q = quants + b * kQ4_0Quants;
      for (int j = 0; j < 4; ++j) {
        for (int i = 0; i < 4; ++i) q[64 * j + 4 * r + i] = static_cast<uint8_t>(nib(4 * j + i) | nib(4 * (j + 4) + i) << 4);
      }
      put16(scales + b * 32 + 2 * r, row[b].d);
    }
  }
}

void pack_q8_0(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t nb, uint8_t* dst) {
  uint8_t* quants = dst;
  uint8_t* scales = dst + nb * kQ8_0Quants;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const BlockQ8_0*>(w + r * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* q = quants + b * kQ8_0Quants;
      for (int k = 0; k < 8; ++k) {
        for (int i = 0; i < 4; ++i) q[64 * k + 4 * r + i] = static_cast<uint8_t>(row[b].qs[4 * k + i] + 128);
      }
      put16(scales + b * 32 + 2 * r, row[b].d);
    }
  }
  // Zero rows decode to 0 only with q = 0, stored as 128.
  for (int64_t r = n_rows; r < kPackRows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      for (int k = 0; k < 8; ++k) std::memset(quants + b * kQ8_0Quants + 64 * k + 4 * r, 128, 4);
    }
  }
}

void pack_q4_k(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t nb, uint8_t* dst) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const BlockQ4_K*>(w + r * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* p = dst + b * kQ4_KBytes;
      for (int j = 0; j < 8; ++j) {
        uint8_t* q = p + 256 * j;
        for (int c = 0; c < 4; ++c) {
          for (int i = 0; i < 4; ++i) {
            q[64 * c + 4 * r + i] = static_cast<uint8_t>(q4k_nib(row[b], 32 * j + 4 * c + i) |
                                                         q4k_nib(row[b], 32 * j + 4 * (c + 4) + i) << 4);
          }
        }
        uint8_t sc, m;
        k_scale_min(row[b].scales, j, &sc, &m);
        p[2048 + 16 * j + r] = sc;
        p[2048 + 128 + 32 * (j / 2) + 2 * r + (j & 1)] = m;
      }
      put16(p + 2048 + 256 + 2 * r, row[b].d);
      put16(p + 2048 + 256 + 32 + 2 * r, row[b].dmin);
    }
  }
}

void pack_q6_k(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t nb, uint8_t* dst) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const BlockQ6_K*>(w + r * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* p = dst + b * kQ6_KBytes;
      for (int s = 0; s < 16; ++s) {
        auto v = [&](int k, int i) { return q6k_value(row[b], 16 * s + 4 * k + i); };
        for (int h = 0; h < 2; ++h) {
          for (int i = 0; i < 4; ++i) {
            p[64 * (2 * s + h) + 4 * r + i] = static_cast<uint8_t>((v(h, i) & 0xF) | (v(h + 2, i) & 0xF) << 4);
          }
        }
        for (int i = 0; i < 4; ++i) {
          int hi = 0;
          for (int k = 0; k < 4; ++k) hi |= (v(k, i) >> 4) << (2 * k);
          p[2048 + 64 * s + 4 * r + i] = static_cast<uint8_t>(hi);
        }
        p[3072 + 16 * s + r] = static_cast<uint8_t>(row[b].scales[s]);
      }
      put16(p + 3328 + 2 * r, row[b].d);
    }
  }
}

}  // namespace

bool pack_supported(DType type) {
  return type == DType::kQ4_0 || type == DType::kQ8_0 || type == DType::kQ4_K || type == DType::kQ6_K;
}

int64_t pack_group_bytes(DType type, int64_t cols) {
  switch (type) {
    case DType::kQ4_0: return align64(cols / kQK * (kQ4_0Quants + 32));
    case DType::kQ8_0: return align64(cols / kQK * (kQ8_0Quants + 32));
    case DType::kQ4_K: return cols / kQKK * kQ4_KBytes;
    case DType::kQ6_K: return cols / kQKK * kQ6_KBytes;
    default: SN_CHECK(false) << "no packed layout for " << dtype_name(type);
  }
  return 0;
}

void pack_group(DType type, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t cols, uint8_t* dst) {
  SN_CHECK(n_rows > 0 && n_rows <= kPackRows) << n_rows << " rows";
  std::memset(dst, 0, static_cast<size_t>(pack_group_bytes(type, cols)));
  switch (type) {
    case DType::kQ4_0: return pack_q4_0(w, row_bytes, n_rows, cols / kQK, dst);
    case DType::kQ8_0: return pack_q8_0(w, row_bytes, n_rows, cols / kQK, dst);
    case DType::kQ4_K: return pack_q4_k(w, row_bytes, n_rows, cols / kQKK, dst);
    case DType::kQ6_K: return pack_q6_k(w, row_bytes, n_rows, cols / kQKK, dst);
    default: SN_CHECK(false) << "no packed layout for " << dtype_name(type);
  }
}

}  // namespace sn::hal::cpu
