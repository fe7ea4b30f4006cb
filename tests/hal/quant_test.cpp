// The scalar block codecs of hal/src/cpu/quant.h: dequantization of every computable type
// against element formulas written independently from ggml's layout description, and the
// activation quantizers' round-trip error bounds and side sums.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/quant.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/fp16.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::hal::DType;
namespace cpu = sn::hal::cpu;

namespace {

uint16_t half(float f) { return sn::hal::fp32_to_fp16(f); }
float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return sn::hal::fp16_to_fp32(h);
}

// Random blocks: random bytes with every f16 scale field set to a modest value.
std::vector<uint8_t> random_row(DType type, int64_t n, uint32_t seed) {
  const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
  std::vector<uint8_t> row(static_cast<size_t>(*sn::hal::dtype_row_bytes(type, n)));
  std::mt19937 rng(seed);
  for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  auto put = [&](uint8_t* p, float f) {
    const uint16_t h = half(f);
    std::memcpy(p, &h, 2);
  };
  const int64_t nb = n / info.block_elems;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = row.data() + b * info.block_bytes;
    switch (type) {
      case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: put(p, scale(rng)); break;
      case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K:
        put(p, scale(rng));
        put(p + 2, type == DType::kQ4_1 || type == DType::kQ5_1 ? -scale(rng) * 8 : scale(rng));
        break;
      case DType::kQ6_K: put(p + 208, scale(rng)); break;
      case DType::kF16: for (int64_t i = 0; i < n; ++i) put(row.data() + 2 * i, scale(rng) * 50 - 0.5f); return row;
      case DType::kBF16:
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t h = sn::hal::fp32_to_bf16(scale(rng) * 50 - 0.5f);
          std::memcpy(row.data() + 2 * i, &h, 2);
        }
        return row;
      case DType::kF32:
        for (int64_t i = 0; i < n; ++i) {
          const float f = scale(rng) * 50 - 0.5f;
          std::memcpy(row.data() + 4 * i, &f, 4);
        }
        return row;
      default: break;
    }
  }
  return row;
}

// Element e of a 32-block, straight from the layout description.
float formula_32(DType type, const uint8_t* blk, int e) {
  const float d = h2f(blk);
  if (type == DType::kQ8_0) return d * static_cast<float>(static_cast<int8_t>(blk[2 + e]));
  const bool has_min = type == DType::kQ4_1 || type == DType::kQ5_1;
  const bool five = type == DType::kQ5_0 || type == DType::kQ5_1;
  const uint8_t* qh = blk + (has_min ? 4 : 2);
  const uint8_t* qs = qh + (five ? 4 : 0);
  int q = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
  if (five) q += ((qh[e / 8] >> (e % 8)) & 1) * 16;
  if (has_min) return d * static_cast<float>(q) + h2f(blk + 2);
  return d * static_cast<float>(q - (five ? 16 : 8));
}

// Scale/min pair j of the 12-byte K scale field: j < 4 low 6 bits of bytes j / j+4; j >= 4
// low/high nibbles of byte j+4 plus the top 2 bits of bytes j-4 / j.
void formula_k_scale(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] % 64;
    *m = s[j + 4] % 64;
  } else {
    *sc = s[j + 4] % 16 + (s[j - 4] / 64) * 16;
    *m = s[j + 4] / 16 + (s[j] / 64) * 16;
  }
}

float formula_k(DType type, const uint8_t* blk, int e) {
  if (type == DType::kQ6_K) {
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const int h = e / 128, r = e % 128, l = r % 32, part = r / 32;  // part: 0..3
    const int lo_byte = ql[64 * h + l + (part % 2) * 32];
    const int lo = part < 2 ? lo_byte % 16 : lo_byte / 16;
    const int hi = (qh[32 * h + l] >> (2 * part)) % 4;
    return h2f(blk + 208) * static_cast<float>(sc[e / 16]) * static_cast<float>(lo + 16 * hi - 32);
  }
  const float d = h2f(blk), dmin = h2f(blk + 2);
  const uint8_t* scales = blk + 4;
  const bool five = type == DType::kQ5_K;
  const uint8_t* qh = blk + 16;
  const uint8_t* qs = blk + (five ? 48 : 16);
  const int sub = e / 32, l = e % 32;
  int sc, m;
  formula_k_scale(scales, sub, &sc, &m);
  const uint8_t byte = qs[(sub / 2) * 32 + l];
  int q = sub % 2 == 0 ? byte % 16 : byte / 16;
  if (five) q += ((qh[l] >> sub) & 1) * 16;
  return d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
}

