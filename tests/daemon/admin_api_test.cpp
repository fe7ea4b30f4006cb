// The HTTP admin API (daemon/ADMIN_API.md) against the real supernoded on 127.0.0.1: every
// route refuses a request without a session (401), an auditor's changes (403) and a change
// without its CSRF token (403); bodies with unknown fields or wrong types are refused with
// the field's name (400); first-run setup works once; wrong passwords lock a user (429);
// model import refuses path traversal, relative paths and files that are not GGUF; the
// web UI's assets carry the security headers, ETags and gzip.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "supernode/storage/state_store.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

#include "daemon_harness.h"

namespace {

using namespace sn::testing::daemon;
using json = nlohmann::json;

struct RouteCase {
  const char* method;
  const char* path;
  const char* body;
};

// Every route behind a session, with a body that would be accepted.
const std::vector<RouteCase>& session_routes() {
  static const std::vector<RouteCase> routes = {
      {"POST", "/api/admin/logout", ""},
      {"GET", "/api/admin/session", ""},
      {"GET", "/api/admin/users", ""},
      {"POST", "/api/admin/users", R"({"username":"carol","password":"long enough","role":"auditor"})"},
      {"PATCH", "/api/admin/users/carol", R"({"role":"admin"})"},
      {"DELETE", "/api/admin/users/carol", ""},
      {"GET", "/api/admin/hardware", ""},
      {"GET", "/api/admin/status", ""},
      {"GET", "/api/admin/models", ""},
      {"POST", "/api/admin/models/import", R"({"path":"/nonexistent/x.gguf"})"},
      {"GET", "/api/admin/models/imports", ""},
      {"GET", "/api/admin/models/imports/imp-0", ""},
      {"POST", "/api/admin/models/tiny/load", ""},
      {"POST", "/api/admin/models/tiny/unload", ""},
      {"DELETE", "/api/admin/models/tiny", ""},
      {"GET", "/api/admin/tenants", ""},
      {"POST", "/api/admin/tenants", R"({"name":"t1"})"},
      {"PATCH", "/api/admin/tenants/default", R"({"rpm":5})"},
      {"GET", "/api/admin/keys", ""},
      {"POST", "/api/admin/keys", R"({"tenant":"default"})"},
      {"DELETE", "/api/admin/keys/0000000000000000", ""},
      {"GET", "/api/admin/usage", ""},
      {"GET", "/api/admin/audit", ""},
      {"GET", "/api/admin/audit/verify", ""},
      {"GET", "/api/admin/moderation/terms", ""},
      {"POST", "/api/admin/moderation/terms", R"({"term":"secret"})"},
      {"DELETE", "/api/admin/moderation/terms/secret", ""},
      {"GET", "/api/admin/backup", ""},
      {"GET", "/api/admin/live", ""},
  };
  return routes;
}

bool is_write(const std::string& method) { return method != "GET"; }

// The cookie a reply sets ("sn_session=..."), or "".
std::string session_cookie(const HttpReply& r) {
  const size_t at = r.headers.find("sn_session=");
  if (at == std::string::npos) return "";
  return r.headers.substr(at, r.headers.find(';', at) - at);
}

json body_json(const HttpReply& r) {
  json j = json::parse(r.body, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

std::string error_code(const HttpReply& r) {
  const json j = body_json(r);
  return j.contains("error") && j["error"].contains("code") ? j["error"]["code"].get<std::string>() : "";
}

std::string error_message(const HttpReply& r) {
  const json j = body_json(r);
  return j.contains("error") && j["error"].contains("message") ? j["error"]["message"].get<std::string>() : "";
}

struct Login {
  std::string cookie;
  std::string csrf;
};

}  // namespace

TEST_GROUP(AdminApi) {
  std::unique_ptr<sn::testing::TempDir> dir;
  std::unique_ptr<Daemon> daemon;
  std::string state;
  std::string model;

  void setup() override {
    dir = std::make_unique<sn::testing::TempDir>();
    model = make_chat_model(*dir);
    state = dir->file("state");
    daemon = std::make_unique<Daemon>(model, state);
  }
  void teardown() override {
    daemon.reset();
    dir.reset();
  }

  uint16_t port() const { return daemon->port(); }

  HttpReply call(const std::string& method, const std::string& path, const std::string& body = "",
                 const Login* who = nullptr, bool with_csrf = true) {
    std::string headers;
    if (who != nullptr) {
      headers += "Cookie: " + who->cookie + "\r\n";
      if (with_csrf && is_write(method)) headers += "X-CSRF-Token: " + who->csrf + "\r\n";
    }
    return http(port(), method, path, body, "", headers);
  }

  // First-run setup as admin "alice".
  Login set_up() {
    const std::string token = sn::testing::read_file(state + "/setup-token");
    const json body = {{"token", token.substr(0, token.find('\n'))}, {"username", "alice"}, {"password", "correct horse"}};
    const HttpReply r = http(port(), "POST", "/api/admin/setup", body.dump());
    LONGS_EQUAL_TEXT(201, r.status, r.body.c_str());
    return Login{session_cookie(r), body_json(r)["csrf_token"].get<std::string>()};
  }

  Login login(const std::string& user, const std::string& password) {
    const HttpReply r =
        http(port(), "POST", "/api/admin/login", json{{"username", user}, {"password", password}}.dump());
    LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
    return Login{session_cookie(r), body_json(r)["csrf_token"].get<std::string>()};
  }
};

TEST(AdminApi, FirstRunSetupWorksOnceWithTheTokenFromTheStateDirectory) {
  HttpReply st = http(port(), "GET", "/api/admin/state");
  LONGS_EQUAL(200, st.status);
  CHECK_TRUE(body_json(st)["setup_required"].get<bool>());
  CHECK_TRUE(std::filesystem::exists(state + "/setup-token"));
  CHECK_TRUE((std::filesystem::status(state + "/setup-token").permissions() & std::filesystem::perms::others_read) ==
             std::filesystem::perms::none);
  // The token is never in the log.
  const std::string token = sn::testing::read_file(state + "/setup-token");
  CHECK_FALSE(has(sn::testing::read_file(state + ".err"), token.substr(0, 16)));
  const HttpReply wrong = http(port(), "POST", "/api/admin/setup",
                               R"({"token":"not-the-token","username":"mallory","password":"long enough"})");
  LONGS_EQUAL_TEXT(403, wrong.status, wrong.body.c_str());
  const Login alice = set_up();
  CHECK_FALSE(alice.cookie.empty());
  CHECK_FALSE(std::filesystem::exists(state + "/setup-token"));
  st = http(port(), "GET", "/api/admin/state");
  CHECK_FALSE(body_json(st)["setup_required"].get<bool>());
  const HttpReply again =
      http(port(), "POST", "/api/admin/setup", R"({"token":"x","username":"mallory","password":"long enough"})");
  LONGS_EQUAL_TEXT(409, again.status, again.body.c_str());
  // The session works.
  const HttpReply me = call("GET", "/api/admin/session", "", &alice);
  LONGS_EQUAL(200, me.status);
  STRCMP_EQUAL("admin", body_json(me)["user"]["role"].get<std::string>().c_str());
}

TEST(AdminApi, EveryRouteWantsASession) {
  (void)set_up();
  for (const RouteCase& c : session_routes()) {
    const HttpReply r = call(c.method, c.path, c.body);
    LONGS_EQUAL_TEXT(401, r.status, (std::string(c.method) + " " + c.path + ": " + r.body).c_str());
    STRCMP_EQUAL("unauthorized", error_code(r).c_str());
    // A made-up session is no better.
    Login fake{"sn_session=" + std::string(64, 'a'), "x"};
    LONGS_EQUAL_TEXT(401, call(c.method, c.path, c.body, &fake).status, c.path);
  }
}

TEST(AdminApi, ChangesWithoutTheCsrfTokenAreRefused) {
  const Login alice = set_up();
  for (const RouteCase& c : session_routes()) {
    if (!is_write(c.method)) continue;
    const HttpReply r = call(c.method, c.path, c.body, &alice, /*with_csrf=*/false);
    LONGS_EQUAL_TEXT(403, r.status, (std::string(c.method) + " " + c.path + ": " + r.body).c_str());
    STRCMP_EQUAL("csrf", error_code(r).c_str());
    Login wrong = alice;
    wrong.csrf = std::string(64, '0');
    LONGS_EQUAL_TEXT(403, call(c.method, c.path, c.body, &wrong).status, c.path);
  }
  // Nothing was changed.
  const json tenants = body_json(call("GET", "/api/admin/tenants", "", &alice));
  LONGS_EQUAL(1, tenants["tenants"].size());
}

TEST(AdminApi, AnAuditorReadsButChangesNothing) {
  const Login alice = set_up();
  LONGS_EQUAL(201, call("POST", "/api/admin/users", R"({"username":"bob","password":"auditor pass","role":"auditor"})",
                        &alice)
                       .status);
  const Login bob = login("bob", "auditor pass");
  for (const RouteCase& c : session_routes()) {
    const std::string what = std::string(c.method) + " " + c.path;
    if (what == "POST /api/admin/logout" || what == "GET /api/admin/live") continue;
    const HttpReply r = call(c.method, c.path, c.body, &bob);
    const bool admin_only = is_write(c.method) || what == "GET /api/admin/users" || what == "GET /api/admin/backup";
    if (admin_only) {
      LONGS_EQUAL_TEXT(403, r.status, (what + ": " + r.body).c_str());
      STRCMP_EQUAL("forbidden", error_code(r).c_str());
    } else {
      CHECK_TEXT(r.status != 401 && r.status != 403, (what + ": " + r.body).c_str());
    }
  }
  LONGS_EQUAL(200, call("GET", "/api/admin/usage", "", &bob).status);
  LONGS_EQUAL(200, call("GET", "/api/admin/audit", "", &bob).status);
  // An auditor may end their own session.
  LONGS_EQUAL(200, call("POST", "/api/admin/logout", "", &bob).status);
  LONGS_EQUAL(401, call("GET", "/api/admin/session", "", &bob).status);
  const json tenants = body_json(call("GET", "/api/admin/tenants", "", &alice));
  LONGS_EQUAL(1, tenants["tenants"].size());
}

TEST(AdminApi, MalformedBodiesAreRefusedNamingTheField) {
  const Login alice = set_up();
  HttpReply r = call("POST", "/api/admin/tenants", R"({"name":"lab","bogus":1})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'bogus'"), r.body.c_str());
  r = call("POST", "/api/admin/tenants", R"({"name":"lab","rpm":"many"})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'rpm'"), r.body.c_str());
  r = call("POST", "/api/admin/tenants", R"({"name":"lab","rpm":-1})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'rpm'"), r.body.c_str());
  r = call("POST", "/api/admin/tenants", R"({"name":"lab","models":"tiny"})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'models'"), r.body.c_str());
  r = call("POST", "/api/admin/keys", R"({"label":"no tenant"})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'tenant'"), r.body.c_str());
  r = call("POST", "/api/admin/users", R"({"username":"x","password":"short","role":"admin"})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "password"), r.body.c_str());
  r = call("POST", "/api/admin/users", R"({"username":"dave","password":"long enough","role":"root"})", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "role"), r.body.c_str());
  r = call("POST", "/api/admin/tenants", R"({"name":)", &alice);
  LONGS_EQUAL(400, r.status);
  r = call("POST", "/api/admin/tenants", R"(["name"])", &alice);
  LONGS_EQUAL(400, r.status);
  r = call("GET", "/api/admin/usage?from=yesterday", "", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'from'"), r.body.c_str());
  r = call("GET", "/api/admin/audit?colour=red", "", &alice);
  LONGS_EQUAL(400, r.status);
  CHECK_TEXT(has(error_message(r), "'colour'"), r.body.c_str());
  // Not JSON at all.
  r = http(port(), "POST", "/api/admin/tenants", "name=lab", "",
           "Cookie: " + alice.cookie + "\r\nX-CSRF-Token: " + alice.csrf + "\r\nContent-Type: text/plain\r\n");
  CHECK_TEXT(r.status == 415 || r.status == 400, r.body.c_str());
  // A body far over the admin limit is refused before it is read.
  r = call("POST", "/api/admin/tenants", std::string(200000, ' '), &alice);
  LONGS_EQUAL(413, r.status);
  // Nothing was made.
  LONGS_EQUAL(1, body_json(call("GET", "/api/admin/tenants", "", &alice))["tenants"].size());
}

