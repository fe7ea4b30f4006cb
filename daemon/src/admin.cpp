// The admin socket (admin.h): a blocking accept loop on its own thread (admin traffic is a
// few requests a day), one JSON line in, one JSON line out per connection. It maps the
// line to an AdminService call and the result back (admin_json.h): no admin behaviour here.
#include "supernode/daemon/admin.h"

#include "supernode/base/mutex.h"

#include "admin_json.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace sn::daemon {
namespace {

json fail(const std::string& message) { return {{"ok", false}, {"error", message}}; }
json fail(const Status& s) { return fail(s.message()); }
json ok(json fields = json::object()) {
  json out = {{"ok", true}};
  for (auto it = fields.begin(); it != fields.end(); ++it) out[it.key()] = it.value();
  return out;
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(AdminOptions options, AdminService& service)
      : options_(std::move(options)), path_(options_.socket_path), service_(service) {}

  ~Impl() { stop(); }

  Status start() {
    sockaddr_un addr{};
    if (path_.size() >= sizeof(addr.sun_path)) {
      return Status::invalid_argument("admin socket " + path_, "path too long for a Unix socket");
    }
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    ::unlink(path_.c_str());  // a stale socket of an earlier run
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Status::io_error("admin socket " + path_, std::strerror(errno));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    const mode_t old = ::umask(0117);  // 0660
    const int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0 || ::listen(fd_, 16) != 0) {
      const std::string why = std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return Status::io_error("admin socket " + path_, why);
    }
    thread_ = std::thread([this] { loop(); });
    return Status::ok();
  }

  void stop() {
    if (stop_.exchange(true)) return;
    if (thread_.joinable()) thread_.join();
    std::vector<Worker> workers;
    {
      MutexLock lock(workers_mu_);
      workers.swap(workers_);
    }
    for (Worker& w : workers) w.thread.join();
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
    fd_ = -1;
  }

  std::string handle(const std::string& line, unsigned uid, const std::function<void(const std::string&)>& progress) {
    const json req = json::parse(line, nullptr, false);
    json res;
    if (req.is_discarded() || !req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
      res = fail("a request is one JSON object with a string 'cmd'");
    } else {
      res = dispatch(req, AdminActor{"admin uid " + std::to_string(uid)}, progress);
    }
    return res.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }

