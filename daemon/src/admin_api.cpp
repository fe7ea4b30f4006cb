// The HTTP admin API (admin_api.h). Each route is read top to bottom in add_routes(): the
// body (JSON only, unknown fields refused) is read on the connection's strand, the service
// call runs on the blocking pool, the answer goes back through the Responder. Streams (the
// live view, the backup download) are coroutines of their own.
#include "admin_api.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/base/mutex.h"
#include "supernode/daemon/log.h"

#include "admin_json.h"
#include "openai_response.h"
#include "random_hex.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>

namespace sn::daemon {
namespace {

constexpr size_t kMaxAdminBody = 64u << 10;  // admin bodies are small
constexpr int kUserFailuresBeforeLock = 5;
constexpr int kAddressFailuresBeforeLock = 20;
constexpr double kFirstLockS = 30;
constexpr double kLongestLockS = 3600;

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

Reply json_reply(http::status status, const json& body) {
  Reply r{status, dump_json(body), "application/json", {}, false};
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Reply status_reply(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument: return admin_error(http::status::bad_request, s.message(), "invalid_request");
    case Status::Code::kNotFound: return admin_error(http::status::not_found, s.message(), "not_found");
    case Status::Code::kPermissionDenied: return admin_error(http::status::forbidden, s.message(), "forbidden");
    case Status::Code::kFailedPrecondition: return admin_error(http::status::conflict, s.message(), "conflict");
    case Status::Code::kResourceExhausted: return admin_error(http::status::service_unavailable, s.message(), "unavailable");
    default:
      log(LogLevel::kError, "admin request failed: " + s.to_string());
      return admin_error(http::status::internal_server_error, s.message(), "internal");
  }
}

// Returns an error Reply from a sync handler when a Status is not ok.
#define SN_RETURN_IF_ERROR_REPLY(expr)                  \
  do {                                                  \
    const ::sn::Status sn_status_ = (expr);             \
    if (!sn_status_.is_ok()) return status_reply(sn_status_); \
  } while (0)

bool is_write(http::verb v) { return v != http::verb::get && v != http::verb::head; }

// The web UI's sessions, in memory: a restart logs everyone out.
class SessionTable {
 public:
  struct Session {
    std::string username;
    std::string role;
    std::string csrf;
    double last_seen = 0;
    double created = 0;
  };

  std::pair<std::string, Session> create(const std::string& username, const std::string& role, int max_sessions) {
    MutexLock lock(mu_);
    prune_locked();
    while (static_cast<int>(sessions_.size()) >= max_sessions && !sessions_.empty()) {
      auto oldest = std::min_element(sessions_.begin(), sessions_.end(),
                                     [](const auto& a, const auto& b) { return a.second.last_seen < b.second.last_seen; });
      sessions_.erase(oldest);
    }
    Session s{username, role, random_hex(32), mono_s(), mono_s()};
    std::string id = random_hex(32);
    sessions_[id] = s;
    return {id, s};
  }

  // The live session `id`, its idle clock restarted; nullopt when unknown or expired.
  std::optional<Session> touch(const std::string& id) {
    MutexLock lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::nullopt;
    const double now = mono_s();
    if (now - it->second.last_seen > idle_s_) {
      sessions_.erase(it);
      return std::nullopt;
    }
    it->second.last_seen = now;
    return it->second;
  }

  bool alive(const std::string& id) {
    MutexLock lock(mu_);
    auto it = sessions_.find(id);
    return it != sessions_.end() && mono_s() - it->second.last_seen <= idle_s_;
  }

  void drop(const std::string& id) {
    MutexLock lock(mu_);
    sessions_.erase(id);
  }