TEST(AdminApi, WrongPasswordsLockTheUser) {
  (void)set_up();
  for (int i = 0; i < 5; ++i) {
    const HttpReply r = http(port(), "POST", "/api/admin/login", R"({"username":"alice","password":"wrong wrong"})");
    LONGS_EQUAL_TEXT(401, r.status, r.body.c_str());
  }
  // Locked now, even with the right password.
  const HttpReply r = http(port(), "POST", "/api/admin/login", R"({"username":"alice","password":"correct horse"})");
  LONGS_EQUAL_TEXT(429, r.status, r.body.c_str());
  CHECK_TEXT(has(r.headers, "Retry-After: "), r.headers.c_str());
  STRCMP_EQUAL("locked", error_code(r).c_str());
  // Failed logins are in the audit log (without the password).
  sn::Result<std::unique_ptr<sn::storage::StateStore>> st =
      sn::storage::StateStore::open(state + "/state.db");
  CHECK_TRUE(st.ok());
  sn::storage::AuditQuery q;
  q.action = "login.failed";
  sn::Result<std::vector<sn::storage::AuditRecord>> rows = (*st)->audit_query(q);
  CHECK_TRUE(rows.ok());
  LONGS_EQUAL(5, rows->size());
  for (const sn::storage::AuditRecord& a : *rows) CHECK_FALSE(has(a.detail, "wrong wrong"));
  CHECK_FALSE(has(sn::testing::read_file(state + ".err"), "wrong wrong"));
}

