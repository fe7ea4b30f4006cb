// StateStore: schema and migrations, bootstrap, tenants and limits, API keys (stored only
// hashed, checked in constant time, revocation), usage metering (batched, flushed by the
// writer thread, surviving a reopen) and its filtered query, the audit chain (tampering by
// edit or deletion is found) and its filtered, paged query, settings, the model catalog,
// the web UI's admin users (Argon2id hashes, the last admin kept), online backup and its
// check, bad files, and concurrent callers. Argon2 runs at a tiny cost here.
#include <sys/stat.h>

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "supernode/storage/state_store.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::storage;

namespace {

void check_ok(const sn::Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

std::unique_ptr<StateStore> open_store(const std::string& path, int64_t flush_ms = 1000) {
  sn::Result<std::unique_ptr<StateStore>> st =
      StateStore::open(path, {.usage_flush_interval_ms = flush_ms, .argon2_memory_kib = 64, .argon2_iterations = 1});
  check_ok(st.status());
  return std::move(*st);
}

// Runs SQL on the file directly, as someone with access to the disk could.
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  CHECK_EQUAL(SQLITE_OK, sqlite3_open(path.c_str(), &db));
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  CHECK_EQUAL_TEXT(SQLITE_OK, rc, err != nullptr ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

}  // namespace

TEST_GROUP(StateStore) {
  std::unique_ptr<sn::testing::TempDir> dir;
  std::string path;
  void setup() override {
    dir = std::make_unique<sn::testing::TempDir>();
    path = dir->file("state.db");
  }
  void teardown() override { dir.reset(); }
};

TEST(StateStore, MigratesAnEmptyFileAndReopens) {
  {
    std::unique_ptr<StateStore> s = open_store(path);
    LONGS_EQUAL(4, s->schema_version());
    check_ok(s->create_tenant("acme", {}, "test").status());
  }
  // A database of schema 1 (before the moderation terms, keyed audit rows and users) gets
  // migrations 2 to 4 and keeps its rows.
  raw_sql(path,
          "DROP TABLE moderation_terms; CREATE TABLE a2 AS SELECT seq, time_us, actor, action, detail, hash FROM audit; "
          "DROP TABLE audit; ALTER TABLE a2 RENAME TO audit; DROP TABLE users; "
          "CREATE TABLE admin_users(name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, created_us INTEGER NOT NULL); "
          "PRAGMA user_version = 1;");
  std::unique_ptr<StateStore> s = open_store(path);
  LONGS_EQUAL(4, s->schema_version());
  CHECK_TRUE(s->verify_audit()->ok);
  check_ok(s->add_moderation_term("x", "input", "test"));
  sn::Result<std::optional<TenantRecord>> t = s->find_tenant("acme");
  check_ok(t.status());
  CHECK_TRUE(t->has_value());
}

TEST(StateStore, BootstrapMakesTheDefaultTenantAndOneKeyOnce) {
  std::unique_ptr<StateStore> s = open_store(path);
  sn::Result<std::optional<NewApiKey>> first = s->bootstrap();
  check_ok(first.status());
  CHECK_TRUE(first->has_value());
  STRCMP_EQUAL("default", (*first)->record.tenant.c_str());
  CHECK_TRUE((*first)->key.rfind("sk-sn-", 0) == 0);
  sn::Result<std::optional<NewApiKey>> again = s->bootstrap();
  check_ok(again.status());
  CHECK_FALSE(again->has_value());
  sn::Result<std::optional<ApiKeyRecord>> who = s->authenticate((*first)->key);
  check_ok(who.status());
  CHECK_TRUE(who->has_value());
  STRCMP_EQUAL("default", (*who)->tenant.c_str());
}

TEST(StateStore, KeysAreStoredOnlyAsSaltedHashes) {
  std::string key;
  {
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_tenant("acme", {}, "test").status());
    sn::Result<NewApiKey> k = s->create_key("acme", {.rpm = 10}, "ci", "test");
    check_ok(k.status());
    key = k->key;
    LONGS_EQUAL(6 + 16 + 1 + 43, key.size());
    STRCMP_EQUAL(k->record.key_id.c_str(), key.substr(6, 16).c_str());
  }
  // Neither the key nor its secret appears anywhere in the database files.
  const std::string secret = key.substr(6 + 16 + 1);
  for (const char* suffix : {"", "-wal"}) {
    const std::string f = path + suffix;
    if (!std::filesystem::exists(f)) continue;
    const std::string bytes = sn::testing::read_file(f);
    CHECK_TRUE(bytes.find(secret) == std::string::npos);
    CHECK_TRUE(bytes.find(secret.substr(0, 20)) == std::string::npos);
  }
  std::unique_ptr<StateStore> s = open_store(path);
  sn::Result<std::optional<ApiKeyRecord>> ok = s->authenticate(key);
  check_ok(ok.status());
  CHECK_TRUE(ok->has_value());
  LONGS_EQUAL(10, (*ok)->limits.rpm);
  STRCMP_EQUAL("ci", (*ok)->label.c_str());
  // One character off, truncated, another prefix, garbage: all simply unknown.
  std::string wrong = key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {wrong, key.substr(0, key.size() - 1), "sk-xx-" + key.substr(6), std::string("Bearer"),
                                 std::string(), std::string(200, 'a')}) {
    sn::Result<std::optional<ApiKeyRecord>> r = s->authenticate(bad);
    check_ok(r.status());
    CHECK_FALSE(r->has_value());
  }
}

