// Stand-ins for the CUDA backend in a build without CUDA (SUPERNODE_CUDA=OFF, or AUTO
// where nvcc is absent): discovery reports that the build has no CUDA backend, and
// CudaBackend::create() says so; nothing else may be called (see cuda_backend.h).
// Thread safety: pure functions.
#if !SN_HAVE_CUDA

#include "gpu_probe.h"
#include "supernode/base/check.h"
#include "supernode/hal/cuda_backend.h"

namespace sn::hal {

namespace detail {
CudaProbe probe_cuda(const GpuDiscoveryOptions&) {
  CudaProbe r;
  r.error = "this build has no CUDA backend (SUPERNODE_CUDA=OFF or nvcc absent at build time)";
  return r;
}
}  // namespace detail

struct CudaBackend::Impl {};

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : data_(o.data_), size_(o.size_), device_(o.device_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  data_ = o.data_, size_ = o.size_, device_ = o.device_;
  o.data_ = nullptr, o.size_ = 0;
  return *this;
}
DeviceBuffer::~DeviceBuffer() = default;
void DeviceBuffer::reset() {}

namespace {
[[noreturn]] void unavailable() {
  SN_CHECK(false) << "CudaBackend used in a build without CUDA";
  __builtin_unreachable();
}
}  // namespace

DeviceGraph::DeviceGraph(DeviceGraph&& o) noexcept : exec_(o.exec_) { o.exec_ = nullptr; }
DeviceGraph& DeviceGraph::operator=(DeviceGraph&& o) noexcept {
  exec_ = o.exec_;
  o.exec_ = nullptr;
  return *this;
}
DeviceGraph::~DeviceGraph() = default;

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;
Result<std::unique_ptr<CudaBackend>> CudaBackend::create(int) {
  return Status::not_supported("no NVIDIA GPU", "this build has no CUDA backend (SUPERNODE_CUDA=OFF or nvcc absent at build time)");
}
bool CudaBackend::weight_type_supported(DType) { return false; }
const GpuProps& CudaBackend::props() const { unavailable(); }
void* CudaBackend::native_stream() const { unavailable(); }
Result<DeviceBuffer> CudaBackend::alloc(int64_t) { unavailable(); }
void CudaBackend::copy_to_device(void*, const void*, int64_t) { unavailable(); }
void CudaBackend::copy_to_host(void*, const void*, int64_t) { unavailable(); }
void CudaBackend::copy_on_device(void*, const void*, int64_t) { unavailable(); }
void CudaBackend::fill_zero(void*, int64_t) { unavailable(); }
Status CudaBackend::synchronize() { unavailable(); }
Result<DeviceWeight> CudaBackend::upload_weight(const WeightView&) { unavailable(); }
void CudaBackend::matmul(const DeviceWeight&, const float*, int64_t, float*, int64_t) { unavailable(); }
void CudaBackend::get_rows(const DeviceWeight&, const int32_t*, int64_t, float*) { unavailable(); }
void CudaBackend::rms_norm(const float*, const float*, int64_t, int64_t, float, float*) { unavailable(); }
void CudaBackend::rope(float*, int64_t, int64_t, int64_t, const int32_t*, const RopeParams&) { unavailable(); }
void CudaBackend::silu_mul(const float*, const float*, int64_t, float*) { unavailable(); }
void CudaBackend::add(const float*, const float*, int64_t, float*) { unavailable(); }
Result<DeviceGraph> CudaBackend::capture(const std::function<void()>&) { unavailable(); }
void CudaBackend::replay(const DeviceGraph&) { unavailable(); }
Result<double> CudaBackend::time_ms(const std::function<void()>&) { unavailable(); }
Result<double> CudaBackend::measure_copy_gbs(int64_t, int) { unavailable(); }

}  // namespace sn::hal

#endif  // !SN_HAVE_CUDA
