// A private RAII owner of a loaded hwloc topology, shared by topology.cpp (which turns it
// into our plain Topology value) and thread_pool.cpp (which binds workers to cores' cpusets).
// hwloc types never leave hal/src.
// Thread safety: loading is independent per object; a loaded topology is read-only and
// hwloc allows concurrent reads and binding calls on it.
#pragma once

#include <hwloc.h>

namespace sn::hal::detail {

class HwlocTopology {
 public:
  // Loads the machine's topology (allowed resources only); ok() is false when hwloc fails.
  HwlocTopology() {
    if (hwloc_topology_init(&topo_) != 0) {
      topo_ = nullptr;
      return;
    }
    if (hwloc_topology_load(topo_) != 0) {
      hwloc_topology_destroy(topo_);
      topo_ = nullptr;
    }
  }
  ~HwlocTopology() {
    if (topo_ != nullptr) hwloc_topology_destroy(topo_);
  }
  HwlocTopology(const HwlocTopology&) = delete;
  HwlocTopology& operator=(const HwlocTopology&) = delete;

  [[nodiscard]] bool ok() const { return topo_ != nullptr; }
  [[nodiscard]] hwloc_topology_t get() const { return topo_; }

  // Physical cores, or processing units when the machine reports no cores (some VMs).
  [[nodiscard]] hwloc_obj_type_t core_type() const {
    return hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  }
  [[nodiscard]] int core_count() const {
    const int n = hwloc_get_nbobjs_by_type(topo_, core_type());
    return n > 0 ? n : 1;
  }

 private:
  hwloc_topology_t topo_ = nullptr;
};

}  // namespace sn::hal::detail
