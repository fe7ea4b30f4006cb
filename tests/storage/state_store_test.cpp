// StateStore: schema and migrations, bootstrap, tenants and limits, API keys (stored only
// hashed, checked in constant time, revocation), usage metering (batched, flushed by the
// writer thread, surviving a reopen), the audit chain (tampering by edit or deletion is
// found), settings, the model catalog, online backup and its check, bad files, and
// concurrent callers.
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
  sn::Result<std::unique_ptr<StateStore>> st = StateStore::open(path, {.usage_flush_interval_ms = flush_ms});
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
    LONGS_EQUAL(3, s->schema_version());
    check_ok(s->create_tenant("acme", {}, "test").status());
  }
  // A database of schema 1 (before the moderation terms and keyed audit rows) gets
  // migrations 2 and 3 and keeps its rows.
  raw_sql(path,
          "DROP TABLE moderation_terms; CREATE TABLE a2 AS SELECT seq, time_us, actor, action, detail, hash FROM audit; "
          "DROP TABLE audit; ALTER TABLE a2 RENAME TO audit; PRAGMA user_version = 1;");
  std::unique_ptr<StateStore> s = open_store(path);
  LONGS_EQUAL(3, s->schema_version());
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
