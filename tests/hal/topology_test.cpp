// hwloc discovery: the machine has at least one core, some caches and memory, and the
// description `supernode hw` prints is non-empty and names the cores.
#include <string>

#include "supernode/hal/topology.h"

#include <CppUTest/TestHarness.h>

TEST_GROUP(Topology){};

TEST(Topology, DiscoversCoresCachesAndMemory) {
  sn::Result<sn::hal::Topology> topo = sn::hal::discover_topology();
  CHECK_TRUE_TEXT(topo.ok(), topo.status().to_string().c_str());
  CHECK(topo->packages >= 1);
  CHECK(topo->physical_cores >= 1);
  CHECK(topo->logical_cpus >= topo->physical_cores);
  LONGS_EQUAL(topo->physical_cores, static_cast<long>(topo->core_first_cpu.size()));
  for (int cpu : topo->core_first_cpu) CHECK(cpu >= 0);
  CHECK_FALSE(topo->caches.empty());
  for (const sn::hal::CacheLevel& c : topo->caches) {
    CHECK(c.level >= 1);
    CHECK(c.count >= 1);
    CHECK(c.size_bytes > 0);
  }
  CHECK(topo->total_memory_bytes > 0);
  for (const sn::hal::NumaNode& n : topo->numa_nodes) CHECK_FALSE(n.cpus.empty());
}

TEST(Topology, DescribesTheMachine) {
  sn::Result<sn::hal::Topology> topo = sn::hal::discover_topology();
  CHECK_TRUE(topo.ok());
  const std::string text = sn::hal::describe_topology(*topo);
  CHECK_FALSE(text.empty());
  CHECK(text.find("physical cores: " + std::to_string(topo->physical_cores)) != std::string::npos);
  CHECK(text.find("cache L") != std::string::npos);
}
