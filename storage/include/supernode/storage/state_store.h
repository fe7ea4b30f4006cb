// StateStore: the box's durable state in one SQLite database (WAL mode): tenants, API keys
// (only a salted hash is stored; the key is shown once, at creation), per-key usage by the
// minute, the append-only audit log chained by SHA-256, settings, and the model catalog.
// The daemon opens it at start over STATE_DIR/state.db; the admin CLI reaches it through
// the daemon. Schema changes are versioned migrations (PRAGMA user_version), applied in
// order at open, each in its own transaction.
//
//   Result<std::unique_ptr<StateStore>> st = StateStore::open("/var/lib/supernode/state.db");
//   Result<std::optional<NewApiKey>> first = (*st)->bootstrap();   // empty db: tenant default + key
//   Result<std::optional<ApiKeyRecord>> who = (*st)->authenticate(bearer_token);
//   (*st)->record_usage(who->key_id, now_minute, prompt_tokens, completion_tokens);
//
// Writes go through one writer thread (SQLite allows one writer; queuing them keeps callers
// from contending on its lock). Usage is buffered in memory and written by that thread in
// one transaction per flush interval (default 1 s), so a crash loses at most the usage of
// the last interval, never a committed row (synchronous=FULL). Reads use their own
// connection and see every committed write.
//
// Keys look like `sk-sn-<key id: 16 hex>-<secret: 43 base64url chars, 256 bits>`. The key id
// is public (it names the key in lists, logs and the audit log); the secret is stored as
// SHA-256(salt || secret) with a per-key random salt and compared in constant time. A
// 256-bit random secret needs no slow password hash: it cannot be guessed offline.
//
// Audit: each row's hash is SHA-256 over the previous row's hash and the row's fields, each
// length-framed, so editing, inserting or deleting a row breaks every later hash;
// verify_audit() recomputes the chain. With an audit key (StateStoreOptions::audit_key)
// the hash is an HMAC under it: rows before the key stay plain, every row after is keyed,
// and the chain must end keyed.
//
// Admin users of the web UI: a name, a role ("admin" may change anything, "auditor" only
// reads) and an Argon2id hash of the password (libargon2's encoded string, salt and cost
// inside it). A store without users needs first-run setup (count_users() == 0). The store
// keeps at least one admin once there is one, and never logs or audits a password.
//
//   Result<UserRecord> u = (*st)->create_user("alice", password, "admin", "setup");
//   Result<std::optional<UserRecord>> who = (*st)->check_password("alice", password);
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"

namespace sn::storage {

// Quotas of a tenant or a key; 0 (or empty) means no limit of that kind.
struct Limits {
  int64_t rpm = 0;                  // requests per minute
  int64_t tpm = 0;                  // prompt + completion tokens per minute
  int64_t concurrency = 0;          // requests in flight
  std::vector<std::string> models;  // allowed model ids; empty: all

