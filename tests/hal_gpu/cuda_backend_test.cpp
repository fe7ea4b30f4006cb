// CudaBackend (label gpu): every op against the CPU scalar reference (CpuBackend with
// Isa::kScalar, cpu::dequantize_row) on random inputs of odd sizes, with guard regions
// around device outputs; matmul batch invariance bit for bit. Every test reports a skip
// (sn::testing::skip; the run exits 77, which ctest shows as skipped) when there is no
// usable NVIDIA GPU (no driver, no device, or a build without CUDA), so the executable
// runs anywhere and never passes for a GPU it did not test.
//
// Tolerances (why each is what it is):
//  - matmul: the GPU quantizes activations bit-identically to the CPU and computes the
//    same integer block sums; only the order of adding the per-block float terms differs
//    (plus, for q4_K, one extra rounding per 16-element half of a sub-block pair). Any
//    order of adding m float terms errs by at most (m - 1) u sum|term| (u = 2^-24), so we
//    allow 2 (m + 8) u B per output, where B = sum_c |w_c| (|x_c| + amax(x) / 100) bounds
//    sum|term| (8-bit activations differ from x by at most amax / 254 per element) and m
//    is the number of float terms a row has (cols for f32/f16, cols / 16 otherwise).
//  - get_rows: bit-identical (the same products, rounded the same way).
//  - rms_norm: the double sum differs only in order, so the float scale is the CPU's or one
//    ulp off: 4 u |y|.
//  - rope: same angles; device sinf/cosf are within 2 ulp (CUDA guide) and libm's within
//    1, and the rotation may fuse differently: about 5 u (|x0| + |x1|); we allow 16 u.
//  - silu_mul: device expf within 2 ulp: 8 u |out| + 1e-30.
//  - add: exact.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/quant.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/cuda_backend.h"
#include "supernode/hal/fp16.h"
#include "supernode/hal/gpu.h"
#include "supernode/hal/thread_pool.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::hal::CpuBackend;
using sn::hal::CudaBackend;
using sn::hal::DeviceBuffer;
using sn::hal::DeviceWeight;
using sn::hal::DType;
using sn::hal::Isa;
using sn::hal::RopeParams;
using sn::hal::ThreadPool;
using sn::hal::WeightView;

namespace {

constexpr double kU = 1.0 / (1 << 24);
constexpr uint32_t kGuardBits = 0x7FC0DEADu;  // a NaN no kernel produces
constexpr int64_t kGuard = 64;                // floats of guard on each side of outputs

// The process's backend on device 0, or null after printing why (once per test).
CudaBackend* gpu(const char* test) {
  static std::unique_ptr<CudaBackend> be;
  static std::string why;
  static bool tried = false;
  if (!tried) {
    tried = true;
    sn::Result<std::unique_ptr<CudaBackend>> r = CudaBackend::create(0);
    if (r.ok()) {
      be = std::move(*r);
    } else {
      why = r.status().message();
    }
  }
  if (be == nullptr) sn::testing::skip(std::string(test) + ": " + why);
  return be.get();
}

DeviceBuffer must_alloc(CudaBackend& be, int64_t bytes) {
  sn::Result<DeviceBuffer> b = be.alloc(bytes);
  CHECK_TRUE_TEXT(b.ok(), b.status().to_string().c_str());
  return std::move(*b);
}

// A device copy of host floats.
DeviceBuffer to_device(CudaBackend& be, const std::vector<float>& v) {
  DeviceBuffer b = must_alloc(be, static_cast<int64_t>(v.size()) * 4);
  be.copy_to_device(b.data(), v.data(), b.size());
  return b;
}

// A device float array of n with kGuard guard floats on each side (all set to kGuardBits);
// data() points past the leading guard.
class GuardedDevice {
 public:
  GuardedDevice(CudaBackend& be, int64_t n, const std::vector<float>* init = nullptr) : be_(be), n_(n) {
    std::vector<float> host(static_cast<size_t>(n + 2 * kGuard));
    float g;
    std::memcpy(&g, &kGuardBits, 4);
    std::fill(host.begin(), host.end(), g);
    if (init != nullptr) std::copy(init->begin(), init->end(), host.begin() + kGuard);
    buf_ = must_alloc(be, static_cast<int64_t>(host.size()) * 4);
    be.copy_to_device(buf_.data(), host.data(), buf_.size());
  }
  float* data() { return buf_.as<float>() + kGuard; }
  // The whole array including guards, after waiting for the stream.
  std::vector<float> all() {
    std::vector<float> host(static_cast<size_t>(n_ + 2 * kGuard));
    be_.copy_to_host(host.data(), buf_.data(), buf_.size());
    const sn::Status s = be_.synchronize();
    CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str());
    return host;
  }
  std::vector<float> values() {
    const std::vector<float> a = all();
    CHECK_TRUE_TEXT(guards_intact(a), "guard region overwritten");
    return {a.begin() + kGuard, a.end() - kGuard};
  }
  bool guards_intact(const std::vector<float>& a) const {
    for (int64_t i = 0; i < kGuard; ++i) {
      if (std::memcmp(&a[static_cast<size_t>(i)], &kGuardBits, 4) != 0) return false;
      if (std::memcmp(&a[static_cast<size_t>(n_ + kGuard + i)], &kGuardBits, 4) != 0) return false;
    }
    return true;
  }

