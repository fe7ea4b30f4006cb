// CpuBackend::matmul and get_rows: every weight type x every kernel family against the
// scalar reference on odd shapes with guard regions, the scalar reference against an f32
// matmul of the dequantized weights, and batch invariance (bit-exact across n_tokens,
// companions and thread counts), each also with weights packed by CpuBackend::prepare.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/quant.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/fp16.h"
#include "supernode/hal/thread_pool.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::hal::CpuBackend;
using sn::hal::DType;
using sn::hal::Isa;
using sn::hal::ThreadPool;
using sn::hal::WeightView;

namespace {

const DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                        DType::kQ5_1, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
const Isa kSimdIsas[] = {Isa::kAvx2, Isa::kAvx512};
const DType kPackedTypes[] = {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K};

// Weights of `rows` x `cols`: random bytes, f16 scale fields set to modest values, float
// types uniform in [-1, 1].
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
      if (type == DType::kBF16) put16(w.data() + 2 * i, sn::hal::fp32_to_bf16(f));
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
    if (type == DType::kQ4_1 || type == DType::kQ5_1) put16(p + 2, sn::hal::fp32_to_fp16(-8 * scale(rng)));
    if (type == DType::kQ4_K || type == DType::kQ5_K) put16(p + 2, sn::hal::fp32_to_fp16(scale(rng)));
  }
  return w;
}

bool is_packed_type(DType type) {
  for (DType t : kPackedTypes) {
    if (t == type) return true;
  }
  return false;
}

int64_t cols_for(DType type, int64_t n_blocks_or_elems) {
  return sn::hal::dtype_info(type).block_elems * n_blocks_or_elems;
}

constexpr float kCanary = -12345.678f;

struct Result {
  std::vector<float> y;  // n_tokens * y_stride + guard
  bool guards_ok = true;
};

Result run_matmul(CpuBackend& be, const WeightView& w, const float* x, int64_t n_tokens, int64_t y_stride) {
  Result r;
  const int64_t guard = 19;
  r.y.assign(static_cast<size_t>(n_tokens * y_stride + guard), kCanary);
  be.matmul(w, x, n_tokens, r.y.data(), y_stride);
  for (int64_t i = 0; i < static_cast<int64_t>(r.y.size()); ++i) {
    const bool output = i < n_tokens * y_stride && i % y_stride < w.rows;
    if (!output && std::memcmp(&r.y[i], &kCanary, 4) != 0) r.guards_ok = false;
  }
  return r;
}

// Compares be's matmul of w with the scalar backend's on several batch sizes.
void check_against_reference(CpuBackend& ref, CpuBackend& be, const WeightView& w) {
  const int64_t rows = w.rows, cols = w.cols;
  for (int64_t n_tokens : {1, 3, 7, 33}) {
    const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n_tokens * cols), 7, -2.0f, 2.0f);
    const int64_t y_stride = rows + 5;
    const Result want = run_matmul(ref, w, x.data(), n_tokens, y_stride);
    const Result got = run_matmul(be, w, x.data(), n_tokens, y_stride);
    CHECK_TRUE_TEXT(got.guards_ok, "guard region overwritten");
    CHECK_TRUE(want.guards_ok);
    float max_ref = 0.0f;
    for (float v : want.y) {
      if (v != kCanary) max_ref = std::fmax(max_ref, std::fabs(v));
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        const float a = want.y[t * y_stride + r], b = got.y[t * y_stride + r];
        if (!(std::fabs(a - b) <= 2e-5f * max_ref + 1e-6f)) {
          std::fprintf(stderr, "%s %s rows=%lld tokens=%lld t=%lld r=%lld ref=%g got=%g\n", sn::hal::isa_name(be.isa()),
                       sn::hal::dtype_name(w.type), static_cast<long long>(rows), static_cast<long long>(n_tokens),
                       static_cast<long long>(t), static_cast<long long>(r), a, b);
          FAIL("SIMD result differs from the scalar reference");
        }
      }
    }
  }
}