const DType kQuantTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                             DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

}  // namespace

TEST_GROUP(Quant){};

TEST(Quant, DequantizeMatchesLayoutFormulas) {
  for (DType type : kQuantTypes) {
    const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
    const int64_t n = info.block_elems * 5;
    const std::vector<uint8_t> row = random_row(type, n, 7 + static_cast<uint32_t>(type));
    std::vector<float> out(static_cast<size_t>(n));
    cpu::dequantize_row(type, row.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* blk = row.data() + (i / info.block_elems) * info.block_bytes;
      const int e = static_cast<int>(i % info.block_elems);
      const float want = info.block_elems == 32 ? formula_32(type, blk, e) : formula_k(type, blk, e);
      if (std::fabs(want - out[i]) > 1e-6f * (1 + std::fabs(want))) {
        FAIL(sn::hal::dtype_name(type));
      }
    }
  }
}

TEST(Quant, DequantizeFloatTypes) {
  const int64_t n = 37;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::vector<uint8_t> row = random_row(type, n, 3);
    std::vector<float> out(n);
    cpu::dequantize_row(type, row.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, row.data() + 2 * i, 2);
      float want;
      if (type == DType::kF32) std::memcpy(&want, row.data() + 4 * i, 4);
      else want = type == DType::kF16 ? sn::hal::fp16_to_fp32(h) : sn::hal::bf16_to_fp32(h);
      DOUBLES_EQUAL(want, out[i], 0.0);
    }
  }
}

TEST(Quant, Q8_0ActivationsRoundTrip) {
  const int64_t n = 32 * 9;
  std::vector<float> x = sn::testing::random_floats(n, 11, -3.0f, 3.0f);
  for (int j = 0; j < 32; ++j) x[64 + j] = 0.0f;  // an all-zero block
  for (cpu::DotType dt : {cpu::DotType::kQ8_0, cpu::DotType::kQ8_1}) {
    const cpu::ActLayout l = cpu::act_layout(dt, n);
    CHECK_EQUAL(0, l.token_bytes % 64);
    std::vector<uint8_t> rec(static_cast<size_t>(l.token_bytes) + 64);
    uint8_t* p = rec.data() + ((64 - reinterpret_cast<uintptr_t>(rec.data()) % 64) % 64);
    cpu::quantize_act(l, x.data(), n, p);
    const cpu::ActRow a = cpu::act_row(l, p);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
      const float d = a.d[b];
      DOUBLES_EQUAL(amax / 127.0f, d, amax / 127.0f * 1e-3 + 1e-12);
      for (int j = 0; j < 32; ++j) {
        const float err = std::fabs(x[b * 32 + j] - d * a.qs[b * 32 + j]);
        CHECK_TRUE(err <= 0.5f * d + amax * 1e-3f + 1e-12f);
        sum += a.qs[b * 32 + j];
      }
      for (int g = 0; g < 8; ++g) {
        const int8_t* q = a.qs + b * 32 + 4 * g;
        LONGS_EQUAL(-(q[0] + q[1] + q[2] + q[3]), a.nls[b * 8 + g]);
      }
      DOUBLES_EQUAL(static_cast<float>(sum) * d, a.s[b], std::fabs(sum * d) * 1e-3 + 1e-9);
    }
  }
}

TEST(Quant, Q8_KActivationsRoundTrip) {
  const int64_t n = 256 * 3;
  std::vector<float> x = sn::testing::random_floats(n, 12, -2.0f, 2.0f);
  x[300] = -5.0f;  // the signed maximum is negative in block 1
  for (int j = 512; j < 768; ++j) x[j] = 0.0f;
  const cpu::ActLayout l = cpu::act_layout(cpu::DotType::kQ8_K, n);
  std::vector<uint8_t> rec(static_cast<size_t>(l.token_bytes) + 64);
  uint8_t* p = rec.data() + ((64 - reinterpret_cast<uintptr_t>(rec.data()) % 64) % 64);
  cpu::quantize_act(l, x.data(), n, p);
  const cpu::ActRow a = cpu::act_row(l, p);
  CHECK_TRUE(a.d[1] > 0.0f);  // iscale = -127/max with max = -5: d = 5/127
  DOUBLES_EQUAL(5.0 / 127.0, a.d[1], 1e-6);
  LONGS_EQUAL(-127, a.qs[300]);
  DOUBLES_EQUAL(0.0, a.d[2], 0.0);
  for (int64_t b = 0; b < 3; ++b) {
    for (int j = 0; j < 256; ++j) {
      const float err = std::fabs(x[b * 256 + j] - a.d[b] * a.qs[b * 256 + j]);
      CHECK_TRUE(err <= 0.5f * a.d[b] * 1.0001f + 1e-12f);
      CHECK_TRUE(a.qs[b * 256 + j] >= -127 && a.qs[b * 256 + j] <= 127);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += a.qs[b * 256 + g * 16 + j];
      LONGS_EQUAL(sum, a.bsums[b * 16 + g]);
    }
  }
}

