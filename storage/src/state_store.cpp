// The state store (state_store.h): SQLite with one writer thread. Every write is a task run
// by that thread inside BEGIN IMMEDIATE ... COMMIT, so a write and its audit row commit
// together or not at all; reads use a second connection under a mutex (WAL lets them run
// beside the writer). Usage counts wait in a map until the writer's next flush. Password
// hashes (Argon2id, password_hash.h) are computed on the caller's thread before its write
// is queued, so a slow hash never holds up the writer.
#include "supernode/storage/state_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <semaphore>
#include <span>
#include <thread>
#include <unordered_map>
#include <utility>

#include "password_hash.h"
#include "sqlite_db.h"
#include "supernode/base/mutex.h"

namespace sn::storage {
namespace {

using Hash = std::array<uint8_t, 32>;

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Hash sha256(std::string_view data) {
  Hash h{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), h.data(), &n, EVP_sha256(), nullptr);
  return h;
}

std::string hex(std::span<const uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

std::string base64url(std::span<const uint8_t> b) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s;
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t c : b) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      s.push_back(a[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) s.push_back(a[(acc << (6 - bits)) & 63]);
  return s;
}

Result<std::string> random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return Status::internal("random bytes", "the system random generator failed");
  }
  return out;
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void put_framed(std::string& out, std::string_view field) {
  const auto n = static_cast<uint32_t>(field.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out.append(field);
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The hash of audit row `seq` given the previous row's hash (32 zero bytes before the first):
// with a key, HMAC-SHA-256 under it ("keyed" rows, mac = 1); without, plain SHA-256 (rows of
// stores that had no key, mac = 0).
Hash audit_hash(std::string_view key, std::string_view prev, int64_t seq, int64_t time_us, std::string_view actor,
                std::string_view action, std::string_view detail) {
  std::string m = key.empty() ? "supernode-audit-v1" : "supernode-audit-v2";
  m.append(prev);
  put_u64(m, static_cast<uint64_t>(seq));
  put_u64(m, static_cast<uint64_t>(time_us));
  put_framed(m, actor);
  put_framed(m, action);
  put_framed(m, detail);
  if (key.empty()) return sha256(m);
  Hash h{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(m.data()), m.size(),
       h.data(), &len);
  return h;
}

std::string join_models(const std::vector<std::string>& m) {
  std::string s;
  for (const std::string& x : m) {
    if (!s.empty()) s.push_back('\n');
    s += x;
  }
  return s;
}

std::vector<std::string> split_models(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

Status check_limits(const Limits& l) {
  if (l.rpm < 0 || l.tpm < 0 || l.concurrency < 0) {
    return Status::invalid_argument("limits", "rpm, tpm and concurrency must be 0 (no limit) or positive");
  }
  for (const std::string& m : l.models) {
    if (m.empty() || m.find('\n') != std::string::npos) {
      return Status::invalid_argument("limits", "model ids must be non-empty single lines");
    }
  }
  return Status::ok();
}

Status check_name(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return Status::invalid_argument(what, "must be 1 to 64 characters, is " + std::to_string(name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-';
    if (!ok) return Status::invalid_argument(what, "'" + std::string(name) + "' may hold only letters, digits, '.', '_', '-'");
  }
  return Status::ok();
}

constexpr std::string_view kKeyPrefix = "sk-sn-";
constexpr size_t kKeyIdLen = 16;
constexpr size_t kSecretBytes = 32;

// Migration i takes the schema from version i to i + 1. Append only; never edit one.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE tenants(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  cache_salt TEXT NOT NULL,
  rpm INTEGER NOT NULL, tpm INTEGER NOT NULL, concurrency INTEGER NOT NULL, models TEXT NOT NULL,
  created_us INTEGER NOT NULL);
CREATE TABLE api_keys(
  key_id TEXT PRIMARY KEY,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  salt BLOB NOT NULL, hash BLOB NOT NULL, label TEXT NOT NULL,
  rpm INTEGER NOT NULL, tpm INTEGER NOT NULL, concurrency INTEGER NOT NULL, models TEXT NOT NULL,
  created_us INTEGER NOT NULL, revoked_us INTEGER);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id);
CREATE TABLE usage(
  key_id TEXT NOT NULL, minute INTEGER NOT NULL,
  requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
  PRIMARY KEY(key_id, minute)) WITHOUT ROWID;
CREATE INDEX usage_by_minute ON usage(minute);
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,
  actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL, hash BLOB NOT NULL);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models(id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
                    added_us INTEGER NOT NULL);
CREATE TABLE admin_users(name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, created_us INTEGER NOT NULL);
)sql",
    R"sql(
CREATE TABLE moderation_terms(term TEXT PRIMARY KEY, scope TEXT NOT NULL, added_us INTEGER NOT NULL);
)sql",
    // Audit rows chained by HMAC under a key kept outside the database (mac = 1).
    R"sql(
ALTER TABLE audit ADD COLUMN mac INTEGER NOT NULL DEFAULT 0;
)sql",
    // Admin users of the web UI with Argon2id hashes (encoded strings). Replaces migration
    // 1's admin_users, which nothing ever wrote.
    R"sql(
DROP TABLE admin_users;
CREATE TABLE users(
  username TEXT PRIMARY KEY COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('admin', 'auditor')),
  created_us INTEGER NOT NULL, last_login_us INTEGER, password_changed_us INTEGER NOT NULL);
)sql",
};
constexpr int64_t kSchemaVersion = static_cast<int64_t>(std::size(kMigrations));

// A consistent copy of `src` at `path` (SQLite's online backup, then a single
// self-contained file, mode 0600), written next to it and renamed into place.
Status copy_database(sql::Db& src, const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());
  Result<sql::Db> dest = sql::Db::open(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!dest.ok()) return dest.status().with_context("backup");
  (void)::chmod(tmp.c_str(), 0600);
  Status s;
  sqlite3_backup* b = sqlite3_backup_init(dest->raw(), "main", src.raw(), "main");
  if (b == nullptr) {
    s = Status::io_error("backup to " + path, sqlite3_errmsg(dest->raw()));
  } else {
    const int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) s = Status::io_error("backup to " + path, sqlite3_errstr(rc));
  }
  if (s.is_ok()) s = dest->exec("PRAGMA journal_mode=DELETE");  // a single self-contained file
  *dest = sql::Db();
  if (!s.is_ok()) {
    std::remove(tmp.c_str());
    return s;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::io_error("backup to " + path, "cannot rename the finished copy into place");
  }
  return Status::ok();
}

Result<int64_t> user_version(sql::Db& db) {
  Result<sql::Stmt> st = db.prepare("PRAGMA user_version");
  if (!st.ok()) return st.status();
  Result<bool> row = st->step();
  if (!row.ok()) return row.status();
  return *row ? st->i64(0) : 0;
}