  friend bool operator==(const Limits&, const Limits&) = default;
};

struct TenantRecord {
  int64_t id = 0;
  std::string name;
  std::string cache_salt;  // the prefix-cache salt of the tenant's requests (random at creation)
  Limits limits;
  int64_t created_us = 0;
};

struct ApiKeyRecord {
  std::string key_id;  // public: the 16 hex digits in the key
  std::string tenant;
  Limits limits;
  std::string label;
  int64_t created_us = 0;
  std::optional<int64_t> revoked_us;
};

// A live key and its tenant: what an API request is authorized as.
struct Principal {
  ApiKeyRecord key;
  TenantRecord tenant;
};

struct NewApiKey {
  std::string key;  // the whole key: shown once, never stored
  ApiKeyRecord record;
};

struct UsageRow {
  std::string key_id;
  std::string tenant;
  int64_t minute = 0;  // Unix time / 60
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct AuditRecord {
  int64_t seq = 0;
  int64_t time_us = 0;
  std::string actor;   // who: "admin-socket uid 0", "api key <key id>", "supernoded"
  std::string action;  // what: "tenant.create", "key.revoke", ...
  std::string detail;  // never a secret
  std::string hash;    // hex SHA-256 of the chain up to this row
};

// Filters of usage(const UsageQuery&): rows with from_minute <= minute < to_minute (a
// half-open window), of `tenant` and of `key_id` (each: all when empty).
struct UsageQuery {
  std::string tenant;
  std::string key_id;
  int64_t from_minute = 0;
  int64_t to_minute = std::numeric_limits<int64_t>::max();  // exclusive
};

// Filters of audit_query(): rows with from_us <= time_us < to_us and seq < before_seq (0:
// from the newest row), newest first, at most `limit` of them. `actor` and `action` match
// exactly, or, ending in '*', as a prefix ("user.*" matches "user.create"; "*" matches
// all); empty matches all. The next page of a listing sets before_seq to the last row's seq.
struct AuditQuery {
  int64_t from_us = 0;
  int64_t to_us = std::numeric_limits<int64_t>::max();  // exclusive
  std::string actor;
  std::string action;
  int64_t limit = 1000;    // 1 to kAuditQueryMaxLimit; more is capped
  int64_t before_seq = 0;  // 0: the newest rows; else only rows with seq < before_seq
};
inline constexpr int64_t kAuditQueryMaxLimit = 10000;

struct AuditVerification {
  bool ok = true;
  int64_t rows = 0;
  int64_t first_bad_seq = 0;  // when !ok: the first row whose hash does not follow
  std::string problem;
};

struct ModelRecord {
  std::string id;
  std::string path;
  std::string sha256;
  int64_t bytes = 0;
  int64_t added_us = 0;
};

// A sensitive term of content moderation: requests whose prompt holds it are refused
// (scope input or both); generation that produces it ends with finish_reason
// content_filter (scope output or both). Terms are stored lowercase (ASCII) and matched
// case-insensitively.
struct ModerationTerm {
  std::string term;
  std::string scope;  // "input", "output" or "both"
  int64_t added_us = 0;
};

// An admin user of the web UI (the password hash stays inside the store).
struct UserRecord {
  std::string username;  // 1-64 of [A-Za-z0-9._@-]; unique ignoring ASCII case
  std::string role;      // "admin" or "auditor"
  int64_t created_us = 0;
  std::optional<int64_t> last_login_us;  // the last check_password() that matched
  int64_t password_changed_us = 0;       // creation or the last set_user_password()
};

struct StateStoreOptions {
  int64_t usage_flush_interval_ms = 1000;
  // Every this often the audit log gets one "key.use" row per key used since the last one
  // (requests, prompt and completion tokens); also at close. 0: never.
  int64_t key_use_audit_interval_ms = 300000;
  // The audit key (raw bytes, at least 16): rows are then chained by HMAC-SHA-256 under it,
  // so that someone able to write the database but without the key (kept outside it: the
  // service's credentials directory) cannot recompute the chain after an edit. Empty: plain
  // SHA-256 (anyone able to write the file can recompute it).
  std::string audit_key;
  // The Argon2id cost of new password hashes (memory in KiB, at least 8; passes, at least 1).
  // Existing hashes keep the cost they were made with. Tests use a small cost.
  int argon2_memory_kib = 65536;
  int argon2_iterations = 3;
};

class StateStore {
 public:
  // Opens (creating when missing) the database at `path`, sets WAL mode and applies the
  // migrations it lacks; starts the writer thread. Errors: io_error (cannot open or write),
  // corruption (not a SQLite database, or a schema newer than this build knows).
  [[nodiscard]] static Result<std::unique_ptr<StateStore>> open(const std::string& path,
                                                               const StateStoreOptions& options = {});
  // Flushes buffered usage, stops the writer thread, closes the connections.
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // The schema version in force (the number of migrations applied).
  [[nodiscard]] int64_t schema_version() const;
  // Opening a database of an earlier schema first copies it to PATH.before-vN-from-vM
  // (mode 0600; a failed copy fails open() and nothing migrates): the copy made by this
  // open(), or "" when none was needed.
  [[nodiscard]] const std::string& backup_before_migration() const;

  // On a database without tenants: creates tenant "default" (with `tenant_limits`) and one
  // API key for it, and returns the key (to be written where the admin can read it).
  // nullopt otherwise.
  [[nodiscard]] Result<std::optional<NewApiKey>> bootstrap(const Limits& tenant_limits = {});

  // Tenants. Names: 1-64 of [A-Za-z0-9._-]. create_tenant fails with invalid_argument when
  // the name is taken or malformed.
  [[nodiscard]] Result<TenantRecord> create_tenant(std::string_view name, const Limits& limits, std::string_view actor);
  [[nodiscard]] Result<std::vector<TenantRecord>> list_tenants() const;
  [[nodiscard]] Result<std::optional<TenantRecord>> find_tenant(std::string_view name) const;
  [[nodiscard]] Status set_tenant_limits(std::string_view name, const Limits& limits, std::string_view actor);

  // API keys. create_key fails with not_found when the tenant does not exist.
  [[nodiscard]] Result<NewApiKey> create_key(std::string_view tenant, const Limits& limits, std::string_view label,
                                             std::string_view actor);
  // Keys of `tenant` (all when empty), revoked ones included.
  [[nodiscard]] Result<std::vector<ApiKeyRecord>> list_keys(std::string_view tenant = {}) const;
  // not_found when no such key id; revoking twice is ok.
  [[nodiscard]] Status revoke_key(std::string_view key_id, std::string_view actor);
  // The live (not revoked) key whose secret matches, or nullopt for anything else
  // (malformed, unknown, wrong secret, revoked). Never logs or stores `key`.
  [[nodiscard]] Result<std::optional<ApiKeyRecord>> authenticate(std::string_view key) const;
  // authenticate() and the key's tenant in one step, answered from memory after the first
  // request of a key (the secret is still checked, in constant time, every time). Every
  // change of keys or tenants through this store (create, revoke, limits) empties the
  // cache, so a revoked key fails from the next request on. Unknown key ids are cached as
  // such too (bounded), so random keys cost no database read after the first.
  [[nodiscard]] Result<std::optional<Principal>> authorize(std::string_view key) const;

