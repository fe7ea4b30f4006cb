// Scalar block codecs and reference dot products. See quant.h.
#include "cpu/quant.h"

#include <cmath>
#include <cstring>

#include "supernode/base/check.h"
#include "supernode/hal/fp16.h"

namespace sn::hal::cpu {
namespace {

int64_t align64(int64_t n) { return (n + 63) & ~int64_t{63}; }

float h2f(uint16_t h) { return fp16_to_fp32(h); }
float round_f16(float f) { return fp16_to_fp32(fp32_to_fp16(f)); }

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void dequant_q4_0(const BlockQ4_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

void dequant_q5_0(const BlockQ5_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void dequant_q5_1(const BlockQ5_1* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(b[i].qs[j]);
  }
}

void dequant_q4_k(const BlockQ4_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 4; ++j, q += 32) {
      uint8_t sc1, m1, sc2, m2;
      k_scale_min(b[i].scales, 2 * j, &sc1, &m1);
      k_scale_min(b[i].scales, 2 * j + 1, &sc2, &m2);
      const float d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - mm1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - mm2;
    }
  }
}

void dequant_q5_k(const BlockQ5_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    const uint8_t* q = b[i].qs;
    const uint8_t* qh = b[i].qh;
    for (int j = 0; j < 4; ++j, q += 32) {
      uint8_t sc1, m1, sc2, m2;
      k_scale_min(b[i].scales, 2 * j, &sc1, &m1);
      k_scale_min(b[i].scales, 2 * j + 1, &sc2, &m2);
      const float d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      const uint8_t u1 = static_cast<uint8_t>(1u << (2 * j)), u2 = static_cast<uint8_t>(2u << (2 * j));
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - mm1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - mm2;
      }
    }
  }
}

void dequant_q6_k(const BlockQ6_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(b[i].d);
    for (int e = 0; e < kQKK; ++e) {
      *y++ = d * static_cast<float>(b[i].scales[e / 16]) * static_cast<float>(q6k_value(b[i], e) - 32);
    }
  }
}

// Sum over one 32-block of w * a where w = (nibble | fifth bit) - offset.
template <typename Block>
int32_t dot_block_4_5(const Block& b, const int8_t* a, uint32_t qh, int offset) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    s += (lo - offset) * a[j] + (hi - offset) * a[j + 16];
  }
  return s;
}

}  // namespace

int q6k_value(const BlockQ6_K& b, int e) {
  const int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
  const uint8_t* ql = b.ql + 64 * half;
  const uint8_t* qh = b.qh + 32 * half;
  const int lo = (quarter & 1) ? ql[l + 32] : ql[l];
  const int nib = (quarter & 2) ? (lo >> 4) : (lo & 0xF);
  const int hb = (qh[l] >> (2 * quarter)) & 3;
  return nib | (hb << 4);
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  const DTypeInfo info = dtype_info(type);
  SN_CHECK(info.computable && n % info.block_elems == 0) << dtype_name(type) << " row of " << n;
  const int64_t nb = n / info.block_elems;
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case DType::kQ4_0: return dequant_q4_0(static_cast<const BlockQ4_0*>(src), nb, dst);
    case DType::kQ4_1: return dequant_q4_1(static_cast<const BlockQ4_1*>(src), nb, dst);
    case DType::kQ5_0: return dequant_q5_0(static_cast<const BlockQ5_0*>(src), nb, dst);
    case DType::kQ5_1: return dequant_q5_1(static_cast<const BlockQ5_1*>(src), nb, dst);
    case DType::kQ8_0: return dequant_q8_0(static_cast<const BlockQ8_0*>(src), nb, dst);
    case DType::kQ4_K: return dequant_q4_k(static_cast<const BlockQ4_K*>(src), nb, dst);
    case DType::kQ5_K: return dequant_q5_k(static_cast<const BlockQ5_K*>(src), nb, dst);
    case DType::kQ6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), nb, dst);
    default: SN_CHECK(false) << "no dequantizer for " << dtype_name(type);
  }
}

DotType dot_type(DType weight) {
  switch (weight) {
    case DType::kF32: return DotType::kF32;
    case DType::kF16: return DotType::kF16;
    case DType::kBF16: return DotType::kBF16;
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0: return DotType::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1: return DotType::kQ8_1;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return DotType::kQ8_K;
    default: SN_CHECK(false) << "no matmul for " << dtype_name(weight);
  }
  return DotType::kF32;
}