// Verifies the chain. Without a key, keyed rows cannot be checked and fail. With a key,
// unkeyed rows may only come first (written before the store had a key) and the chain
// must end keyed: a chain recomputed without the key (all rows unkeyed) fails.
Result<AuditVerification> verify_chain(sql::Db& db, std::string_view key) {
  AuditVerification v;
  Result<sql::Stmt> st = db.prepare("SELECT seq, time_us, actor, action, detail, hash, mac FROM audit ORDER BY seq");
  if (!st.ok()) return st.status();
  std::string prev(32, '\0');
  int64_t expect = 1;
  bool keyed_seen = false, last_keyed = false;
  auto fail = [&](int64_t seq, std::string problem) {
    v.ok = false;
    v.first_bad_seq = seq;
    v.problem = std::move(problem);
  };
  for (;;) {
    Result<bool> row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int64_t seq = st->i64(0);
    ++v.rows;
    if (seq != expect) {
      fail(seq, "row " + std::to_string(expect) + " is missing (the next row is " + std::to_string(seq) + ")");
      return v;
    }
    const bool keyed = st->i64(6) != 0;
    if (keyed && key.empty()) {
      fail(seq, "row " + std::to_string(seq) + " is keyed: verifying it needs the audit key");
      return v;
    }
    if (!keyed && keyed_seen) {
      fail(seq, "row " + std::to_string(seq) + " is not keyed after keyed rows (written without the key)");
      return v;
    }
    const Hash h = audit_hash(keyed ? key : std::string_view(), prev, seq, st->i64(1), st->text(2), st->text(3), st->text(4));
    const std::string stored = st->blob(5);
    if (stored.size() != h.size() || CRYPTO_memcmp(stored.data(), h.data(), h.size()) != 0) {
      fail(seq, "row " + std::to_string(seq) + " does not match its " + (keyed ? "MAC" : "hash") +
                    " (edited, or an earlier row was" + (keyed ? ", or another key" : "") + ")");
      return v;
    }
    keyed_seen = keyed_seen || keyed;
    last_keyed = keyed;
    prev.assign(reinterpret_cast<const char*>(h.data()), h.size());
    ++expect;
  }
  if (!key.empty() && v.rows > 0 && !last_keyed) {
    fail(v.rows, "the chain ends with rows not keyed: it was rewritten without the audit key");
  }
  return v;
}

}  // namespace

class StateStore::Impl {
 public:
  friend class StateStore;
  Impl(std::string path, StateStoreOptions options) : path_(std::move(path)), options_(options) {}

