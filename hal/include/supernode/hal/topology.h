// The machine as hwloc sees it: packages, NUMA nodes, physical cores, caches, memory.
// `supernode hw` prints it; the thread pool uses it to place one worker per physical core.
//
// Thread safety: discover_topology() may be called from any thread; results are values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "supernode/base/status.h"

namespace sn::hal {

struct CacheLevel {
  int level = 0;           // 1, 2, 3
  char kind = 'u';         // 'd' data, 'i' instruction, 'u' unified
  uint64_t size_bytes = 0; // of one instance
  int count = 0;           // instances in the machine
};

struct NumaNode {
  int index = 0;
  uint64_t memory_bytes = 0;
  std::vector<int> cpus;  // logical CPU (OS) indices
};

struct Topology {
  int packages = 0;
  int physical_cores = 0;
  int logical_cpus = 0;
  uint64_t total_memory_bytes = 0;
  std::vector<NumaNode> numa_nodes;
  std::vector<CacheLevel> caches;
  // For each physical core, the OS index of its first logical CPU (in core order).
  std::vector<int> core_first_cpu;
};

// Reads the topology through hwloc. Errors name what failed.
[[nodiscard]] Result<Topology> discover_topology();

// A human-readable multi-line description (used by `supernode hw`).
[[nodiscard]] std::string describe_topology(const Topology& topo);

}  // namespace sn::hal
