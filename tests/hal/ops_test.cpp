// CpuBackend's non-matmul ops (rms_norm, rope, silu_mul, add, add_bias, kv_store,
// attention): every ISA family the CPU supports against the scalar reference and against
// an independent plain formula (in double) on random inputs of odd sizes, with guard
// regions around outputs; attention against a naive dense implementation over several
// sequences, GQA and paged blocks in shuffled order; and batch invariance, bit for bit:
// a token computed alone on one thread equals the same token inside a batch on two.
// Families the CPU lacks are reported as skipped on stderr, not passed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/fp16.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::hal::CpuBackend;
using sn::hal::Isa;
using sn::hal::KvLayerView;
using sn::hal::RopeParams;
using sn::hal::ThreadPool;
using sn::hal::TokenPlacement;

namespace {

constexpr size_t kGuard = 32;
constexpr uint32_t kGuardBits = 0x7FC0DEADu;  // a NaN no kernel produces

// The families this CPU runs; prints a skip line once per test for the others.
std::vector<Isa> runnable_isas(const char* test) {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (sn::hal::isa_supported(isa)) {
      out.push_back(isa);
    } else {
      sn::testing::skip(std::string(test) + " [" + sn::hal::isa_name(isa) + "]: this CPU lacks " + sn::hal::isa_name(isa));
    }
  }
  return out;
}

// A float buffer with guard regions on both sides, checked for overruns.
class Guarded {
 public:
  explicit Guarded(size_t n) : n_(n), buf_(n + 2 * kGuard) {
    float g;
    std::memcpy(&g, &kGuardBits, 4);
    std::fill(buf_.begin(), buf_.end(), g);
  }
  Guarded(size_t n, const std::vector<float>& init) : Guarded(n) { std::copy(init.begin(), init.end(), data()); }
  float* data() { return buf_.data() + kGuard; }
  const float* data() const { return buf_.data() + kGuard; }
  std::vector<float> values() const { return {data(), data() + n_}; }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &buf_[i], 4);
      std::memcpy(&b, &buf_[kGuard + n_ + i], 4);
      if (a != kGuardBits || b != kGuardBits) return false;
    }
    return true;
  }

 private:
  size_t n_;
  std::vector<float> buf_;
};

void check_close(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol,
                 const char* what) {
  LONGS_EQUAL(want.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= atol + rtol * std::fabs(want[i]))) {
      char msg[256];
      std::snprintf(msg, sizeof msg, "%s: element %zu: got %.9g want %.9g", what, i, static_cast<double>(got[i]),
                    want[i]);
      FAIL(msg);
    }
  }
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol,
                 const char* what) {
  check_close(got, std::vector<double>(want.begin(), want.end()), atol, rtol, what);
}

void check_bit_equal(const float* a, const float* b, size_t n, const char* what) {
  if (std::memcmp(a, b, n * sizeof(float)) != 0) {
    for (size_t i = 0; i < n; ++i) {
      if (std::memcmp(&a[i], &b[i], 4) != 0) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "%s: element %zu differs: %.9g vs %.9g", what, i, static_cast<double>(a[i]),
                      static_cast<double>(b[i]));
        FAIL(msg);
      }
    }
  }
}

std::vector<float> rounded_f16(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = sn::hal::fp16_to_fp32(sn::hal::fp32_to_fp16(x[i]));
  return out;
}

}  // namespace

TEST_GROUP(CpuOps) {
  ThreadPool pool1{{.n_threads = 1}};
  ThreadPool pool2{{.n_threads = 2}};
};