 private:
  CudaBackend& be_;
  int64_t n_;
  DeviceBuffer buf_;
};

bool is_guard(float f) { return std::memcmp(&f, &kGuardBits, 4) == 0; }

// Random weights: random bytes with modest f16 scales; float types uniform in [-1, 1].
std::vector<uint8_t> random_weights(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
  const int64_t row_bytes = *sn::hal::dtype_row_bytes(type, cols);
  std::vector<uint8_t> w(static_cast<size_t>(rows * row_bytes));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f), scale(0.002f, 0.02f);
  auto put16 = [](uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); };
  if (info.block_elems == 1) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float f = unit(rng);
      if (type == DType::kF32) std::memcpy(w.data() + 4 * i, &f, 4);
      if (type == DType::kF16) put16(w.data() + 2 * i, sn::hal::fp32_to_fp16(f));
    }
    return w;
  }
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  for (int64_t b = 0; b < rows * cols / info.block_elems; ++b) {
    uint8_t* p = w.data() + b * info.block_bytes;
    if (type == DType::kQ6_K) {
      put16(p + 208, sn::hal::fp32_to_fp16(scale(rng)));
      continue;
    }
    put16(p, sn::hal::fp32_to_fp16(scale(rng)));
    if (type == DType::kQ4_K) put16(p + 2, sn::hal::fp32_to_fp16(scale(rng)));
  }
  return w;
}

std::vector<float> dequantize(DType type, const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const int64_t rb = *sn::hal::dtype_row_bytes(type, cols);
  for (int64_t r = 0; r < rows; ++r) sn::hal::cpu::dequantize_row(type, w.data() + r * rb, out.data() + r * cols, cols);
  return out;
}

struct Shape {
  DType type;
  int64_t rows, cols;
};

// Odd sizes: row counts that are not multiples of the 8 warps of a block, block counts
// that are not multiples of the 32 lanes, f32/f16 rows that are not multiples of 16 bytes.
const Shape kShapes[] = {
    {DType::kF32, 1001, 4097}, {DType::kF32, 37, 3},      {DType::kF16, 1001, 4097}, {DType::kF16, 5, 11},
    {DType::kQ4_0, 1001, 4128}, {DType::kQ4_0, 13, 11008}, {DType::kQ8_0, 1001, 4128}, {DType::kQ8_0, 3, 32},
    {DType::kQ4_K, 777, 4352},  {DType::kQ4_K, 9, 256},    {DType::kQ6_K, 777, 4352}, {DType::kQ6_K, 11, 11008},
};

int64_t float_terms(DType type, int64_t cols) {
  return (type == DType::kF32 || type == DType::kF16) ? cols : cols / 16;
}