TEST(StateStore, RevokedKeysNoLongerAuthenticate) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_tenant("acme", {}, "test").status());
  sn::Result<NewApiKey> k = s->create_key("acme", {}, "", "test");
  check_ok(k.status());
  check_ok(s->revoke_key(k->record.key_id, "test"));
  check_ok(s->revoke_key(k->record.key_id, "test"));  // twice is fine
  CHECK_FALSE(s->authenticate(k->key)->has_value());
  sn::Result<std::vector<ApiKeyRecord>> keys = s->list_keys("acme");
  check_ok(keys.status());
  LONGS_EQUAL(1, keys->size());
  CHECK_TRUE((*keys)[0].revoked_us.has_value());
  CHECK_TRUE(s->revoke_key("0123456789abcdef", "test").code() == sn::Status::Code::kNotFound);
}

TEST(StateStore, TenantsAndLimitsAreValidated) {
  std::unique_ptr<StateStore> s = open_store(path);
  Limits l{.rpm = 60, .tpm = 10000, .concurrency = 4, .models = {"tinyllama", "qwen"}};
  sn::Result<TenantRecord> t = s->create_tenant("acme", l, "test");
  check_ok(t.status());
  CHECK_TRUE(t->limits == l);
  CHECK_TRUE(t->cache_salt.rfind("tenant:", 0) == 0);
  sn::Result<TenantRecord> t2 = s->create_tenant("globex", {}, "test");
  check_ok(t2.status());
  CHECK_TRUE(t->cache_salt != t2->cache_salt);  // salts never shared by accident
  CHECK_TRUE(s->create_tenant("acme", {}, "test").status().code() == sn::Status::Code::kInvalidArgument);
  CHECK_FALSE(s->create_tenant("bad name", {}, "test").ok());
  CHECK_FALSE(s->create_tenant("", {}, "test").ok());
  CHECK_FALSE(s->create_tenant("x", {.rpm = -1}, "test").ok());
  CHECK_TRUE(s->create_key("nobody", {}, "", "test").status().code() == sn::Status::Code::kNotFound);
  check_ok(s->set_tenant_limits("acme", {.rpm = 1}, "test"));
  LONGS_EQUAL(1, (*s->find_tenant("acme"))->limits.rpm);
  CHECK_TRUE(s->set_tenant_limits("nobody", {}, "test").code() == sn::Status::Code::kNotFound);
  sn::Result<std::vector<TenantRecord>> all = s->list_tenants();
  check_ok(all.status());
  LONGS_EQUAL(2, all->size());
}

TEST(StateStore, UsageIsBatchedFlushedAndSurvivesAReopen) {
  std::string key_a, key_b;
  {
    std::unique_ptr<StateStore> s = open_store(path, /*flush_ms=*/50);
    check_ok(s->create_tenant("acme", {}, "test").status());
    check_ok(s->create_tenant("globex", {}, "test").status());
    key_a = s->create_key("acme", {}, "", "test")->record.key_id;
    key_b = s->create_key("globex", {}, "", "test")->record.key_id;
    for (int i = 0; i < 10; ++i) s->record_usage(key_a, 1000, 100, 20);
    s->record_usage(key_a, 1001, 5, 1);
    s->record_usage(key_b, 1000, 7, 3);
    // The writer thread flushes on its own within the interval.
    bool seen = false;
    for (int i = 0; i < 200 && !seen; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      seen = s->usage(0)->size() == 3;
    }
    CHECK_TRUE_TEXT(seen, "usage was not flushed by the writer thread");
    s->record_usage(key_a, 1001, 5, 1);  // buffered at close: the destructor flushes it
  }
  std::unique_ptr<StateStore> s = open_store(path);
  sn::Result<std::vector<UsageRow>> rows = s->usage(1000, "acme");
  check_ok(rows.status());
  LONGS_EQUAL(2, rows->size());
  LONGS_EQUAL(10, (*rows)[0].requests);
  LONGS_EQUAL(1000, (*rows)[0].prompt_tokens);
  LONGS_EQUAL(200, (*rows)[0].completion_tokens);
  LONGS_EQUAL(2, (*rows)[1].requests);
  LONGS_EQUAL(10, (*rows)[1].prompt_tokens);
  sn::Result<std::vector<UsageRow>> later = s->usage(1001);
  check_ok(later.status());
  LONGS_EQUAL(1, later->size());
  s->record_usage(key_b, 1002, 1, 1);
  check_ok(s->flush_usage());
  LONGS_EQUAL(2, s->usage(0, "globex")->size());
}