  // Usage: counted in memory now, written at the next flush (the writer thread flushes every
  // usage_flush_interval_ms). Never fails; the counts are lost only if the process dies
  // before that flush.
  void record_usage(std::string_view key_id, int64_t minute, int64_t prompt_tokens, int64_t completion_tokens);
  // Writes buffered usage now and waits for it.
  [[nodiscard]] Status flush_usage();
  // Rows with minute >= since_minute, for `tenant` (all when empty), oldest first.
  [[nodiscard]] Result<std::vector<UsageRow>> usage(int64_t since_minute, std::string_view tenant = {}) const;
  // Rows matching `query` (see UsageQuery), oldest first, then by key id. Rows still
  // buffered (record_usage() since the last flush) are not seen: flush_usage() first.
  [[nodiscard]] Result<std::vector<UsageRow>> usage(const UsageQuery& query) const;

  // Audit log: appended in order; `detail` must not hold a secret.
  [[nodiscard]] Status audit(std::string_view actor, std::string_view action, std::string_view detail);
  [[nodiscard]] Result<std::vector<AuditRecord>> audit_log(int64_t after_seq = 0, int64_t limit = 1000) const;
  // Rows matching `query` (see AuditQuery), newest first. Errors: invalid_argument (limit
  // below 1).
  [[nodiscard]] Result<std::vector<AuditRecord>> audit_query(const AuditQuery& query) const;
  [[nodiscard]] Result<AuditVerification> verify_audit() const;

  // Admin users. Names: 1-64 of [A-Za-z0-9._@-], compared ignoring ASCII case (the record
  // keeps the case it was created with); roles: "admin" or "auditor"; passwords: 8 to 1024
  // bytes. Errors: invalid_argument (a bad name, role or password, naming the rule),
  // failed_precondition (a name taken; a first user not admin; a change that would leave
  // no admin), not_found (no such user). Hashing takes
  // the Argon2 cost's time and memory on the calling thread, outside the store's locks; at
  // most a few hashes run at once (others wait), which bounds the memory a flood of logins
  // can take. Each change is audited ("user.create", "user.password", "user.role",
  // "user.delete", the detail naming the user and role, never the password).
  //
  // The first user must be an admin.
  [[nodiscard]] Result<UserRecord> create_user(std::string_view username, std::string_view password,
                                               std::string_view role, std::string_view actor);
  // All users, by name (ignoring case).
  [[nodiscard]] Result<std::vector<UserRecord>> list_users() const;
  [[nodiscard]] Result<std::optional<UserRecord>> find_user(std::string_view username) const;
  // 0: no user yet, first-run setup is required.
  [[nodiscard]] Result<int64_t> count_users() const;
  // The user when `password` is theirs (and records last_login_us), nullopt otherwise:
  // unknown user, wrong password, or a password changed meanwhile. An unknown user costs the
  // same hashing time as a known one (a dummy hash is verified), so the time taken does not
  // tell which names exist. Not audited: the caller audits logins with where they came from.
  [[nodiscard]] Result<std::optional<UserRecord>> check_password(std::string_view username, std::string_view password);
  [[nodiscard]] Status set_user_password(std::string_view username, std::string_view password, std::string_view actor);
  // Refuses to demote the last admin.
  [[nodiscard]] Status set_user_role(std::string_view username, std::string_view role, std::string_view actor);
  // Refuses to delete the last admin.
  [[nodiscard]] Status delete_user(std::string_view username, std::string_view actor);

  // Settings: a string map.
  [[nodiscard]] Status set_setting(std::string_view key, std::string_view value, std::string_view actor);
  [[nodiscard]] Result<std::optional<std::string>> setting(std::string_view key) const;

  // Model catalog.
  [[nodiscard]] Status put_model(const ModelRecord& model, std::string_view actor);
  [[nodiscard]] Result<std::vector<ModelRecord>> list_models() const;
  [[nodiscard]] Status remove_model(std::string_view id, std::string_view actor);

  // Content moderation's term list (audited without the term's text). Errors:
  // invalid_argument (empty, multi-line or over 256 bytes; a bad scope), not_found.
  [[nodiscard]] Status add_moderation_term(std::string_view term, std::string_view scope, std::string_view actor);
  [[nodiscard]] Status remove_moderation_term(std::string_view term, std::string_view actor);
  [[nodiscard]] Result<std::vector<ModerationTerm>> list_moderation_terms() const;

  // An online, consistent copy of the whole database into `path` (SQLite's backup API; the
  // store keeps serving). The file is written next to `path` and renamed into place.
  [[nodiscard]] Status backup(const std::string& path) const;

  class Impl;

 private:
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks a backup (or any state file) before a restore: opens it read-only, runs SQLite's
// integrity check and verifies the audit chain. The daemon restores by replacing state.db
// with a checked file while stopped.
// `audit_key`: the key its keyed rows were written with (empty: a keyed row fails).
[[nodiscard]] Result<AuditVerification> check_state_file(const std::string& path, std::string_view audit_key = {});

}  // namespace sn::storage