TEST(AdminApi, LogoutEndsTheSessionAndLoginRotatesIt) {
  const Login alice = set_up();
  const Login second = login("alice", "correct horse");
  CHECK_TRUE(second.cookie != alice.cookie);
  CHECK_TRUE(second.csrf != alice.csrf);
  LONGS_EQUAL(200, call("POST", "/api/admin/logout", "", &second).status);
  LONGS_EQUAL(401, call("GET", "/api/admin/session", "", &second).status);
  LONGS_EQUAL(200, call("GET", "/api/admin/session", "", &alice).status);
}

TEST(AdminApi, ModelImportRefusesTraversalRelativePathsAndNonGguf) {
  const Login alice = set_up();
  const std::string junk = dir->file("junk.gguf");
  sn::testing::write_file(junk, "this is not a model\n");
  struct Bad {
    std::string path;
    int status;
  };
  const std::vector<Bad> bad = {{dir->file("state/../tiny.gguf"), 400},
                                {"tiny.gguf", 400},
                                {junk, 400},
                                {"/etc/passwd", 400},
                                {dir->file("missing.gguf"), 404},
                                {dir->path(), 400}};
  for (const Bad& b : bad) {
    const HttpReply r = call("POST", "/api/admin/models/import", json{{"path", b.path}, {"id", "x"}}.dump(), &alice);
    LONGS_EQUAL_TEXT(b.status, r.status, (b.path + ": " + r.body).c_str());
  }
  const HttpReply bad_id = call("POST", "/api/admin/models/import", json{{"path", model}, {"id", "../evil"}}.dump(), &alice);
  LONGS_EQUAL_TEXT(400, bad_id.status, bad_id.body.c_str());
  // A good one: 202, then done, then it loads, unloads and goes.
  HttpReply r = call("POST", "/api/admin/models/import", json{{"path", model}, {"id", "copy"}}.dump(), &alice);
  LONGS_EQUAL_TEXT(202, r.status, r.body.c_str());
  const std::string import_id = body_json(r)["import"]["import_id"].get<std::string>();
  std::string state_of = "running";
  for (int i = 0; i < 200 && state_of == "running"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    state_of = body_json(call("GET", "/api/admin/models/imports/" + import_id, "", &alice))["import"].value("state", "");
  }
  STRCMP_EQUAL("done", state_of.c_str());
  CHECK_TRUE(std::filesystem::exists(state + "/models/copy.gguf"));
  LONGS_EQUAL(200, call("POST", "/api/admin/models/copy/load", "", &alice).status);
  const json models = body_json(call("GET", "/api/admin/models", "", &alice));
  bool loaded = false;
  for (const json& m : models["models"]) {
    if (m["id"] == "copy") {
      loaded = m["loaded"].get<bool>();
      STRCMP_EQUAL("llama", m["architecture"].get<std::string>().c_str());
      CHECK_EQUAL(64u, m["sha256"].get<std::string>().size());
    }
  }
  CHECK_TRUE(loaded);
  LONGS_EQUAL(409, call("DELETE", "/api/admin/models/copy", "", &alice).status);  // loaded: unload first
  LONGS_EQUAL(200, call("POST", "/api/admin/models/copy/unload", "", &alice).status);
  LONGS_EQUAL(200, call("DELETE", "/api/admin/models/copy", "", &alice).status);
  CHECK_FALSE(std::filesystem::exists(state + "/models/copy.gguf"));
}