TEST(StateStore, TheAuditChainVerifiesAndCatchesEditsAndDeletions) {
  {
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_tenant("acme", {}, "admin uid 0").status());
    const std::string id = s->create_key("acme", {}, "", "admin uid 0")->record.key_id;
    check_ok(s->revoke_key(id, "admin uid 0"));
    check_ok(s->audit("admin uid 0", "model.load", "tinyllama"));
    sn::Result<AuditVerification> v = s->verify_audit();
    check_ok(v.status());
    CHECK_TRUE(v->ok);
    LONGS_EQUAL(4, v->rows);
    sn::Result<std::vector<AuditRecord>> log = s->audit_log();
    check_ok(log.status());
    LONGS_EQUAL(4, log->size());
    STRCMP_EQUAL("tenant.create", (*log)[0].action.c_str());
    STRCMP_EQUAL("key.revoke", (*log)[2].action.c_str());
    LONGS_EQUAL(64, (*log)[3].hash.size());
    // The log is append-only inside the database too.
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    CHECK_TRUE(sqlite3_exec(db, "UPDATE audit SET detail = 'x' WHERE seq = 2", nullptr, nullptr, nullptr) != SQLITE_OK);
    CHECK_TRUE(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 2", nullptr, nullptr, nullptr) != SQLITE_OK);
    sqlite3_close(db);
  }
  // Someone with the file drops the guards and edits a row: the chain breaks there.
  raw_sql(path, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; UPDATE audit SET detail = 'nothing' WHERE seq = 2;");
  {
    std::unique_ptr<StateStore> s = open_store(path);
    sn::Result<AuditVerification> v = s->verify_audit();
    check_ok(v.status());
    CHECK_FALSE(v->ok);
    LONGS_EQUAL(2, v->first_bad_seq);
  }
  raw_sql(path, "DELETE FROM audit WHERE seq = 3;");
  sn::Result<AuditVerification> v = check_state_file(path);
  check_ok(v.status());
  CHECK_FALSE(v->ok);
}

TEST(StateStore, SettingsAndTheModelCatalog) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->set_setting("prompt_logging", "off", "test"));
  check_ok(s->set_setting("prompt_logging", "on", "test"));
  STRCMP_EQUAL("on", (*s->setting("prompt_logging"))->c_str());
  CHECK_FALSE(s->setting("missing")->has_value());
  check_ok(s->put_model({"tinyllama", "/srv/models/t.gguf", "ab12", 636, 1}, "test"));
  check_ok(s->put_model({"qwen", "/srv/models/q.gguf", "cd34", 900, 2}, "test"));
  sn::Result<std::vector<ModelRecord>> models = s->list_models();
  check_ok(models.status());
  LONGS_EQUAL(2, models->size());
  STRCMP_EQUAL("qwen", (*models)[0].id.c_str());
  check_ok(s->remove_model("qwen", "test"));
  CHECK_TRUE(s->remove_model("qwen", "test").code() == sn::Status::Code::kNotFound);
  CHECK_FALSE(s->put_model({"bad id!", "", "", 0, 0}, "test").is_ok());
}

TEST(StateStore, AnOnlineBackupIsCompleteAndChecked) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_tenant("acme", {}, "test").status());
  sn::Result<NewApiKey> k = s->create_key("acme", {}, "", "test");
  check_ok(k.status());
  s->record_usage(k->record.key_id, 5, 1, 1);
  check_ok(s->flush_usage());
  const std::string copy = dir->file("backup.db");
  check_ok(s->backup(copy));
  sn::Result<AuditVerification> v = check_state_file(copy);
  check_ok(v.status());
  CHECK_TRUE(v->ok);
  LONGS_EQUAL(2, v->rows);
  // The copy is a working state database: the key authenticates there too.
  std::unique_ptr<StateStore> restored = open_store(copy);
  CHECK_TRUE(restored->authenticate(k->key)->has_value());
  LONGS_EQUAL(1, restored->usage(0)->size());
  // A damaged file fails the check with a reason.
  sn::testing::write_file(dir->file("junk.db"), std::string(8192, 'x'));
  CHECK_FALSE(check_state_file(dir->file("junk.db")).ok());
}

TEST(StateStore, NotADatabaseIsAClearError) {
  sn::testing::write_file(path, "this is not a sqlite database, just text that is long enough to look like a header");
  sn::Result<std::unique_ptr<StateStore>> s = StateStore::open(path);
  CHECK_FALSE(s.ok());
  CHECK_TRUE_TEXT(s.status().message().find(path) != std::string::npos, s.status().to_string().c_str());
  sn::Result<std::unique_ptr<StateStore>> missing_dir = StateStore::open(dir->file("no/such/dir/state.db"));
  CHECK_FALSE(missing_dir.ok());
}

TEST(StateStore, ConcurrentCallersAllSucceed) {
  std::unique_ptr<StateStore> s = open_store(path, 20);
  check_ok(s->create_tenant("acme", {}, "test").status());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        sn::Result<NewApiKey> k = s->create_key("acme", {}, "t" + std::to_string(t), "test");
        if (!k.ok() || !s->authenticate(k->key)->has_value()) ++failures;
        s->record_usage(k.ok() ? k->record.key_id : "x", 7, 1, 1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  LONGS_EQUAL(0, failures.load());
  LONGS_EQUAL(40, s->list_keys("acme")->size());
  check_ok(s->flush_usage());
  LONGS_EQUAL(40, s->usage(7)->size());
  sn::Result<AuditVerification> v = s->verify_audit();
  CHECK_TRUE(v->ok);
  LONGS_EQUAL(41, v->rows);
}

// The audit log's key-use summary: one "key.use" row per key used, with its totals, each
// interval and at close; the chain still verifies.
TEST(StateStore, KeyUseIsSummarizedInTheAuditLog) {
  std::string key_a;
  {
    sn::Result<std::unique_ptr<StateStore>> st =
        StateStore::open(path, {.usage_flush_interval_ms = 20, .key_use_audit_interval_ms = 100});
    check_ok(st.status());
    std::unique_ptr<StateStore>& s = *st;
    check_ok(s->create_tenant("acme", {}, "test").status());
    key_a = s->create_key("acme", {}, "", "test")->record.key_id;
    for (int i = 0; i < 3; ++i) s->record_usage(key_a, 1000, 10, 2);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const sn::Result<std::vector<AuditRecord>> log = s->audit_log();
      for (const AuditRecord& r : *log) seen = seen || r.action == "key.use";
    }
    CHECK_TRUE_TEXT(seen, "no key.use row within the interval");
    s->record_usage(key_a, 1001, 1, 1);  // summarized at close
  }
  std::unique_ptr<StateStore> s = open_store(path);
  std::vector<std::string> uses;
  const sn::Result<std::vector<AuditRecord>> log = s->audit_log();
  for (const AuditRecord& r : *log) {
    if (r.action == "key.use") uses.push_back(r.detail);
  }
  LONGS_EQUAL(2, static_cast<long>(uses.size()));
  STRCMP_EQUAL(("key " + key_a + ": 3 requests, 30 prompt tokens, 6 completion tokens").c_str(), uses[0].c_str());
  STRCMP_EQUAL(("key " + key_a + ": 1 requests, 1 prompt tokens, 1 completion tokens").c_str(), uses[1].c_str());
  CHECK_TRUE(s->verify_audit()->ok);
}

