// The admin socket of supernoded: a Unix stream socket (mode 0660) for the local
// `supernode` CLI. A peer is accepted only when its credentials (SO_PEERCRED) show uid 0
// or the daemon's own uid. One request per connection: a JSON object on one line, answered
// by one JSON object on one line: {"ok":true,...} or {"ok":false,"error":"..."}. Every
// change is made through the StateStore, which writes it to the audit log with the actor
// "admin uid N".
//
// Commands ("cmd"):
//   tenants.create {name, rpm?, tpm?, concurrency?, models?[]} -> {tenant}
//   tenants.list                                                -> {tenants:[...]}
//   keys.create {tenant, rpm?, tpm?, concurrency?, models?[], label?} -> {key, key_id}
//   keys.list {tenant?}                                         -> {keys:[...]}
//   keys.revoke {key_id}                                        -> {}
//   usage {tenant?, since_minutes?}                             -> {rows:[...]}
//   audit.verify                                                -> {verified, rows, first_bad_seq, problem}
//   backup {path}                                               -> {}
//   status                                                      -> {models:[{id, running, waiting, ...}]}
//
// Thread safety: a handler of the server's io_context; start/stop from the owner's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/daemon/model_host.h"
#include "supernode/storage/state_store.h"

namespace sn::daemon {

class AdminServer {
 public:
  AdminServer(std::string path, storage::StateStore& state, std::vector<ModelHost*> hosts);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the socket (replacing a stale one) and serves on its own thread. Errors: io_error.
  [[nodiscard]] Status start();
  void stop();

  // Handles one request line (for tests and the socket loop); `uid` is the peer's.
  [[nodiscard]] std::string handle(const std::string& line, unsigned uid);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::daemon