  ~Impl() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
  }

  Status open() {
    Result<sql::Db> w = sql::Db::open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!w.ok()) return w.status();
    write_ = std::move(*w);
    // Not a database at all shows up here, at the first read of the file.
    Result<int64_t> version = user_version(write_);
    if (!version.ok()) return Status::corruption("state db " + path_, version.status().message());
    SN_RETURN_IF_ERROR(write_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
    if (*version > kSchemaVersion) {
      return Status::corruption("state db " + path_, "schema version " + std::to_string(*version) +
                                                         " is newer than this build knows (" +
                                                         std::to_string(kSchemaVersion) + ")");
    }
    // A database of an earlier version is copied before it migrates forward (an upgrade's
    // first start): the copy opens with the version it was written by, should the upgrade
    // be rolled back. No copy, no migration.
    if (*version > 0 && *version < kSchemaVersion) {
      const std::string copy = path_ + ".before-v" + std::to_string(kSchemaVersion) + "-from-v" + std::to_string(*version);
      if (Status s = copy_database(write_, copy); !s.is_ok()) {
        return s.with_context("the backup before migrating " + path_ + " from schema " + std::to_string(*version));
      }
      backup_before_migration_ = copy;
    }
    for (int64_t v = *version; v < kSchemaVersion; ++v) {
      SN_RETURN_IF_ERROR(write_.exec("BEGIN IMMEDIATE"));
      Status s = write_.exec(kMigrations[v]);
      if (s.is_ok()) s = write_.exec("PRAGMA user_version=" + std::to_string(v + 1));
      if (!s.is_ok()) {
        (void)write_.exec("ROLLBACK");
        return s.with_context("migration " + std::to_string(v + 1));
      }
      SN_RETURN_IF_ERROR(write_.exec("COMMIT"));
    }
    version_ = kSchemaVersion;
    SN_RETURN_IF_ERROR(key_the_audit_log());
    Result<sql::Db> r = sql::Db::open(path_, SQLITE_OPEN_READONLY);
    if (!r.ok()) return r.status();
    {
      MutexLock lock(read_mu_);
      read_ = std::move(*r);
    }
    writer_ = std::thread([this] { writer_main(); });
    return Status::ok();
  }

  int64_t version() const { return version_; }
  const std::string& backup_before_migration() const { return backup_before_migration_; }

  // With an audit key: the last row must verify under it (else the log was written with
  // another key: refuse to open rather than fork the chain), and a log that ends unkeyed
  // (older rows, from before the key) gets a keyed row now, so that a chain later
  // recomputed without the key shows.
  Status key_the_audit_log() {
    if (options_.audit_key.empty()) return Status::ok();
    Result<sql::Stmt> st =
        write_.prepare("SELECT seq, time_us, actor, action, detail, hash, mac FROM audit ORDER BY seq DESC LIMIT 2");
    if (!st.ok()) return st.status();
    struct Row {
      int64_t seq = 0, time_us = 0, mac = 0;
      std::string actor, action, detail, hash;
    };
    std::vector<Row> rows;
    for (;;) {
      Result<bool> more = st->step();
      if (!more.ok()) return more.status();
      if (!*more) break;
      rows.push_back({st->i64(0), st->i64(1), st->i64(6), st->text(2), st->text(3), st->text(4), st->blob(5)});
    }
    if (!rows.empty() && rows[0].mac != 0) {
      const std::string prev = rows.size() > 1 ? rows[1].hash : std::string(32, '\0');
      const Row& r = rows[0];
      const Hash h = audit_hash(options_.audit_key, prev, r.seq, r.time_us, r.actor, r.action, r.detail);
      if (r.hash.size() != h.size() || CRYPTO_memcmp(r.hash.data(), h.data(), h.size()) != 0) {
        return Status::invalid_argument("state db " + path_, "the audit log's last row (" + std::to_string(r.seq) +
                                                                 ") does not verify under this audit key: another key "
                                                                 "wrote it, or the row was edited");
      }
      return Status::ok();
    }
    SN_RETURN_IF_ERROR(write_.exec("BEGIN IMMEDIATE"));
    Status s = append_audit(write_, "supernoded", "audit.keyed", "audit rows from here on carry an HMAC-SHA-256");
    if (s.is_ok()) return write_.exec("COMMIT");
    (void)write_.exec("ROLLBACK");
    return s;
  }
  const std::string& audit_key() const { return options_.audit_key; }

  // A password hash under the store's cost, taking a hash slot.
  Result<std::string> hash_password(std::string_view password) {
    HashSlot slot(*this);
    return password_hash(password, hash_cost());
  }

  // Verifies `password` against `encoded`, or against a dummy hash of the store's cost when
  // `encoded` is nullopt (an unknown user), taking a hash slot; false for the dummy.
  Result<bool> verify_password(const std::optional<std::string>& encoded, std::string_view password) {
    std::string dummy;
    if (!encoded) {
      Result<std::string> d = dummy_hash();
      if (!d.ok()) return d.status();
      dummy = std::move(*d);
    }
    HashSlot slot(*this);
    Result<bool> match = password_verify(encoded ? *encoded : dummy, password);
    if (match.ok() && !encoded) return false;
    return match;
  }

  // Runs `f` on the writer thread inside one transaction; waits for it.
  Status write(std::function<Status(sql::Db&)> f) {
    std::promise<Status> done;
    std::future<Status> result = done.get_future();
    {
      MutexLock lock(mu_);
      tasks_.push_back([f = std::move(f), &done](sql::Db& db) {
        Status s = db.exec("BEGIN IMMEDIATE");
        if (s.is_ok()) {
          s = f(db);
          if (s.is_ok()) {
            s = db.exec("COMMIT");
          } else {
            (void)db.exec("ROLLBACK");
          }
        }
        done.set_value(s);
      });
    }
    cv_.notify_all();
    return result.get();
  }

  // Runs `f` with the read connection.
  template <class F>
  auto read(F&& f) const {
    MutexLock lock(read_mu_);
    return f(const_cast<sql::Db&>(read_));
  }

  void add_usage(std::string_view key_id, int64_t minute, int64_t prompt, int64_t completion) {
    MutexLock lock(mu_);
    Counts& c = usage_[{std::string(key_id), minute}];
    c.requests += 1;
    c.prompt += prompt;
    c.completion += completion;
  }

  // Writes buffered usage now, on the writer thread, and waits (flush_on_writer's rules).
  Status flush_usage() {
    std::promise<Status> done;
    std::future<Status> result = done.get_future();
    {
      MutexLock lock(mu_);
      tasks_.push_back([this, &done](sql::Db&) { done.set_value(flush_on_writer()); });
    }
    cv_.notify_all();
    return result.get();
  }

  // Appends an audit row inside the caller's write transaction (keyed when the store has
  // an audit key).
  Status append_audit(sql::Db& db, std::string_view actor, std::string_view action, std::string_view detail) const {
    Result<sql::Stmt> last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (!last.ok()) return last.status();
    Result<bool> row = last->step();
    if (!row.ok()) return row.status();
    const int64_t seq = *row ? last->i64(0) + 1 : 1;
    const std::string prev = *row ? last->blob(1) : std::string(32, '\0');
    const int64_t t = now_us();
    const Hash h = audit_hash(options_.audit_key, prev, seq, t, actor, action, detail);
    Result<sql::Stmt> ins =
        db.prepare("INSERT INTO audit(seq, time_us, actor, action, detail, hash, mac) VALUES(?,?,?,?,?,?,?)");
    if (!ins.ok()) return ins.status();
    return ins->bind(1, seq)
        .bind(2, t)
        .bind(3, actor)
        .bind(4, action)
        .bind(5, detail)
        .bind_blob(6, h)
        .bind(7, int64_t{options_.audit_key.empty() ? 0 : 1})
        .run();
  }

  const std::string& path() const { return path_; }

 private:
  struct Counts {
    int64_t requests = 0, prompt = 0, completion = 0;
  };

  using UsageBatch = std::map<std::pair<std::string, int64_t>, Counts>;

  // Adds `batch` back to the buffer: its transaction did not commit (a full disk, say), so
  // the next flush writes it. Nothing accepted is lost.
  void restore_usage(const UsageBatch& batch) {
    MutexLock lock(mu_);
    for (const auto& [k, c] : batch) {
      Counts& into = usage_[k];
      into.requests += c.requests;
      into.prompt += c.prompt;
      into.completion += c.completion;
    }
  }

  // The batch's rows, inside the caller's transaction.
  static Status write_usage(sql::Db& db, const UsageBatch& batch) {
    if (batch.empty()) return Status::ok();
    Result<sql::Stmt> st = db.prepare(
        "INSERT INTO usage(key_id, minute, requests, prompt_tokens, completion_tokens) VALUES(?,?,?,?,?) "
        "ON CONFLICT(key_id, minute) DO UPDATE SET requests = requests + excluded.requests, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = completion_tokens + excluded.completion_tokens");
    if (!st.ok()) return st.status();
    for (const auto& [k, c] : batch) {
      SN_RETURN_IF_ERROR(
          st->bind(1, k.first).bind(2, k.second).bind(3, c.requests).bind(4, c.prompt).bind(5, c.completion).run());
      st->reset();
    }
    return Status::ok();
  }

  void writer_main() {
    using Clock = std::chrono::steady_clock;
    auto next_flush = Clock::now() + std::chrono::milliseconds(options_.usage_flush_interval_ms);
    for (;;) {
      std::function<void(sql::Db&)> task;
      bool flush = false;
      {
        bool closing = false;
        {
          MutexLock lock(mu_);
          while (!(stop_ || !tasks_.empty())) {
            if (!cv_.wait_until(mu_, next_flush)) break;
          }
          if (!tasks_.empty()) {
            task = std::move(tasks_.front());
            tasks_.pop_front();
          } else if (stop_) {
            closing = true;
          } else {
            flush = true;
          }
        }
        if (closing) {
          (void)flush_on_writer(/*closing=*/true);  // the last counts (and key-use summary) before closing
          return;
        }
      }
      if (task) task(write_);
      if (flush || Clock::now() >= next_flush) {
        (void)flush_on_writer();
        next_flush = Clock::now() + std::chrono::milliseconds(options_.usage_flush_interval_ms);
      }
    }
  }

  // The audit log's key-use summary: one row per key used since the last summary, in the
  // caller's transaction. Writer thread only.
  Status write_key_use(sql::Db& db, const std::map<std::string, Counts>& key_use) const {
    for (const auto& [key_id, c] : key_use) {
      SN_RETURN_IF_ERROR(append_audit(db, "supernoded", "key.use",
                                      "key " + key_id + ": " + std::to_string(c.requests) + " requests, " +
                                          std::to_string(c.prompt) + " prompt tokens, " + std::to_string(c.completion) +
                                          " completion tokens"));
    }
    return Status::ok();
  }

  // One flush: the buffered usage (and, when due, the key-use summary) in one transaction.
  // When it does not commit (a full disk, an I/O error) every count goes back to the buffer
  // and the summary keeps accumulating: a later flush writes them; nothing is lost.
  Status flush_on_writer(bool closing = false) {
    UsageBatch batch;
    {
      MutexLock lock(mu_);
      batch.swap(usage_);
    }
    std::map<std::string, Counts> key_use = key_use_;
    for (const auto& [k, c] : batch) {
      Counts& sum = key_use[k.first];
      sum.requests += c.requests;
      sum.prompt += c.prompt;
      sum.completion += c.completion;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool summary = options_.key_use_audit_interval_ms > 0 &&
                         (closing || now - last_key_use_ >= std::chrono::milliseconds(options_.key_use_audit_interval_ms));
    if (batch.empty() && !summary) return Status::ok();
    Status s = write_.exec("BEGIN IMMEDIATE");
    if (s.is_ok()) s = write_usage(write_, batch);
    if (s.is_ok() && summary) s = write_key_use(write_, key_use);
    if (s.is_ok()) s = write_.exec("COMMIT");
    if (!s.is_ok()) {
      (void)write_.exec("ROLLBACK");
      restore_usage(batch);
      return s;
    }
    if (summary) {
      last_key_use_ = now;
      key_use_.clear();
    } else {
      key_use_ = std::move(key_use);
    }
    return Status::ok();
  }

  // The authorization cache (authorize()): by key id, the key's salt and hash and what it
  // authorizes (nullopt: no such key, or revoked). A reader fills it only when no change
  // happened since it began reading (auth_generation_), so a stale row never lands.
  struct AuthEntry {
    std::string salt, hash;
    std::optional<Principal> principal;
  };
  static constexpr size_t kAuthCacheMax = 65536;
  mutable Mutex auth_mu_;
  mutable std::unordered_map<std::string, AuthEntry> auth_cache_ SN_GUARDED_BY(auth_mu_);
  mutable uint64_t auth_generation_ SN_GUARDED_BY(auth_mu_) = 0;

  void auth_changed() {
    MutexLock lock(auth_mu_);
    ++auth_generation_;
    auth_cache_.clear();
  }

  // At most kHashSlots Argon2 computations at once (each takes the cost's memory, 64 MiB
  // by default): a flood of logins waits here instead of exhausting memory.
  static constexpr std::ptrdiff_t kHashSlots = 4;
  std::counting_semaphore<kHashSlots> hash_slots_{kHashSlots};
  struct HashSlot {
    explicit HashSlot(Impl& impl) : impl(impl) { impl.hash_slots_.acquire(); }
    ~HashSlot() { impl.hash_slots_.release(); }
    HashSlot(const HashSlot&) = delete;
    HashSlot& operator=(const HashSlot&) = delete;
    Impl& impl;
  };

  PasswordHashCost hash_cost() const {
    return {static_cast<uint32_t>(options_.argon2_memory_kib), static_cast<uint32_t>(options_.argon2_iterations)};
  }

  // The hash verified for unknown users: a random password's, under the store's cost, made
  // at the first need (not at open, which then stays fast).
  Result<std::string> dummy_hash() {
    MutexLock lock(dummy_mu_);
    if (dummy_hash_.empty()) {
      Result<std::string> pw = random_bytes(32);
      if (!pw.ok()) return pw.status();
      Result<std::string> h = hash_password(hex(bytes_of(*pw)));
      if (!h.ok()) return h.status();
      dummy_hash_ = std::move(*h);
    }
    return dummy_hash_;
  }
  Mutex dummy_mu_;
  std::string dummy_hash_ SN_GUARDED_BY(dummy_mu_);

  std::string path_;
  StateStoreOptions options_;
  int64_t version_ = 0;
  std::string backup_before_migration_;  // the copy made before migrating, if one was
  sql::Db write_;                  // writer thread only (after open)
  mutable Mutex read_mu_;
  sql::Db read_ SN_GUARDED_BY(read_mu_);
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void(sql::Db&)>> tasks_ SN_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, Counts> usage_ SN_GUARDED_BY(mu_);
  std::map<std::string, Counts> key_use_;  // since the last key-use audit rows; writer thread only
  std::chrono::steady_clock::time_point last_key_use_ = std::chrono::steady_clock::now();
  bool stop_ SN_GUARDED_BY(mu_) = false;
  std::thread writer_;
};