  // Ends every session of `username` but `keep`.
  void drop_user(const std::string& username, const std::string& keep = "") {
    MutexLock lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (lower(it->second.username) == lower(username) && it->first != keep) {
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void set_role(const std::string& username, const std::string& role) {
    MutexLock lock(mu_);
    for (auto& [id, s] : sessions_) {
      if (lower(s.username) == lower(username)) s.role = role;
    }
  }

  void set_idle(double idle_s) { idle_s_ = idle_s; }

 private:
  void prune_locked() SN_REQUIRES(mu_) {
    const double now = mono_s();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = now - it->second.last_seen > idle_s_ ? sessions_.erase(it) : std::next(it);
    }
  }

  Mutex mu_;
  std::map<std::string, Session> sessions_ SN_GUARDED_BY(mu_);
  double idle_s_ = 1800;
};

// Failed logins by user and by client address; a lock grows with each failure past the
// threshold (30 s, 60 s, ... up to an hour) and a success clears the user's count.
class LoginThrottle {
 public:
  // Seconds until `key` may try again (0: now).
  double locked_for(const std::string& key) {
    MutexLock lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return 0;
    return std::max(0.0, it->second.locked_until - mono_s());
  }
  void failed(const std::string& key, int threshold) {
    MutexLock lock(mu_);
    if (entries_.size() > 100000) prune_locked();
    Entry& e = entries_[key];
    ++e.failures;
    e.last = mono_s();
    if (e.failures >= threshold) {
      const double lock_s = std::min(kLongestLockS, kFirstLockS * std::pow(2.0, e.failures - threshold));
      e.locked_until = e.last + lock_s;
    }
  }
  void succeeded(const std::string& key) {
    MutexLock lock(mu_);
    entries_.erase(key);
  }