TEST(CpuOps, RmsNormMatchesReferenceAndFormula) {
  for (int64_t dim : {1, 7, 33, 257, 2048}) {
    for (int64_t rows : {1, 3, 40}) {
      const auto x = sn::testing::random_floats(static_cast<size_t>(rows * dim), 11u + static_cast<uint32_t>(dim), -2, 2);
      const auto w = sn::testing::random_floats(static_cast<size_t>(dim), 12u, 0.5f, 1.5f);
      const float eps = 1e-5f;
      std::vector<double> want(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
        const double scale = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
        for (int64_t i = 0; i < dim; ++i) want[r * dim + i] = x[r * dim + i] * scale * w[i];
      }
      std::vector<float> ref;
      for (Isa isa : runnable_isas("rms_norm")) {
        CpuBackend be(pool2, isa);
        Guarded y(x.size());
        be.rms_norm(x.data(), w.data(), rows, dim, eps, y.data());
        CHECK_TRUE(y.guards_intact());
        check_close(y.values(), want, 1e-6, 1e-5, "rms_norm vs formula");
        if (isa == Isa::kScalar) ref = y.values();
        check_close(y.values(), ref, 1e-6, 1e-6, "rms_norm vs scalar");
        // In place, no weight.
        Guarded z(x.size(), x);
        be.rms_norm(z.data(), nullptr, rows, dim, eps, z.data());
        CHECK_TRUE(z.guards_intact());
        for (int64_t i = 0; i < dim; ++i) DOUBLES_EQUAL(want[i] / w[i], z.data()[i], 1e-5);
      }
    }
  }
}

TEST(CpuOps, RopeMatchesReferenceAndFormula) {
  const int64_t n_tokens = 5, n_heads = 3;
  const std::vector<int32_t> positions = {0, 1, 17, 130, 301};
  for (bool neox : {false, true}) {
    for (int64_t head_dim : {6, 40, 64, 128}) {
      for (int32_t n_dims : {static_cast<int32_t>(head_dim), static_cast<int32_t>(head_dim / 2 - (head_dim / 2) % 2)}) {
        if (n_dims < 2) continue;
        std::vector<float> ff(static_cast<size_t>(n_dims / 2));
        for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + 0.25f * static_cast<float>(i % 3);
        for (bool use_ff : {false, true}) {
          RopeParams p;
          p.n_dims = n_dims;
          p.freq_base = 10000.0f;
          p.freq_scale = use_ff ? 0.5f : 1.0f;
          p.neox = neox;
          p.freq_factors = use_ff ? ff.data() : nullptr;
          const size_t n = static_cast<size_t>(n_tokens * n_heads * head_dim);
          const auto x = sn::testing::random_floats(n, 21u + static_cast<uint32_t>(head_dim));
          std::vector<double> want(x.begin(), x.end());
          for (int64_t t = 0; t < n_tokens; ++t) {
            for (int64_t h = 0; h < n_heads; ++h) {
              const size_t base = static_cast<size_t>((t * n_heads + h) * head_dim);
              for (int64_t i = 0; i < n_dims / 2; ++i) {
                const double theta = positions[t] * static_cast<double>(p.freq_scale) *
                                     std::pow(10000.0, -2.0 * static_cast<double>(i) / n_dims) /
                                     (use_ff ? ff[i] : 1.0f);
                const size_t a = base + static_cast<size_t>(neox ? i : 2 * i);
                const size_t b = base + static_cast<size_t>(neox ? i + n_dims / 2 : 2 * i + 1);
                want[a] = x[a] * std::cos(theta) - x[b] * std::sin(theta);
                want[b] = x[a] * std::sin(theta) + x[b] * std::cos(theta);
              }
            }
          }
          std::vector<float> ref;
          for (Isa isa : runnable_isas("rope")) {
            CpuBackend be(pool2, isa);
            Guarded y(n, x);
            be.rope(y.data(), n_tokens, n_heads, head_dim, positions.data(), p);
            CHECK_TRUE(y.guards_intact());
            check_close(y.values(), want, 2e-3, 0, "rope vs formula");
            if (isa == Isa::kScalar) ref = y.values();
            check_close(y.values(), ref, 1e-6, 1e-6, "rope vs scalar");
          }
        }
      }
    }
  }
}