namespace {

Limits limits_from(const sql::Stmt& st, int first_col) {
  Limits l;
  l.rpm = st.i64(first_col);
  l.tpm = st.i64(first_col + 1);
  l.concurrency = st.i64(first_col + 2);
  l.models = split_models(st.text(first_col + 3));
  return l;
}

// A row of SELECT id, name, cache_salt, rpm, tpm, concurrency, models, created_us FROM tenants.
TenantRecord tenant_from(const sql::Stmt& st) {
  TenantRecord t;
  t.id = st.i64(0);
  t.name = st.text(1);
  t.cache_salt = st.text(2);
  t.limits = limits_from(st, 3);
  t.created_us = st.i64(7);
  return t;
}

Result<std::optional<TenantRecord>> tenant_by_name(sql::Db& db, std::string_view name) {
  Result<sql::Stmt> st =
      db.prepare("SELECT id, name, cache_salt, rpm, tpm, concurrency, models, created_us FROM tenants WHERE name = ?");
  if (!st.ok()) return st.status();
  st->bind(1, name);
  Result<bool> row = st->step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<TenantRecord>();
  return std::optional<TenantRecord>(tenant_from(*st));
}

std::string describe(const Limits& l) {
  return "rpm " + std::to_string(l.rpm) + ", tpm " + std::to_string(l.tpm) + ", concurrency " +
         std::to_string(l.concurrency) + ", models " + (l.models.empty() ? std::string("all") : join_models(l.models));
}

// Creates a key for tenant `t` inside a write transaction.
Result<NewApiKey> insert_key(sql::Db& db, const TenantRecord& t, const Limits& limits, std::string_view label) {
  Result<std::string> id_bytes = random_bytes(kKeyIdLen / 2);
  Result<std::string> secret_bytes = random_bytes(kSecretBytes);
  Result<std::string> salt = random_bytes(16);
  for (const Status* s : {&id_bytes.status(), &secret_bytes.status(), &salt.status()}) {
    if (!s->is_ok()) return *s;
  }
  NewApiKey k;
  k.record.key_id = hex(bytes_of(*id_bytes));
  const std::string secret = base64url(bytes_of(*secret_bytes));
  k.key = std::string(kKeyPrefix) + k.record.key_id + "-" + secret;
  k.record.tenant = t.name;
  k.record.limits = limits;
  k.record.label = std::string(label);
  k.record.created_us = now_us();
  const Hash h = sha256(*salt + secret);
  Result<sql::Stmt> st = db.prepare(
      "INSERT INTO api_keys(key_id, tenant_id, salt, hash, label, rpm, tpm, concurrency, models, created_us) "
      "VALUES(?,?,?,?,?,?,?,?,?,?)");
  if (!st.ok()) return st.status();
  SN_RETURN_IF_ERROR(st->bind(1, k.record.key_id)
                         .bind(2, t.id)
                         .bind_blob(3, bytes_of(*salt))
                         .bind_blob(4, h)
                         .bind(5, label)
                         .bind(6, limits.rpm)
                         .bind(7, limits.tpm)
                         .bind(8, limits.concurrency)
                         .bind(9, join_models(limits.models))
                         .bind(10, k.record.created_us)
                         .run());
  return k;
}

Result<TenantRecord> insert_tenant(sql::Db& db, std::string_view name, const Limits& limits) {
  Result<std::optional<TenantRecord>> existing = tenant_by_name(db, name);
  if (!existing.ok()) return existing.status();
  if (*existing) return Status::invalid_argument("tenant " + std::string(name), "already exists");
  Result<std::string> salt = random_bytes(16);
  if (!salt.ok()) return salt.status();
  TenantRecord t;
  t.name = std::string(name);
  t.cache_salt = "tenant:" + hex(bytes_of(*salt));
  t.limits = limits;
  t.created_us = now_us();
  Result<sql::Stmt> st = db.prepare(
      "INSERT INTO tenants(name, cache_salt, rpm, tpm, concurrency, models, created_us) VALUES(?,?,?,?,?,?,?)");
  if (!st.ok()) return st.status();
  SN_RETURN_IF_ERROR(st->bind(1, name)
                         .bind(2, t.cache_salt)
                         .bind(3, limits.rpm)
                         .bind(4, limits.tpm)
                         .bind(5, limits.concurrency)
                         .bind(6, join_models(limits.models))
                         .bind(7, t.created_us)
                         .run());
  t.id = sqlite3_last_insert_rowid(db.raw());
  return t;
}

}  // namespace

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::~StateStore() = default;