// Runs be.matmul on host inputs; returns y [n_tokens][y_stride] with guard checks.
std::vector<float> gpu_matmul(CudaBackend& be, const DeviceWeight& w, const std::vector<float>& x, int64_t n_tokens,
                              int64_t y_stride) {
  DeviceBuffer dx = to_device(be, x);
  GuardedDevice y(be, n_tokens * y_stride);
  be.matmul(w, dx.as<float>(), n_tokens, y.data(), y_stride);
  const std::vector<float> all = y.all();
  CHECK_TRUE_TEXT(y.guards_intact(all), "matmul wrote past its output");
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = w.rows(); r < y_stride; ++r) {
      CHECK_TRUE_TEXT(is_guard(all[static_cast<size_t>(kGuard + t * y_stride + r)]), "matmul wrote into y's stride padding");
    }
  }
  return {all.begin() + kGuard, all.end() - kGuard};
}

}  // namespace

TEST_GROUP(CudaBackend) {
  ThreadPool* pool = nullptr;
  void setup() override { pool = new ThreadPool({.n_threads = 2, .pin = false}); }
  void teardown() override { delete pool; }
};

TEST(CudaBackend, MatmulMatchesScalarReference) {
  CudaBackend* be = gpu("CudaBackend.MatmulMatchesScalarReference");
  if (be == nullptr) return;
  CpuBackend ref(*pool, Isa::kScalar);
  for (const Shape& s : kShapes) {
    const std::vector<uint8_t> wd = random_weights(s.type, s.rows, s.cols, 100 + static_cast<uint32_t>(s.rows));
    const WeightView view{s.type, s.rows, s.cols, wd.data()};
    sn::Result<DeviceWeight> w = be->upload_weight(view);
    CHECK_TRUE_TEXT(w.ok(), w.status().to_string().c_str());
    const std::vector<float> deq = dequantize(s.type, wd, s.rows, s.cols);
    for (int64_t n_tokens : {1, 2, 5, 8, 13}) {
      const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n_tokens * s.cols), 7, -2.0f, 2.0f);
      const int64_t y_stride = s.rows + 3;
      std::vector<float> want(static_cast<size_t>(n_tokens * y_stride), 0.0f);
      ref.matmul(view, x.data(), n_tokens, want.data(), y_stride);
      const std::vector<float> got = gpu_matmul(*be, *w, x, n_tokens, y_stride);
      double worst = 0.0;
      for (int64_t t = 0; t < n_tokens; ++t) {
        float amax = 0.0f;
        for (int64_t c = 0; c < s.cols; ++c) amax = std::fmax(amax, std::fabs(x[t * s.cols + c]));
        for (int64_t r = 0; r < s.rows; ++r) {
          double bound = 0.0;
          for (int64_t c = 0; c < s.cols; ++c) {
            bound += std::fabs(deq[r * s.cols + c]) * (std::fabs(x[t * s.cols + c]) + amax / 100.0);
          }
          const double tol = 2.0 * static_cast<double>(float_terms(s.type, s.cols) + 8) * kU * bound;
          const double a = want[t * y_stride + r], b = got[t * y_stride + r];
          const double err = std::fabs(a - b);
          worst = std::fmax(worst, err / tol);
          if (!(err <= tol)) {
            std::fprintf(stderr, "%s %lldx%lld tokens=%lld t=%lld r=%lld cpu=%.9g gpu=%.9g tol=%g\n",
                         sn::hal::dtype_name(s.type), static_cast<long long>(s.rows), static_cast<long long>(s.cols),
                         static_cast<long long>(n_tokens), static_cast<long long>(t), static_cast<long long>(r), a, b,
                         tol);
            FAIL("GPU matmul differs from the CPU scalar reference");
          }
        }
      }
      if (n_tokens == 8) {
        std::fprintf(stderr, "  matmul %-5s %5lldx%-5lld worst error %.3f of tolerance\n", sn::hal::dtype_name(s.type),
                     static_cast<long long>(s.rows), static_cast<long long>(s.cols), worst);
      }
    }
  }
}