// Content moderation's terms: stored lowercase and trimmed, scopes checked, audited without
// their text, removable.
TEST(StateStore, ModerationTermsAreKeptAndAudited) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->add_moderation_term("  Forbidden Word ", "both", "test"));
  check_ok(s->add_moderation_term("secret-project", "output", "test"));
  CHECK_FALSE(s->add_moderation_term("x", "sideways", "test").is_ok());
  CHECK_FALSE(s->add_moderation_term("   ", "input", "test").is_ok());
  CHECK_FALSE(s->add_moderation_term("two\nlines", "input", "test").is_ok());
  sn::Result<std::vector<ModerationTerm>> terms = s->list_moderation_terms();
  check_ok(terms.status());
  LONGS_EQUAL(2, static_cast<long>(terms->size()));
  STRCMP_EQUAL("forbidden word", (*terms)[0].term.c_str());
  STRCMP_EQUAL("both", (*terms)[0].scope.c_str());
  STRCMP_EQUAL("output", (*terms)[1].scope.c_str());
  const sn::Result<std::vector<AuditRecord>> log = s->audit_log();
  for (const AuditRecord& r : *log) CHECK_TRUE(r.detail.find("orbidden") == std::string::npos);
  check_ok(s->remove_moderation_term("FORBIDDEN WORD", "test"));
  CHECK_FALSE(s->remove_moderation_term("forbidden word", "test").is_ok());
  LONGS_EQUAL(1, static_cast<long>(s->list_moderation_terms()->size()));
}

// Regression: the audit chain was an unkeyed hash that anyone able to write the database
// could recompute after an edit. With a key (kept outside the database) rows carry an HMAC.
TEST(StateStore, AKeyedAuditChainCannotBeRecomputedWithoutTheKey) {
  const std::string key(32, 'k');
  {
    // Rows from before the key stay plain; the first open with a key appends a keyed row.
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_tenant("acme", {}, "admin").status());
  }
  auto open_keyed = [&](const std::string& k) {
    return StateStore::open(path, {.usage_flush_interval_ms = 1000, .key_use_audit_interval_ms = 0, .audit_key = k});
  };
  {
    sn::Result<std::unique_ptr<StateStore>> s = open_keyed(key);
    check_ok(s.status());
    check_ok((*s)->audit("admin", "model.load", "m"));
    sn::Result<AuditVerification> v = (*s)->verify_audit();
    check_ok(v.status());
    CHECK_TEXT(v->ok, v->problem.c_str());
    LONGS_EQUAL(3, v->rows);  // tenant.create (plain), audit.keyed, model.load
    STRCMP_EQUAL("audit.keyed", (*s)->audit_log()->at(1).action.c_str());
  }
  CHECK_TRUE(check_state_file(path, key)->ok);
  CHECK_FALSE(check_state_file(path)->ok);  // keyed rows need the key
  CHECK_FALSE(open_keyed(std::string(32, 'x')).ok());  // another key: refused, not forked
  CHECK_FALSE(open_keyed("short").ok());
  // Someone with the file edits a row and rewrites every later row as plain SHA-256 (all an
  // unkeyed chain needed): with the key, verification fails.
  {
    sn::Result<std::unique_ptr<StateStore>> plain = StateStore::open(dir->file("forged.db"));
    check_ok(plain.status());
    check_ok((*plain)->create_tenant("acme", {}, "admin").status());
    check_ok((*plain)->audit("admin", "nothing", "happened"));
  }
  raw_sql(path, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; DELETE FROM audit; "
                "ATTACH '" + dir->file("forged.db") + "' AS f; INSERT INTO audit SELECT * FROM f.audit;");
  sn::Result<AuditVerification> v = check_state_file(path, key);
  check_ok(v.status());
  CHECK_FALSE(v->ok);
  CHECK_TRUE(v->problem.find("without the audit key") != std::string::npos);
}

// The key/tenant cache behind authorize(): answers from memory after the first request of
// a key, still checks the secret every time, and forgets at once on revoke or new limits.
TEST(StateStore, AuthorizeIsCachedAndRevocationTakesEffectAtOnce) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_tenant("acme", {.rpm = 5}, "test").status());
  sn::Result<NewApiKey> k = s->create_key("acme", {}, "", "test");
  check_ok(k.status());
  for (int i = 0; i < 3; ++i) {
    sn::Result<std::optional<Principal>> p = s->authorize(k->key);
    check_ok(p.status());
    CHECK_TRUE(p->has_value());
    LONGS_EQUAL(5, (*p)->tenant.limits.rpm);
    STRCMP_EQUAL("acme", (*p)->key.tenant.c_str());
  }
  std::string wrong = k->key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  CHECK_FALSE(s->authorize(wrong)->has_value());  // a cached id with a wrong secret
  check_ok(s->set_tenant_limits("acme", {.rpm = 7}, "test"));
  LONGS_EQUAL(7, (*s->authorize(k->key))->tenant.limits.rpm);
  check_ok(s->revoke_key(k->record.key_id, "test"));
  CHECK_FALSE(s->authorize(k->key)->has_value());
  // Unknown ids are remembered as unknown, and a key created later is found.
  const std::string unknown = "sk-sn-0123456789abcdef-" + std::string(43, 'A');
  CHECK_FALSE(s->authorize(unknown)->has_value());
  sn::Result<NewApiKey> k2 = s->create_key("acme", {}, "", "test");
  CHECK_TRUE(s->authorize(k2->key)->has_value());
}