ActLayout act_layout(DotType type, int64_t n) {
  ActLayout l;
  l.type = type;
  int64_t off = 0;
  switch (type) {
    case DotType::kF32:
      l.token_bytes = n * 4;
      return l;
    case DotType::kF16:
    case DotType::kBF16:
      l.h = 0;
      l.token_bytes = align64(n * 2);
      return l;
    case DotType::kQ8_0:
    case DotType::kQ8_1:
      l.qs = off;
      off += align64(n);
      l.d = off;
      off += align64(n / kQK * 4);
      l.s = off;
      off += align64(n / kQK * 4);
      l.nls = off;
      off += align64(n);  // n/4 int32
      l.off8 = off;
      off += align64(n / kQK * 4);
      l.off128 = off;
      off += align64(n / kQK * 4);
      l.token_bytes = off;
      return l;
    case DotType::kQ8_K:
      l.qs = off;
      off += align64(n);
      l.d = off;
      off += align64(n / kQKK * 4);
      l.bsums = off;
      off += align64(n / 16 * 2);
      l.bsums32 = off;
      off += align64(n / 32 * 2);
      l.off32 = off;
      off += align64(n / 16 * 4);
      l.token_bytes = off;
      return l;
  }
  return l;
}

ActRow act_row(const ActLayout& l, const uint8_t* rec) {
  ActRow r;
  switch (l.type) {
    case DotType::kF32:
      r.f = reinterpret_cast<const float*>(rec);
      break;
    case DotType::kF16:
    case DotType::kBF16:
      r.h = reinterpret_cast<const uint16_t*>(rec + l.h);
      break;
    case DotType::kQ8_0:
    case DotType::kQ8_1:
      r.qs = reinterpret_cast<const int8_t*>(rec + l.qs);
      r.d = reinterpret_cast<const float*>(rec + l.d);
      r.s = reinterpret_cast<const float*>(rec + l.s);
      r.nls = reinterpret_cast<const int32_t*>(rec + l.nls);
      r.off8 = reinterpret_cast<const int32_t*>(rec + l.off8);
      r.off128 = reinterpret_cast<const int32_t*>(rec + l.off128);
      break;
    case DotType::kQ8_K:
      r.qs = reinterpret_cast<const int8_t*>(rec + l.qs);
      r.d = reinterpret_cast<const float*>(rec + l.d);
      r.bsums = reinterpret_cast<const int16_t*>(rec + l.bsums);
      r.bsums32 = reinterpret_cast<const int16_t*>(rec + l.bsums32);
      r.off32 = reinterpret_cast<const int32_t*>(rec + l.off32);
      break;
  }
  return r;
}

void quantize_act(const ActLayout& l, const float* x, int64_t n, uint8_t* rec) {
  switch (l.type) {
    case DotType::kF32:
      SN_CHECK(false) << "f32 activations are used in place";
      return;
    case DotType::kF16: {
      auto* h = reinterpret_cast<uint16_t*>(rec + l.h);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
      return;
    }
    case DotType::kBF16: {
      auto* h = reinterpret_cast<uint16_t*>(rec + l.h);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(x[i]);
      return;
    }
    case DotType::kQ8_0:
    case DotType::kQ8_1: {
      auto* qs = reinterpret_cast<int8_t*>(rec + l.qs);
      auto* d = reinterpret_cast<float*>(rec + l.d);
      auto* s = reinterpret_cast<float*>(rec + l.s);
      auto* nls = reinterpret_cast<int32_t*>(rec + l.nls);
      auto* off8 = reinterpret_cast<int32_t*>(rec + l.off8);
      auto* off128 = reinterpret_cast<int32_t*>(rec + l.off128);
      for (int64_t b = 0; b < n / kQK; ++b) {
        const float* xb = x + b * kQK;
        float amax = 0.0f;
        for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < kQK; ++j) {
          const int q = static_cast<int>(std::nearbyintf(xb[j] * id));  // ties to even
          qs[b * kQK + j] = static_cast<int8_t>(q);
          sum += q;
        }
        for (int g = 0; g < kQK / 4; ++g) {
          const int8_t* q = qs + b * kQK + g * 4;
          nls[b * 8 + g] = -(q[0] + q[1] + q[2] + q[3]);
        }
        d[b] = round_f16(db);
        s[b] = round_f16(static_cast<float>(sum) * db);
        off8[b] = -8 * sum;
        off128[b] = -128 * sum;
      }
      return;
    }
    case DotType::kQ8_K: {
      auto* qs = reinterpret_cast<int8_t*>(rec + l.qs);
      auto* d = reinterpret_cast<float*>(rec + l.d);
      auto* bsums = reinterpret_cast<int16_t*>(rec + l.bsums);
      auto* bsums32 = reinterpret_cast<int16_t*>(rec + l.bsums32);
      auto* off32 = reinterpret_cast<int32_t*>(rec + l.off32);
      for (int64_t b = 0; b < n / kQKK; ++b) {
        const float* xb = x + b * kQKK;
        int8_t* q = qs + b * kQKK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQKK; ++j) {
          const float ax = std::fabs(xb[j]);
          if (ax > amax) {
            amax = ax;
            max = xb[j];
          }
        }
        if (amax == 0.0f) {
          d[b] = 0.0f;
          std::memset(q, 0, kQKK);
          for (int g = 0; g < 16; ++g) bsums[b * 16 + g] = 0, off32[b * 16 + g] = 0;
          for (int g = 0; g < 8; ++g) bsums32[b * 8 + g] = 0;
          continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < kQKK; ++j) {
          const long v = std::lrintf(iscale * xb[j]);  // nearest, ties to even
          q[j] = static_cast<int8_t>(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int j = 0; j < 16; ++j) sum += q[g * 16 + j];
          bsums[b * 16 + g] = static_cast<int16_t>(sum);
          off32[b * 16 + g] = -32 * sum;
        }
        for (int g = 0; g < 8; ++g) {
          bsums32[b * 8 + g] = static_cast<int16_t>(bsums[b * 16 + 2 * g] + bsums[b * 16 + 2 * g + 1]);
        }
        d[b] = 1.0f / iscale;
      }
      return;
    }
  }
}

