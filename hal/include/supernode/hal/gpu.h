// GPU discovery: which NVIDIA GPUs this machine has and what they can do, for
// `supernode hw`, the daemon's start-up log and the choice of compute backend.
//
// Two sources, both found at run time so that every binary starts on a machine without a
// driver: NVML (libnvidia-ml.so.1, loaded with dlopen) for what the driver knows (driver
// version, name, memory, UUID), and the CUDA runtime (linked statically; it loads
// libcuda.so itself) for what the compute backend will see (compute capability,
// multiprocessors, free memory, measured copy bandwidth). In a build without CUDA only
// NVML answers.
//
//   hal::GpuReport r = hal::discover_gpus({.measure_bandwidth = true});
//   if (r.gpus.empty()) std::printf("%s\n", r.reason.c_str());  // "no NVIDIA GPU (...)"
//
// Thread safety: discover_gpus may be called from any thread; it creates a CUDA context
// on each device it measures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sn::hal {

struct GpuProps {
  int index = 0;                   // CUDA device ordinal (or NVML index when CUDA is absent)
  std::string name;                // "NVIDIA H100 80GB HBM3"
  std::string uuid;                // "GPU-..." (NVML), empty when unknown
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;                // streaming multiprocessors
  int64_t memory_total = 0;        // bytes
  int64_t memory_free = 0;         // bytes, at discovery time
  int64_t l2_bytes = 0;
  int64_t smem_per_block_optin = 0;  // the most shared memory one block may ask for
  int memory_bus_bits = 0;         // 0 when unknown
  double memory_clock_mhz = 0.0;   // 0 when unknown
  // Theoretical DRAM bandwidth, GB/s (1e9 B/s), from bus width and memory clock; 0 when unknown.
  double peak_dram_gbs = 0.0;
  // Measured copy bandwidth in GB/s, 0 when not measured. h2d/d2h: pinned host memory,
  // bytes moved per second. d2d: device-to-device cudaMemcpy, bytes READ PLUS WRITTEN per
  // second (the convention the decode roofline uses: 2 x bytes copied / time).
  double h2d_gbs = 0.0;
  double d2h_gbs = 0.0;
  double d2d_gbs = 0.0;
  bool usable = false;             // the CUDA backend can run on it (CUDA build, cc >= 8.0)
  std::string note;                // why it is not usable, or what failed while probing
};

struct GpuReport {
  std::vector<GpuProps> gpus;
  std::string driver_version;      // NVML's, empty when NVML is absent
  int cuda_driver_version = 0;     // e.g. 13000; 0 when no driver
  bool cuda_built = false;         // this binary has the CUDA backend
  // When gpus is empty: "no NVIDIA GPU (<why>)", a message a user can act on.
  // Otherwise empty, or notes on what one source could not tell.
  std::string reason;
};

struct GpuDiscoveryOptions {
  bool measure_bandwidth = false;  // times copies on each usable GPU (about 0.2 s per GPU)
  int64_t bandwidth_bytes = int64_t{256} << 20;
};

[[nodiscard]] GpuReport discover_gpus(const GpuDiscoveryOptions& options = {});

// A human-readable multi-line description (what `supernode hw` prints).
[[nodiscard]] std::string describe_gpus(const GpuReport& report);

}  // namespace sn::hal