namespace {

// The value of one SQL query's first column and row, run on the file directly.
std::string raw_query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  CHECK_EQUAL(SQLITE_OK, sqlite3_open(path.c_str(), &db));
  sqlite3_stmt* st = nullptr;
  CHECK_EQUAL_TEXT(SQLITE_OK, sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), sqlite3_errmsg(db));
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

bool is_invalid(const sn::Status& s) { return s.code() == sn::Status::Code::kInvalidArgument; }
bool is_precondition(const sn::Status& s) { return s.code() == sn::Status::Code::kFailedPrecondition; }

}  // namespace

// A store of schema 3 (before the users table: migration 1's unused admin_users instead)
// gets migration 4, keeps its rows and needs first-run setup.
TEST(StateStore, MigratesASchema3StoreToUsers) {
  {
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_tenant("acme", {}, "test").status());
  }
  raw_sql(path,
          "DROP TABLE users; CREATE TABLE admin_users(name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, "
          "created_us INTEGER NOT NULL); PRAGMA user_version = 3;");
  STRCMP_EQUAL("3", raw_query(path, "PRAGMA user_version").c_str());
  {
    std::unique_ptr<StateStore> s = open_store(path);
    LONGS_EQUAL(4, s->schema_version());
    // The schema-3 database was copied before it migrated, and the copy opens as it was.
    STRCMP_EQUAL((path + ".before-v4-from-v3").c_str(), s->backup_before_migration().c_str());
    STRCMP_EQUAL("3", raw_query(s->backup_before_migration(), "PRAGMA user_version").c_str());
    STRCMP_EQUAL("1", raw_query(s->backup_before_migration(), "SELECT COUNT(*) FROM tenants WHERE name = 'acme'").c_str());
    struct stat st{};
    CHECK_EQUAL(0, ::stat(s->backup_before_migration().c_str(), &st));
    LONGS_EQUAL(0600, st.st_mode & 0777);
    LONGS_EQUAL(0, *s->count_users());
    check_ok(s->create_user("alice", "correct horse", "admin", "setup").status());
    CHECK_TRUE(s->find_tenant("acme")->has_value());
    CHECK_TRUE(s->verify_audit()->ok);
  }
  STRCMP_EQUAL("4", raw_query(path, "PRAGMA user_version").c_str());
  STRCMP_EQUAL("0", raw_query(path, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'admin_users'").c_str());
  std::unique_ptr<StateStore> s = open_store(path);  // reopening applies nothing more
  LONGS_EQUAL(1, *s->count_users());
  STRCMP_EQUAL("", s->backup_before_migration().c_str());
}

TEST(StateStore, UsersAreCreatedAndValidated) {
  std::unique_ptr<StateStore> s = open_store(path);
  LONGS_EQUAL(0, *s->count_users());  // first-run setup required
  sn::Status first_auditor = s->create_user("carol", "password1", "auditor", "setup").status();
  CHECK_TRUE_TEXT(is_precondition(first_auditor), first_auditor.to_string().c_str());
  CHECK_TRUE(first_auditor.message().find("first user must be an admin") != std::string::npos);
  sn::Result<UserRecord> alice = s->create_user("alice", "password1", "admin", "setup");
  check_ok(alice.status());
  STRCMP_EQUAL("alice", alice->username.c_str());
  STRCMP_EQUAL("admin", alice->role.c_str());
  CHECK_TRUE(alice->created_us > 0);
  CHECK_FALSE(alice->last_login_us.has_value());
  LONGS_EQUAL(alice->created_us, alice->password_changed_us);
  check_ok(s->create_user("ops.team_1@example-corp", std::string(8, 'p'), "auditor", "alice").status());
  check_ok(s->create_user("Bob", std::string(1024, 'p'), "admin", "alice").status());
  // Names, roles and passwords out of the rules, each refused naming the rule.
  for (const std::string& bad : {std::string(), std::string(65, 'a'), std::string("bad name"), std::string("x/y"),
                                 std::string("caf\xc3\xa9"), std::string("a:b")}) {
    sn::Status st = s->create_user(bad, "password1", "admin", "alice").status();
    CHECK_TRUE_TEXT(is_invalid(st), bad.c_str());
    CHECK_TRUE_TEXT(st.message().find("username") != std::string::npos, st.to_string().c_str());
  }
  sn::Status bad_role = s->create_user("dave", "password1", "root", "alice").status();
  CHECK_TRUE(is_invalid(bad_role));
  CHECK_TRUE(bad_role.message().find("admin or auditor") != std::string::npos);
  for (const std::string& pw : {std::string(), std::string(7, 'p'), std::string(1025, 'p')}) {
    sn::Status st = s->create_user("dave", pw, "admin", "alice").status();
    CHECK_TRUE(is_invalid(st));
    CHECK_TRUE_TEXT(st.message().find("8 to 1024 bytes") != std::string::npos, st.to_string().c_str());
  }
  // Names are unique ignoring case; lookups ignore case and answer the name as created.
  sn::Status taken = s->create_user("ALICE", "password2", "admin", "alice").status();
  CHECK_TRUE(is_precondition(taken));
  CHECK_TRUE(taken.message().find("already exists") != std::string::npos);
  sn::Result<std::optional<UserRecord>> found = s->find_user("bob");
  check_ok(found.status());
  CHECK_TRUE(found->has_value());
  STRCMP_EQUAL("Bob", (*found)->username.c_str());
  CHECK_FALSE(s->find_user("nobody")->has_value());
  sn::Result<std::vector<UserRecord>> all = s->list_users();
  check_ok(all.status());
  LONGS_EQUAL(3, static_cast<long>(all->size()));
  STRCMP_EQUAL("alice", (*all)[0].username.c_str());  // by name, ignoring case
  STRCMP_EQUAL("Bob", (*all)[1].username.c_str());
  STRCMP_EQUAL("auditor", (*all)[2].role.c_str());
  LONGS_EQUAL(3, *s->count_users());
  // A cost Argon2 cannot run is refused at open.
  CHECK_FALSE(StateStore::open(dir->file("other.db"), {.argon2_memory_kib = 4}).ok());
  CHECK_FALSE(StateStore::open(dir->file("other.db"), {.argon2_iterations = 0}).ok());
}

TEST(StateStore, PasswordsAreArgon2idHashesAndVerify) {
  const std::string pw = "correct horse battery staple";
  {
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_user("alice", pw, "admin", "setup").status());
    check_ok(s->create_user("bob", pw, "auditor", "setup").status());
    sn::Result<std::optional<UserRecord>> ok = s->check_password("alice", pw);
    check_ok(ok.status());
    CHECK_TRUE(ok->has_value());
    STRCMP_EQUAL("admin", (*ok)->role.c_str());
    CHECK_TRUE((*ok)->last_login_us.has_value());
    LONGS_EQUAL(*(*ok)->last_login_us, *(*s->find_user("alice"))->last_login_us);
    CHECK_TRUE(s->check_password("ALICE", pw)->has_value());  // names ignore case
    for (const std::string& wrong : {pw + "!", pw.substr(1), std::string("Correct horse battery staple"), std::string(),
                                     std::string(2000, 'x')}) {
      sn::Result<std::optional<UserRecord>> no = s->check_password("alice", wrong);
      check_ok(no.status());
      CHECK_FALSE(no->has_value());
    }
    sn::Result<std::optional<UserRecord>> unknown = s->check_password("mallory", pw);
    check_ok(unknown.status());
    CHECK_FALSE(unknown->has_value());
    CHECK_FALSE(s->check_password("", pw)->has_value());
    CHECK_FALSE((*s->find_user("bob"))->last_login_us.has_value());  // only matches count as logins
  }
  // In the file: each hash is a libargon2 encoded Argon2id string of the store's cost, with
  // its own salt; the password appears nowhere.
  const std::string hash = raw_query(path, "SELECT password_hash FROM users WHERE username = 'alice'");
  CHECK_TRUE_TEXT(hash.rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0, hash.c_str());
  CHECK_TRUE(hash != raw_query(path, "SELECT password_hash FROM users WHERE username = 'bob'"));
  for (const char* suffix : {"", "-wal"}) {
    const std::string f = path + suffix;
    if (!std::filesystem::exists(f)) continue;
    CHECK_TRUE(sn::testing::read_file(f).find("horse battery") == std::string::npos);
  }
  // A new password replaces the old one; hashes of another cost keep verifying.
  sn::Result<std::unique_ptr<StateStore>> st =
      StateStore::open(path, {.argon2_memory_kib = 128, .argon2_iterations = 2});
  check_ok(st.status());
  std::unique_ptr<StateStore>& s = *st;
  CHECK_TRUE(s->check_password("bob", pw)->has_value());
  const int64_t changed_before = (*s->find_user("alice"))->password_changed_us;
  check_ok(s->set_user_password("alice", "a new passphrase", "alice"));
  CHECK_FALSE(s->check_password("alice", pw)->has_value());
  CHECK_TRUE(s->check_password("alice", "a new passphrase")->has_value());
  CHECK_TRUE((*s->find_user("alice"))->password_changed_us > changed_before);
  CHECK_TRUE(raw_query(path, "SELECT password_hash FROM users WHERE username = 'alice'")
                 .rfind("$argon2id$v=19$m=128,t=2,p=1$", 0) == 0);
  CHECK_TRUE(is_invalid(s->set_user_password("alice", "short", "alice")));
  CHECK_TRUE(s->set_user_password("nobody", "long enough", "alice").code() == sn::Status::Code::kNotFound);
}