TEST(CudaBackend, MatmulIsBatchInvariant) {
  CudaBackend* be = gpu("CudaBackend.MatmulIsBatchInvariant");
  if (be == nullptr) return;
  for (const Shape& s : kShapes) {
    const std::vector<uint8_t> wd = random_weights(s.type, s.rows, s.cols, 300 + static_cast<uint32_t>(s.rows));
    sn::Result<DeviceWeight> w = be->upload_weight({s.type, s.rows, s.cols, wd.data()});
    CHECK_TRUE(w.ok());
    const int64_t n = 13;
    const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n * s.cols), 9, -1.0f, 1.0f);
    const std::vector<float> batch = gpu_matmul(*be, *w, x, n, s.rows);
    for (int64_t t : {0, 4, 7, 8, 12}) {
      const std::vector<float> xt(x.begin() + t * s.cols, x.begin() + (t + 1) * s.cols);
      const std::vector<float> alone = gpu_matmul(*be, *w, xt, 1, s.rows);
      CHECK_TRUE_TEXT(std::memcmp(alone.data(), batch.data() + t * s.rows, static_cast<size_t>(s.rows) * 4) == 0,
                      (std::string(sn::hal::dtype_name(s.type)) + ": a token's result depends on its batch").c_str());
    }
  }
}

TEST(CudaBackend, GetRowsMatchesDequantizer) {
  CudaBackend* be = gpu("CudaBackend.GetRowsMatchesDequantizer");
  if (be == nullptr) return;
  for (const Shape& s : kShapes) {
    const std::vector<uint8_t> wd = random_weights(s.type, s.rows, s.cols, 500 + static_cast<uint32_t>(s.rows));
    sn::Result<DeviceWeight> w = be->upload_weight({s.type, s.rows, s.cols, wd.data()});
    CHECK_TRUE(w.ok());
    const std::vector<float> deq = dequantize(s.type, wd, s.rows, s.cols);
    const std::vector<int32_t> ids = {0, static_cast<int32_t>(s.rows - 1), static_cast<int32_t>(s.rows / 2), 0,
                                      static_cast<int32_t>(s.rows / 3)};
    const int64_t n = static_cast<int64_t>(ids.size());
    DeviceBuffer dids = must_alloc(*be, n * 4);
    be->copy_to_device(dids.data(), ids.data(), n * 4);
    GuardedDevice out(*be, n * s.cols);
    be->get_rows(*w, dids.as<int32_t>(), n, out.data());
    const std::vector<float> got = out.values();
    for (int64_t i = 0; i < n; ++i) {
      const int cmp = std::memcmp(got.data() + i * s.cols, deq.data() + ids[static_cast<size_t>(i)] * s.cols,
                                  static_cast<size_t>(s.cols) * 4);
      CHECK_TRUE_TEXT(cmp == 0, (std::string(sn::hal::dtype_name(s.type)) + ": get_rows differs from the dequantizer").c_str());
    }
  }
}

TEST(CudaBackend, UnsupportedWeightTypeIsReported) {
  CudaBackend* be = gpu("CudaBackend.UnsupportedWeightTypeIsReported");
  if (be == nullptr) return;
  const std::vector<uint8_t> wd(20 * 4, 0);
  sn::Result<DeviceWeight> w = be->upload_weight({DType::kQ4_1, 4, 32, wd.data()});
  CHECK_FALSE(w.ok());
  CHECK_TRUE(w.status().code() == sn::Status::Code::kNotSupported);
}

