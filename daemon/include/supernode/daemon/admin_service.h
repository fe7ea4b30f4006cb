// AdminService: everything an administrator of the box does (tenants, keys, models, usage,
// audit, moderation terms, web UI users, backup, first-run setup, the hardware view), with
// plain request and result structs. Its two transports map bytes to these calls and back:
// the admin Unix socket of the `supernode` CLI (admin.h) and the HTTP admin API of the web
// UI (daemon/ADMIN_API.md). No admin behaviour exists in a transport. Every change goes
// through the StateStore, which writes it to the audit log under the caller's actor name
// ("admin uid 0", "web alice").
//
//   AdminService admin(options, state, registry, moderation);
//   Result<CreatedKey> k = admin.create_key({.tenant = "lab"}, AdminActor{"web alice"});
//
// Thread safety: every method may be called from any thread; long calls (imports, model
// loads, backups) block their caller, so transports call them off their I/O threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/moderation.h"
#include "supernode/storage/state_store.h"

namespace sn::daemon {

struct AdminServiceOptions {
  std::string models_dir;                  // where imports copy model files
  std::string state_dir;                   // holds setup-token while setup is required
  std::chrono::milliseconds drain{30000};  // an unload waits this long for requests
  // A tenant created without rpm, tpm or concurrency gets these ([quotas]); an explicit 0
  // means no limit of that kind.
  storage::Limits default_tenant_limits;
  std::vector<std::string> kv_dirs;        // the KV disk tier's directories (hardware view)
  // Model import sources: a path must be under one of these (empty: anywhere the daemon
  // may read). A USB stick's mount point, say.
  std::vector<std::string> import_roots;
};

// Who asks: the audit log's actor.
struct AdminActor {
  std::string name;  // "admin uid 0", "web alice"
};

// Quota fields of a request: absent leaves the value as it is (or takes the default).
struct LimitsPatch {
  std::optional<int64_t> rpm, tpm, concurrency;
  std::optional<std::vector<std::string>> models;
};

struct CreateTenantRequest {
  std::string name;
  LimitsPatch limits;
};

struct CreateKeyRequest {
  std::string tenant;
  std::string label;
  LimitsPatch limits;
};

struct CreatedKey {
  std::string key;  // shown once, never stored
  std::string key_id;
};

// What a model file's GGUF header says.
struct GgufSummary {
  std::string architecture;
  std::string quantization;  // the most common tensor type of its weights ("Q4_K", "F16")
  int64_t context_length = 0;
  int64_t parameters = 0;
};

struct ModelInfo {
  std::string id;
  std::string path;
  std::string sha256;
  int64_t bytes = 0;
  int64_t added_us = 0;
  bool in_catalog = false;
  bool loaded = false;
  bool loading = false;
  bool autoload = false;
  int64_t in_flight = 0;
  std::optional<GgufSummary> gguf;
};

struct ImportJob {
  std::string import_id;
  std::string id;    // the model id it imports as
  std::string path;  // the source
  std::string state;  // "running", "done", "failed"
  int64_t bytes = 0;
  int64_t total = 0;
  std::string error;
  int64_t started_us = 0;
};

struct ModelStatus {
  std::string id;
  int64_t running = 0, waiting = 0, steps = 0, tokens_generated = 0, kv_blocks_used = 0, kv_blocks = 0;
  int64_t host_tier_blocks = 0, disk_tier_blocks = 0;
  double kv_hit_rate = 0;  // prefix-cache hits / lookups, all tiers
};

struct HardwareInfo {
  std::string cpu_model;
  int packages = 0, cores = 0, threads = 0;
  std::string isa;            // the kernel family in use: "avx512", "avx2", "scalar"
  std::vector<std::string> cpu_flags;
  uint64_t memory_total_bytes = 0, memory_available_bytes = 0;
  struct Numa {
    int index = 0;
    uint64_t memory_bytes = 0;
    std::vector<int> cpus;
  };
  std::vector<Numa> numa_nodes;
  struct Gpu {
    std::string name;
    uint64_t memory_total_bytes = 0, memory_free_bytes = 0;
  };
  std::vector<Gpu> gpus;
  struct Disk {
    std::string tier;  // "models", "kv", "state"
    std::string path;
    uint64_t total_bytes = 0, free_bytes = 0;
  };
  std::vector<Disk> disks;
};

class AdminService {
 public:
  AdminService(AdminServiceOptions options, storage::StateStore& state, ModelRegistry& models, Moderation& moderation);
  // Waits for imports in progress.
  ~AdminService();
  AdminService(const AdminService&) = delete;
  AdminService& operator=(const AdminService&) = delete;

