// CpuBackend::prepare, CpuBackend::matmul and CpuBackend::get_rows: quantize the
// activations once per call into matmul_scratch_ (tokens split over the pool), then hand out
// weight-row chunks to the pool's threads, each running the ISA's kernel over all tokens of
// the call. Weights packed by prepare() (pack.h) run the packed kernels instead.
// Called from the thread that owns the backend; the kernels fan out over the pool.
// Batch invariance: each (token, row) output is computed by the same kernel code whatever
// the chunking (see matmul.h), and activations are quantized per token.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/matmul.h"
#include "cpu/pack.h"
#include "cpu/quant.h"
#include "supernode/base/check.h"
#include "supernode/hal/cpu_backend.h"

namespace sn::hal {
namespace {

// A cheap check that a prepared weight's source still holds the same bytes.
uint64_t fingerprint(const WeightView& w, int64_t row_bytes) {
  const auto* p = static_cast<const uint8_t*>(w.data);
  const int64_t total = row_bytes * w.rows;
  const int64_t n = std::min<int64_t>(total, 64);
  uint64_t h = 1469598103934665603ull;
  for (int64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  for (int64_t i = total - n; i < total; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}



}  // namespace

void CpuBackend::PackedWeight::FreeBytes::operator()(uint8_t* p) const { std::free(p); }

void CpuBackend::prepare(const WeightView& w) {
  if (isa_ != Isa::kAvx512 || !cpu::pack_supported(w.type) || w.rows <= 0) return;
  const std::optional<int64_t> row_bytes = dtype_row_bytes(w.type, w.cols);
  SN_CHECK(row_bytes.has_value()) << dtype_name(w.type) << " row of " << w.cols << " elements";
  if (find_packed(w) != nullptr) return;
  PackedWeight p;
  p.type = w.type;
  p.rows = w.rows;
  p.cols = w.cols;
  p.group_bytes = cpu::pack_group_bytes(w.type, w.cols);
  p.fingerprint = fingerprint(w, *row_bytes);
  const int64_t n_groups = (w.rows + cpu::kPackRows - 1) / cpu::kPackRows;
  // Not zero-filled here: pack_group writes every byte of its group (in parallel). Aligned
  // to 2 MiB and advised for transparent huge pages: decode streams every weight once per
  // token, and 4 KiB pages would cost a TLB miss every 4 KiB of it.
  const size_t size = static_cast<size_t>(n_groups * p.group_bytes);
  constexpr size_t kHuge = size_t{2} << 20;
  void* mem = nullptr;
  SN_CHECK(posix_memalign(&mem, size >= kHuge ? kHuge : 64, size) == 0) << "out of memory packing " << size << " bytes";
  if (size >= kHuge) (void)madvise(mem, size, MADV_HUGEPAGE);  // advice only: failure is harmless
  p.bytes.reset(static_cast<uint8_t*>(mem));
  uint8_t* dst = p.bytes.get();
  const auto* src = static_cast<const uint8_t*>(w.data);
  const int64_t rb = *row_bytes, gb = p.group_bytes;
  pool_.parallel_for(n_groups, [&](int64_t g, int) {
    const int64_t r0 = g * cpu::kPackRows;
    cpu::pack_group(w.type, src + r0 * rb, rb, std::min<int64_t>(cpu::kPackRows, w.rows - r0), w.cols, dst + g * gb);
  });
  packed_[w.data] = std::move(p);
}

const CpuBackend::PackedWeight* CpuBackend::find_packed(const WeightView& w) const {
  if (packed_.empty()) return nullptr;
  const auto it = packed_.find(w.data);
  if (it == packed_.end()) return nullptr;
  const PackedWeight& p = it->second;
  if (p.type != w.type || p.rows != w.rows || p.cols != w.cols) return nullptr;
  if (p.fingerprint != fingerprint(w, *dtype_row_bytes(w.type, w.cols))) return nullptr;
  return &p;
}

void CpuBackend::matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t y_stride) {
  SN_CHECK(y_stride >= w.rows) << "y_stride " << y_stride << " < rows " << w.rows;
  if (n_tokens <= 0 || w.rows <= 0) return;
  const std::optional<int64_t> row_bytes = dtype_row_bytes(w.type, w.cols);
  SN_CHECK(row_bytes.has_value()) << dtype_name(w.type) << " row of " << w.cols << " elements";
  const PackedWeight* packed = find_packed(w);
  const cpu::MatmulKernel kernel =
      packed != nullptr ? cpu::packed_kernel_avx512(w.type) : cpu::matmul_kernel(isa_, w.type);
  SN_CHECK(kernel != nullptr) << "no matmul kernel for " << dtype_name(w.type);

  cpu::MatmulTask task;
  task.w = packed != nullptr ? packed->bytes.get() : static_cast<const uint8_t*>(w.data);
  task.row_bytes = packed != nullptr ? packed->group_bytes : *row_bytes;
  task.rows = w.rows;
  task.cols = w.cols;
  task.layout = cpu::act_layout(cpu::dot_type(w.type), w.cols);
  task.y = y;
  task.y_stride = y_stride;

  if (task.layout.type == cpu::DotType::kF32) {
    task.act = reinterpret_cast<const uint8_t*>(x);
  } else {
    const auto need = static_cast<size_t>(n_tokens * task.layout.token_bytes + 64);
    if (matmul_scratch_.size() < need) matmul_scratch_.resize(need);
    const auto addr = reinterpret_cast<uintptr_t>(matmul_scratch_.data());
    uint8_t* act = matmul_scratch_.data() + ((64 - (addr & 63)) & 63);
    task.act = act;
    const cpu::ActLayout& layout = task.layout;
    const int64_t cols = w.cols;
    const auto quantize = isa_ == Isa::kScalar ? cpu::quantize_act : cpu::quantize_act_avx2;
    if (n_tokens == 1) {
      quantize(layout, x, cols, act);
    } else {
      pool_.run([&](int thread, int n_threads) {
        for (int64_t t = thread; t < n_tokens; t += n_threads) {
          quantize(layout, x + t * cols, cols, act + t * layout.token_bytes);
        }
      });
    }
  }

  // Row chunks, handed out dynamically. Prefill: multiples of 16 rows, at least 4 per
  // thread so a busy core does not hold up the call, and small enough that a chunk's
  // weights stay in L2 while tokens stream. Decode streams each weight once and is
  // memory-bound: small chunks of 32 rows (the one-token tile) keep both cores busy to the
  // end of the call, where one large leftover chunk would leave the other core waiting.
  const int n_threads = pool_.size();
  int64_t chunk;
  if (n_tokens == 1) {
    chunk = (w.rows + 16 * n_threads - 1) / (16 * n_threads);
    chunk = std::clamp<int64_t>((chunk + 31) & ~int64_t{31}, 32, 128);
  } else {
    chunk = (w.rows + 4 * n_threads - 1) / (4 * n_threads);
    chunk = std::clamp<int64_t>((chunk + 15) & ~int64_t{15}, 16, 256);
  }
  // Packed weights: chunks stay multiples of 16 rows = whole groups.
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  const int64_t rows = w.rows;
  pool_.parallel_for(n_chunks, [&](int64_t c, int) {
    const int64_t r0 = c * chunk;
    kernel(task, r0, std::min(rows, r0 + chunk), 0, n_tokens);
  });
}

void CpuBackend::get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  const std::optional<int64_t> row_bytes = dtype_row_bytes(w.type, w.cols);
  SN_CHECK(row_bytes.has_value()) << dtype_name(w.type) << " row of " << w.cols << " elements";
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t i = 0; i < n; ++i) {
    SN_CHECK(ids[i] >= 0 && ids[i] < w.rows) << "row id " << ids[i] << " of " << w.rows;
    cpu::dequantize_row(w.type, base + ids[i] * *row_bytes, out + i * w.cols, w.cols);
  }
}

}  // namespace sn::hal
