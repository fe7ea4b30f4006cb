// libFuzzer target: one request line of the admin socket (daemon/admin.h), handled by
// AdminServer::handle exactly as the socket loop calls it, without the socket. The server
// runs over a StateStore in a temp directory (on /dev/shm when there is one), an empty
// ModelRegistry whose loader always fails, and a Moderation. Every answer must be one JSON
// object on one line with a boolean "ok".
//
// Paths in requests are the one thing not taken from the input, so that no command reads
// or writes outside the temp directory: "backup" writes TMP/backup.db, "models.import"
// reads TMP/tiny.gguf (a valid tiny model, when the path ends in .gguf) or TMP/junk.bin.
// The line is re-serialized only for those two commands; every other line is handled as
// it came.
// Seeds: corpus/admin/; dictionary: admin.dict.
// Thread safety: libFuzzer calls the entry points from one thread.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "supernode/base/check.h"
#include "supernode/daemon/admin.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/moderation.h"
#include "supernode/engine/model_gen.h"
#include "supernode/storage/state_store.h"

namespace {

using json = nlohmann::json;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "admin_fuzz: set-up failed: %s\n", why.c_str());
  std::abort();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
  if (!f) die("cannot write " + path);
}

// The line with its paths pointed into the temp directory, or the line itself.
std::string confine_paths(const std::string& line, const std::string& dir) {
  json req = json::parse(line.substr(0, line.find('\n')), nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object()) return line;
  auto cmd = req.find("cmd");
  auto path = req.find("path");
  if (cmd == req.end() || !cmd->is_string() || path == req.end() || !path->is_string()) return line;
  const std::string c = cmd->get<std::string>();
  const std::string p = path->get<std::string>();
  if (c == "backup" && !p.empty()) {
    *path = dir + "/backup.db";
  } else if (c == "models.import" && !p.empty()) {
    *path = dir + (p.ends_with(".gguf") ? "/tiny.gguf" : "/junk.bin");
  } else {
    return line;
  }
  return req.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Destroyed at exit (in reverse order of the members), removing the temp directory.
struct Fixture {
  std::string dir;
  std::unique_ptr<sn::storage::StateStore> state;
  std::unique_ptr<sn::daemon::ModelRegistry> models;
  std::unique_ptr<sn::daemon::Moderation> moderation;
  std::unique_ptr<sn::daemon::AdminService> service;
  std::unique_ptr<sn::daemon::AdminServer> admin;

  Fixture() {
    std::string tmpl = (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    tmpl += "/supernode-admin-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp " + tmpl);
    dir = tmpl;
    sn::engine::TinyModelSpec spec;
    spec.n_embd = 16;
    spec.n_layer = 1;
    spec.n_head = 2;
    spec.n_head_kv = 1;
    spec.n_ff = 32;
    sn::Result<std::string> tiny = sn::engine::generate_tiny_model(spec);
    if (!tiny.ok()) die(tiny.status().to_string());
    write_file(dir + "/tiny.gguf", *tiny);
    write_file(dir + "/junk.bin", "not a model\n");
    sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(dir + "/state.db");
    if (!st.ok()) die(st.status().to_string());
    state = std::move(*st);
    models = std::make_unique<sn::daemon::ModelRegistry>(
        [](const std::string& id, const std::string&) -> sn::Result<std::shared_ptr<sn::daemon::ModelHost>> {
          return sn::Status::not_supported("model " + id, "the fuzz target loads no models");
        });
    moderation = std::make_unique<sn::daemon::Moderation>();
    sn::daemon::AdminServiceOptions so;
    so.models_dir = dir + "/models";
    so.state_dir = dir;
    so.drain = std::chrono::milliseconds(0);
    service = std::make_unique<sn::daemon::AdminService>(so, *state, *models, *moderation);
    sn::daemon::AdminOptions o;
    o.socket_path = dir + "/admin.sock";  // never bound: start() is not called
    admin = std::make_unique<sn::daemon::AdminServer>(o, *service);
    // OpenSSL keeps per-thread state (its DRBG, error queue) behind pthread keys, which
    // LeakSanitizer does not scan: the first random bytes drawn on the store's writer
    // thread, or the first SHA-256 of an import, would read as a leak of whichever input
    // came first. Draw them here, before libFuzzer counts allocations.
    for (const char* warm_up : {R"({"cmd":"tenants.create","name":"warm-up"})",
                                R"({"cmd":"keys.create","tenant":"warm-up"})",
                                R"({"cmd":"models.import","path":"/x.gguf","id":"warm-up"})",
                                R"({"cmd":"models.remove","id":"warm-up"})"}) {
      (void)admin->handle(confine_paths(warm_up, dir), 0, {});
    }
  }
  ~Fixture() {
    admin.reset();
    service.reset();
    moderation.reset();
    models.reset();
    state.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture fx;
  return fx;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& fx = fixture();
  // The socket loop hands over the first line of what the peer sent.
  std::string line(reinterpret_cast<const char*>(data), size);
  line = confine_paths(line.substr(0, line.find('\n')), fx.dir);
  int progress_lines = 0;
  const std::string answer = fx.admin->handle(line, static_cast<unsigned>(size % 2 == 0 ? 0 : 1000),
                                              [&](const std::string& p) {
                                                ++progress_lines;
                                                SN_CHECK(p.find('\n') == std::string::npos) << p;
                                              });
  SN_CHECK(!answer.empty() && answer.back() == '\n' && answer.find('\n') == answer.size() - 1) << answer;
  const json res = json::parse(answer, nullptr, /*allow_exceptions=*/false);
  SN_CHECK(!res.is_discarded() && res.is_object() && res.contains("ok") && res["ok"].is_boolean()) << answer;
  if (!res["ok"].get<bool>()) {
    SN_CHECK(res.contains("error") && res["error"].is_string() && !res["error"].get<std::string>().empty()) << answer;
  }
  (void)progress_lines;
  return 0;
}
