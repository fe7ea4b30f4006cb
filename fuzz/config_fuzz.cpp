// libFuzzer target: supernoded's TOML configuration (daemon/config.h), parse_config on
// arbitrary text, named "fuzz.toml" in messages. Every input either gives a config that
// passes the checks parse_config promises (absolute paths, a non-empty listen address,
// unique model ids, disk_dirs filled) or an error that names the file. toml++ throws on a
// syntax error; parse_config must catch it: an exception escaping here is a finding.
// Seeds: corpus/config/ (image/supernode.toml among them); dictionary: config.dict.
// Thread safety: libFuzzer calls the entry point from one thread.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "supernode/base/check.h"
#include "supernode/daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sn::Result<sn::daemon::DaemonConfig> c = sn::daemon::parse_config(text, "fuzz.toml");
  if (!c.ok()) {
    const std::string& m = c.status().message();
    SN_CHECK(!m.empty() && m.find("fuzz.toml") != std::string::npos) << c.status().to_string();
    return 0;
  }
  SN_CHECK(!c->kv.disk_dirs.empty()) << "kv.disk_dirs left empty";
  std::set<std::string> ids;
  for (const sn::daemon::ModelConfig& m : c->models) {
    SN_CHECK(ids.insert(m.id).second) << "model id " << m.id << " accepted twice";
  }
  (void)sn::daemon::is_loopback(c->listen);
  (void)sn::daemon::is_loopback(c->metrics.listen);
  return 0;
}