TEST(Quant, HalfActivationsRound) {
  const int64_t n = 19;
  const std::vector<float> x = sn::testing::random_floats(n, 13, -100.0f, 100.0f);
  for (cpu::DotType dt : {cpu::DotType::kF16, cpu::DotType::kBF16}) {
    const cpu::ActLayout l = cpu::act_layout(dt, n);
    std::vector<uint8_t> rec(static_cast<size_t>(l.token_bytes) + 64);
    uint8_t* p = rec.data() + ((64 - reinterpret_cast<uintptr_t>(rec.data()) % 64) % 64);
    cpu::quantize_act(l, x.data(), n, p);
    const cpu::ActRow a = cpu::act_row(l, p);
    for (int64_t i = 0; i < n; ++i) {
      LONGS_EQUAL(dt == cpu::DotType::kF16 ? sn::hal::fp32_to_fp16(x[i]) : sn::hal::fp32_to_bf16(x[i]), a.h[i]);
    }
  }
}

// The AVX2 quantizers produce the scalar reference's records byte for byte, ties (to even)
// and side sums included.
TEST(Quant, SimdActivationsMatchScalar) {
  const int64_t n = 256 * 4;
  std::vector<float> x = sn::testing::random_floats(n, 14, -3.0f, 3.0f);
  // Block 0 (32) and super-block 0: amax 127 -> scale 1 (Q8_0), halves are exact ties.
  x[0] = 127.0f;
  for (int j = 1; j < 32; ++j) x[j] = static_cast<float>(j % 9) - 4.5f;
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;  // an all-zero 32-block
  // Super-block 1: +m and -m both present; the first one decides the sign.
  x[256 + 40] = -7.0f;
  x[256 + 90] = 7.0f;
  for (int j = 512; j < 768; ++j) x[j] = 0.0f;  // an all-zero super-block
  for (cpu::DotType dt : {cpu::DotType::kQ8_0, cpu::DotType::kQ8_1, cpu::DotType::kQ8_K}) {
    const cpu::ActLayout l = cpu::act_layout(dt, n);
    std::vector<uint8_t> r1(static_cast<size_t>(l.token_bytes) + 64, 0xA5), r2(r1);
    uint8_t* p1 = r1.data() + ((64 - reinterpret_cast<uintptr_t>(r1.data()) % 64) % 64);
    uint8_t* p2 = r2.data() + ((64 - reinterpret_cast<uintptr_t>(r2.data()) % 64) % 64);
    cpu::quantize_act(l, x.data(), n, p1);
    cpu::quantize_act_avx2(l, x.data(), n, p2);
    CHECK_TRUE_TEXT(std::memcmp(p1, p2, static_cast<size_t>(l.token_bytes)) == 0, "SIMD record differs");
    const cpu::ActRow a = cpu::act_row(l, p1);
    if (dt == cpu::DotType::kQ8_K) {
      CHECK_TRUE(a.d[1] > 0.0f);  // the first largest magnitude is -7: iscale = -127 / -7 > 0
      for (int64_t g = 0; g < n / 16; ++g) LONGS_EQUAL(-32 * a.bsums[g], a.off32[g]);
      for (int64_t g = 0; g < n / 32; ++g) LONGS_EQUAL(a.bsums[2 * g] + a.bsums[2 * g + 1], a.bsums32[g]);
    } else {
      DOUBLES_EQUAL(1.0, a.d[0], 0.0);
      for (int j = 1; j < 32; ++j) {
        const float v = static_cast<float>(j % 9) - 4.5f;
        LONGS_EQUAL(static_cast<long>(std::nearbyint(v)), a.qs[j]);  // ties to even
      }
      for (int64_t b = 0; b < n / 32; ++b) {
        int32_t sum = 0;
        for (int j = 0; j < 32; ++j) sum += a.qs[b * 32 + j];
        LONGS_EQUAL(-8 * sum, a.off8[b]);
        LONGS_EQUAL(-128 * sum, a.off128[b]);
      }
    }
  }
}