 private:
  struct Entry {
    int failures = 0;
    double locked_until = 0;
    double last = 0;
  };
  void prune_locked() SN_REQUIRES(mu_) {
    const double now = mono_s();
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = now - it->second.last > kLongestLockS && it->second.locked_until < now ? entries_.erase(it) : std::next(it);
    }
  }
  Mutex mu_;
  std::map<std::string, Entry> entries_ SN_GUARDED_BY(mu_);
};

// What a synchronous admin handler gets: copies, so it runs on the blocking pool.
struct Call {
  http::verb method = http::verb::get;
  json body;  // an object, or null without a body
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> query;
  std::optional<AdminSession> session;
  std::string client_address;
  bool tls = false;
  [[nodiscard]] AdminActor actor() const { return AdminActor{"web " + (session ? session->username : "?")}; }
};

using SyncHandler = std::function<Reply(Call&)>;

std::string cookie_value(const http::request_header<>& head, std::string_view name) {
  for (auto it = head.find(http::field::cookie); it != head.end() && it->name() == http::field::cookie; ++it) {
    std::string_view v(it->value().data(), it->value().size());
    while (!v.empty()) {
      const size_t semi = v.find(';');
      std::string_view pair = v.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      const size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
      if (semi == std::string_view::npos) break;
      v.remove_prefix(semi + 1);
    }
  }
  return "";
}

// Strict query parameters: only `allowed` names; integers where asked.
Status check_query(const std::map<std::string, std::string>& q, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : q) {
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    if (!known) return Status::invalid_argument("query parameter '" + k + "'", "unknown");
  }
  return Status::ok();
}

Status query_int(const std::map<std::string, std::string>& q, const char* name, std::optional<int64_t>& out) {
  auto it = q.find(name);
  if (it == q.end() || it->second.empty()) return Status::ok();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (*end != '\0' || errno != 0) return Status::invalid_argument(std::string("query parameter '") + name + "'", "must be an integer");
  out = v;
  return Status::ok();
}

std::string utc_text(int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Reply admin_error(http::status status, const std::string& message, const std::string& code) {
  return json_reply(status, json{{"error", {{"message", message}, {"code", code}}}});
}

class AdminApi::Impl {
 public:
  Impl(AdminApiOptions options, AdminService& service, Metrics& metrics, ModelRegistry& models)
      : options_(std::move(options)), service_(service), metrics_(metrics), models_(models), pool_(2) {
    sessions_.set_idle(options_.session_idle_timeout_s);
  }

  AdminApiOptions options_;
  AdminService& service_;
  Metrics& metrics_;
  ModelRegistry& models_;
  SessionTable sessions_;
  LoginThrottle throttle_;
  net::thread_pool pool_;

  // Reads a call's body (JSON objects only) and copies what the handler needs; false with
  // `refusal` for a body that is not one.
  static bool read_call(Exchange& ex, Call& call, Reply& refusal) {
    call.method = ex.request.method();
    call.params = ex.params;
    call.query = ex.query;
    call.session = ex.admin;
    call.client_address = ex.client_address;
    call.tls = ex.tls;
    const std::string& body = ex.request.body();
    if (body.empty()) return true;
    const auto ct = ex.request[http::field::content_type];
    const std::string_view type(ct.data(), std::min(ct.size(), ct.find(';')));
    if (type != "application/json") {
      refusal = admin_error(http::status::unsupported_media_type, "the body must be JSON (Content-Type: application/json)",
                            "unsupported_media_type");
      return false;
    }
    if (!json_depth_within(body, 8)) {
      refusal = admin_error(http::status::bad_request, "the body nests too deeply", "invalid_request");
      return false;
    }
    call.body = json::parse(body, nullptr, false);
    if (call.body.is_discarded() || !call.body.is_object()) {
      refusal = admin_error(http::status::bad_request, "the body must be one JSON object", "invalid_request");
      return false;
    }
    return true;
  }

  Handler sync(SyncHandler fn) {
    return [this, fn = std::move(fn)](Exchange& ex) -> net::awaitable<bool> {
      Call call;
      Reply early;
      if (!read_call(ex, call, early)) {
        const bool ok = co_await ex.out.send(early);
        co_return ok;
      }
      std::function<Reply()> work = [fn, call = std::move(call)]() mutable -> Reply {
        try {
          return fn(call);
        } catch (const std::exception& e) {
          log(LogLevel::kError, std::string("admin request failed: ") + e.what());
        } catch (...) {
          log(LogLevel::kError, "admin request failed");
        }
        return admin_error(http::status::internal_server_error, "internal error", "internal");
      };
      const Reply reply = co_await run_blocking<Reply>(pool_, std::move(work));
      const bool ok = co_await ex.out.send(reply);
      co_return ok;
    };
  }

  void add(Router& r, http::verb method, const char* pattern, Guard guard, SyncHandler fn) {
    r.add({method, pattern, guard, ErrorStyle::kAdmin, kMaxAdminBody, sync(std::move(fn)), ""});
  }

  Reply session_answer(const std::string& id, const SessionTable::Session& s, http::status status, bool tls) {
    Result<std::optional<storage::UserRecord>> u = service_.find_user(s.username);
    json user = u.ok() && *u ? user_json(**u) : json{{"username", s.username}, {"role", s.role}};
    Reply r = json_reply(status, json{{"csrf_token", s.csrf}, {"user", user}, {"idle_timeout_s", options_.session_idle_timeout_s}});
    if (!id.empty()) {
      r.headers.emplace_back("Set-Cookie", "sn_session=" + id + "; HttpOnly; SameSite=Strict; Path=/" +
                                               std::string(tls ? "; Secure" : ""));
    }
    return r;
  }

  // ---- first run, login, sessions
  Reply setup(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"token", "username", "password"}));
    std::string token, username, password;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "token", token, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "username", username, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "password", password, true));
    const std::string addr_key = "addr:" + c.client_address;
    if (const double wait = throttle_.locked_for(addr_key); wait > 0) return locked(wait);
    Result<storage::UserRecord> u = service_.setup(token, username, password);
    if (!u.ok()) {
      if (u.status().code() == Status::Code::kPermissionDenied) throttle_.failed(addr_key, kUserFailuresBeforeLock);
      return status_reply(u.status());
    }
    log(LogLevel::kInfo, "first-run setup: admin '" + u->username + "' created from " + c.client_address);
    auto [id, s] = sessions_.create(u->username, u->role, options_.max_sessions);
    return session_answer(id, s, http::status::created, c.tls);
  }

  static Reply locked(double wait_s) {
    Reply r = admin_error(http::status::too_many_requests,
                          "too many wrong passwords: try again in " + std::to_string(static_cast<int64_t>(std::ceil(wait_s))) +
                              " s",
                          "locked");
    r.headers.emplace_back("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(wait_s))));
    return r;
  }

  Reply login(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"username", "password"}));
    std::string username, password;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "username", username, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "password", password, true));
    const std::string user_key = "user:" + lower(username), addr_key = "addr:" + c.client_address;
    const double wait = std::max(throttle_.locked_for(user_key), throttle_.locked_for(addr_key));
    if (wait > 0) return locked(wait);
    Result<std::optional<storage::UserRecord>> u = service_.check_password(username, password);
    if (!u.ok()) return status_reply(u.status());
    if (!*u) {
      throttle_.failed(user_key, kUserFailuresBeforeLock);
      throttle_.failed(addr_key, kAddressFailuresBeforeLock);
      service_.audit_event(AdminActor{"web " + c.client_address}, "login.failed", "user '" + username + "'");
      log(LogLevel::kWarning, "admin login failed for '" + username + "' from " + c.client_address);
      return admin_error(http::status::unauthorized, "wrong username or password", "unauthorized");
    }
    throttle_.succeeded(user_key);
    auto [id, s] = sessions_.create((*u)->username, (*u)->role, options_.max_sessions);
    service_.audit_event(AdminActor{"web " + (*u)->username}, "login", "from " + c.client_address);
    return session_answer(id, s, http::status::ok, c.tls);
  }

  Reply logout(Call& c) {
    sessions_.drop(c.session->id);
    Reply r = json_reply(http::status::ok, json::object());
    r.headers.emplace_back("Set-Cookie", "sn_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0" +
                                             std::string(c.tls ? "; Secure" : ""));
    service_.audit_event(c.actor(), "logout", "");
    return r;
  }

  // ---- users
  Reply create_user(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"username", "password", "role"}));
    std::string username, password, role;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "username", username, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "password", password, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "role", role, true));
    Result<storage::UserRecord> u = service_.create_user(username, password, role, c.actor());
    if (!u.ok()) return status_reply(u.status());
    return json_reply(http::status::created, json{{"user", user_json(*u)}});
  }

  Reply update_user(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"password", "role"}));
    std::optional<std::string> password, role;
    SN_RETURN_IF_ERROR_REPLY(read_optional_string(c.body, "password", password));
    SN_RETURN_IF_ERROR_REPLY(read_optional_string(c.body, "role", role));
    const std::string& username = c.params["username"];
    Result<storage::UserRecord> u = service_.update_user(username, password, role, c.actor());
    if (!u.ok()) return status_reply(u.status());
    if (password) sessions_.drop_user(u->username, c.session->id);  // others signed in as them sign in again
    if (role) sessions_.set_role(u->username, u->role);
    return json_reply(http::status::ok, json{{"user", user_json(*u)}});
  }

  Reply delete_user(Call& c) {
    const std::string& username = c.params["username"];
    if (lower(username) == lower(c.session->username)) {
      return admin_error(http::status::conflict, "you cannot delete yourself: ask another admin", "conflict");
    }
    if (Status s = service_.delete_user(username, c.actor()); !s.is_ok()) return status_reply(s);
    sessions_.drop_user(username);
    return json_reply(http::status::ok, json::object());
  }

  // ---- tenants and keys
  Reply create_tenant(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"name", "rpm", "tpm", "concurrency", "models"}));
    CreateTenantRequest req;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "name", req.name, true));
    SN_RETURN_IF_ERROR_REPLY(read_limits(c.body, req.limits));
    Result<storage::TenantRecord> t = service_.create_tenant(req, c.actor());
    if (!t.ok()) return status_reply(t.status());
    return json_reply(http::status::created, json{{"tenant", tenant_json(*t)}});
  }

  Reply update_tenant(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"rpm", "tpm", "concurrency", "models"}));
    LimitsPatch limits;
    SN_RETURN_IF_ERROR_REPLY(read_limits(c.body, limits));
    Result<storage::TenantRecord> t = service_.update_tenant(c.params["name"], limits, c.actor());
    if (!t.ok()) return status_reply(t.status());
    return json_reply(http::status::ok, json{{"tenant", tenant_json(*t)}});
  }

  Reply create_key(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"tenant", "label", "rpm", "tpm", "concurrency", "models"}));
    CreateKeyRequest req;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "tenant", req.tenant, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "label", req.label));
    SN_RETURN_IF_ERROR_REPLY(read_limits(c.body, req.limits));
    Result<CreatedKey> k = service_.create_key(req, c.actor());
    if (!k.ok()) return status_reply(k.status());
    return json_reply(http::status::created, json{{"key", k->key}, {"key_id", k->key_id}});
  }

  // ---- usage and audit
  Reply usage(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_query(c.query, {"tenant", "key", "from", "to", "format"}));
    std::optional<int64_t> from, to;
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "from", from));
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "to", to));
    const std::string format = c.query.count("format") != 0 ? c.query["format"] : "json";
    if (format != "json" && format != "csv") {
      return admin_error(http::status::bad_request, "query parameter 'format': json or csv", "invalid_request");
    }
    storage::UsageQuery q;
    q.tenant = c.query["tenant"];
    q.key_id = c.query["key"];
    if (from) q.from_minute = *from / 60;
    if (to) q.to_minute = (*to + 59) / 60;
    Result<std::vector<storage::UsageRow>> rows = service_.usage(q);
    if (!rows.ok()) return status_reply(rows.status());
    if (format == "csv") {
      std::string csv = "time_utc,minute,tenant,key_id,requests,prompt_tokens,completion_tokens\r\n";
      for (const storage::UsageRow& u : *rows) {
        csv += utc_text(u.minute * 60) + "," + std::to_string(u.minute) + "," + u.tenant + "," + u.key_id + "," +
               std::to_string(u.requests) + "," + std::to_string(u.prompt_tokens) + "," +
               std::to_string(u.completion_tokens) + "\r\n";
      }
      Reply r{http::status::ok, std::move(csv), "text/csv; charset=utf-8", {}, false};
      r.headers.emplace_back("Content-Disposition", "attachment; filename=\"supernode-usage.csv\"");
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    }
    json a = json::array();
    for (const storage::UsageRow& u : *rows) a.push_back(usage_row_json(u));
    return json_reply(http::status::ok, json{{"rows", a}});
  }

  Reply audit(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_query(c.query, {"from", "to", "actor", "action", "limit", "before_seq"}));
    std::optional<int64_t> from, to, limit, before;
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "from", from));
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "to", to));
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "limit", limit));
    SN_RETURN_IF_ERROR_REPLY(query_int(c.query, "before_seq", before));
    storage::AuditQuery q;
    if (from) q.from_us = *from * 1000000;
    if (to) q.to_us = *to * 1000000;
    q.actor = c.query["actor"];
    q.action = c.query["action"];
    q.limit = limit.value_or(200);
    q.before_seq = before.value_or(0);
    Result<std::vector<storage::AuditRecord>> rows = service_.audit(q);
    if (!rows.ok()) return status_reply(rows.status());
    json a = json::array();
    for (const storage::AuditRecord& r : *rows) a.push_back(audit_json(r));
    return json_reply(http::status::ok, json{{"entries", a}});
  }

  // ---- models
  Reply models(Call&) {
    Result<std::vector<ModelInfo>> ms = service_.list_models();
    if (!ms.ok()) return status_reply(ms.status());
    json a = json::array();
    for (const ModelInfo& m : *ms) a.push_back(model_info_json(m));
    return json_reply(http::status::ok, json{{"models", a}});
  }

  Reply import(Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"path", "id"}));
    std::string path, id;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "path", path, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "id", id));
    Result<ImportJob> job = service_.start_import(path, id, c.actor());
    if (!job.ok()) return status_reply(job.status());
    return json_reply(http::status::accepted, json{{"import", import_json(*job)}});
  }

  // ---- the live view: one object a second, rates from the metrics' totals
  json live_sample(Metrics::Snapshot& prev, double& prev_t) {
    Metrics::Snapshot now = metrics_.snapshot();
    const double t = mono_s();
    const double dt = std::max(1e-3, t - prev_t);
    json models = json::array();
    double rps = 0, in_tps = 0, out_tps = 0;
    int64_t running = 0, queued = 0;
    for (const ModelStatus& s : service_.status()) {
      const Metrics::Totals cur = now.models.count(s.id) ? now.models[s.id] : Metrics::Totals{};
      const Metrics::Totals old = prev.models.count(s.id) ? prev.models[s.id] : Metrics::Totals{};
      const double r = static_cast<double>(cur.requests - old.requests) / dt;
      const double pi = static_cast<double>(cur.prompt_tokens - old.prompt_tokens) / dt;
      const double co = static_cast<double>(cur.completion_tokens - old.completion_tokens) / dt;
      rps += r;
      in_tps += pi;
      out_tps += co;
      running += s.running;
      queued += s.waiting;
      json m = model_status_json(s);
      m["queued"] = s.waiting;
      m["requests_per_s"] = r;
      m["prompt_tokens_per_s"] = pi;
      m["completion_tokens_per_s"] = co;
      models.push_back(m);
    }
    // TTFT percentiles over the last minute's requests.
    std::vector<double> ttft;
    for (const auto& [at, v] : now.recent_ttft) {
      if (t - at <= 60) ttft.push_back(v);
    }
    std::sort(ttft.begin(), ttft.end());
    auto pct = [&](double p) -> json {
      if (ttft.empty()) return nullptr;
      const size_t i = std::min(ttft.size() - 1, static_cast<size_t>(p * static_cast<double>(ttft.size())));
      return ttft[i];
    };
    prev = std::move(now);
    prev_t = t;
    return {{"time_us", now_us()},
            {"requests_per_s", rps},
            {"prompt_tokens_per_s", in_tps},
            {"completion_tokens_per_s", out_tps},
            {"ttft_p50_s", pct(0.5)},
            {"ttft_p99_s", pct(0.99)},
            {"running", running},
            {"queued", queued},
            {"models", models}};
  }

  net::awaitable<bool> live(Exchange& ex) {
    Reply head{http::status::ok, "", "text/event-stream", {}, false};
    head.headers.emplace_back("Cache-Control", "no-store");
    head.headers.emplace_back("X-Accel-Buffering", "no");
    if (!co_await ex.out.begin_stream(head)) co_return false;
    Metrics::Snapshot prev = metrics_.snapshot();
    double prev_t = mono_s();
    net::steady_timer tick(ex.out.executor());
    const std::string session_id = ex.admin->id;
    bool first = true;
    while (!ex.out.stopping() && sessions_.alive(session_id)) {
      if (!first) {
        tick.expires_after(std::chrono::seconds(1));
        boost::system::error_code ec;
        co_await tick.async_wait(net::redirect_error(net::use_awaitable, ec));
        if (ec) break;
      }
      first = false;
      std::function<json()> sample = [this, &prev, &prev_t] {
        try {
          return live_sample(prev, prev_t);
        } catch (...) {
          return json::object();
        }
      };
      const json j = co_await run_blocking<json>(pool_, std::move(sample));
      const std::string frame = "event: live\ndata: " + dump_json(j) + "\n\n";
      if (!co_await ex.out.write_chunk(frame)) co_return false;
    }
    const bool ended = co_await ex.out.end_stream();
    co_return ended;
  }

  // ---- backup: a consistent copy into a temporary file, streamed, then removed
  net::awaitable<bool> backup(Exchange& ex) {
    const AdminActor actor{"web " + ex.admin->username};
    char tmpl[] = "/tmp/supernode-backup-XXXXXX";
    std::function<std::pair<Status, std::string>()> work = [this, actor, tmpl]() mutable {
      const int fd = ::mkstemp(tmpl);
      if (fd < 0) return std::make_pair(Status::io_error("backup", "no temporary file"), std::string());
      ::close(fd);
      ::unlink(tmpl);  // the store writes it afresh (and renames into place)
      Status s = service_.backup(tmpl, actor);
      return std::make_pair(s, std::string(tmpl));
    };
    const std::pair<Status, std::string> done = co_await run_blocking<std::pair<Status, std::string>>(pool_, std::move(work));
    if (!done.first.is_ok()) {
      const Reply r = status_reply(done.first);
      const bool ok = co_await ex.out.send(r);
      co_return ok;
    }
    std::ifstream in(done.second, std::ios::binary);
    ::unlink(done.second.c_str());  // open already: it goes away when read
    char stamp[32];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    Reply head{http::status::ok, "", "application/vnd.sqlite3", {}, false};
    head.headers.emplace_back("Content-Disposition", std::string("attachment; filename=\"supernode-state-") + stamp + ".db\"");
    head.headers.emplace_back("Cache-Control", "no-store");
    if (!co_await ex.out.begin_stream(head)) co_return false;
    std::string buf(1u << 16, '\0');
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize n = in.gcount();
      if (n <= 0) break;
      const std::string chunk = buf.substr(0, static_cast<size_t>(n));
      if (!co_await ex.out.write_chunk(chunk)) co_return false;
    }
    const bool ended = co_await ex.out.end_stream();
    co_return ended;
  }
};