TEST(AdminApi, TenantsKeysAndUsageRoundTrip) {
  const Login alice = set_up();
  HttpReply r = call("POST", "/api/admin/tenants", R"({"name":"lab","rpm":100,"models":["tiny"]})", &alice);
  LONGS_EQUAL_TEXT(201, r.status, r.body.c_str());
  LONGS_EQUAL(100, body_json(r)["tenant"]["limits"]["rpm"].get<int>());
  r = call("PATCH", "/api/admin/tenants/lab", R"({"tpm":5000})", &alice);
  LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  LONGS_EQUAL(5000, body_json(r)["tenant"]["limits"]["tpm"].get<int>());
  LONGS_EQUAL(100, body_json(r)["tenant"]["limits"]["rpm"].get<int>());
  r = call("POST", "/api/admin/keys", R"({"tenant":"lab","label":"ci"})", &alice);
  LONGS_EQUAL_TEXT(201, r.status, r.body.c_str());
  const std::string key = body_json(r)["key"];
  const std::string key_id = body_json(r)["key_id"];
  const HttpReply done =
      http(port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":3})", key);
  LONGS_EQUAL_TEXT(200, done.status, done.body.c_str());
  r = call("GET", "/api/admin/usage?tenant=lab&key=" + key_id, "", &alice);
  LONGS_EQUAL(200, r.status);
  const json rows = body_json(r)["rows"];
  LONGS_EQUAL(1, rows.size());
  LONGS_EQUAL(3, rows[0]["completion_tokens"].get<int>());
  r = call("GET", "/api/admin/usage?tenant=lab&format=csv", "", &alice);
  LONGS_EQUAL(200, r.status);
  CHECK_TEXT(has(r.headers, "text/csv"), r.headers.c_str());
  CHECK_TEXT(has(r.body, ",lab," + key_id + ",1,"), r.body.c_str());
  // The key's secret is nowhere but in the one answer that made it.
  r = call("GET", "/api/admin/keys?tenant=lab", "", &alice);
  CHECK_FALSE(has(r.body, key));
  LONGS_EQUAL(200, call("DELETE", "/api/admin/keys/" + key_id, "", &alice).status);
  LONGS_EQUAL(401, http(port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":3})", key).status);
  // The audit log has each change, by this admin; the chain verifies.
  r = call("GET", "/api/admin/audit?actor=web%20alice&action=tenant.*", "", &alice);
  LONGS_EQUAL(2, body_json(r)["entries"].size());
  CHECK_TRUE(body_json(call("GET", "/api/admin/audit/verify", "", &alice))["verified"].get<bool>());
  // Backup: a SQLite file.
  r = call("GET", "/api/admin/backup", "", &alice);
  LONGS_EQUAL(200, r.status);
  CHECK_TRUE(r.body.rfind("SQLite format 3", 0) == 0);
}