TEST(CpuOps, SiluMulAddAndBiasMatchReferenceAndFormula) {
  for (int64_t n : {1, 5, 17, 1001, 70001}) {
    const auto g = sn::testing::random_floats(static_cast<size_t>(n), 31u, -12, 12);
    const auto u = sn::testing::random_floats(static_cast<size_t>(n), 32u, -3, 3);
    std::vector<double> want_silu(static_cast<size_t>(n)), want_add(static_cast<size_t>(n));
    for (size_t i = 0; i < want_silu.size(); ++i) {
      want_silu[i] = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      want_add[i] = static_cast<double>(g[i] + u[i]);
    }
    std::vector<float> ref;
    for (Isa isa : runnable_isas("silu_mul/add")) {
      CpuBackend be(pool2, isa);
      Guarded y(static_cast<size_t>(n));
      be.silu_mul(g.data(), u.data(), n, y.data());
      CHECK_TRUE(y.guards_intact());
      check_close(y.values(), want_silu, 1e-6, 1e-5, "silu_mul vs formula");
      if (isa == Isa::kScalar) ref = y.values();
      check_close(y.values(), ref, 1e-6, 1e-5, "silu_mul vs scalar");
      Guarded in_place(static_cast<size_t>(n), g);
      be.silu_mul(in_place.data(), u.data(), n, in_place.data());
      check_bit_equal(in_place.data(), y.data(), static_cast<size_t>(n), "silu_mul in place");

      Guarded s(static_cast<size_t>(n));
      be.add(g.data(), u.data(), n, s.data());
      CHECK_TRUE(s.guards_intact());
      check_close(s.values(), want_add, 0, 0, "add");
    }
  }
  for (int64_t dim : {1, 9, 300, 5003}) {
    const int64_t rows = 13;
    const auto x = sn::testing::random_floats(static_cast<size_t>(rows * dim), 41u);
    const auto bias = sn::testing::random_floats(static_cast<size_t>(dim), 42u);
    for (Isa isa : runnable_isas("add_bias")) {
      CpuBackend be(pool2, isa);
      Guarded y(x.size(), x);
      be.add_bias(y.data(), bias.data(), rows, dim);
      CHECK_TRUE(y.guards_intact());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < dim; ++c) {
          const size_t i = static_cast<size_t>(r * dim + c);
          CHECK_EQUAL(x[i] + bias[static_cast<size_t>(c)], y.data()[i]);
        }
      }
    }
  }
}

namespace {

// A paged KV layout for a few sequences with shuffled physical blocks, K/V written
// through kv_store, and a naive dense attention to compare with.
struct PagedCase {
  int32_t block_size = 4;
  int32_t n_kv_head = 2;
  int32_t head_dim = 24;
  int64_t n_head = 6;
  std::vector<int32_t> seq_len;  // tokens per sequence
  std::vector<std::vector<int32_t>> tables;
  std::vector<const int32_t*> table_ptrs;
  std::vector<uint16_t> k, v;
  // All tokens of all sequences, in order (sequence-major).
  std::vector<int32_t> positions, seq_of_token;
  std::vector<float> kf, vf, q;

  PagedCase(std::vector<int32_t> lens, int32_t bs, int32_t kv_heads, int32_t hd, int64_t heads, uint32_t seed)
      : block_size(bs), n_kv_head(kv_heads), head_dim(hd), n_head(heads), seq_len(std::move(lens)) {
    int32_t n_blocks = 0;
    for (int32_t len : seq_len) n_blocks += (len + bs - 1) / bs;
    n_blocks += 3;  // unused blocks
    std::vector<int32_t> phys(static_cast<size_t>(n_blocks));
    std::iota(phys.begin(), phys.end(), 0);
    std::mt19937 rng(seed);
    std::shuffle(phys.begin(), phys.end(), rng);
    size_t next = 0;
    for (size_t s = 0; s < seq_len.size(); ++s) {
      std::vector<int32_t> table;
      for (int32_t b = 0; b < (seq_len[s] + bs - 1) / bs; ++b) table.push_back(phys[next++]);
      tables.push_back(table);
      for (int32_t p = 0; p < seq_len[s]; ++p) {
        positions.push_back(p);
        seq_of_token.push_back(static_cast<int32_t>(s));
      }
    }
    for (auto& t : tables) table_ptrs.push_back(t.data());
    const size_t row = static_cast<size_t>(kv_heads * hd);
    k.assign(static_cast<size_t>(n_blocks * bs) * row, 0x7E00);  // NaN in unused slots
    v.assign(k.size(), 0x7E00);
    kf = sn::testing::random_floats(positions.size() * row, seed + 1);
    vf = sn::testing::random_floats(positions.size() * row, seed + 2);
    q = sn::testing::random_floats(positions.size() * static_cast<size_t>(heads * hd), seed + 3, -2, 2);
  }
  KvLayerView view() { return {k.data(), v.data(), block_size, n_kv_head, head_dim}; }
  TokenPlacement placement(size_t first, size_t count) const {
    return {static_cast<int64_t>(count), positions.data() + first, seq_of_token.data() + first, table_ptrs.data()};
  }
  size_t n_tokens() const { return positions.size(); }
  size_t q_row() const { return static_cast<size_t>(n_head * head_dim); }