// check_password spends the hashing time for unknown users too, so timing does not tell
// which names exist. Compared by the fastest of several tries, which load can only slow.
TEST(StateStore, AnUnknownUserTakesTheHashingTimeToo) {
  sn::Result<std::unique_ptr<StateStore>> st =
      StateStore::open(path, {.argon2_memory_kib = 8192, .argon2_iterations = 2});
  check_ok(st.status());
  std::unique_ptr<StateStore>& s = *st;
  check_ok(s->create_user("alice", "password1", "admin", "setup").status());
  CHECK_FALSE(s->check_password("mallory", "password1")->has_value());  // makes the dummy hash
  auto fastest = [&](const char* user) {
    auto best = std::chrono::steady_clock::duration::max();
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      CHECK_FALSE(s->check_password(user, "wrong password")->has_value());
      best = std::min(best, std::chrono::steady_clock::now() - t0);
    }
    return std::chrono::duration<double>(best).count();
  };
  const double known = fastest("alice");
  const double unknown = fastest("mallory");
  CHECK_TRUE_TEXT(unknown > 0.5 * known,
                  ("unknown " + std::to_string(unknown) + " s, known " + std::to_string(known) + " s").c_str());
}

TEST(StateStore, TheLastAdminCannotBeDeletedOrDemoted) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_user("alice", "password1", "admin", "setup").status());
  check_ok(s->create_user("carol", "password1", "auditor", "alice").status());
  sn::Status del = s->delete_user("alice", "alice");
  CHECK_TRUE_TEXT(is_precondition(del), del.to_string().c_str());
  CHECK_TRUE(del.message().find("last admin") != std::string::npos);
  sn::Status demote = s->set_user_role("alice", "auditor", "alice");
  CHECK_TRUE(is_precondition(demote));
  CHECK_TRUE(demote.message().find("last admin") != std::string::npos);
  STRCMP_EQUAL("admin", (*s->find_user("alice"))->role.c_str());
  // With a second admin, either may go.
  check_ok(s->set_user_role("carol", "admin", "alice"));
  check_ok(s->set_user_role("Alice", "auditor", "carol"));
  STRCMP_EQUAL("auditor", (*s->find_user("alice"))->role.c_str());
  CHECK_TRUE(is_precondition(s->delete_user("carol", "carol")));
  CHECK_TRUE(is_precondition(s->set_user_role("carol", "auditor", "carol")));
  check_ok(s->delete_user("alice", "carol"));
  CHECK_FALSE(s->find_user("alice")->has_value());
  CHECK_FALSE(s->check_password("alice", "password1")->has_value());
  LONGS_EQUAL(1, *s->count_users());
  CHECK_TRUE(s->delete_user("alice", "carol").code() == sn::Status::Code::kNotFound);
  CHECK_TRUE(s->set_user_role("alice", "admin", "carol").code() == sn::Status::Code::kNotFound);
  CHECK_TRUE(is_invalid(s->set_user_role("carol", "superuser", "carol")));
  check_ok(s->set_user_role("carol", "admin", "carol"));  // unchanged: fine, not audited
  LONGS_EQUAL(1, static_cast<long>(s->audit_query({.actor = "carol", .action = "user.role"})->size()));
}