bool skip_isa(Isa isa) {
  if (sn::hal::isa_supported(isa)) return false;
  sn::testing::skip(std::string("matmul ") + sn::hal::isa_name(isa) + " kernels: not supported by this CPU");
  return true;
}

}  // namespace

TEST_GROUP(Matmul) {
  ThreadPool* pool = nullptr;
  void setup() override { pool = new ThreadPool({.n_threads = 2, .pin = false}); }
  void teardown() override { delete pool; }
};

TEST(Matmul, EveryIsaMatchesScalarReference) {
  CpuBackend ref(*pool, Isa::kScalar);
  for (Isa isa : kSimdIsas) {
    if (skip_isa(isa)) continue;
    CpuBackend be(*pool, isa);
    for (DType type : kTypes) {
      const bool k = sn::hal::dtype_info(type).block_elems == 256;
      const int64_t cols = sn::hal::dtype_info(type).block_elems == 1 ? 77 : cols_for(type, k ? 3 : 7);
      const int64_t rows = 37;
      const std::vector<uint8_t> wd = random_weights(type, rows, cols, 100 + static_cast<uint32_t>(type));
      const WeightView w{type, rows, cols, wd.data()};
      check_against_reference(ref, be, w);
    }
  }
}

TEST(Matmul, PackedMatchesScalarReference) {
  if (skip_isa(Isa::kAvx512)) return;
  CpuBackend ref(*pool, Isa::kScalar);
  for (DType type : kPackedTypes) {
    const bool k = sn::hal::dtype_info(type).block_elems == 256;
    for (int64_t rows : {37, 16, 5, 70}) {
      const int64_t cols = cols_for(type, k ? (rows == 5 ? 1 : 3) : (rows == 5 ? 1 : 7));
      const std::vector<uint8_t> wd = random_weights(type, rows, cols, 500 + static_cast<uint32_t>(rows) + static_cast<uint32_t>(type));
      const WeightView w{type, rows, cols, wd.data()};
      CpuBackend be(*pool, Isa::kAvx512);
      be.prepare(w);
      be.prepare(w);  // idempotent
      check_against_reference(ref, be, w);
    }
  }
}

TEST(Matmul, ScalarMatchesDequantizedF32) {
  CpuBackend be(*pool, Isa::kScalar);
  for (DType type : kTypes) {
    const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
    const int64_t cols = info.block_elems == 1 ? 96 : info.block_elems * (info.block_elems == 256 ? 2 : 6);
    const int64_t rows = 9, n_tokens = 5;
    const std::vector<uint8_t> wd = random_weights(type, rows, cols, 200 + static_cast<uint32_t>(type));
    const WeightView w{type, rows, cols, wd.data()};
    const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n_tokens * cols), 8, -1.0f, 1.0f);
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    const int64_t row_bytes = *sn::hal::dtype_row_bytes(type, cols);
    for (int64_t r = 0; r < rows; ++r) sn::hal::cpu::dequantize_row(type, wd.data() + r * row_bytes, deq.data() + r * cols, cols);
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    be.matmul(w, x.data(), n_tokens, y.data(), rows);
    double err = 0, norm = 0;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0;
        for (int64_t c = 0; c < cols; ++c) want += static_cast<double>(deq[r * cols + c]) * x[t * cols + c];
        err += (want - y[t * rows + r]) * (want - y[t * rows + r]);
        norm += want * want;
      }
    }
    // Activation quantization: 8-bit ~ 1e-5 NMSE, f16 ~ 1e-7, bf16 ~ 1e-5, f32 exact-ish.
    const double tol = type == DType::kF32 ? 1e-10 : type == DType::kF16 ? 1e-6 : 2e-4;
    if (!(err / norm < tol)) {
      std::fprintf(stderr, "%s: nmse %g\n", sn::hal::dtype_name(type), err / norm);
      FAIL("scalar matmul differs from the dequantized f32 product");
    }
  }
}

