// discover_gpus(): NVML (dlopen'ed libnvidia-ml.so.1) for what the driver knows, merged by
// UUID with what the CUDA runtime reports (gpu_probe.h; nothing in a build without CUDA).
// NVML's few entry points are declared here with their C ABI (all take and return plain
// integers, pointers and char buffers); no NVML header is needed at build time.
// Thread safety: may be called from any thread; NVML is initialized and shut down per call.
#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "gpu_probe.h"
#include "supernode/hal/gpu.h"

namespace sn::hal {
namespace {

using NvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
constexpr unsigned kNvmlClockMem = 2;

// What NVML says about one device.
struct NvmlGpu {
  std::string name, uuid;
  int64_t memory_total = 0, memory_free = 0;
  int cc_major = 0, cc_minor = 0;
  int bus_bits = 0;
  double mem_clock_mhz = 0.0;
};

struct NvmlReport {
  bool loaded = false;
  std::string error;
  std::string driver_version;
  std::vector<NvmlGpu> gpus;
};

template <typename F>
F sym(void* lib, const char* name) {
  return reinterpret_cast<F>(dlsym(lib, name));
}

NvmlReport query_nvml() {
  NvmlReport r;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    r.error = "NVML (libnvidia-ml.so.1) not found: no NVIDIA driver installed";
    return r;
  }
  auto init = sym<int (*)()>(lib, "nvmlInit_v2");
  auto shutdown = sym<int (*)()>(lib, "nvmlShutdown");
  auto error_string = sym<const char* (*)(int)>(lib, "nvmlErrorString");
  auto driver_version = sym<int (*)(char*, unsigned)>(lib, "nvmlSystemGetDriverVersion");
  auto count = sym<int (*)(unsigned*)>(lib, "nvmlDeviceGetCount_v2");
  auto handle = sym<int (*)(unsigned, NvmlDevice*)>(lib, "nvmlDeviceGetHandleByIndex_v2");
  auto name = sym<int (*)(NvmlDevice, char*, unsigned)>(lib, "nvmlDeviceGetName");
  auto uuid = sym<int (*)(NvmlDevice, char*, unsigned)>(lib, "nvmlDeviceGetUUID");
  auto memory = sym<int (*)(NvmlDevice, NvmlMemory*)>(lib, "nvmlDeviceGetMemoryInfo");
  auto cc = sym<int (*)(NvmlDevice, int*, int*)>(lib, "nvmlDeviceGetCudaComputeCapability");
  auto bus = sym<int (*)(NvmlDevice, unsigned*)>(lib, "nvmlDeviceGetMemoryBusWidth");
  auto max_clock = sym<int (*)(NvmlDevice, unsigned, unsigned*)>(lib, "nvmlDeviceGetMaxClockInfo");
  if (init == nullptr || shutdown == nullptr || count == nullptr || handle == nullptr) {
    r.error = "NVML lacks nvmlInit_v2/nvmlDeviceGetCount_v2 (driver too old)";
    dlclose(lib);
    return r;
  }
  const int rc = init();
  if (rc != 0) {
    r.error = std::string("nvmlInit failed: ") + (error_string != nullptr ? error_string(rc) : std::to_string(rc));
    dlclose(lib);
    return r;
  }
  r.loaded = true;
  char buf[256];
  if (driver_version != nullptr && driver_version(buf, sizeof buf) == 0) r.driver_version = buf;
  unsigned n = 0;
  if (count(&n) != 0) n = 0;
  for (unsigned i = 0; i < n; ++i) {
    NvmlDevice dev = nullptr;
    if (handle(i, &dev) != 0) continue;
    NvmlGpu g;
    if (name != nullptr && name(dev, buf, sizeof buf) == 0) g.name = buf;
    if (uuid != nullptr && uuid(dev, buf, sizeof buf) == 0) g.uuid = buf;
    NvmlMemory m{};
    if (memory != nullptr && memory(dev, &m) == 0) {
      g.memory_total = static_cast<int64_t>(m.total);
      g.memory_free = static_cast<int64_t>(m.free);
    }
    if (cc != nullptr) (void)cc(dev, &g.cc_major, &g.cc_minor);
    unsigned v = 0;
    if (bus != nullptr && bus(dev, &v) == 0) g.bus_bits = static_cast<int>(v);
    if (max_clock != nullptr && max_clock(dev, kNvmlClockMem, &v) == 0) g.mem_clock_mhz = v;
    r.gpus.push_back(g);
  }
  shutdown();
  dlclose(lib);
  return r;
}

double peak_gbs(int bus_bits, double clock_mhz) { return 2.0 * clock_mhz * 1e6 * (bus_bits / 8.0) / 1e9; }

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

GpuReport discover_gpus(const GpuDiscoveryOptions& options) {
  GpuReport report;
  const NvmlReport nvml = query_nvml();
  report.driver_version = nvml.driver_version;
  const detail::CudaProbe cuda = detail::probe_cuda(options);
  report.cuda_built = cuda.built;
  report.cuda_driver_version = cuda.driver_version;
  if (!cuda.gpus.empty()) {
    report.gpus = cuda.gpus;
    for (GpuProps& g : report.gpus) {
      for (const NvmlGpu& n : nvml.gpus) {
        if (g.uuid.empty() || n.uuid != g.uuid) continue;
        if (g.memory_bus_bits == 0) g.memory_bus_bits = n.bus_bits;
        if (n.mem_clock_mhz > 0) g.memory_clock_mhz = n.mem_clock_mhz;  // NVML's is the maximum
        if (g.memory_bus_bits > 0 && g.memory_clock_mhz > 0) {
          g.peak_dram_gbs = peak_gbs(g.memory_bus_bits, g.memory_clock_mhz);
        }
      }
    }
    if (!nvml.loaded) report.reason = nvml.error;
    return report;
  }
  // No CUDA device: what NVML sees (a driver without a usable CUDA runtime, or a build
  // without CUDA), never usable by the backend.
  for (size_t i = 0; i < nvml.gpus.size(); ++i) {
    const NvmlGpu& n = nvml.gpus[i];
    GpuProps g;
    g.index = static_cast<int>(i);
    g.name = n.name;
    g.uuid = n.uuid;
    g.cc_major = n.cc_major;
    g.cc_minor = n.cc_minor;
    g.memory_total = n.memory_total;
    g.memory_free = n.memory_free;
    g.memory_bus_bits = n.bus_bits;
    g.memory_clock_mhz = n.mem_clock_mhz;
    g.peak_dram_gbs = peak_gbs(n.bus_bits, n.mem_clock_mhz);
    g.note = cuda.built ? "CUDA cannot use it: " + cuda.error : "this build has no CUDA backend (SUPERNODE_CUDA=OFF)";
    report.gpus.push_back(g);
  }
  if (report.gpus.empty()) {
    std::string why = cuda.built ? cuda.error : "this build has no CUDA backend";
    if (!nvml.loaded) why += "; " + nvml.error;
    report.reason = "no NVIDIA GPU (" + why + ")";
  }
  return report;
}

std::string describe_gpus(const GpuReport& r) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "gpu: driver %s, CUDA driver API %d.%d, CUDA backend %s\n",
                r.driver_version.empty() ? "-" : r.driver_version.c_str(), r.cuda_driver_version / 1000,
                (r.cuda_driver_version % 1000) / 10, r.cuda_built ? "built" : "not built");
  out += buf;
  if (r.gpus.empty()) return out + "  " + r.reason + "\n";
  for (const GpuProps& g : r.gpus) {
    std::snprintf(buf, sizeof buf, "  gpu %d: %s, compute %d.%d, %d SMs, %s (%s free), L2 %.0f MB\n", g.index,
                  g.name.c_str(), g.cc_major, g.cc_minor, g.sm_count, gib(g.memory_total).c_str(),
                  gib(g.memory_free).c_str(), static_cast<double>(g.l2_bytes) / 1e6);
    out += buf;
    if (g.peak_dram_gbs > 0) {
      std::snprintf(buf, sizeof buf, "    memory: %d-bit bus at %.0f MHz, peak %.0f GB/s\n", g.memory_bus_bits,
                    g.memory_clock_mhz, g.peak_dram_gbs);
      out += buf;
    }
    if (g.d2d_gbs > 0) {
      std::snprintf(buf, sizeof buf,
                    "    measured: device copy %.0f GB/s (read + write), host->device %.1f GB/s, device->host %.1f GB/s\n",
                    g.d2d_gbs, g.h2d_gbs, g.d2h_gbs);
      out += buf;
    }
    if (!g.uuid.empty()) out += "    uuid: " + g.uuid + "\n";
    out += std::string("    backend: ") + (g.usable ? "usable" : "not usable") + (g.note.empty() ? "" : " (" + g.note + ")") + "\n";
  }
  if (!r.reason.empty()) out += "  note: " + r.reason + "\n";
  return out;
}

}  // namespace sn::hal