TEST(StateStore, UserChangesAreAuditedWithoutPasswords) {
  const std::string pw1 = "first-secret-pass", pw2 = "second-secret-pass";
  {
    std::unique_ptr<StateStore> s = open_store(path);
    check_ok(s->create_user("alice", pw1, "admin", "setup").status());
    check_ok(s->create_user("bob", pw1, "auditor", "admin alice").status());
    check_ok(s->set_user_password("bob", pw2, "admin alice"));
    check_ok(s->set_user_role("bob", "admin", "admin alice"));
    check_ok(s->delete_user("bob", "admin alice"));
    CHECK_TRUE(s->check_password("alice", pw1)->has_value());  // logins are the caller's to audit
    sn::Result<std::vector<AuditRecord>> rows = s->audit_query({.action = "user.*"});
    check_ok(rows.status());
    LONGS_EQUAL(5, static_cast<long>(rows->size()));
    const char* expected[][3] = {{"user.delete", "bob (admin)", "admin alice"},
                                 {"user.role", "bob: auditor -> admin", "admin alice"},
                                 {"user.password", "bob (auditor)", "admin alice"},
                                 {"user.create", "bob (auditor)", "admin alice"},
                                 {"user.create", "alice (admin)", "setup"}};
    for (size_t i = 0; i < rows->size(); ++i) {
      STRCMP_EQUAL(expected[i][0], (*rows)[i].action.c_str());
      STRCMP_EQUAL(expected[i][1], (*rows)[i].detail.c_str());
      STRCMP_EQUAL(expected[i][2], (*rows)[i].actor.c_str());
    }
    CHECK_TRUE(s->verify_audit()->ok);
    // A refused change writes nothing.
    CHECK_FALSE(s->delete_user("alice", "admin alice").is_ok());
    LONGS_EQUAL(5, static_cast<long>(s->audit_query({.action = "user.*"})->size()));
  }
  for (const char* suffix : {"", "-wal"}) {
    const std::string f = path + suffix;
    if (!std::filesystem::exists(f)) continue;
    const std::string bytes = sn::testing::read_file(f);
    CHECK_TRUE(bytes.find("secret-pass") == std::string::npos);
  }
}

TEST(StateStore, UsageQueryFiltersByTenantKeyAndWindow) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_tenant("acme", {}, "test").status());
  check_ok(s->create_tenant("globex", {}, "test").status());
  const std::string a1 = s->create_key("acme", {}, "", "test")->record.key_id;
  const std::string a2 = s->create_key("acme", {}, "", "test")->record.key_id;
  const std::string g1 = s->create_key("globex", {}, "", "test")->record.key_id;
  for (int64_t minute = 100; minute < 110; ++minute) {
    s->record_usage(a1, minute, 10, 1);
    if (minute % 2 == 0) s->record_usage(a2, minute, 20, 2);
    if (minute >= 105) s->record_usage(g1, minute, 30, 3);
  }
  check_ok(s->flush_usage());
  auto count = [&](const UsageQuery& q) {
    sn::Result<std::vector<UsageRow>> rows = s->usage(q);
    check_ok(rows.status());
    return static_cast<long>(rows->size());
  };
  LONGS_EQUAL(10 + 5 + 5, count({}));
  LONGS_EQUAL(15, count({.tenant = "acme"}));
  LONGS_EQUAL(5, count({.tenant = "globex"}));
  LONGS_EQUAL(0, count({.tenant = "nobody"}));
  LONGS_EQUAL(5, count({.key_id = a2}));
  LONGS_EQUAL(0, count({.tenant = "globex", .key_id = a1}));
  // The window is half-open: [from_minute, to_minute).
  LONGS_EQUAL(3, count({.key_id = a1, .from_minute = 102, .to_minute = 105}));
  LONGS_EQUAL(1, count({.tenant = "acme", .from_minute = 109}));  // minute 109: a1's row only
  LONGS_EQUAL(0, count({.from_minute = 105, .to_minute = 105}));
  LONGS_EQUAL(0, count({.from_minute = 200}));
  sn::Result<std::vector<UsageRow>> rows = s->usage({.tenant = "acme", .from_minute = 104, .to_minute = 106});
  check_ok(rows.status());
  LONGS_EQUAL(3, static_cast<long>(rows->size()));  // oldest first, then by key id
  LONGS_EQUAL(104, (*rows)[0].minute);
  LONGS_EQUAL(104, (*rows)[1].minute);
  CHECK_TRUE((*rows)[0].key_id < (*rows)[1].key_id);
  LONGS_EQUAL(105, (*rows)[2].minute);
  STRCMP_EQUAL(a1.c_str(), (*rows)[2].key_id.c_str());
  STRCMP_EQUAL("acme", (*rows)[2].tenant.c_str());
  LONGS_EQUAL(10, (*rows)[2].prompt_tokens);
  // The older form answers the same as a query from `since` for the tenant.
  LONGS_EQUAL(count({.tenant = "globex", .from_minute = 107}), static_cast<long>(s->usage(107, "globex")->size()));
}