TEST(AdminApi, TheWebUiIsServedWithSecurityHeadersEtagsAndGzip) {
  HttpReply r = http(port(), "GET", "/");
  LONGS_EQUAL(200, r.status);
  CHECK_TEXT(has(r.body, "<html"), r.body.substr(0, 200).c_str());
  for (const char* h : {"Content-Security-Policy: default-src 'none'", "frame-ancestors 'none'",
                        "X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer", "ETag: \""}) {
    CHECK_TEXT(has(r.headers, h), h);
  }
  const size_t at = r.headers.find("ETag: ");
  const std::string etag = r.headers.substr(at + 6, r.headers.find("\r\n", at) - at - 6);
  HttpReply again = http(port(), "GET", "/", "", "", "If-None-Match: " + etag + "\r\n");
  LONGS_EQUAL(304, again.status);
  HttpReply gz = http(port(), "GET", "/assets/app.js", "", "", "Accept-Encoding: gzip\r\n");
  LONGS_EQUAL(200, gz.status);
  CHECK_TEXT(has(gz.headers, "Content-Encoding: gzip"), gz.headers.c_str());
  // Paths outside the assets are not files of the box.
  for (const char* p : {"/assets/../../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"}) {
    const HttpReply bad = http(port(), "GET", p);
    CHECK_TEXT(bad.status == 404 || bad.status == 400, p);
    CHECK_FALSE(has(bad.body, "root:"));
  }
  // The admin API's answers carry the headers too, and are not cached.
  r = http(port(), "GET", "/api/admin/state");
  CHECK_TEXT(has(r.headers, "Content-Security-Policy"), r.headers.c_str());
  CHECK_TEXT(has(r.headers, "Cache-Control: no-store"), r.headers.c_str());
}

