// CudaBackend: device memory, the stream, weight upload (repacking into the GEMV's layout)
// and the ops, each a thin host function that checks its arguments and calls one
// launcher of kernels.h on the backend's stream. Called by the engine's forward pass (and
// tests/benchmarks) from the thread that owns the backend.
// Thread safety: one thread drives a backend; see cuda_backend.h.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "cuda/device.h"
#include "cuda/kernels.h"
#include "supernode/base/check.h"
#include "supernode/hal/cuda_backend.h"

namespace sn::hal {
namespace {

void check_launch(cudaError_t e, const char* what) {
  SN_CHECK(e == cudaSuccess) << what << ": " << cuda::error_text(e);
}

}  // namespace

struct CudaBackend::Impl {
  int device = 0;
  GpuProps props;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev0 = nullptr, ev1 = nullptr;
  DeviceBuffer act;  // quantized activations of matmul

  ~Impl() {
    if (ev0 != nullptr) cudaEventDestroy(ev0);
    if (ev1 != nullptr) cudaEventDestroy(ev1);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

// ---- DeviceBuffer -----------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : data_(o.data_), size_(o.size_), device_(o.device_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_, size_ = o.size_, device_ = o.device_;
    o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}
DeviceBuffer::~DeviceBuffer() { reset(); }
void DeviceBuffer::reset() {
  if (data_ != nullptr) cudaFree(data_);
  data_ = nullptr;
  size_ = 0;
}

// ---- DeviceGraph ------------------------------------------------------------------------

DeviceGraph::DeviceGraph(DeviceGraph&& o) noexcept : exec_(o.exec_) { o.exec_ = nullptr; }
DeviceGraph& DeviceGraph::operator=(DeviceGraph&& o) noexcept {
  if (this != &o) {
    if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
    exec_ = o.exec_;
    o.exec_ = nullptr;
  }
  return *this;
}
DeviceGraph::~DeviceGraph() {
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}

// ---- CudaBackend ------------------------------------------------------------------------

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() {
  if (impl_ != nullptr) {
    cudaSetDevice(impl_->device);
    cudaStreamSynchronize(impl_->stream);
  }
}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(int device) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::not_supported("no NVIDIA GPU", cuda::no_device_reason(e));
  }
  if (device < 0 || device >= n) {
    return Status::not_supported("no NVIDIA GPU", "device " + std::to_string(device) + " of " + std::to_string(n));
  }
  Result<GpuProps> props = cuda::query_device(device);
  if (!props.ok()) return props.status();
  if (!props->usable) return Status::not_supported(props->name, props->note);
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  impl->props = std::move(*props);
  e = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaEventCreate(&impl->ev0);
  if (e == cudaSuccess) e = cudaEventCreate(&impl->ev1);
  if (e != cudaSuccess) return Status::internal("creating a CUDA stream", cuda::error_text(e));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

const GpuProps& CudaBackend::props() const { return impl_->props; }
void* CudaBackend::native_stream() const { return impl_->stream; }

Result<DeviceBuffer> CudaBackend::alloc(int64_t bytes) {
  SN_CHECK(bytes >= 0) << "alloc of " << bytes << " bytes";
  cudaSetDevice(impl_->device);
  void* p = nullptr;
  if (bytes > 0) {
    const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(bytes));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return Status::resource_exhausted("allocating " + std::to_string(bytes) + " bytes on " + impl_->props.name,
                                        cuda::error_text(e));
    }
  }
  return DeviceBuffer(p, bytes, impl_->device);
}

void CudaBackend::copy_to_device(void* dst, const void* src, int64_t bytes) {
  check_launch(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, impl_->stream),
               "copy to device");
}
void CudaBackend::copy_to_host(void* dst, const void* src, int64_t bytes) {
  check_launch(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, impl_->stream),
               "copy to host");
}
void CudaBackend::copy_on_device(void* dst, const void* src, int64_t bytes) {
  check_launch(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, impl_->stream),
               "device copy");
}
void CudaBackend::fill_zero(void* dst, int64_t bytes) {
  check_launch(cudaMemsetAsync(dst, 0, static_cast<size_t>(bytes), impl_->stream), "memset");
}