Result<std::unique_ptr<StateStore>> StateStore::open(const std::string& path, const StateStoreOptions& options) {
  if (options.usage_flush_interval_ms <= 0) {
    return Status::invalid_argument("state store", "usage flush interval must be positive");
  }
  if (!options.audit_key.empty() && options.audit_key.size() < 16) {
    return Status::invalid_argument("state store", "the audit key must be at least 16 bytes");
  }
  if (options.argon2_memory_kib < 8 || options.argon2_memory_kib > 4 * 1024 * 1024 || options.argon2_iterations < 1) {
    return Status::invalid_argument("state store", "the Argon2 cost must be 8 KiB to 4 GiB of memory and at least 1 pass");
  }
  auto impl = std::make_unique<Impl>(path, options);
  SN_RETURN_IF_ERROR(impl->open());
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

int64_t StateStore::schema_version() const { return impl_->version(); }

const std::string& StateStore::backup_before_migration() const { return impl_->backup_before_migration(); }

Result<std::optional<NewApiKey>> StateStore::bootstrap(const Limits& tenant_limits) {
  SN_RETURN_IF_ERROR(check_limits(tenant_limits));
  std::optional<NewApiKey> out;
  Status s = impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> n = db.prepare("SELECT COUNT(*) FROM tenants");
    if (!n.ok()) return n.status();
    Result<bool> row = n->step();
    if (!row.ok()) return row.status();
    if (n->i64(0) > 0) return Status::ok();
    Result<TenantRecord> t = insert_tenant(db, "default", tenant_limits);
    if (!t.ok()) return t.status();
    Result<NewApiKey> k = insert_key(db, *t, {}, "initial key");
    if (!k.ok()) return k.status();
    SN_RETURN_IF_ERROR(impl_->append_audit(db, "supernoded", "bootstrap",
                                          "tenant default (" + describe(tenant_limits) + "), key " + k->record.key_id));
    out = std::move(*k);
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

Result<TenantRecord> StateStore::create_tenant(std::string_view name, const Limits& limits, std::string_view actor) {
  SN_RETURN_IF_ERROR(check_name("tenant name", name));
  SN_RETURN_IF_ERROR(check_limits(limits));
  std::optional<TenantRecord> out;
  Status s = impl_->write([&](sql::Db& db) -> Status {
    Result<TenantRecord> t = insert_tenant(db, name, limits);
    if (!t.ok()) return t.status();
    SN_RETURN_IF_ERROR(impl_->append_audit(db, actor, "tenant.create", std::string(name) + ": " + describe(limits)));
    out = std::move(*t);
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return std::move(*out);
}

Result<std::vector<TenantRecord>> StateStore::list_tenants() const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<TenantRecord>> {
    Result<sql::Stmt> st =
        db.prepare("SELECT id, name, cache_salt, rpm, tpm, concurrency, models, created_us FROM tenants ORDER BY id");
    if (!st.ok()) return st.status();
    std::vector<TenantRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(tenant_from(*st));
    }
    return out;
  });
}

Result<std::optional<TenantRecord>> StateStore::find_tenant(std::string_view name) const {
  return impl_->read([&](sql::Db& db) { return tenant_by_name(db, name); });
}

Status StateStore::set_tenant_limits(std::string_view name, const Limits& limits, std::string_view actor) {
  SN_RETURN_IF_ERROR(check_limits(limits));
  struct Invalidate {
    Impl& impl;
    ~Invalidate() { impl.auth_changed(); }
  } invalidate{*impl_};
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare("UPDATE tenants SET rpm = ?, tpm = ?, concurrency = ?, models = ? WHERE name = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(
        st->bind(1, limits.rpm).bind(2, limits.tpm).bind(3, limits.concurrency).bind(4, join_models(limits.models)).bind(5, name).run());
    if (sqlite3_changes(db.raw()) == 0) return Status::not_found("tenant " + std::string(name), "no such tenant");
    return impl_->append_audit(db, actor, "tenant.limits", std::string(name) + ": " + describe(limits));
  });
}

Result<NewApiKey> StateStore::create_key(std::string_view tenant, const Limits& limits, std::string_view label,
                                         std::string_view actor) {
  SN_RETURN_IF_ERROR(check_limits(limits));
  if (label.size() > 200) return Status::invalid_argument("key label", "longer than 200 characters");
  std::optional<NewApiKey> out;
  Status s = impl_->write([&](sql::Db& db) -> Status {
    Result<std::optional<TenantRecord>> t = tenant_by_name(db, tenant);
    if (!t.ok()) return t.status();
    if (!*t) return Status::not_found("tenant " + std::string(tenant), "no such tenant");
    Result<NewApiKey> k = insert_key(db, **t, limits, label);
    if (!k.ok()) return k.status();
    SN_RETURN_IF_ERROR(impl_->append_audit(db, actor, "key.create",
                                          "key " + k->record.key_id + " for tenant " + std::string(tenant) + ": " +
                                              describe(limits)));
    out = std::move(*k);
    return Status::ok();
  });
  impl_->auth_changed();  // the new id may be cached as unknown
  if (!s.is_ok()) return s;
  return std::move(*out);
}

Result<std::vector<ApiKeyRecord>> StateStore::list_keys(std::string_view tenant) const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<ApiKeyRecord>> {
    Result<sql::Stmt> st = db.prepare(
        "SELECT k.key_id, t.name, k.rpm, k.tpm, k.concurrency, k.models, k.label, k.created_us, k.revoked_us "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE ? = '' OR t.name = ? ORDER BY k.created_us, k.key_id");
    if (!st.ok()) return st.status();
    st->bind(1, tenant).bind(2, tenant);
    std::vector<ApiKeyRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ApiKeyRecord k;
      k.key_id = st->text(0);
      k.tenant = st->text(1);
      k.limits = limits_from(*st, 2);
      k.label = st->text(6);
      k.created_us = st->i64(7);
      if (!st->is_null(8)) k.revoked_us = st->i64(8);
      out.push_back(std::move(k));
    }
    return out;
  });
}

Status StateStore::revoke_key(std::string_view key_id, std::string_view actor) {
  struct Invalidate {
    Impl& impl;
    ~Invalidate() { impl.auth_changed(); }
  } invalidate{*impl_};
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare("UPDATE api_keys SET revoked_us = COALESCE(revoked_us, ?) WHERE key_id = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, now_us()).bind(2, key_id).run());
    if (sqlite3_changes(db.raw()) == 0) return Status::not_found("key " + std::string(key_id), "no such key");
    return impl_->append_audit(db, actor, "key.revoke", "key " + std::string(key_id));
  });
}

Result<std::optional<ApiKeyRecord>> StateStore::authenticate(std::string_view key) const {
  Result<std::optional<Principal>> p = authorize(key);
  if (!p.ok()) return p.status();
  if (!*p) return std::optional<ApiKeyRecord>();
  return std::optional<ApiKeyRecord>(std::move((*p)->key));
}