TEST(StateStore, AuditQueryFiltersPagesAndListsNewestFirst) {
  std::unique_ptr<StateStore> s = open_store(path);
  for (int i = 0; i < 10; ++i) {
    const std::string actor = i % 2 == 0 ? "admin alice" : "api key 0123";
    const std::string action = i % 3 == 0 ? "model.load" : (i % 3 == 1 ? "model.unload" : "tenant.create");
    check_ok(s->audit(actor, action, "row " + std::to_string(i)));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct times
  }
  check_ok(s->audit("admin%", "model_load", "row 10"));  // LIKE's wildcards are not ours
  sn::Result<std::vector<AuditRecord>> all = s->audit_query({});
  check_ok(all.status());
  LONGS_EQUAL(11, static_cast<long>(all->size()));
  for (size_t i = 0; i + 1 < all->size(); ++i) CHECK_TRUE((*all)[i].seq > (*all)[i + 1].seq);  // newest first
  STRCMP_EQUAL("row 10", (*all)[0].detail.c_str());
  LONGS_EQUAL(64, (*all)[0].hash.size());
  auto details = [&](const AuditQuery& q) {
    sn::Result<std::vector<AuditRecord>> rows = s->audit_query(q);
    check_ok(rows.status());
    std::string out;
    for (const AuditRecord& r : *rows) out += (out.empty() ? "" : ",") + r.detail.substr(4);
    return out;
  };
  STRCMP_EQUAL("8,6,4,2,0", details({.actor = "admin alice"}).c_str());
  STRCMP_EQUAL("", details({.actor = "admin"}).c_str());  // exact unless it ends in '*'
  STRCMP_EQUAL("10,8,6,4,2,0", details({.actor = "admin*"}).c_str());
  STRCMP_EQUAL("8,6,4,2,0", details({.actor = "admin *"}).c_str());
  STRCMP_EQUAL("10", details({.actor = "admin%"}).c_str());
  STRCMP_EQUAL("", details({.actor = "ADMIN*"}).c_str());  // case matters
  STRCMP_EQUAL("9,7,6,4,3,1,0", details({.action = "model.*"}).c_str());
  STRCMP_EQUAL("9,3", details({.actor = "api*", .action = "model.load"}).c_str());
  STRCMP_EQUAL("10", details({.action = "model_*"}).c_str());
  LONGS_EQUAL(11, static_cast<long>(s->audit_query({.actor = "*", .action = "*"})->size()));
  // Time: [from_us, to_us).
  const int64_t t3 = (*all)[10 - 3].time_us, t6 = (*all)[10 - 6].time_us;
  STRCMP_EQUAL("5,4,3", details({.from_us = t3, .to_us = t6}).c_str());
  STRCMP_EQUAL("10,9,8,7,6", details({.from_us = t6}).c_str());
  STRCMP_EQUAL("2,1,0", details({.to_us = t3}).c_str());
  // Limit and paging by before_seq.
  STRCMP_EQUAL("10,9,8", details({.limit = 3}).c_str());
  const int64_t last_seq = (*s->audit_query({.limit = 3}))[2].seq;
  STRCMP_EQUAL("7,6,5", details({.limit = 3, .before_seq = last_seq}).c_str());
  STRCMP_EQUAL("4,2", details({.actor = "admin alice", .limit = 2, .before_seq = last_seq - 2}).c_str());
  STRCMP_EQUAL("", details({.before_seq = 1}).c_str());
  CHECK_TRUE(is_invalid(s->audit_query({.limit = 0}).status()));
  LONGS_EQUAL(11, static_cast<long>(s->audit_query({.limit = 1'000'000})->size()));  // capped, not refused
}

// set_tenant_limits: validated, takes effect for the next request of the tenant's keys, and
// is audited with the new limits.
TEST(StateStore, TenantLimitChangesAreAudited) {
  std::unique_ptr<StateStore> s = open_store(path);
  check_ok(s->create_tenant("acme", {.rpm = 5}, "test").status());
  sn::Result<NewApiKey> k = s->create_key("acme", {}, "", "test");
  check_ok(k.status());
  LONGS_EQUAL(5, (*s->authorize(k->key))->tenant.limits.rpm);
  check_ok(s->set_tenant_limits("acme", {.rpm = 9, .tpm = 1000, .models = {"qwen"}}, "admin alice"));
  LONGS_EQUAL(9, (*s->authorize(k->key))->tenant.limits.rpm);
  CHECK_TRUE(is_invalid(s->set_tenant_limits("acme", {.tpm = -1}, "admin alice")));
  sn::Result<std::vector<AuditRecord>> rows = s->audit_query({.action = "tenant.limits"});
  check_ok(rows.status());
  LONGS_EQUAL(1, static_cast<long>(rows->size()));
  STRCMP_EQUAL("admin alice", (*rows)[0].actor.c_str());
  STRCMP_EQUAL("acme: rpm 9, tpm 1000, concurrency 0, models qwen", (*rows)[0].detail.c_str());
}