namespace {

void check_batch_invariance(ThreadPool& pool, bool packed) {
  ThreadPool one({.n_threads = 1, .pin = false});
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (skip_isa(isa)) continue;
    CpuBackend be2(pool, isa);
    CpuBackend be1(one, isa);
    for (DType type : kTypes) {
      if (packed && !is_packed_type(type)) continue;
      const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
      const int64_t cols = info.block_elems == 1 ? 133 : info.block_elems * (info.block_elems == 256 ? 3 : 9);
      const int64_t rows = 70, n_tokens = 37;
      const std::vector<uint8_t> wd = random_weights(type, rows, cols, 300 + static_cast<uint32_t>(type));
      const WeightView w{type, rows, cols, wd.data()};
      if (packed) {
        be1.prepare(w);
        be2.prepare(w);
      }
      const std::vector<float> x = sn::testing::random_floats(static_cast<size_t>(n_tokens * cols), 9, -1.5f, 1.5f);
      std::vector<float> all(static_cast<size_t>(n_tokens * rows)), all1(all.size());
      be2.matmul(w, x.data(), n_tokens, all.data(), rows);
      be1.matmul(w, x.data(), n_tokens, all1.data(), rows);
      CHECK_TRUE_TEXT(std::memcmp(all.data(), all1.data(), all.size() * 4) == 0, "differs between 1 and 2 threads");
      for (int64_t t : {0, 5, 17, 36}) {
        std::vector<float> one_y(static_cast<size_t>(rows));
        be2.matmul(w, x.data() + t * cols, 1, one_y.data(), rows);
        CHECK_TRUE_TEXT(std::memcmp(one_y.data(), all.data() + t * rows, rows * 4) == 0, "token alone differs");
        // The same token among 3 others, at another position in the call.
        std::vector<float> x4(static_cast<size_t>(4 * cols));
        std::memcpy(x4.data(), x.data() + ((t + 1) % n_tokens) * cols, cols * 4);
        std::memcpy(x4.data() + 2 * cols, x.data() + t * cols, cols * 4);
        std::memcpy(x4.data() + cols, x.data() + ((t + 2) % n_tokens) * cols, cols * 4);
        std::memcpy(x4.data() + 3 * cols, x.data() + ((t + 3) % n_tokens) * cols, cols * 4);
        std::vector<float> y4(static_cast<size_t>(4 * rows));
        be1.matmul(w, x4.data(), 4, y4.data(), rows);
        if (std::memcmp(y4.data() + 2 * rows, all.data() + t * rows, rows * 4) != 0) {
          std::fprintf(stderr, "%s %s token %lld\n", sn::hal::isa_name(isa), sn::hal::dtype_name(type),
                       static_cast<long long>(t));
          FAIL("token among other companions differs");
        }
      }
    }
  }
}

}  // namespace

TEST(Matmul, BatchInvariant) { check_batch_invariance(*pool, false); }

TEST(Matmul, PackedBatchInvariant) { check_batch_invariance(*pool, true); }

TEST(Matmul, GetRowsMatchesDequantize) {
  CpuBackend be(*pool, Isa::kScalar);
  for (DType type : kTypes) {
    const int64_t cols = sn::hal::dtype_info(type).block_elems == 1 ? 45 : cols_for(type, 2);
    const int64_t rows = 11;
    const std::vector<uint8_t> wd = random_weights(type, rows, cols, 400 + static_cast<uint32_t>(type));
    const WeightView w{type, rows, cols, wd.data()};
    const int32_t ids[] = {3, 0, 10, 3};
    std::vector<float> out(4 * cols), want(cols);
    be.get_rows(w, ids, 4, out.data());
    const int64_t row_bytes = *sn::hal::dtype_row_bytes(type, cols);
    for (int i = 0; i < 4; ++i) {
      sn::hal::cpu::dequantize_row(type, wd.data() + ids[i] * row_bytes, want.data(), cols);
      CHECK_TRUE(std::memcmp(want.data(), out.data() + i * cols, cols * 4) == 0);
    }
  }
}