  // Tenants and keys. Errors: invalid_argument (names, limits), not_found.
  [[nodiscard]] Result<storage::TenantRecord> create_tenant(const CreateTenantRequest& req, const AdminActor& actor);
  [[nodiscard]] Result<std::vector<storage::TenantRecord>> list_tenants() const;
  [[nodiscard]] Result<storage::TenantRecord> update_tenant(const std::string& name, const LimitsPatch& limits,
                                                            const AdminActor& actor);
  [[nodiscard]] Result<CreatedKey> create_key(const CreateKeyRequest& req, const AdminActor& actor);
  [[nodiscard]] Result<std::vector<storage::ApiKeyRecord>> list_keys(const std::string& tenant) const;
  [[nodiscard]] Status revoke_key(const std::string& key_id, const AdminActor& actor);

  // Usage (buffered usage is flushed first) and the audit log.
  [[nodiscard]] Result<std::vector<storage::UsageRow>> usage(const storage::UsageQuery& query);
  [[nodiscard]] Result<std::vector<storage::AuditRecord>> audit(const storage::AuditQuery& query) const;
  [[nodiscard]] Result<storage::AuditVerification> verify_audit() const;
  // A consistent copy of the state database at `path` (audited).
  [[nodiscard]] Status backup(const std::string& path, const AdminActor& actor);

  // Models. import_model copies `path` into the models directory (checked as GGUF, hashed),
  // calling `progress(bytes, total)` about every 1%, and adds it to the catalog; id defaults
  // to the file's stem. start_import does the same on a thread of its own and returns at
  // once; imports() and import_job() follow it.
  [[nodiscard]] Result<storage::ModelRecord> import_model(const std::string& path, const std::string& id,
                                                          const AdminActor& actor,
                                                          const std::function<void(int64_t, int64_t)>& progress = {});
  [[nodiscard]] Result<ImportJob> start_import(const std::string& path, const std::string& id, const AdminActor& actor);
  [[nodiscard]] std::vector<ImportJob> imports() const;
  [[nodiscard]] std::optional<ImportJob> import_job(const std::string& import_id) const;
  [[nodiscard]] Result<std::vector<ModelInfo>> list_models() const;
  [[nodiscard]] Status load_model(const std::string& id, const AdminActor& actor);
  [[nodiscard]] Status unload_model(const std::string& id, const AdminActor& actor);
  [[nodiscard]] Status remove_model(const std::string& id, const AdminActor& actor);
  [[nodiscard]] std::vector<ModelStatus> status() const;

  // Content moderation's terms; a change is in effect for the next request. Returns the
  // number of terms after the change.
  [[nodiscard]] Result<size_t> add_moderation_term(const std::string& term, const std::string& scope,
                                                   const AdminActor& actor);
  [[nodiscard]] Result<size_t> remove_moderation_term(const std::string& term, const AdminActor& actor);
  [[nodiscard]] Result<std::vector<storage::ModerationTerm>> list_moderation_terms() const;

  // Web UI users. First-run setup: while no user exists, a one-time token is in
  // STATE_DIR/setup-token (mode 0600); setup() with it creates the first admin and deletes
  // the token. Errors: failed_precondition (set up already), permission_denied (token).
  [[nodiscard]] bool setup_required() const;
  // Writes a new setup token when setup is required and none is there; returns its path.
  [[nodiscard]] Result<std::string> ensure_setup_token();
  [[nodiscard]] Result<storage::UserRecord> setup(const std::string& token, const std::string& username,
                                                  const std::string& password);
  // The user when the password is right (the last login is recorded), nullopt otherwise.
  [[nodiscard]] Result<std::optional<storage::UserRecord>> check_password(const std::string& username,
                                                                          const std::string& password);
  [[nodiscard]] Result<std::vector<storage::UserRecord>> list_users() const;
  [[nodiscard]] Result<std::optional<storage::UserRecord>> find_user(const std::string& username) const;
  [[nodiscard]] Result<storage::UserRecord> create_user(const std::string& username, const std::string& password,
                                                        const std::string& role, const AdminActor& actor);
  [[nodiscard]] Result<storage::UserRecord> update_user(const std::string& username,
                                                        const std::optional<std::string>& password,
                                                        const std::optional<std::string>& role, const AdminActor& actor);
  [[nodiscard]] Status delete_user(const std::string& username, const AdminActor& actor);

  // What the HAL found, and the disks the box writes to.
  [[nodiscard]] HardwareInfo hardware() const;

  // Records an event of a transport in the audit log (a login, a failed login).
  void audit_event(const AdminActor& actor, const std::string& action, const std::string& detail);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::daemon