Status CudaBackend::synchronize() {
  const cudaError_t e = cudaStreamSynchronize(impl_->stream);
  if (e != cudaSuccess) return Status::internal("CUDA stream on " + impl_->props.name, cuda::error_text(e));
  return Status::ok();
}

bool CudaBackend::weight_type_supported(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kQ4_0:
    case DType::kQ8_0:
    case DType::kQ4_K:
    case DType::kQ6_K: return true;
    default: return false;
  }
}

Result<DeviceWeight> CudaBackend::upload_weight(const WeightView& w) {
  if (!weight_type_supported(w.type)) {
    return Status::not_supported("CUDA backend", std::string("no kernels for ") + dtype_name(w.type) + " weights");
  }
  const std::optional<int64_t> row_bytes = dtype_row_bytes(w.type, w.cols);
  if (!row_bytes || w.rows < 0) {
    return Status::invalid_argument("upload_weight", std::string(dtype_name(w.type)) + " row of " +
                                                         std::to_string(w.cols) + " elements");
  }
  const cuda::WeightLayout l = cuda::weight_layout(w.type, w.rows, w.cols);
  Result<DeviceBuffer> mem = alloc(l.bytes);
  if (!mem.ok()) return mem.status();
  Result<DeviceBuffer> raw = alloc(*row_bytes * w.rows);
  if (!raw.ok()) return raw.status();
  fill_zero(mem->data(), l.bytes);
  copy_to_device(raw->data(), w.data, *row_bytes * w.rows);
  check_launch(cuda::launch_repack(l, raw->as<uint8_t>(), *row_bytes, mem->as<uint8_t>(), impl_->stream), "repack");
  SN_RETURN_IF_ERROR(synchronize());
  DeviceWeight dw;
  dw.type_ = w.type;
  dw.rows_ = w.rows;
  dw.cols_ = w.cols;
  dw.gguf_bytes_ = *row_bytes * w.rows;
  dw.mem_ = std::move(*mem);
  return dw;
}

void CudaBackend::matmul(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, int64_t y_stride) {
  SN_CHECK(y_stride >= w.rows()) << "y_stride " << y_stride << " < rows " << w.rows();
  if (n_tokens <= 0 || w.rows() == 0) return;
  const cuda::WeightLayout l = cuda::weight_layout(w.type(), w.rows(), w.cols());
  const cuda::ActLayout al = cuda::act_layout(cuda::act_kind(w.type()), w.cols());
  // Programmatic dependent launch needs compute capability 9.0.
  const bool pdl = impl_->props.cc_major >= 9;
  cuda::DevAct act{};
  act.kind = al.kind;
  act.n = w.cols();
  if (al.kind == cuda::ActKind::kF32) {
    act.base = reinterpret_cast<const uint8_t*>(x);
    act.token_stride = w.cols() * 4;
  } else {
    const int64_t need = al.token_stride * n_tokens;
    if (impl_->act.size() < need) {
      impl_->act = DeviceBuffer();
      Result<DeviceBuffer> b = alloc(need);
      SN_CHECK(b.ok()) << b.status().to_string();
      impl_->act = std::move(*b);
    }
    check_launch(cuda::launch_quantize_act(al, x, n_tokens, impl_->act.as<uint8_t>(), pdl, impl_->stream), "quantize_act");
    act.base = impl_->act.as<uint8_t>();
    act.token_stride = al.token_stride;
    act.qs_offset = al.qs_offset;
    act.d_offset = al.d_offset;
    act.s_offset = al.s_offset;
  }
  // Tokens per launch: up to kMaxGemvTokens, fewer when their activations would not fit
  // in one block's shared memory (f32/f16 weights with very long rows).
  const int64_t per_token = cuda::gemv_token_smem_bytes(w.type(), w.cols());
  const int64_t fit = std::max<int64_t>(impl_->props.smem_per_block_optin, 48 * 1024) / per_token;
  SN_CHECK(fit >= 1) << "a " << w.cols() << "-column " << dtype_name(w.type()) << " row does not fit in shared memory";
  const int64_t chunk = std::min<int64_t>(fit, cuda::kMaxGemvTokens);
  cuda::GemvArgs a{};
  a.w = cuda::dev_weight(l, w.mem_.data());
  a.y_stride = y_stride;
  a.sm_count = impl_->props.sm_count;
  a.pdl = pdl;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    a.n_tokens = static_cast<int>(std::min(chunk, n_tokens - t0));
    a.act = act;
    a.act.base = act.base + t0 * act.token_stride;
    a.y = y + t0 * y_stride;
    cudaError_t e = cudaErrorInvalidValue;
    switch (w.type()) {
      case DType::kF32: e = cuda::launch_gemv_f32(a, impl_->stream); break;
      case DType::kF16: e = cuda::launch_gemv_f16(a, impl_->stream); break;
      case DType::kQ4_0: e = cuda::launch_gemv_q4_0(a, impl_->stream); break;
      case DType::kQ8_0: e = cuda::launch_gemv_q8_0(a, impl_->stream); break;
      case DType::kQ4_K: e = cuda::launch_gemv_q4_k(a, impl_->stream); break;
      case DType::kQ6_K: e = cuda::launch_gemv_q6_k(a, impl_->stream); break;
      default: break;
    }
    check_launch(e, "gemv");
  }
}