TEST(CudaBackend, RmsNormMatchesScalarReference) {
  CudaBackend* be = gpu("CudaBackend.RmsNormMatchesScalarReference");
  if (be == nullptr) return;
  CpuBackend ref(*pool, Isa::kScalar);
  for (int64_t dim : {4097, 64, 1}) {
    const int64_t rows = 7;
    const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(rows * dim), 11, -3.0f, 3.0f);
    const std::vector<float> wt = sn::testing::random_floats(static_cast<size_t>(dim), 12, 0.5f, 1.5f);
    for (bool with_weight : {true, false}) {
      std::vector<float> want(x.size());
      ref.rms_norm(x.data(), with_weight ? wt.data() : nullptr, rows, dim, 1e-5f, want.data());
      DeviceBuffer dx = to_device(*be, x), dw = to_device(*be, wt);
      GuardedDevice y(*be, rows * dim);
      be->rms_norm(dx.as<float>(), with_weight ? dw.as<float>() : nullptr, rows, dim, 1e-5f, y.data());
      const std::vector<float> got = y.values();
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK_TRUE_TEXT(std::fabs(got[i] - want[i]) <= 4 * kU * std::fabs(want[i]), "rms_norm differs");
      }
    }
  }
}

TEST(CudaBackend, RopeMatchesScalarReference) {
  CudaBackend* be = gpu("CudaBackend.RopeMatchesScalarReference");
  if (be == nullptr) return;
  CpuBackend ref(*pool, Isa::kScalar);
  struct Case {
    int64_t heads, head_dim;
    int32_t n_dims;
    bool neox, factors;
    float scale;
  };
  const Case cases[] = {{3, 128, 128, false, false, 1.0f}, {3, 128, 128, true, false, 1.0f},
                        {5, 96, 64, false, true, 0.25f},   {5, 96, 64, true, true, 1.0f}};
  for (const Case& c : cases) {
    const int64_t n_tokens = 6;
    const std::vector<int32_t> pos = {0, 1, 17, 511, 4000, 131071};
    const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n_tokens * c.heads * c.head_dim), 13);
    const std::vector<float> ff = sn::testing::random_floats(static_cast<size_t>(c.n_dims / 2), 14, 1.0f, 8.0f);
    RopeParams p;
    p.n_dims = c.n_dims;
    p.freq_base = 500000.0f;
    p.freq_scale = c.scale;
    p.neox = c.neox;
    p.freq_factors = c.factors ? ff.data() : nullptr;
    std::vector<float> want = x;
    ref.rope(want.data(), n_tokens, c.heads, c.head_dim, pos.data(), p);
    DeviceBuffer dff = to_device(*be, ff);
    DeviceBuffer dpos = must_alloc(*be, n_tokens * 4);
    be->copy_to_device(dpos.data(), pos.data(), n_tokens * 4);
    GuardedDevice y(*be, static_cast<int64_t>(x.size()), &x);
    p.freq_factors = c.factors ? dff.as<float>() : nullptr;
    be->rope(y.data(), n_tokens, c.heads, c.head_dim, dpos.as<int32_t>(), p);
    const std::vector<float> got = y.values();
    const int64_t half = c.n_dims / 2;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t base = (t * c.heads + h) * c.head_dim;
        for (int64_t i = 0; i < c.head_dim; ++i) {
          // The pair partner of element i, for the tolerance's |x0| + |x1|.
          int64_t j = i;
          if (i < c.n_dims) j = c.neox ? (i < half ? i + half : i - half) : (i ^ 1);
          const double tol = 16 * kU * (std::fabs(x[base + i]) + std::fabs(x[base + j]));
          if (!(std::fabs(got[base + i] - want[base + i]) <= tol)) {
            std::fprintf(stderr, "rope neox=%d t=%lld h=%lld i=%lld cpu=%.9g gpu=%.9g\n", c.neox,
                         static_cast<long long>(t), static_cast<long long>(h), static_cast<long long>(i), want[base + i],
                         got[base + i]);
            FAIL("rope differs from the CPU scalar reference");
          }
        }
      }
    }
  }
}

