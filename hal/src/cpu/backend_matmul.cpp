// CpuBackend::matmul and CpuBackend::get_rows: quantize the activations once per call into
// matmul_scratch_ (tokens split over the pool), then hand out weight-row chunks to the
// pool's threads, each running the ISA's kernel over all tokens of the call.
// Called from the thread that owns the backend; the kernels fan out over the pool.
// Batch invariance: each (token, row) output is computed by the same kernel code whatever
// the chunking (see matmul.h), and activations are quantized per token.
#include <algorithm>
#include <cstring>

#include "cpu/matmul.h"
#include "cpu/quant.h"
#include "supernode/base/check.h"
#include "supernode/hal/cpu_backend.h"

namespace sn::hal {

void CpuBackend::matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t y_stride) {
  SN_CHECK(y_stride >= w.rows) << "y_stride " << y_stride << " < rows " << w.rows;
  if (n_tokens <= 0 || w.rows <= 0) return;
  const std::optional<int64_t> row_bytes = dtype_row_bytes(w.type, w.cols);
  SN_CHECK(row_bytes.has_value()) << dtype_name(w.type) << " row of " << w.cols << " elements";
  const cpu::MatmulKernel kernel = cpu::matmul_kernel(isa_, w.type);
  SN_CHECK(kernel != nullptr) << "no matmul kernel for " << dtype_name(w.type);

  cpu::MatmulTask task;
  task.w = static_cast<const uint8_t*>(w.data);
  task.row_bytes = *row_bytes;
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
    if (n_tokens == 1) {
      cpu::quantize_act(layout, x, cols, act);
    } else {
      pool_.run([&](int thread, int n_threads) {
        for (int64_t t = thread; t < n_tokens; t += n_threads) {
          cpu::quantize_act(layout, x + t * cols, cols, act + t * layout.token_bytes);
        }
      });
    }
  }

  // Row chunks: multiples of 16 rows, at least 4 per thread so a busy core does not hold up
  // the call, and small enough that a chunk's weights stay in L2 while tokens stream.
  const int n_threads = pool_.size();
  int64_t chunk = (w.rows + 4 * n_threads - 1) / (4 * n_threads);
  chunk = std::clamp<int64_t>((chunk + 15) & ~int64_t{15}, 16, 256);
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
