// Machine discovery through hwloc, translated into our plain Topology value: packages,
// NUMA nodes with their memory and CPUs, physical cores with their first logical CPU,
// cache levels, total memory. Called by `supernode hw`, the engine's start-up log and
// tests; the thread pool reads hwloc directly (hwloc_topology.h) to bind its workers.
// Thread safety: discover_topology() loads a private hwloc topology per call, so calls
// from several threads are independent; describe_topology() is pure.
#include "supernode/hal/topology.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

#include "hwloc_topology.h"
#include "supernode/hal/cpu_features.h"

namespace sn::hal {
namespace {

std::vector<int> cpus_of(hwloc_const_cpuset_t set) {
  std::vector<int> cpus;
  if (set == nullptr) return cpus;
  for (int i = hwloc_bitmap_first(set); i != -1; i = hwloc_bitmap_next(set, i)) cpus.push_back(i);
  return cpus;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (bytes >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / static_cast<double>(1ull << 30));
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / static_cast<double>(1ull << 20));
  } else if (bytes >= 1024) {
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(bytes / 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

// "0-3,8,10-11" from a sorted list.
std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

char cache_kind(hwloc_obj_cache_type_t t) {
  switch (t) {
    case HWLOC_OBJ_CACHE_DATA: return 'd';
    case HWLOC_OBJ_CACHE_INSTRUCTION: return 'i';
    default: return 'u';
  }
}

}  // namespace

Result<Topology> discover_topology() {
  detail::HwlocTopology hw;
  if (!hw.ok()) return Status::internal("hardware topology", "hwloc could not load the machine topology");
  hwloc_topology_t topo = hw.get();

  Topology t;
  t.packages = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE));
  t.logical_cpus = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU));
  const hwloc_obj_type_t core_type = hw.core_type();
  const int n_cores = hwloc_get_nbobjs_by_type(topo, core_type);
  for (int i = 0; i < n_cores; ++i) {
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, core_type, static_cast<unsigned>(i));
    if (core == nullptr || core->cpuset == nullptr) continue;
    const int first = hwloc_bitmap_first(core->cpuset);
    if (first >= 0) t.core_first_cpu.push_back(first);
  }
  if (t.core_first_cpu.empty()) t.core_first_cpu.push_back(0);
  t.physical_cores = static_cast<int>(t.core_first_cpu.size());

  const int n_numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < n_numa; ++i) {
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    if (node == nullptr) continue;
    NumaNode n;
    n.index = static_cast<int>(node->os_index);
    n.memory_bytes = node->attr != nullptr ? node->attr->numanode.local_memory : 0;
    n.cpus = cpus_of(node->cpuset);
    t.numa_nodes.push_back(std::move(n));
  }
  hwloc_obj_t root = hwloc_get_root_obj(topo);
  t.total_memory_bytes = root != nullptr ? root->total_memory : 0;
  if (t.total_memory_bytes == 0) {
    for (const NumaNode& n : t.numa_nodes) t.total_memory_bytes += n.memory_bytes;
  }

  // Caches grouped by (level, kind, size): heterogeneous parts (P/E cores) list each size.
  std::map<std::tuple<int, char, uint64_t>, int> caches;
  for (int depth = 0; depth < hwloc_topology_get_depth(topo); ++depth) {
    const hwloc_obj_type_t type = hwloc_get_depth_type(topo, depth);
    if (!hwloc_obj_type_is_cache(type)) continue;
    const int n = hwloc_get_nbobjs_by_depth(topo, depth);
    for (int i = 0; i < n; ++i) {
      hwloc_obj_t c = hwloc_get_obj_by_depth(topo, depth, static_cast<unsigned>(i));
      if (c == nullptr || c->attr == nullptr) continue;
      const auto key = std::make_tuple(static_cast<int>(c->attr->cache.depth), cache_kind(c->attr->cache.type),
                                       static_cast<uint64_t>(c->attr->cache.size));
      ++caches[key];
    }
  }
  for (const auto& [key, count] : caches) {
    CacheLevel c;
    c.level = std::get<0>(key);
    c.kind = std::get<1>(key);
    c.size_bytes = std::get<2>(key);
    c.count = count;
    t.caches.push_back(c);
  }
  return t;
}

std::string describe_topology(const Topology& topo) {
  std::ostringstream out;
  const CpuFeatures& f = cpu_features();
  out << "cpu: " << (f.brand.empty() ? f.vendor : f.brand) << "\n";
  out << "packages: " << topo.packages << ", physical cores: " << topo.physical_cores
      << ", logical cpus: " << topo.logical_cpus << "\n";
  out << "memory: " << format_bytes(topo.total_memory_bytes) << "\n";
  for (const NumaNode& n : topo.numa_nodes) {
    out << "numa node " << n.index << ": " << format_bytes(n.memory_bytes) << ", cpus "
        << format_cpu_list(n.cpus) << "\n";
  }
  for (const CacheLevel& c : topo.caches) {
    out << "cache L" << c.level << (c.kind == 'u' ? "" : std::string(1, c.kind)) << ": " << c.count
        << " x " << format_bytes(c.size_bytes) << "\n";
  }
  out << "isa: " << isa_name(best_isa()) << " (avx2 " << (f.avx2 ? "yes" : "no") << ", avx512f "
      << (f.avx512f ? "yes" : "no") << ", avx512vnni " << (f.avx512vnni ? "yes" : "no") << ", avx512bf16 "
      << (f.avx512bf16 ? "yes" : "no") << ")\n";
  return out.str();
}

}  // namespace sn::hal
