// The admin socket (admin.h): a blocking accept loop on its own thread (admin traffic is a
// few requests a day), one JSON line in, one JSON line out per connection.
#include "supernode/daemon/admin.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace sn::daemon {
namespace {

using json = nlohmann::json;

json fail(const std::string& message) { return {{"ok", false}, {"error", message}}; }
json fail(const Status& s) { return fail(s.message()); }

bool read_limits(const json& req, storage::Limits& l, std::string& err) {
  for (const char* k : {"rpm", "tpm", "concurrency"}) {
    auto it = req.find(k);
    if (it == req.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      err = std::string("'") + k + "' must be a non-negative integer";
      return false;
    }
    const int64_t v = it->get<int64_t>();
    if (std::strcmp(k, "rpm") == 0) l.rpm = v;
    if (std::strcmp(k, "tpm") == 0) l.tpm = v;
    if (std::strcmp(k, "concurrency") == 0) l.concurrency = v;
  }
  if (auto it = req.find("models"); it != req.end() && !it->is_null()) {
    if (!it->is_array()) {
      err = "'models' must be an array of model ids";
      return false;
    }
    for (const json& m : *it) {
      if (!m.is_string()) {
        err = "'models' must be an array of model ids";
        return false;
      }
      l.models.push_back(m.get<std::string>());
    }
  }
  return true;
}

json limits_json(const storage::Limits& l) {
  return {{"rpm", l.rpm}, {"tpm", l.tpm}, {"concurrency", l.concurrency}, {"models", l.models}};
}

std::string str_or(const json& req, const char* key, const std::string& fallback = "") {
  auto it = req.find(key);
  return it != req.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(std::string path, storage::StateStore& state, std::vector<ModelHost*> hosts)
      : path_(std::move(path)), state_(state), hosts_(std::move(hosts)) {}

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
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
    fd_ = -1;
  }

  std::string handle(const std::string& line, unsigned uid) {
    const json req = json::parse(line, nullptr, false);
    json res;
    if (req.is_discarded() || !req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
      res = fail("a request is one JSON object with a string 'cmd'");
    } else {
      res = dispatch(req, "admin uid " + std::to_string(uid));
    }
    return res.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }

 private:
  json dispatch(const json& req, const std::string& actor) {
    const std::string cmd = req["cmd"].get<std::string>();
    std::string err;
    if (cmd == "tenants.create") {
      storage::Limits l;
      if (!read_limits(req, l, err)) return fail(err);
      Result<storage::TenantRecord> t = state_.create_tenant(str_or(req, "name"), l, actor);
      if (!t.ok()) return fail(t.status());
      return {{"ok", true}, {"tenant", {{"name", t->name}, {"limits", limits_json(t->limits)}}}};
    }
    if (cmd == "tenants.list") {
      Result<std::vector<storage::TenantRecord>> ts = state_.list_tenants();
      if (!ts.ok()) return fail(ts.status());
      json a = json::array();
      for (const storage::TenantRecord& t : *ts) {
        a.push_back({{"name", t.name}, {"limits", limits_json(t.limits)}, {"created_us", t.created_us}});
      }
      return {{"ok", true}, {"tenants", a}};
    }
    if (cmd == "keys.create") {
      storage::Limits l;
      if (!read_limits(req, l, err)) return fail(err);
      Result<storage::NewApiKey> k = state_.create_key(str_or(req, "tenant"), l, str_or(req, "label"), actor);
      if (!k.ok()) return fail(k.status());
      return {{"ok", true}, {"key", k->key}, {"key_id", k->record.key_id}};
    }
    if (cmd == "keys.list") {
      Result<std::vector<storage::ApiKeyRecord>> ks = state_.list_keys(str_or(req, "tenant"));
      if (!ks.ok()) return fail(ks.status());
      json a = json::array();
      for (const storage::ApiKeyRecord& k : *ks) {
        a.push_back({{"key_id", k.key_id},
                     {"tenant", k.tenant},
                     {"label", k.label},
                     {"limits", limits_json(k.limits)},
                     {"created_us", k.created_us},
                     {"revoked", k.revoked_us.has_value()}});
      }
      return {{"ok", true}, {"keys", a}};
    }
    if (cmd == "keys.revoke") {
      if (Status s = state_.revoke_key(str_or(req, "key_id"), actor); !s.is_ok()) return fail(s);
      return {{"ok", true}};
    }
    if (cmd == "usage") {
      int64_t since_minutes = 60;
      if (auto it = req.find("since_minutes"); it != req.end() && it->is_number_integer()) since_minutes = it->get<int64_t>();
      const int64_t now_min = std::chrono::duration_cast<std::chrono::minutes>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
      (void)state_.flush_usage();
      Result<std::vector<storage::UsageRow>> rows = state_.usage(now_min - since_minutes, str_or(req, "tenant"));
      if (!rows.ok()) return fail(rows.status());
      json a = json::array();
      for (const storage::UsageRow& u : *rows) {
        a.push_back({{"key_id", u.key_id},
                     {"tenant", u.tenant},
                     {"minute", u.minute},
                     {"requests", u.requests},
                     {"prompt_tokens", u.prompt_tokens},
                     {"completion_tokens", u.completion_tokens}});
      }
      return {{"ok", true}, {"rows", a}};
    }
    if (cmd == "audit.verify") {
      Result<storage::AuditVerification> v = state_.verify_audit();
      if (!v.ok()) return fail(v.status());
      return {{"ok", true},
              {"verified", v->ok},
              {"rows", v->rows},
              {"first_bad_seq", v->first_bad_seq},
              {"problem", v->problem}};
    }
    if (cmd == "backup") {
      const std::string path = str_or(req, "path");
      if (path.empty()) return fail("'path' is required");
      if (Status s = state_.backup(path); !s.is_ok()) return fail(s);
      (void)state_.audit(actor, "backup", path);
      return {{"ok", true}};
    }
    if (cmd == "status") {
      json models = json::array();
      for (const ModelHost* h : hosts_) {
        const ModelHost::Stats s = h->stats();
        models.push_back({{"id", h->id()},
                          {"running", s.running},
                          {"waiting", s.waiting},
                          {"steps", s.steps},
                          {"tokens_generated", s.tokens_generated},
                          {"kv_blocks_used", s.kv.blocks_used},
                          {"kv_blocks", s.kv.blocks_total}});
      }
      return {{"ok", true}, {"models", models}};
    }
    return fail("unknown command '" + cmd + "'");
  }

  void loop() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      ::close(c);
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
      out = handle(line.substr(0, line.find('\n')), cred.uid);
    }
    size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }

  std::string path_;
  storage::StateStore& state_;
  std::vector<ModelHost*> hosts_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

AdminServer::AdminServer(std::string path, storage::StateStore& state, std::vector<ModelHost*> hosts)
    : impl_(std::make_unique<Impl>(std::move(path), state, std::move(hosts))) {}
AdminServer::~AdminServer() = default;
Status AdminServer::start() { return impl_->start(); }
void AdminServer::stop() { impl_->stop(); }
std::string AdminServer::handle(const std::string& line, unsigned uid) { return impl_->handle(line, uid); }

}  // namespace sn::daemon