 private:
  // One command: its fields checked (unknown ones refused), the service called.
  json dispatch(const json& req, const AdminActor& actor, const std::function<void(const std::string&)>& progress) {
    const std::string cmd = req["cmd"].get<std::string>();
    auto fields = [&](std::initializer_list<const char*> allowed) { return check_fields(req, allowed); };
    std::string name, tenant, label, path, id, key_id, term, scope;
    LimitsPatch limits;
    if (cmd == "tenants.create") {
      if (Status s = fields({"cmd", "name", "rpm", "tpm", "concurrency", "models"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "name", name); !s.is_ok()) return fail(s);
      if (Status s = read_limits(req, limits); !s.is_ok()) return fail(s);
      Result<storage::TenantRecord> t = service_.create_tenant({name, limits}, actor);
      if (!t.ok()) return fail(t.status());
      return ok({{"tenant", {{"name", t->name}, {"limits", limits_json(t->limits)}}}});
    }
    if (cmd == "tenants.update") {
      if (Status s = fields({"cmd", "name", "rpm", "tpm", "concurrency", "models"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "name", name, true); !s.is_ok()) return fail(s);
      if (Status s = read_limits(req, limits); !s.is_ok()) return fail(s);
      Result<storage::TenantRecord> t = service_.update_tenant(name, limits, actor);
      if (!t.ok()) return fail(t.status());
      return ok({{"tenant", tenant_json(*t)}});
    }
    if (cmd == "tenants.list") {
      if (Status s = fields({"cmd"}); !s.is_ok()) return fail(s);
      Result<std::vector<storage::TenantRecord>> ts = service_.list_tenants();
      if (!ts.ok()) return fail(ts.status());
      json a = json::array();
      for (const storage::TenantRecord& t : *ts) a.push_back(tenant_json(t));
      return ok({{"tenants", a}});
    }
    if (cmd == "keys.create") {
      if (Status s = fields({"cmd", "tenant", "label", "rpm", "tpm", "concurrency", "models"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "tenant", tenant); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "label", label); !s.is_ok()) return fail(s);
      if (Status s = read_limits(req, limits); !s.is_ok()) return fail(s);
      Result<CreatedKey> k = service_.create_key({tenant, label, limits}, actor);
      if (!k.ok()) return fail(k.status());
      return ok({{"key", k->key}, {"key_id", k->key_id}});
    }
    if (cmd == "keys.list") {
      if (Status s = fields({"cmd", "tenant"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "tenant", tenant); !s.is_ok()) return fail(s);
      Result<std::vector<storage::ApiKeyRecord>> ks = service_.list_keys(tenant);
      if (!ks.ok()) return fail(ks.status());
      json a = json::array();
      for (const storage::ApiKeyRecord& k : *ks) a.push_back(key_json(k));
      return ok({{"keys", a}});
    }
    if (cmd == "keys.revoke") {
      if (Status s = fields({"cmd", "key_id"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "key_id", key_id, true); !s.is_ok()) return fail(s);
      if (Status s = service_.revoke_key(key_id, actor); !s.is_ok()) return fail(s);
      return ok();
    }
    if (cmd == "usage") {
      if (Status s = fields({"cmd", "tenant", "since_minutes"}); !s.is_ok()) return fail(s);
      std::optional<int64_t> since;
      if (Status s = read_int(req, "since_minutes", since); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "tenant", tenant); !s.is_ok()) return fail(s);
      const int64_t now_min =
          std::chrono::duration_cast<std::chrono::minutes>(std::chrono::system_clock::now().time_since_epoch()).count();
      storage::UsageQuery q;
      q.tenant = tenant;
      q.from_minute = now_min - since.value_or(60);
      Result<std::vector<storage::UsageRow>> rows = service_.usage(q);
      if (!rows.ok()) return fail(rows.status());
      json a = json::array();
      for (const storage::UsageRow& u : *rows) a.push_back(usage_row_json(u));
      return ok({{"rows", a}});
    }
    if (cmd == "audit.verify") {
      Result<storage::AuditVerification> v = service_.verify_audit();
      if (!v.ok()) return fail(v.status());
      return ok(verification_json(*v));
    }
    if (cmd == "backup") {
      if (Status s = fields({"cmd", "path"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "path", path, true); !s.is_ok()) return fail(s);
      if (Status s = service_.backup(path, actor); !s.is_ok()) return fail(s);
      return ok();
    }
    if (cmd == "audit.record") {
      // Records written by `supernode update apply`; the action is kept to the update.* names
      // so the socket cannot forge other kinds of audit rows.
      std::string action, detail;
      if (Status s = fields({"cmd", "action", "detail"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "action", action, true); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "detail", detail); !s.is_ok()) return fail(s);
      if (action.rfind("update.", 0) != 0 || action.size() > 64) {
        return fail("action: must start with 'update.' (at most 64 bytes)");
      }
      if (detail.size() > 4096) return fail("detail: at most 4096 bytes");
      service_.audit_event(actor, action, detail);
      return ok();
    }
    if (cmd == "status") {
      json models = json::array();
      for (const ModelStatus& m : service_.status()) models.push_back(model_status_json(m));
      return ok({{"models", models}});
    }
    if (cmd == "models.import") {
      if (Status s = fields({"cmd", "path", "id"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "path", path, true); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "id", id); !s.is_ok()) return fail(s);
      Result<storage::ModelRecord> rec = service_.import_model(path, id, actor, [&](int64_t bytes, int64_t total) {
        if (progress) progress(json{{"progress", {{"bytes", bytes}, {"total", total}}}}.dump());
      });
      if (!rec.ok()) return fail(rec.status());
      return ok({{"model", model_record_json(*rec)}});
    }
    if (cmd == "models.list") {
      Result<std::vector<ModelInfo>> ms = service_.list_models();
      if (!ms.ok()) return fail(ms.status());
      json a = json::array();
      for (const ModelInfo& m : *ms) a.push_back(model_info_json(m));
      return ok({{"models", a}});
    }
    if (cmd == "models.load" || cmd == "models.unload" || cmd == "models.remove") {
      if (Status s = fields({"cmd", "id"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "id", id, true); !s.is_ok()) return fail(s);
      const Status s = cmd == "models.load"     ? service_.load_model(id, actor)
                       : cmd == "models.unload" ? service_.unload_model(id, actor)
                                                : service_.remove_model(id, actor);
      if (!s.is_ok()) return fail(s);
      return ok();
    }
    if (cmd == "moderation.add" || cmd == "moderation.remove") {
      const bool add = cmd == "moderation.add";
      if (Status s = add ? fields({"cmd", "term", "scope"}) : fields({"cmd", "term"}); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "term", term); !s.is_ok()) return fail(s);
      if (Status s = read_string(req, "scope", scope); !s.is_ok()) return fail(s);
      Result<size_t> n = add ? service_.add_moderation_term(term, scope, actor) : service_.remove_moderation_term(term, actor);
      if (!n.ok()) return fail(n.status());
      return ok({{"terms", *n}});
    }
    if (cmd == "moderation.list") {
      Result<std::vector<storage::ModerationTerm>> terms = service_.list_moderation_terms();
      if (!terms.ok()) return fail(terms.status());
      return ok({{"terms", moderation_terms_json(*terms)}});
    }
    return fail("unknown command '" + cmd + "'");
  }

  void loop() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      MutexLock lock(workers_mu_);
      // Join the connections that are over, then serve this one on a thread of its own.
      for (auto it = workers_.begin(); it != workers_.end();) {
        if (it->done->load()) {
          it->thread.join();
          it = workers_.erase(it);
        } else {
          ++it;
        }
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      workers_.push_back(Worker{std::thread([this, c, done] {
                                  serve(c);
                                  ::close(c);
                                  done->store(true);
                                }),
                                done});
    }
  }

  void serve(int c) {
    ucred cred{};
    socklen_t len = sizeof cred;
    std::string out;
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != ::getuid())) {
      out = fail("permission denied: only root or the daemon's user may administer it").dump() + "\n";
    } else {
      // One line, at most 64 KiB, within 5 s.
      std::string line;
      char buf[4096];
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (line.find('\n') == std::string::npos && line.size() < (64u << 10) &&
             std::chrono::steady_clock::now() < deadline) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
      }
      out = handle(line.substr(0, line.find('\n')), cred.uid,
                   [&](const std::string& p) { send_all(c, p + "\n"); });
    }
    send_all(c, out);
  }

  static void send_all(int c, const std::string& out) {
    size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }

  AdminOptions options_;
  std::string path_;
  AdminService& service_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  Mutex workers_mu_;
  std::vector<Worker> workers_ SN_GUARDED_BY(workers_mu_);  // one per connection, joined when over or at stop
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

AdminServer::AdminServer(AdminOptions options, AdminService& service)
    : impl_(std::make_unique<Impl>(std::move(options), service)) {}
AdminServer::~AdminServer() = default;
Status AdminServer::start() { return impl_->start(); }
void AdminServer::stop() { impl_->stop(); }
std::string AdminServer::handle(const std::string& line, unsigned uid,
                                const std::function<void(const std::string&)>& progress) {
  return impl_->handle(line, uid, progress);
}

}  // namespace sn::daemon