AdminApi::AdminApi(AdminApiOptions options, AdminService& service, Metrics& metrics, ModelRegistry& models)
    : impl_(std::make_unique<Impl>(std::move(options), service, metrics, models)) {}

AdminApi::~AdminApi() { join(); }

void AdminApi::join() { impl_->pool_.join(); }

bool AdminApi::authorize(const http::request_header<>& head, Guard guard, const std::string& client_addr,
                         std::optional<AdminSession>& session, Reply& refusal) {
  (void)client_addr;
  const std::string id = cookie_value(head, "sn_session");
  std::optional<SessionTable::Session> s;
  if (!id.empty()) s = impl_->sessions_.touch(id);
  if (!s) {
    refusal = admin_error(http::status::unauthorized, id.empty() ? "log in first" : "your session has ended: log in again",
                          "unauthorized");
    return false;
  }
  if (is_write(head.method())) {
    const auto token = head["X-CSRF-Token"];
    if (!same_secret(std::string_view(token.data(), token.size()), s->csrf)) {
      refusal = admin_error(http::status::forbidden, "missing or wrong X-CSRF-Token header", "csrf");
      return false;
    }
  }
  const bool needs_admin = guard == Guard::kAdminOnly || (guard == Guard::kAdminSession && is_write(head.method()));
  if (needs_admin && s->role != "admin") {
    refusal = admin_error(http::status::forbidden, "your role (" + s->role + ") may not do this", "forbidden");
    return false;
  }
  session = AdminSession{id, s->username, s->role, s->csrf};
  return true;
}