Result<std::optional<Principal>> StateStore::authorize(std::string_view key) const {
  const size_t secret_len = (kSecretBytes * 8 + 5) / 6;
  if (key.size() != kKeyPrefix.size() + kKeyIdLen + 1 + secret_len || key.substr(0, kKeyPrefix.size()) != kKeyPrefix ||
      key[kKeyPrefix.size() + kKeyIdLen] != '-') {
    return std::optional<Principal>();
  }
  const std::string key_id(key.substr(kKeyPrefix.size(), kKeyIdLen));
  const std::string_view secret = key.substr(kKeyPrefix.size() + kKeyIdLen + 1);
  auto check = [&](const Impl::AuthEntry& e) -> std::optional<Principal> {
    if (!e.principal) return std::nullopt;
    const Hash h = sha256(e.salt + std::string(secret));
    if (e.hash.size() != h.size() || CRYPTO_memcmp(e.hash.data(), h.data(), h.size()) != 0) return std::nullopt;
    return e.principal;
  };
  uint64_t generation = 0;
  {
    MutexLock lock(impl_->auth_mu_);
    auto it = impl_->auth_cache_.find(key_id);
    if (it != impl_->auth_cache_.end()) return check(it->second);
    generation = impl_->auth_generation_;
  }
  Result<Impl::AuthEntry> entry = impl_->read([&](sql::Db& db) -> Result<Impl::AuthEntry> {
    Result<sql::Stmt> st = db.prepare(
        "SELECT k.salt, k.hash, k.rpm, k.tpm, k.concurrency, k.models, k.label, k.created_us, k.revoked_us, t.name "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_id = ?");
    if (!st.ok()) return st.status();
    st->bind(1, key_id);
    Result<bool> row = st->step();
    if (!row.ok()) return row.status();
    Impl::AuthEntry e;
    if (!*row || !st->is_null(8)) return e;  // unknown or revoked
    e.salt = st->blob(0);
    e.hash = st->blob(1);
    Principal p;
    p.key.key_id = key_id;
    p.key.limits = limits_from(*st, 2);
    p.key.label = st->text(6);
    p.key.created_us = st->i64(7);
    p.key.tenant = st->text(9);
    Result<std::optional<TenantRecord>> t = tenant_by_name(db, p.key.tenant);
    if (!t.ok()) return t.status();
    if (!*t) return e;
    p.tenant = std::move(**t);
    e.principal = std::move(p);
    return e;
  });
  if (!entry.ok()) return entry.status();
  std::optional<Principal> out = check(*entry);
  MutexLock lock(impl_->auth_mu_);
  if (impl_->auth_generation_ == generation) {
    if (impl_->auth_cache_.size() >= Impl::kAuthCacheMax) impl_->auth_cache_.clear();
    impl_->auth_cache_.emplace(key_id, std::move(*entry));
  }
  return out;
}

void StateStore::record_usage(std::string_view key_id, int64_t minute, int64_t prompt_tokens, int64_t completion_tokens) {
  impl_->add_usage(key_id, minute, prompt_tokens, completion_tokens);
}

Status StateStore::flush_usage() { return impl_->flush_usage(); }

Result<std::vector<UsageRow>> StateStore::usage(int64_t since_minute, std::string_view tenant) const {
  return usage(UsageQuery{.tenant = std::string(tenant), .from_minute = since_minute});
}

Result<std::vector<UsageRow>> StateStore::usage(const UsageQuery& q) const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<UsageRow>> {
    Result<sql::Stmt> st = db.prepare(
        "SELECT u.key_id, t.name, u.minute, u.requests, u.prompt_tokens, u.completion_tokens FROM usage u "
        "JOIN api_keys k ON k.key_id = u.key_id JOIN tenants t ON t.id = k.tenant_id "
        "WHERE u.minute >= ?1 AND u.minute < ?2 AND (?3 = '' OR t.name = ?3) AND (?4 = '' OR u.key_id = ?4) "
        "ORDER BY u.minute, u.key_id");
    if (!st.ok()) return st.status();
    st->bind(1, q.from_minute).bind(2, q.to_minute).bind(3, q.tenant).bind(4, q.key_id);
    std::vector<UsageRow> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back({st->text(0), st->text(1), st->i64(2), st->i64(3), st->i64(4), st->i64(5)});
    }
    return out;
  });
}

Status StateStore::audit(std::string_view actor, std::string_view action, std::string_view detail) {
  return impl_->write([&](sql::Db& db) { return impl_->append_audit(db, actor, action, detail); });
}

Result<std::vector<AuditRecord>> StateStore::audit_log(int64_t after_seq, int64_t limit) const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<AuditRecord>> {
    Result<sql::Stmt> st =
        db.prepare("SELECT seq, time_us, actor, action, detail, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?");
    if (!st.ok()) return st.status();
    st->bind(1, after_seq).bind(2, limit);
    std::vector<AuditRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::string h = st->blob(5);
      out.push_back({st->i64(0), st->i64(1), st->text(2), st->text(3), st->text(4), hex(bytes_of(h))});
    }
    return out;
  });
}

Result<std::vector<AuditRecord>> StateStore::audit_query(const AuditQuery& q) const {
  if (q.limit < 1) return Status::invalid_argument("audit query", "limit must be at least 1");
  std::string sql = "SELECT seq, time_us, actor, action, detail, hash FROM audit WHERE seq < ? AND time_us >= ? AND time_us < ?";
  std::vector<std::string> texts;  // the text parameters after the three above, in order
  auto add_filter = [&](std::string_view column, std::string_view filter) {
    if (filter.empty() || filter == "*") return;
    if (filter.back() == '*') {
      filter.remove_suffix(1);
      // substr() rather than LIKE, whose '%', '_' and case folding would widen the match.
      sql += " AND substr(" + std::string(column) + ", 1, length(?)) = ?";
      texts.emplace_back(filter);
    } else {
      sql += " AND " + std::string(column) + " = ?";
    }
    texts.emplace_back(filter);
  };
  add_filter("actor", q.actor);
  add_filter("action", q.action);
  sql += " ORDER BY seq DESC LIMIT ?";
  return impl_->read([&](sql::Db& db) -> Result<std::vector<AuditRecord>> {
    Result<sql::Stmt> st = db.prepare(sql);
    if (!st.ok()) return st.status();
    st->bind(1, q.before_seq > 0 ? q.before_seq : std::numeric_limits<int64_t>::max()).bind(2, q.from_us).bind(3, q.to_us);
    int i = 4;
    for (const std::string& t : texts) st->bind(i++, t);
    st->bind(i, std::min(q.limit, kAuditQueryMaxLimit));
    std::vector<AuditRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::string h = st->blob(5);
      out.push_back({st->i64(0), st->i64(1), st->text(2), st->text(3), st->text(4), hex(bytes_of(h))});
    }
    return out;
  });
}

Result<AuditVerification> StateStore::verify_audit() const {
  return impl_->read([&](sql::Db& db) { return verify_chain(db, impl_->audit_key()); });
}

Status StateStore::set_setting(std::string_view key, std::string_view value, std::string_view actor) {
  if (key.empty()) return Status::invalid_argument("setting", "empty key");
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, key).bind(2, value).run());
    return impl_->append_audit(db, actor, "setting.set", std::string(key));
  });
}