float vec_dot_ref(DType type, const void* w, const ActRow& a, int64_t n) {
  float sum = 0.0f;
  switch (type) {
    case DType::kF32: {
      const auto* f = static_cast<const float*>(w);
      for (int64_t i = 0; i < n; ++i) sum += f[i] * a.f[i];
      return sum;
    }
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(w);
      for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32(h[i]) * fp16_to_fp32(a.h[i]);
      return sum;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(w);
      for (int64_t i = 0; i < n; ++i) sum += bf16_to_fp32(h[i]) * bf16_to_fp32(a.h[i]);
      return sum;
    }
    case DType::kQ4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(w);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const int32_t s = dot_block_4_5(b[i], a.qs + i * kQK, 0, 8);
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s);
      }
      return sum;
    }
    case DType::kQ4_1: {
      const auto* b = static_cast<const BlockQ4_1*>(w);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const int32_t s = dot_block_4_5(b[i], a.qs + i * kQK, 0, 0);
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s) + h2f(b[i].m) * a.s[i];
      }
      return sum;
    }
    case DType::kQ5_0: {
      const auto* b = static_cast<const BlockQ5_0*>(w);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const int32_t s = dot_block_4_5(b[i], a.qs + i * kQK, load_u32(b[i].qh), 16);
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s);
      }
      return sum;
    }
    case DType::kQ5_1: {
      const auto* b = static_cast<const BlockQ5_1*>(w);
      for (int64_t i = 0; i < n / kQK; ++i) {
        const int32_t s = dot_block_4_5(b[i], a.qs + i * kQK, load_u32(b[i].qh), 0);
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s) + h2f(b[i].m) * a.s[i];
      }
      return sum;
    }
    case DType::kQ8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(w);
      for (int64_t i = 0; i < n / kQK; ++i) {
        int32_t s = 0;
        for (int j = 0; j < kQK; ++j) s += b[i].qs[j] * a.qs[i * kQK + j];
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s);
      }
      return sum;
    }
    case DType::kQ4_K:
    case DType::kQ5_K: {
      const bool five = type == DType::kQ5_K;
      for (int64_t i = 0; i < n / kQKK; ++i) {
        const uint8_t *scales, *qs, *qh = nullptr;
        float d, dmin;
        if (five) {
          const auto& b = static_cast<const BlockQ5_K*>(w)[i];
          scales = b.scales, qs = b.qs, qh = b.qh, d = h2f(b.d), dmin = h2f(b.dmin);
        } else {
          const auto& b = static_cast<const BlockQ4_K*>(w)[i];
          scales = b.scales, qs = b.qs, d = h2f(b.d), dmin = h2f(b.dmin);
        }
        const int8_t* q8 = a.qs + i * kQKK;
        const int16_t* bs = a.bsums + i * 16;
        int32_t s1 = 0, s2 = 0;
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          k_scale_min(scales, j, &sc, &m);
          int32_t dot = 0;
          for (int l = 0; l < 32; ++l) {
            const uint8_t byte = qs[(j / 2) * 32 + l];
            int v = (j & 1) ? (byte >> 4) : (byte & 0xF);
            if (five) v |= ((qh[l] >> j) & 1) << 4;
            dot += v * q8[j * 32 + l];
          }
          s1 += sc * dot;
          s2 += m * (bs[2 * j] + bs[2 * j + 1]);
        }
        sum += d * a.d[i] * static_cast<float>(s1);
        sum += -(dmin * a.d[i]) * static_cast<float>(s2);
      }
      return sum;
    }
    case DType::kQ6_K: {
      const auto* b = static_cast<const BlockQ6_K*>(w);
      for (int64_t i = 0; i < n / kQKK; ++i) {
        const int8_t* q8 = a.qs + i * kQKK;
        const int16_t* bs = a.bsums + i * 16;
        int32_t s = 0, c = 0;
        for (int g = 0; g < 16; ++g) {
          int32_t dot = 0;
          for (int l = 0; l < 16; ++l) dot += q6k_value(b[i], g * 16 + l) * q8[g * 16 + l];
          s += b[i].scales[g] * dot;
          c += b[i].scales[g] * bs[g];
        }
        sum += h2f(b[i].d) * a.d[i] * static_cast<float>(s - 32 * c);
      }
      return sum;
    }
    default: SN_CHECK(false) << "no dot product for " << dtype_name(type);
  }
  return sum;
}

}  // namespace sn::hal::cpu
