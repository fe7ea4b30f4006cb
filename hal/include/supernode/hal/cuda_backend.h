// The CUDA compute backend: the transformer forward's operations over device memory on
// one NVIDIA GPU, shaped like CpuBackend (cpu_backend.h) so the engine can drive either.
// Every pointer an op takes is a device pointer (from alloc()); every op is enqueued on
// the backend's stream and returns at once; synchronize() waits and reports errors.
//
//   Result<std::unique_ptr<hal::CudaBackend>> be = hal::CudaBackend::create(0);
//   if (!be.ok()) { /* "no NVIDIA GPU (...)": run on the CPU */ }
//   Result<hal::DeviceWeight> w = (*be)->upload_weight(view);   // once, at load
//   Result<hal::DeviceBuffer> x = (*be)->alloc(n_tokens * view.cols * 4), ...;
//   (*be)->copy_to_device(x->data(), host_x, bytes);
//   (*be)->matmul(*w, x->as<float>(), n_tokens, y->as<float>(), view.rows);
//   (*be)->copy_to_host(host_y, y->data(), bytes);
//   Status s = (*be)->synchronize();
//
// Numerics follow the CPU backend so that the same question gets the same answer on both
// up to float summation order: matmul quantizes activations exactly as CpuBackend does
// (Q8_0 for q4_0/q8_0 weights, Q8_K for q4_K/q6_K, F16 for f16, F32 for f32), with the
// same integer block sums; only the order in which the per-block float terms are added
// differs. Batch invariance holds: a token's result does not depend on the other tokens
// of the call, on n_tokens, or on the GPU's occupancy (each row's reduction is one warp's,
// in a fixed order).
//
// In a build without CUDA create() reports not_supported and nothing else may be called.
// Thread safety: one thread drives a backend (it owns the stream and scratch memory).
// Buffers and weights may be destroyed from any thread once their work has completed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "supernode/base/status.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/gpu.h"

namespace sn::hal {

// Device memory (cudaMalloc), freed by the destructor. Move-only. Freeing does not wait
// for work in flight: destroy a buffer only after synchronize() or when no work uses it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  [[nodiscard]] void* data() const { return data_; }
  [[nodiscard]] int64_t size() const { return size_; }
  template <typename T>
  [[nodiscard]] T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  friend class CudaBackend;
  DeviceBuffer(void* data, int64_t size, int device) : data_(data), size_(size), device_(device) {}
  void reset();

  void* data_ = nullptr;
  int64_t size_ = 0;
  int device_ = -1;
};

// A weight resident on the device, repacked by upload_weight() into the layout the GEMV
// streams with 16-byte coalesced loads: quantized values and block scales in separate
// planes, each row padded to 16 bytes (private: hal/src/cuda/weight_layout.h).
class DeviceWeight {
 public:
  [[nodiscard]] DType type() const { return type_; }
  [[nodiscard]] int64_t rows() const { return rows_; }
  [[nodiscard]] int64_t cols() const { return cols_; }
  // Bytes of the weight in its GGUF layout: what a GEMV must read at least.
  [[nodiscard]] int64_t gguf_bytes() const { return gguf_bytes_; }
  [[nodiscard]] int64_t device_bytes() const { return mem_.size(); }

 private:
  friend class CudaBackend;
  DType type_ = DType::kF32;
  int64_t rows_ = 0, cols_ = 0, gguf_bytes_ = 0;
  DeviceBuffer mem_;
};

// A captured sequence of one backend's work (cudaGraphExec_t), replayed with one launch:
// what decode steps use so that launch overhead does not dominate small models. Move-only.
class DeviceGraph {
 public:
  DeviceGraph() = default;
  DeviceGraph(DeviceGraph&& other) noexcept;
  DeviceGraph& operator=(DeviceGraph&& other) noexcept;
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;
  ~DeviceGraph();

 private:
  friend class CudaBackend;
  void* exec_ = nullptr;
};

class CudaBackend {
 public:
  // A backend on CUDA device `device` with its own stream. Fails with not_supported
  // ("no NVIDIA GPU (reason)") when the build has no CUDA, no driver is loaded, the device
  // does not exist or its compute capability is below 8.0.
  [[nodiscard]] static Result<std::unique_ptr<CudaBackend>> create(int device = 0);
  ~CudaBackend();
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // Name, memory, compute capability, SM count (copy bandwidths are not measured here).
  [[nodiscard]] const GpuProps& props() const;

  // Uninitialized device memory. resource_exhausted when the device is full.
  [[nodiscard]] Result<DeviceBuffer> alloc(int64_t bytes);

  // Stream-ordered copies. Host memory may be pageable (then the call returns once the
  // source has been staged) or pinned. REQUIRES: the ranges are valid for `bytes`.
  void copy_to_device(void* dst, const void* src, int64_t bytes);
  void copy_to_host(void* dst, const void* src, int64_t bytes);
  void copy_on_device(void* dst, const void* src, int64_t bytes);
  void fill_zero(void* dst, int64_t bytes);

  // Waits for all work enqueued so far; reports the first asynchronous error (an invalid
  // access in a kernel, a lost device) as internal.
  [[nodiscard]] Status synchronize();

  // Copies w (host memory, GGUF layout) to the device in this backend's layout. Waits
  // for the copy (the host memory may be released after it returns). not_supported for a
  // type the kernels lack (supported: f32, f16, q4_0, q8_0, q4_K, q6_K).
  [[nodiscard]] Result<DeviceWeight> upload_weight(const WeightView& w);
  [[nodiscard]] static bool weight_type_supported(DType type);

  // y[t * y_stride + r] = sum_c W[r][c] * x[t * w.cols() + c], t < n_tokens, r < w.rows().
  // A dequantizing GEMV: each weight byte is read once per 8 tokens. REQUIRES:
  // y_stride >= w.rows(); x and y do not overlap.
  void matmul(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, int64_t y_stride);

  // out[i * w.cols() + c] = W[ids[i]][c] as f32, bit-identical to the CPU's dequantizer.
  // ids is a device array. REQUIRES: 0 <= ids[i] < w.rows().
  void get_rows(const DeviceWeight& w, const int32_t* ids, int64_t n, float* out);

  // The CpuBackend ops of the same names, with the same contracts, over device memory.
  // rope(): positions and p.freq_factors are device arrays.
  void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y);
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
            const RopeParams& p);
  void silu_mul(const float* gate, const float* up, int64_t n, float* out);
  void add(const float* a, const float* b, int64_t n, float* out);

  // Records what `work` enqueues on the stream into a graph instead of running it.
  // REQUIRES: `work` neither synchronizes nor makes the backend grow its scratch memory
  // (run the same work once uncaptured first); the buffers it uses outlive the graph.
  [[nodiscard]] Result<DeviceGraph> capture(const std::function<void()>& work);
  // Enqueues the graph on the stream.
  void replay(const DeviceGraph& graph);

  // Milliseconds the work enqueued by `work` took on the stream (CUDA events around it).
  // Waits for it. For benchmarks.
  [[nodiscard]] Result<double> time_ms(const std::function<void()>& work);

  // Device-to-device copy bandwidth in GB/s counting bytes read plus written, best of
  // `repeats` copies of `bytes` bytes (the roofline GEMV speeds are compared with).
  [[nodiscard]] Result<double> measure_copy_gbs(int64_t bytes, int repeats);

  // The cudaStream_t the ops are enqueued on, for interop (CUDA graphs, other libraries).
  [[nodiscard]] void* native_stream() const;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::hal