Result<std::optional<std::string>> StateStore::setting(std::string_view key) const {
  return impl_->read([&](sql::Db& db) -> Result<std::optional<std::string>> {
    Result<sql::Stmt> st = db.prepare("SELECT value FROM settings WHERE key = ?");
    if (!st.ok()) return st.status();
    st->bind(1, key);
    Result<bool> row = st->step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<std::string>();
    return std::optional<std::string>(st->text(0));
  });
}

Status StateStore::put_model(const ModelRecord& m, std::string_view actor) {
  SN_RETURN_IF_ERROR(check_name("model id", m.id));
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare(
        "INSERT INTO models(id, path, sha256, bytes, added_us) VALUES(?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes, added_us = excluded.added_us");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, m.id).bind(2, m.path).bind(3, m.sha256).bind(4, m.bytes).bind(5, m.added_us).run());
    return impl_->append_audit(db, actor, "model.put", m.id + " " + m.path + " sha256 " + m.sha256);
  });
}

Result<std::vector<ModelRecord>> StateStore::list_models() const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<ModelRecord>> {
    Result<sql::Stmt> st = db.prepare("SELECT id, path, sha256, bytes, added_us FROM models ORDER BY id");
    if (!st.ok()) return st.status();
    std::vector<ModelRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back({st->text(0), st->text(1), st->text(2), st->i64(3), st->i64(4)});
    }
    return out;
  });
}

Status StateStore::remove_model(std::string_view id, std::string_view actor) {
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare("DELETE FROM models WHERE id = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, id).run());
    if (sqlite3_changes(db.raw()) == 0) return Status::not_found("model " + std::string(id), "not in the catalog");
    return impl_->append_audit(db, actor, "model.remove", std::string(id));
  });
}

namespace {
// Moderation terms are kept lowercase (ASCII); matching ignores case.
std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}
}  // namespace

Status StateStore::add_moderation_term(std::string_view term, std::string_view scope, std::string_view actor) {
  if (scope != "input" && scope != "output" && scope != "both") {
    return Status::invalid_argument("moderation scope '" + std::string(scope) + "'", "must be input, output or both");
  }
  std::string t = lower_ascii(term);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(0, 1);
  if (t.empty() || t.size() > 256 || t.find_first_of("\n\r") != std::string::npos) {
    return Status::invalid_argument("moderation term", "must be 1 to 256 bytes on one line");
  }
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare(
        "INSERT INTO moderation_terms(term, scope, added_us) VALUES(?, ?, ?) "
        "ON CONFLICT(term) DO UPDATE SET scope = excluded.scope");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, t).bind(2, scope).bind(3, now_us()).run());
    // The term itself is not written to the audit log (it may be sensitive); its size is.
    return impl_->append_audit(db, actor, "moderation.add", std::string(scope) + " term of " + std::to_string(t.size()) + " bytes");
  });
}

Status StateStore::remove_moderation_term(std::string_view term, std::string_view actor) {
  std::string t = lower_ascii(term);
  return impl_->write([&](sql::Db& db) -> Status {
    Result<sql::Stmt> st = db.prepare("DELETE FROM moderation_terms WHERE term = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, t).run());
    if (sqlite3_changes(db.raw()) == 0) return Status::not_found("moderation term", "not in the list");
    return impl_->append_audit(db, actor, "moderation.remove", "term of " + std::to_string(t.size()) + " bytes");
  });
}

Result<std::vector<ModerationTerm>> StateStore::list_moderation_terms() const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<ModerationTerm>> {
    Result<sql::Stmt> st = db.prepare("SELECT term, scope, added_us FROM moderation_terms ORDER BY term");
    if (!st.ok()) return st.status();
    std::vector<ModerationTerm> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back({st->text(0), st->text(1), st->i64(2)});
    }
    return out;
  });
}

namespace {

constexpr size_t kPasswordMinBytes = 8;
constexpr size_t kPasswordMaxBytes = 1024;

Status check_username(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return Status::invalid_argument("username", "must be 1 to 64 characters, is " + std::to_string(name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '@' || c == '-';
    if (!ok) {
      return Status::invalid_argument("username '" + std::string(name) + "'",
                                      "may hold only letters, digits, '.', '_', '@', '-'");
    }
  }
  return Status::ok();
}

Status check_role(std::string_view role) {
  if (role == "admin" || role == "auditor") return Status::ok();
  return Status::invalid_argument("role '" + std::string(role) + "'", "must be admin or auditor");
}

bool password_size_ok(std::string_view password) {
  return password.size() >= kPasswordMinBytes && password.size() <= kPasswordMaxBytes;
}

Status check_password_rule(std::string_view password) {
  if (password_size_ok(password)) return Status::ok();
  return Status::invalid_argument("password", "must be " + std::to_string(kPasswordMinBytes) + " to " +
                                                  std::to_string(kPasswordMaxBytes) + " bytes, is " +
                                                  std::to_string(password.size()));
}

constexpr const char* kUserColumns = "username, role, created_us, last_login_us, password_changed_us, password_hash";

// A row of SELECT kUserColumns FROM users.
UserRecord user_from(const sql::Stmt& st) {
  UserRecord u;
  u.username = st.text(0);
  u.role = st.text(1);
  u.created_us = st.i64(2);
  if (!st.is_null(3)) u.last_login_us = st.i64(3);
  u.password_changed_us = st.i64(4);
  return u;
}

struct UserRow {
  UserRecord record;
  std::string password_hash;
};

Result<std::optional<UserRow>> user_by_name(sql::Db& db, std::string_view name) {
  Result<sql::Stmt> st = db.prepare(std::string("SELECT ") + kUserColumns + " FROM users WHERE username = ?");
  if (!st.ok()) return st.status();
  st->bind(1, name);
  Result<bool> row = st->step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<UserRow>();
  return std::optional<UserRow>(UserRow{user_from(*st), st->text(5)});
}

Result<int64_t> count_where(sql::Db& db, const char* sql) {
  Result<sql::Stmt> st = db.prepare(sql);
  if (!st.ok()) return st.status();
  Result<bool> row = st->step();
  if (!row.ok()) return row.status();
  return *row ? st->i64(0) : 0;
}

// Inside a write: refuses a change that takes the admin role from `user` when no other
// admin would be left.
Status keep_an_admin(sql::Db& db, const UserRecord& user, std::string_view change) {
  if (user.role != "admin") return Status::ok();
  Result<int64_t> admins = count_where(db, "SELECT COUNT(*) FROM users WHERE role = 'admin'");
  if (!admins.ok()) return admins.status();
  if (*admins > 1) return Status::ok();
  return Status::failed_precondition("user " + user.username, "the last admin cannot be " + std::string(change) +
                                                                "; make another user admin first");
}

std::string describe(const UserRecord& u) { return u.username + " (" + u.role + ")"; }

}  // namespace

Result<UserRecord> StateStore::create_user(std::string_view username, std::string_view password, std::string_view role,
                                           std::string_view actor) {
  SN_RETURN_IF_ERROR(check_username(username));
  SN_RETURN_IF_ERROR(check_role(role));
  SN_RETURN_IF_ERROR(check_password_rule(password));
  Result<std::string> hash = impl_->hash_password(password);
  if (!hash.ok()) return hash.status();
  UserRecord u;
  u.username = std::string(username);
  u.role = std::string(role);
  u.created_us = now_us();
  u.password_changed_us = u.created_us;
  SN_RETURN_IF_ERROR(impl_->write([&](sql::Db& db) -> Status {
    Result<std::optional<UserRow>> existing = user_by_name(db, username);
    if (!existing.ok()) return existing.status();
    if (*existing) return Status::failed_precondition("user " + u.username, "already exists (names ignore case)");
    if (role != "admin") {
      Result<int64_t> users = count_where(db, "SELECT COUNT(*) FROM users");
      if (!users.ok()) return users.status();
      if (*users == 0) return Status::failed_precondition("user " + u.username, "the first user must be an admin");
    }
    Result<sql::Stmt> st = db.prepare(
        "INSERT INTO users(username, password_hash, role, created_us, last_login_us, password_changed_us) "
        "VALUES(?, ?, ?, ?, NULL, ?)");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, u.username).bind(2, *hash).bind(3, u.role).bind(4, u.created_us).bind(5, u.created_us).run());
    return impl_->append_audit(db, actor, "user.create", describe(u));
  }));
  return u;
}