// [admin] listen: the admin API and the web UI on a listener of their own (a management
// interface), and not on the API's.
TEST(AdminApi, AnAdminListenerOfItsOwnTakesTheUiOffTheApiAddress) {
  daemon.reset();
  const std::string cfg = dir->file("admin.toml");
  sn::testing::write_file(cfg, "[admin]\nlisten = \"127.0.0.1:0\"\n[kv]\nhost_mb = 0\n");
  daemon = std::make_unique<Daemon>(model, dir->file("state2"), false, std::vector<std::string>{"--config", cfg});
  CHECK_TRUE(daemon->admin_port() != 0);
  CHECK_TRUE(daemon->admin_port() != daemon->port());
  LONGS_EQUAL(200, http(daemon->admin_port(), "GET", "/api/admin/state").status);
  LONGS_EQUAL(200, http(daemon->admin_port(), "GET", "/").status);
  LONGS_EQUAL(200, http(daemon->admin_port(), "GET", "/healthz").status);
  LONGS_EQUAL(404, http(daemon->port(), "GET", "/api/admin/state").status);
  LONGS_EQUAL(404, http(daemon->port(), "GET", "/").status);
  // The OpenAI API is not on the admin listener.
  LONGS_EQUAL(404, http(daemon->admin_port(), "GET", "/v1/models", "", daemon->key()).status);
  LONGS_EQUAL(200, http(daemon->port(), "GET", "/v1/models", "", daemon->key()).status);
}