void CudaBackend::get_rows(const DeviceWeight& w, const int32_t* ids, int64_t n, float* out) {
  const cuda::WeightLayout l = cuda::weight_layout(w.type(), w.rows(), w.cols());
  check_launch(cuda::launch_get_rows(cuda::dev_weight(l, w.mem_.data()), ids, n, out, impl_->stream), "get_rows");
}

void CudaBackend::rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y) {
  SN_CHECK(dim > 0) << "rms_norm over " << dim << " elements";
  check_launch(cuda::launch_rms_norm(x, weight, n_rows, dim, eps, y, impl_->stream), "rms_norm");
}

void CudaBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                       const RopeParams& p) {
  SN_CHECK(p.n_dims > 0 && p.n_dims % 2 == 0 && p.n_dims <= head_dim)
      << "rope over " << p.n_dims << " of " << head_dim << " dims";
  cuda::RopeArgs a{};
  a.x = x;
  a.n_tokens = n_tokens;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.positions = positions;
  a.n_dims = p.n_dims;
  a.theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));  // as CpuBackend::rope
  a.freq_scale = p.freq_scale;
  a.neox = p.neox;
  a.freq_factors = p.freq_factors;
  check_launch(cuda::launch_rope(a, impl_->stream), "rope");
}

void CudaBackend::silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  check_launch(cuda::launch_silu_mul(gate, up, n, out, impl_->stream), "silu_mul");
}

void CudaBackend::add(const float* a, const float* b, int64_t n, float* out) {
  check_launch(cuda::launch_add(a, b, n, out, impl_->stream), "add");
}

Result<DeviceGraph> CudaBackend::capture(const std::function<void()>& work) {
  cudaError_t e = cudaStreamBeginCapture(impl_->stream, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) return Status::internal("cudaStreamBeginCapture", cuda::error_text(e));
  work();
  cudaGraph_t graph = nullptr;
  e = cudaStreamEndCapture(impl_->stream, &graph);
  if (e != cudaSuccess) return Status::internal("cudaStreamEndCapture", cuda::error_text(e));
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) return Status::internal("cudaGraphInstantiate", cuda::error_text(e));
  DeviceGraph g;
  g.exec_ = exec;
  return g;
}

void CudaBackend::replay(const DeviceGraph& graph) {
  check_launch(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.exec_), impl_->stream), "graph launch");
}

Result<double> CudaBackend::time_ms(const std::function<void()>& work) {
  cudaError_t e = cudaEventRecord(impl_->ev0, impl_->stream);
  work();
  if (e == cudaSuccess) e = cudaEventRecord(impl_->ev1, impl_->stream);
  if (e == cudaSuccess) e = cudaEventSynchronize(impl_->ev1);
  float ms = 0.0f;
  if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, impl_->ev0, impl_->ev1);
  if (e != cudaSuccess) return Status::internal("timing on the CUDA stream", cuda::error_text(e));
  return static_cast<double>(ms);
}

Result<double> CudaBackend::measure_copy_gbs(int64_t bytes, int repeats) {
  cudaSetDevice(impl_->device);
  return cuda::measure_d2d_gbs(bytes, repeats);
}

}  // namespace sn::hal