Result<std::vector<UserRecord>> StateStore::list_users() const {
  return impl_->read([&](sql::Db& db) -> Result<std::vector<UserRecord>> {
    Result<sql::Stmt> st = db.prepare(std::string("SELECT ") + kUserColumns + " FROM users ORDER BY username");
    if (!st.ok()) return st.status();
    std::vector<UserRecord> out;
    for (;;) {
      Result<bool> row = st->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(user_from(*st));
    }
    return out;
  });
}

Result<std::optional<UserRecord>> StateStore::find_user(std::string_view username) const {
  return impl_->read([&](sql::Db& db) -> Result<std::optional<UserRecord>> {
    Result<std::optional<UserRow>> u = user_by_name(db, username);
    if (!u.ok()) return u.status();
    if (!*u) return std::optional<UserRecord>();
    return std::optional<UserRecord>(std::move((*u)->record));
  });
}

Result<int64_t> StateStore::count_users() const {
  return impl_->read([&](sql::Db& db) { return count_where(db, "SELECT COUNT(*) FROM users"); });
}

Result<std::optional<UserRecord>> StateStore::check_password(std::string_view username, std::string_view password) {
  // A password outside the rule was never set: no match, whoever the user (so no time
  // difference by user either).
  if (!password_size_ok(password)) return std::optional<UserRecord>();
  Result<std::optional<UserRow>> user = impl_->read([&](sql::Db& db) { return user_by_name(db, username); });
  if (!user.ok()) return user.status();
  const std::optional<std::string> encoded =
      *user ? std::optional<std::string>((*user)->password_hash) : std::optional<std::string>();
  Result<bool> match = impl_->verify_password(encoded, password);
  if (!match.ok()) return match.status().with_context("user " + std::string(username));
  if (!*match) return std::optional<UserRecord>();
  UserRecord u = std::move((*user)->record);
  const int64_t now = now_us();
  bool still_current = false;
  SN_RETURN_IF_ERROR(impl_->write([&](sql::Db& db) -> Status {
    // Only while the hash is the one just verified: a password changed meanwhile wins.
    Result<sql::Stmt> st = db.prepare("UPDATE users SET last_login_us = ? WHERE username = ? AND password_hash = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, now).bind(2, u.username).bind(3, *encoded).run());
    still_current = sqlite3_changes(db.raw()) > 0;
    return Status::ok();
  }));
  if (!still_current) return std::optional<UserRecord>();
  u.last_login_us = now;
  return std::optional<UserRecord>(std::move(u));
}

Status StateStore::set_user_password(std::string_view username, std::string_view password, std::string_view actor) {
  SN_RETURN_IF_ERROR(check_password_rule(password));
  Result<std::string> hash = impl_->hash_password(password);
  if (!hash.ok()) return hash.status();
  return impl_->write([&](sql::Db& db) -> Status {
    Result<std::optional<UserRow>> u = user_by_name(db, username);
    if (!u.ok()) return u.status();
    if (!*u) return Status::not_found("user " + std::string(username), "no such user");
    Result<sql::Stmt> st = db.prepare("UPDATE users SET password_hash = ?, password_changed_us = ? WHERE username = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, *hash).bind(2, now_us()).bind(3, (*u)->record.username).run());
    return impl_->append_audit(db, actor, "user.password", describe((*u)->record));
  });
}

Status StateStore::set_user_role(std::string_view username, std::string_view role, std::string_view actor) {
  SN_RETURN_IF_ERROR(check_role(role));
  return impl_->write([&](sql::Db& db) -> Status {
    Result<std::optional<UserRow>> u = user_by_name(db, username);
    if (!u.ok()) return u.status();
    if (!*u) return Status::not_found("user " + std::string(username), "no such user");
    const UserRecord& old = (*u)->record;
    if (old.role == role) return Status::ok();
    SN_RETURN_IF_ERROR(keep_an_admin(db, old, "demoted"));
    Result<sql::Stmt> st = db.prepare("UPDATE users SET role = ? WHERE username = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, role).bind(2, old.username).run());
    return impl_->append_audit(db, actor, "user.role", old.username + ": " + old.role + " -> " + std::string(role));
  });
}

Status StateStore::delete_user(std::string_view username, std::string_view actor) {
  return impl_->write([&](sql::Db& db) -> Status {
    Result<std::optional<UserRow>> u = user_by_name(db, username);
    if (!u.ok()) return u.status();
    if (!*u) return Status::not_found("user " + std::string(username), "no such user");
    SN_RETURN_IF_ERROR(keep_an_admin(db, (*u)->record, "deleted"));
    Result<sql::Stmt> st = db.prepare("DELETE FROM users WHERE username = ?");
    if (!st.ok()) return st.status();
    SN_RETURN_IF_ERROR(st->bind(1, (*u)->record.username).run());
    return impl_->append_audit(db, actor, "user.delete", describe((*u)->record));
  });
}

Status StateStore::backup(const std::string& path) const {
  return impl_->read([&](sql::Db& src) -> Status { return copy_database(src, path); });
}

Result<AuditVerification> check_state_file(const std::string& path, std::string_view audit_key) {
  Result<sql::Db> db = sql::Db::open(path, SQLITE_OPEN_READONLY);
  if (!db.ok()) return db.status();
  Result<sql::Stmt> ic = db->prepare("PRAGMA integrity_check");
  if (!ic.ok()) return Status::corruption("state file " + path, ic.status().message());
  Result<bool> row = ic->step();
  if (!row.ok()) return Status::corruption("state file " + path, row.status().message());
  if (!*row || ic->text(0) != "ok") return Status::corruption("state file " + path, "integrity check: " + ic->text(0));
  Result<int64_t> v = user_version(*db);
  if (!v.ok()) return v.status();
  if (*v < 1 || *v > kSchemaVersion) {
    return Status::corruption("state file " + path, "schema version " + std::to_string(*v) + " is not one this build knows");
  }
  return verify_chain(*db, audit_key);
}

}  // namespace sn::storage