TEST(CudaBackend, SiluMulAndAddMatchScalarReference) {
  CudaBackend* be = gpu("CudaBackend.SiluMulAndAddMatchScalarReference");
  if (be == nullptr) return;
  CpuBackend ref(*pool, Isa::kScalar);
  const int64_t n = 100003;
  const std::vector<float> a = sn::testing::random_floats(n, 21, -12.0f, 12.0f);
  const std::vector<float> b = sn::testing::random_floats(n, 22, -2.0f, 2.0f);
  std::vector<float> want_silu(n), want_add(n);
  ref.silu_mul(a.data(), b.data(), n, want_silu.data());
  ref.add(a.data(), b.data(), n, want_add.data());
  DeviceBuffer da = to_device(*be, a), db = to_device(*be, b);
  GuardedDevice silu(*be, n), sum(*be, n);
  be->silu_mul(da.as<float>(), db.as<float>(), n, silu.data());
  be->add(da.as<float>(), db.as<float>(), n, sum.data());
  const std::vector<float> got_silu = silu.values(), got_add = sum.values();
  for (int64_t i = 0; i < n; ++i) {
    CHECK_TRUE_TEXT(std::fabs(got_silu[i] - want_silu[i]) <= 8 * kU * std::fabs(want_silu[i]) + 1e-30,
                    "silu_mul differs");
    CHECK_TRUE_TEXT(got_add[i] == want_add[i], "add differs");
  }
  // In place (out == gate).
  be->silu_mul(da.as<float>(), db.as<float>(), n, da.as<float>());
  std::vector<float> inplace(n);
  be->copy_to_host(inplace.data(), da.data(), n * 4);
  CHECK_TRUE(be->synchronize().is_ok());
  CHECK_TRUE(std::memcmp(inplace.data(), got_silu.data(), static_cast<size_t>(n) * 4) == 0);
}

TEST(CudaBackend, CopiesRoundTripAndBandwidthIsMeasured) {
  CudaBackend* be = gpu("CudaBackend.CopiesRoundTripAndBandwidthIsMeasured");
  if (be == nullptr) return;
  const std::vector<float> x = sn::testing::random_floats(12345, 31);
  DeviceBuffer a = to_device(*be, x);
  DeviceBuffer b = must_alloc(*be, a.size());
  be->copy_on_device(b.data(), a.data(), a.size());
  std::vector<float> back(x.size());
  be->copy_to_host(back.data(), b.data(), b.size());
  CHECK_TRUE(be->synchronize().is_ok());
  CHECK_TRUE(back == x);
  sn::Result<double> gbs = be->measure_copy_gbs(int64_t{64} << 20, 3);
  CHECK_TRUE(gbs.ok());
  CHECK_TRUE(*gbs > 10.0);
  std::fprintf(stderr, "  %s: device copy %.0f GB/s (read + write)\n", be->props().name.c_str(), *gbs);
}

TEST(CudaBackend, CapturedGraphReplaysTheSameWork) {
  CudaBackend* be = gpu("CudaBackend.CapturedGraphReplaysTheSameWork");
  if (be == nullptr) return;
  const Shape s{DType::kQ4_K, 300, 2048};
  const std::vector<uint8_t> wd = random_weights(s.type, s.rows, s.cols, 77);
  sn::Result<DeviceWeight> w = be->upload_weight({s.type, s.rows, s.cols, wd.data()});
  CHECK_TRUE(w.ok());
  const int64_t n = 3;
  const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n * s.cols), 41);
  const std::vector<float> want = gpu_matmul(*be, *w, x, n, s.rows);
  DeviceBuffer dx = to_device(*be, x);
  DeviceBuffer y = must_alloc(*be, n * s.rows * 4);
  be->fill_zero(y.data(), y.size());
  sn::Result<sn::hal::DeviceGraph> g = be->capture([&] { be->matmul(*w, dx.as<float>(), n, y.as<float>(), s.rows); });
  CHECK_TRUE_TEXT(g.ok(), g.status().to_string().c_str());
  std::vector<float> got(want.size());
  be->copy_to_host(got.data(), y.data(), y.size());
  CHECK_TRUE(be->synchronize().is_ok());
  CHECK_TRUE_TEXT(std::all_of(got.begin(), got.end(), [](float v) { return v == 0.0f; }), "capture ran the work");
  be->replay(*g);
  be->copy_to_host(got.data(), y.data(), y.size());
  CHECK_TRUE(be->synchronize().is_ok());
  CHECK_TRUE(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
}
