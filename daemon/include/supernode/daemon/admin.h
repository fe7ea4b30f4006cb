// The admin socket of supernoded: a Unix stream socket (mode 0660) for the local
// `supernode` CLI. A peer is accepted only when its credentials (SO_PEERCRED) show uid 0
// or the daemon's own uid. One request per connection: a JSON object on one line, answered
// by one JSON object on one line: {"ok":true,...} or {"ok":false,"error":"..."}. This is a
// transport of the AdminService (admin_service.h), as the HTTP admin API is: every command
// is one service call, audited with the actor "admin uid N". Unknown fields are refused.
//
// Commands ("cmd"):
//   tenants.create {name, rpm?, tpm?, concurrency?, models?[]} -> {tenant}
//   tenants.update {name, rpm?, tpm?, concurrency?, models?[]}  -> {tenant}
//   tenants.list                                                -> {tenants:[...]}
//   keys.create {tenant, rpm?, tpm?, concurrency?, models?[], label?} -> {key, key_id}
//   keys.list {tenant?}                                         -> {keys:[...]}
//   keys.revoke {key_id}                                        -> {}
//   usage {tenant?, since_minutes?}                             -> {rows:[...]}
//   audit.verify                                                -> {verified, rows, first_bad_seq, problem}
//   backup {path}                                               -> {}
//   audit.record {action, detail?}  an audit row written by `supernode update apply`; action
//                               must start with "update." (update.apply, update.refused,
//                               update.rollback) -> {}
//   status                                                      -> {models:[{id, running, waiting, ...}]}
//   models.import {path, id?}   copies a GGUF into the models directory, checking it and
//                               computing its sha256; progress lines {"progress":{bytes,total}}
//                               come first, then {model:{id, path, sha256, bytes}}
//   models.list                 -> {models:[{id, path, sha256, bytes, loaded, in_catalog, ...}]}
//   models.load {id}            loads a catalog model (and again at every start) -> {}
//   models.unload {id}          drains and unloads it (not loaded at start any more) -> {}
//   models.remove {id}          drops an unloaded model from the catalog (and its imported file)
//   moderation.add {term, scope?: input|output|both}, moderation.remove {term},
//   moderation.list -> {terms:[{term, scope}]}: content moderation's term list, in effect
//                               for the next request
//
// Each connection is served on its own thread, so a long import does not hold up others.
// Thread safety: start/stop from the owner's thread; handle from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/daemon/admin_service.h"

namespace sn::daemon {

struct AdminOptions {
  std::string socket_path;
};

class AdminServer {
 public:
  // `service` must outlive the server.
  AdminServer(AdminOptions options, AdminService& service);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the socket (replacing a stale one) and serves on its own thread. Errors: io_error.
  [[nodiscard]] Status start();
  void stop();

  // Handles one request line (for tests and the socket loop); `uid` is the peer's. Progress
  // lines of long commands go to `progress` (when set) before the answer is returned.
  [[nodiscard]] std::string handle(const std::string& line, unsigned uid,
                                   const std::function<void(const std::string&)>& progress = {});

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::daemon