void AdminApi::add_routes(Router& r) {
  Impl& a = *impl_;
  using V = http::verb;
  const Guard kAny = Guard::kNone, kSession = Guard::kAdminSession, kAdmin = Guard::kAdminOnly;
  // First run and sessions.
  a.add(r, V::get, "/api/admin/state", kAny, [&a](Call&) {
    return json_reply(http::status::ok, json{{"setup_required", a.service_.setup_required()}, {"version", a.options_.version}});
  });
  a.add(r, V::post, "/api/admin/setup", kAny, [&a](Call& c) { return a.setup(c); });
  a.add(r, V::post, "/api/admin/login", kAny, [&a](Call& c) { return a.login(c); });
  a.add(r, V::post, "/api/admin/logout", Guard::kAnySession, [&a](Call& c) { return a.logout(c); });
  a.add(r, V::get, "/api/admin/session", kSession, [&a](Call& c) {
    SessionTable::Session s{c.session->username, c.session->role, c.session->csrf_token, 0, 0};
    return a.session_answer("", s, http::status::ok, c.tls);
  });
  // Users.
  a.add(r, V::get, "/api/admin/users", kAdmin, [&a](Call&) {
    Result<std::vector<storage::UserRecord>> us = a.service_.list_users();
    if (!us.ok()) return status_reply(us.status());
    json arr = json::array();
    for (const storage::UserRecord& u : *us) arr.push_back(user_json(u));
    return json_reply(http::status::ok, json{{"users", arr}});
  });
  a.add(r, V::post, "/api/admin/users", kAdmin, [&a](Call& c) { return a.create_user(c); });
  a.add(r, V::patch, "/api/admin/users/{username}", kAdmin, [&a](Call& c) { return a.update_user(c); });
  a.add(r, V::delete_, "/api/admin/users/{username}", kAdmin, [&a](Call& c) { return a.delete_user(c); });
  // The box.
  a.add(r, V::get, "/api/admin/hardware", kSession,
        [&a](Call&) { return json_reply(http::status::ok, hardware_json(a.service_.hardware())); });
  a.add(r, V::get, "/api/admin/status", kSession, [&a](Call&) {
    json arr = json::array();
    for (const ModelStatus& m : a.service_.status()) arr.push_back(model_status_json(m));
    return json_reply(http::status::ok, json{{"models", arr}});
  });
  r.add({V::get, "/api/admin/live", kSession, ErrorStyle::kAdmin, 0, [&a](Exchange& ex) { return a.live(ex); }, ""});
  // Models.
  a.add(r, V::get, "/api/admin/models", kSession, [&a](Call& c) { return a.models(c); });
  a.add(r, V::post, "/api/admin/models/import", kSession, [&a](Call& c) { return a.import(c); });
  a.add(r, V::get, "/api/admin/models/imports", kSession, [&a](Call&) {
    json arr = json::array();
    for (const ImportJob& j : a.service_.imports()) arr.push_back(import_json(j));
    return json_reply(http::status::ok, json{{"imports", arr}});
  });
  a.add(r, V::get, "/api/admin/models/imports/{import_id}", kSession, [&a](Call& c) {
    const std::optional<ImportJob> j = a.service_.import_job(c.params["import_id"]);
    if (!j) return admin_error(http::status::not_found, "no import '" + c.params["import_id"] + "'", "not_found");
    return json_reply(http::status::ok, json{{"import", import_json(*j)}});
  });
  a.add(r, V::post, "/api/admin/models/{id}/load", kSession, [&a](Call& c) {
    if (Status s = a.service_.load_model(c.params["id"], c.actor()); !s.is_ok()) return status_reply(s);
    return json_reply(http::status::ok, json::object());
  });
  a.add(r, V::post, "/api/admin/models/{id}/unload", kSession, [&a](Call& c) {
    if (Status s = a.service_.unload_model(c.params["id"], c.actor()); !s.is_ok()) return status_reply(s);
    return json_reply(http::status::ok, json::object());
  });
  a.add(r, V::delete_, "/api/admin/models/{id}", kSession, [&a](Call& c) {
    if (Status s = a.service_.remove_model(c.params["id"], c.actor()); !s.is_ok()) return status_reply(s);
    return json_reply(http::status::ok, json::object());
  });
  // Tenants and keys.
  a.add(r, V::get, "/api/admin/tenants", kSession, [&a](Call&) {
    Result<std::vector<storage::TenantRecord>> ts = a.service_.list_tenants();
    if (!ts.ok()) return status_reply(ts.status());
    json arr = json::array();
    for (const storage::TenantRecord& t : *ts) arr.push_back(tenant_json(t));
    return json_reply(http::status::ok, json{{"tenants", arr}});
  });
  a.add(r, V::post, "/api/admin/tenants", kSession, [&a](Call& c) { return a.create_tenant(c); });
  a.add(r, V::patch, "/api/admin/tenants/{name}", kSession, [&a](Call& c) { return a.update_tenant(c); });
  a.add(r, V::get, "/api/admin/keys", kSession, [&a](Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_query(c.query, {"tenant"}));
    Result<std::vector<storage::ApiKeyRecord>> ks = a.service_.list_keys(c.query["tenant"]);
    if (!ks.ok()) return status_reply(ks.status());
    json arr = json::array();
    for (const storage::ApiKeyRecord& k : *ks) arr.push_back(key_json(k));
    return json_reply(http::status::ok, json{{"keys", arr}});
  });
  a.add(r, V::post, "/api/admin/keys", kSession, [&a](Call& c) { return a.create_key(c); });
  a.add(r, V::delete_, "/api/admin/keys/{key_id}", kSession, [&a](Call& c) {
    if (Status s = a.service_.revoke_key(c.params["key_id"], c.actor()); !s.is_ok()) return status_reply(s);
    return json_reply(http::status::ok, json::object());
  });
  // Usage and audit.
  a.add(r, V::get, "/api/admin/usage", kSession, [&a](Call& c) { return a.usage(c); });
  a.add(r, V::get, "/api/admin/audit", kSession, [&a](Call& c) { return a.audit(c); });
  a.add(r, V::get, "/api/admin/audit/verify", kSession, [&a](Call&) {
    Result<storage::AuditVerification> v = a.service_.verify_audit();
    if (!v.ok()) return status_reply(v.status());
    return json_reply(http::status::ok, verification_json(*v));
  });
  // Moderation terms.
  a.add(r, V::get, "/api/admin/moderation/terms", kSession, [&a](Call&) {
    Result<std::vector<storage::ModerationTerm>> ts = a.service_.list_moderation_terms();
    if (!ts.ok()) return status_reply(ts.status());
    return json_reply(http::status::ok, json{{"terms", moderation_terms_json(*ts)}});
  });
  a.add(r, V::post, "/api/admin/moderation/terms", kSession, [&a](Call& c) {
    SN_RETURN_IF_ERROR_REPLY(check_fields(c.body, {"term", "scope"}));
    std::string term, scope;
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "term", term, true));
    SN_RETURN_IF_ERROR_REPLY(read_string(c.body, "scope", scope));
    Result<size_t> n = a.service_.add_moderation_term(term, scope, c.actor());
    if (!n.ok()) return status_reply(n.status());
    return json_reply(http::status::created, json{{"terms", *n}});
  });
  a.add(r, V::delete_, "/api/admin/moderation/terms/{term}", kSession, [&a](Call& c) {
    Result<size_t> n = a.service_.remove_moderation_term(c.params["term"], c.actor());
    if (!n.ok()) return status_reply(n.status());
    return json_reply(http::status::ok, json{{"terms", *n}});
  });
  // Backup.
  r.add({V::get, "/api/admin/backup", kAdmin, ErrorStyle::kAdmin, 0, [&a](Exchange& ex) { return a.backup(ex); }, ""});
}

}  // namespace sn::daemon