  // Dense attention in double over the f16-rounded K, V and Q.
  std::vector<double> naive(float scale) const {
    const size_t row = static_cast<size_t>(n_kv_head * head_dim);
    const auto kr = rounded_f16(kf), vr = rounded_f16(vf), qr = rounded_f16(q);
    std::vector<double> out(n_tokens() * q_row());
    std::vector<size_t> seq_start(seq_len.size());
    for (size_t s = 1; s < seq_len.size(); ++s) seq_start[s] = seq_start[s - 1] + static_cast<size_t>(seq_len[s - 1]);
    for (size_t t = 0; t < n_tokens(); ++t) {
      const size_t s0 = seq_start[static_cast<size_t>(seq_of_token[t])];
      for (int64_t h = 0; h < n_head; ++h) {
        const int64_t kvh = h / (n_head / n_kv_head);
        const int32_t n = positions[t] + 1;
        std::vector<double> sc(static_cast<size_t>(n));
        double mx = -INFINITY;
        for (int32_t j = 0; j < n; ++j) {
          double dot = 0;
          for (int32_t i = 0; i < head_dim; ++i) {
            dot += static_cast<double>(qr[t * q_row() + static_cast<size_t>(h * head_dim + i)]) *
                   kr[(s0 + static_cast<size_t>(j)) * row + static_cast<size_t>(kvh * head_dim + i)];
          }
          sc[static_cast<size_t>(j)] = dot * scale;
          mx = std::max(mx, sc[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (int32_t i = 0; i < head_dim; ++i) {
          double acc = 0;
          for (int32_t j = 0; j < n; ++j) {
            acc += sc[static_cast<size_t>(j)] * vr[(s0 + static_cast<size_t>(j)) * row + static_cast<size_t>(kvh * head_dim + i)];
          }
          out[t * q_row() + static_cast<size_t>(h * head_dim + i)] = acc / sum;
        }
      }
    }
    return out;
  }
};

}  // namespace

TEST(CpuOps, KvStoreWritesF16AtEachTokensSlot) {
  PagedCase c({5, 9, 1}, 4, 3, 20, 6, 51);
  for (Isa isa : runnable_isas("kv_store")) {
    CpuBackend be(pool2, isa);
    std::fill(c.k.begin(), c.k.end(), 0x7E00);
    std::fill(c.v.begin(), c.v.end(), 0x7E00);
    be.kv_store(c.view(), c.placement(0, c.n_tokens()), c.kf.data(), c.vf.data());
    const size_t row = static_cast<size_t>(c.n_kv_head * c.head_dim);
    size_t written = 0;
    for (size_t t = 0; t < c.n_tokens(); ++t) {
      const int32_t pos = c.positions[t];
      const int64_t slot = static_cast<int64_t>(c.tables[static_cast<size_t>(c.seq_of_token[t])][static_cast<size_t>(pos / c.block_size)]) *
                               c.block_size + pos % c.block_size;
      for (size_t i = 0; i < row; ++i) {
        LONGS_EQUAL(sn::hal::fp32_to_fp16(c.kf[t * row + i]), c.k[static_cast<size_t>(slot) * row + i]);
        LONGS_EQUAL(sn::hal::fp32_to_fp16(c.vf[t * row + i]), c.v[static_cast<size_t>(slot) * row + i]);
      }
      written += row;
    }
    // Nothing else was touched.
    LONGS_EQUAL(c.k.size() - written, static_cast<long>(std::count(c.k.begin(), c.k.end(), uint16_t{0x7E00})));
  }
}

TEST(CpuOps, AttentionMatchesDenseReference) {
  struct Shape {
    std::vector<int32_t> lens;
    int32_t bs, kv_heads, hd;
    int64_t heads;
  };
  const Shape shapes[] = {
      {{1, 7, 23}, 4, 2, 24, 6},   // GQA 3:1, odd block fill
      {{40, 3}, 16, 1, 64, 4},     // MQA
      {{9, 17}, 8, 4, 37, 4},      // odd head_dim, no GQA
      {{70}, 16, 4, 128, 32},      // GQA 8:1
  };
  uint32_t seed = 60;
  for (const Shape& s : shapes) {
    PagedCase c(s.lens, s.bs, s.kv_heads, s.hd, s.heads, seed++);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
    CpuBackend scalar(pool1, Isa::kScalar);
    scalar.kv_store(c.view(), c.placement(0, c.n_tokens()), c.kf.data(), c.vf.data());
    const auto want = c.naive(scale);
    std::vector<float> ref;
    for (Isa isa : runnable_isas("attention")) {
      CpuBackend be(pool2, isa);
      Guarded out(c.n_tokens() * c.q_row());
      be.attention(c.view(), c.placement(0, c.n_tokens()), c.q.data(), c.n_head, scale, out.data());
      CHECK_TRUE(out.guards_intact());
      // The output accumulator is f16 (llama.cpp's flash-attention numerics): each of up
      // to 70 steps rounds it to 11 significant bits, so the error against exact dense
      // attention grows to a few 1e-3; between ISAs only the dot products' summation order
      // differs, which can move an f16 rounding by one unit.
      check_close(out.values(), want, 4e-3, 4e-3, "attention vs dense");
      if (isa == Isa::kScalar) ref = out.values();
      check_close(out.values(), ref, 2e-3, 2e-3, "attention vs scalar");
    }
  }
}

TEST(CpuOps, BatchInvariance) {
  PagedCase c({13, 30, 5}, 8, 2, 40, 8, 77);
  const float scale = 0.15f;
  const size_t nt = c.n_tokens();
  const size_t qr = c.q_row();
  // A wide row keeps the element-wise ops above the serial threshold so they fan out.
  const int64_t dim = 3001;
  const auto x = sn::testing::random_floats(nt * static_cast<size_t>(dim), 81u, -3, 3);
  const auto y = sn::testing::random_floats(nt * static_cast<size_t>(dim), 82u, -3, 3);
  const auto w = sn::testing::random_floats(static_cast<size_t>(dim), 83u);
  RopeParams rp;
  rp.n_dims = 40;
  rp.neox = true;
  for (Isa isa : runnable_isas("batch invariance")) {
    CpuBackend alone(pool1, isa);
    CpuBackend batch(pool2, isa);
    alone.kv_store(c.view(), c.placement(0, nt), c.kf.data(), c.vf.data());

    std::vector<float> b_att(nt * qr), b_norm(x.size()), b_silu(x.size()), b_add(x.size());
    std::vector<float> b_rope(c.q);
    batch.attention(c.view(), c.placement(0, nt), c.q.data(), c.n_head, scale, b_att.data());
    batch.rms_norm(x.data(), w.data(), static_cast<int64_t>(nt), dim, 1e-6f, b_norm.data());
    batch.silu_mul(x.data(), y.data(), static_cast<int64_t>(x.size()), b_silu.data());
    batch.add(x.data(), y.data(), static_cast<int64_t>(x.size()), b_add.data());
    batch.rope(b_rope.data(), static_cast<int64_t>(nt), c.n_head, c.head_dim, c.positions.data(), rp);

    for (size_t t = 0; t < nt; ++t) {
      const size_t off = t * static_cast<size_t>(dim);
      std::vector<float> a(qr), n(static_cast<size_t>(dim)), s(static_cast<size_t>(dim)), ad(static_cast<size_t>(dim));
      std::vector<float> r(c.q.begin() + static_cast<long>(t * qr), c.q.begin() + static_cast<long>((t + 1) * qr));
      alone.attention(c.view(), c.placement(t, 1), c.q.data() + t * qr, c.n_head, scale, a.data());
      alone.rms_norm(x.data() + off, w.data(), 1, dim, 1e-6f, n.data());
      alone.silu_mul(x.data() + off, y.data() + off, dim, s.data());
      alone.add(x.data() + off, y.data() + off, dim, ad.data());
      alone.rope(r.data(), 1, c.n_head, c.head_dim, c.positions.data() + t, rp);
      check_bit_equal(a.data(), b_att.data() + t * qr, qr, "attention");
      check_bit_equal(n.data(), b_norm.data() + off, n.size(), "rms_norm");
      check_bit_equal(s.data(), b_silu.data() + off, s.size(), "silu_mul");
      check_bit_equal(ad.data(), b_add.data() + off, ad.size(), "add");
      check_bit_equal(r.data(), b_rope.data() + t * qr, qr, "rope");
    }
  }
}
