// CUDA device discovery and copy-bandwidth measurement (the CUDA half of discover_gpus)
// and the device queries CudaBackend::create uses. The runtime is linked statically and
// loads the driver at run time, so without one every call here fails cleanly with
// cudaErrorInsufficientDriver or cudaErrorNoDevice, which become the "no NVIDIA GPU"
// reason.
// Thread safety: may be called from any thread; the measurements create their own streams.
#include "cuda/device.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>

#include "gpu_probe.h"

namespace sn::hal::cuda {
namespace {

int attr(cudaDeviceAttr a, int device) {
  int v = 0;
  if (cudaDeviceGetAttribute(&v, a, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return v;
}

// Times `copy` (enqueued on `s`) with events: the best of `repeats` after a warm-up, ms.
template <typename F>
Result<double> best_ms(cudaStream_t s, int repeats, F&& copy) {
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
    return Status::internal("cudaEventCreate", error_text(cudaGetLastError()));
  }
  double best = 1e300;
  cudaError_t err = copy();
  for (int i = 0; i < repeats && err == cudaSuccess; ++i) {
    err = cudaEventRecord(e0, s);
    if (err == cudaSuccess) err = copy();
    if (err == cudaSuccess) err = cudaEventRecord(e1, s);
    if (err == cudaSuccess) err = cudaEventSynchronize(e1);
    float ms = 0.0f;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&ms, e0, e1);
    if (err == cudaSuccess) best = std::min(best, static_cast<double>(ms));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (err != cudaSuccess) return Status::internal("timing a copy", error_text(err));
  return best;
}

std::string uuid_text(const cudaUUID_t& u) {
  const auto* b = reinterpret_cast<const unsigned char*>(u.bytes);
  char buf[64];
  std::snprintf(buf, sizeof buf, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return buf;
}

}  // namespace

std::string error_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

std::string no_device_reason(cudaError_t e) {
  int driver = 0;
  if (e == cudaErrorInsufficientDriver && (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0)) {
    return "no CUDA driver is loaded (libcuda.so.1 not found)";
  }
  return error_text(e);
}

Result<GpuProps> query_device(int device) {
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return Status::not_supported("CUDA device " + std::to_string(device), error_text(e));
  cudaDeviceProp p{};
  e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) return Status::internal("cudaGetDeviceProperties", error_text(e));
  GpuProps g;
  g.index = device;
  g.name = p.name;
  g.uuid = uuid_text(p.uuid);
  g.cc_major = p.major;
  g.cc_minor = p.minor;
  g.sm_count = p.multiProcessorCount;
  g.memory_total = static_cast<int64_t>(p.totalGlobalMem);
  g.l2_bytes = p.l2CacheSize;
  g.smem_per_block_optin = static_cast<int64_t>(p.sharedMemPerBlockOptin);
  g.memory_bus_bits = attr(cudaDevAttrGlobalMemoryBusWidth, device);
  g.memory_clock_mhz = attr(cudaDevAttrMemoryClockRate, device) / 1000.0;
  g.peak_dram_gbs = 2.0 * g.memory_clock_mhz * 1e6 * (g.memory_bus_bits / 8.0) / 1e9;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) g.memory_free = static_cast<int64_t>(free_b);
  (void)cudaGetLastError();
  g.usable = p.major >= 8;
  if (!g.usable) g.note = "compute capability below 8.0: the CUDA backend needs Ampere or newer";
  return g;
}

Result<double> measure_d2d_gbs(int64_t bytes, int repeats) {
  void *a = nullptr, *b = nullptr;
  cudaStream_t s = nullptr;
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaMalloc(&a, static_cast<size_t>(bytes));
  if (e == cudaSuccess) e = cudaMalloc(&b, static_cast<size_t>(bytes));
  if (e == cudaSuccess) e = cudaMemsetAsync(a, 1, static_cast<size_t>(bytes), s);
  Result<double> ms = Status::internal("measuring device copies", error_text(e));
  if (e == cudaSuccess) {
    ms = best_ms(s, repeats, [&] { return cudaMemcpyAsync(b, a, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, s); });
  }
  cudaFree(a);
  cudaFree(b);
  if (s != nullptr) cudaStreamDestroy(s);
  (void)cudaGetLastError();
  if (!ms.ok()) return ms.status();
  return 2.0 * static_cast<double>(bytes) / (*ms * 1e-3) / 1e9;
}

Status measure_host_copy_gbs(int64_t bytes, int repeats, double* h2d, double* d2h) {
  void *host = nullptr, *dev = nullptr;
  cudaStream_t s = nullptr;
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaMallocHost(&host, static_cast<size_t>(bytes));
  if (e == cudaSuccess) e = cudaMalloc(&dev, static_cast<size_t>(bytes));
  Status st = e == cudaSuccess ? Status::ok() : Status::internal("measuring host copies", error_text(e));
  if (st.is_ok()) {
    Result<double> up = best_ms(s, repeats, [&] { return cudaMemcpyAsync(dev, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, s); });
    Result<double> down = best_ms(s, repeats, [&] { return cudaMemcpyAsync(host, dev, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, s); });
    if (up.ok() && down.ok()) {
      *h2d = static_cast<double>(bytes) / (*up * 1e-3) / 1e9;
      *d2h = static_cast<double>(bytes) / (*down * 1e-3) / 1e9;
    } else {
      st = up.ok() ? down.status() : up.status();
    }
  }
  cudaFreeHost(host);
  cudaFree(dev);
  if (s != nullptr) cudaStreamDestroy(s);
  (void)cudaGetLastError();
  return st;
}

}  // namespace sn::hal::cuda

namespace sn::hal::detail {

CudaProbe probe_cuda(const GpuDiscoveryOptions& options) {
  CudaProbe r;
  r.built = true;
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    r.error = cuda::no_device_reason(e);
    return r;
  }
  if (n == 0) r.error = "the CUDA driver reports no device";
  for (int d = 0; d < n; ++d) {
    Result<GpuProps> g = cuda::query_device(d);
    if (!g.ok()) {
      GpuProps bad;
      bad.index = d;
      bad.note = g.status().message();
      r.gpus.push_back(bad);
      r.uuids.emplace_back();
      continue;
    }
    if (options.measure_bandwidth && g->usable) {
      Result<double> d2d = cuda::measure_d2d_gbs(options.bandwidth_bytes, 5);
      if (d2d.ok()) {
        g->d2d_gbs = *d2d;
      } else {
        g->note = d2d.status().message();
      }
      Status hs = cuda::measure_host_copy_gbs(std::min<int64_t>(options.bandwidth_bytes, int64_t{64} << 20), 3,
                                              &g->h2d_gbs, &g->d2h_gbs);
      if (!hs.is_ok()) g->note = hs.message();
    }
    r.uuids.push_back(g->uuid);
    r.gpus.push_back(std::move(*g));
  }
  return r;
}

}  // namespace sn::hal::detail
