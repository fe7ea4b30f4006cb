// The admin socket (admin.h): a blocking accept loop on its own thread (admin traffic is a
// few requests a day), one JSON line in, one JSON line out per connection.
#include "supernode/daemon/admin.h"

#include "supernode/base/mutex.h"
#include "supernode/engine/gguf.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
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
  Impl(AdminOptions options, storage::StateStore& state, ModelRegistry& models, Moderation& moderation)
      : options_(std::move(options)), path_(options_.socket_path), state_(state), models_(models), moderation_(moderation) {}

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
      res = dispatch(req, "admin uid " + std::to_string(uid), progress);
    }
    return res.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }

 private:
  json dispatch(const json& req, const std::string& actor, const std::function<void(const std::string&)>& progress) {
    const std::string cmd = req["cmd"].get<std::string>();
    std::string err;
    if (cmd == "tenants.create") {
      storage::Limits l;
      if (!req.contains("rpm") || req["rpm"].is_null()) l.rpm = options_.default_tenant_limits.rpm;
      if (!req.contains("tpm") || req["tpm"].is_null()) l.tpm = options_.default_tenant_limits.tpm;
      if (!req.contains("concurrency") || req["concurrency"].is_null()) {
        l.concurrency = options_.default_tenant_limits.concurrency;
      }
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
      for (const std::shared_ptr<ModelHost>& h : models_.list()) {
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
    if (cmd.rfind("models.", 0) == 0) return models_command(cmd, req, actor, progress);
    if (cmd == "moderation.add" || cmd == "moderation.remove") {
      const std::string term = str_or(req, "term");
      Status s = cmd == "moderation.add" ? state_.add_moderation_term(term, str_or(req, "scope", "both"), actor)
                                         : state_.remove_moderation_term(term, actor);
      if (!s.is_ok()) return fail(s);
      Result<std::vector<storage::ModerationTerm>> terms = state_.list_moderation_terms();
      if (!terms.ok()) return fail(terms.status());
      moderation_.set_terms(*terms);
      return {{"ok", true}, {"terms", terms->size()}};
    }
    if (cmd == "moderation.list") {
      Result<std::vector<storage::ModerationTerm>> terms = state_.list_moderation_terms();
      if (!terms.ok()) return fail(terms.status());
      json a = json::array();
      for (const storage::ModerationTerm& t : *terms) a.push_back({{"term", t.term}, {"scope", t.scope}});
      return {{"ok", true}, {"terms", a}};
    }
    return fail("unknown command '" + cmd + "'");
  }

  json models_command(const std::string& cmd, const json& req, const std::string& actor,
                      const std::function<void(const std::string&)>& progress) {
    if (cmd == "models.import") {
      const std::string src = str_or(req, "path");
      if (src.empty()) return fail("'path' is required");
      const std::string id = str_or(req, "id", std::filesystem::path(src).stem().string());
      if (Status s = ModelRegistry::check_id(id); !s.is_ok()) return fail(s);
      Result<storage::ModelRecord> rec = import_model(src, id, progress);
      if (!rec.ok()) return fail(rec.status());
      if (Status s = state_.put_model(*rec, actor); !s.is_ok()) return fail(s);
      return {{"ok", true}, {"model", model_json(*rec)}};
    }
    if (cmd == "models.list") {
      Result<std::vector<storage::ModelRecord>> cat = state_.list_models();
      if (!cat.ok()) return fail(cat.status());
      json a = json::array();
      std::set<std::string> seen;
      for (const storage::ModelRecord& m : *cat) {
        json j = model_json(m);
        const std::shared_ptr<ModelHost> h = models_.find(m.id);
        j["in_catalog"] = true;
        j["loaded"] = h != nullptr;
        j["autoload"] = autoload(m.id);
        if (h) j["in_flight"] = h->in_flight();
        a.push_back(j);
        seen.insert(m.id);
      }
      for (const std::shared_ptr<ModelHost>& h : models_.list()) {
        if (seen.count(h->id()) != 0) continue;
        a.push_back({{"id", h->id()}, {"path", models_.path_of(h->id())}, {"in_catalog", false}, {"loaded", true},
                     {"autoload", false}, {"in_flight", h->in_flight()}});
      }
      for (const std::string& id : models_.loading()) {
        a.push_back({{"id", id}, {"loading", true}, {"loaded", false}});
      }
      return {{"ok", true}, {"models", a}};
    }
    const std::string id = str_or(req, "id");
    if (id.empty()) return fail("'id' is required");
    if (cmd == "models.load") {
      Result<std::optional<storage::ModelRecord>> m = find_model(id);
      if (!m.ok()) return fail(m.status());
      if (!*m) return fail("model '" + id + "' is not in the catalog: import it first (supernode models import PATH)");
      if (Status s = models_.load(id, (*m)->path); !s.is_ok()) return fail(s);
      (void)state_.set_setting("models.autoload." + id, "1", actor);
      (void)state_.audit(actor, "models.load", id);
      return {{"ok", true}};
    }
    if (cmd == "models.unload") {
      if (Status s = models_.unload(id, options_.drain); !s.is_ok()) return fail(s);
      if (autoload(id)) (void)state_.set_setting("models.autoload." + id, "0", actor);
      (void)state_.audit(actor, "models.unload", id);
      return {{"ok", true}};
    }
    if (cmd == "models.remove") {
      if (models_.find(id) != nullptr) return fail("model '" + id + "' is loaded: unload it first");
      Result<std::optional<storage::ModelRecord>> m = find_model(id);
      if (!m.ok()) return fail(m.status());
      if (!*m) return fail("model '" + id + "' is not in the catalog");
      if (Status s = state_.remove_model(id, actor); !s.is_ok()) return fail(s);
      (void)state_.set_setting("models.autoload." + id, "0", actor);
      // Only files that import made are ours to delete.
      if (std::filesystem::path((*m)->path).parent_path() == std::filesystem::path(options_.models_dir)) {
        std::error_code ec;
        std::filesystem::remove((*m)->path, ec);
      }
      return {{"ok", true}};
    }
    return fail("unknown command '" + cmd + "'");
  }

  static json model_json(const storage::ModelRecord& m) {
    return {{"id", m.id}, {"path", m.path}, {"sha256", m.sha256}, {"bytes", m.bytes}, {"added_us", m.added_us}};
  }

  bool autoload(const std::string& id) const {
    Result<std::optional<std::string>> v = state_.setting("models.autoload." + id);
    return v.ok() && *v && **v == "1";
  }

  Result<std::optional<storage::ModelRecord>> find_model(const std::string& id) const {
    Result<std::vector<storage::ModelRecord>> cat = state_.list_models();
    if (!cat.ok()) return cat.status();
    for (const storage::ModelRecord& m : *cat) {
      if (m.id == id) return std::optional<storage::ModelRecord>(m);
    }
    return std::optional<storage::ModelRecord>();
  }

  // Copies `src` to MODELS_DIR/ID.gguf (through a .part file, fsynced, renamed), hashing it
  // on the way, then checks that the copy parses as GGUF. Progress about every 1%.
  Result<storage::ModelRecord> import_model(const std::string& src, const std::string& id,
                                            const std::function<void(const std::string&)>& progress) {
    const std::string what = "import " + src;
    Result<std::optional<storage::ModelRecord>> existing = find_model(id);
    if (!existing.ok()) return existing.status();
    if (*existing) return Status::invalid_argument(what, "model id '" + id + "' is already in the catalog");
    std::error_code ec;
    std::filesystem::create_directories(options_.models_dir, ec);
    if (ec) return Status::io_error("models directory " + options_.models_dir, ec.message());
    const std::string dst = options_.models_dir + "/" + id + ".gguf";
    // One import per id at a time (a second one of the same id is refused, not mixed in).
    {
      MutexLock lock(importing_mu_);
      if (!importing_.insert(id).second) return Status::invalid_argument(what, "model id '" + id + "' is being imported");
    }
    struct Done {
      Impl& impl;
      std::string id;
      ~Done() {
        MutexLock lock(impl.importing_mu_);
        impl.importing_.erase(id);
      }
    } done_importing{*this, id};
    // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; anything but a
    // regular file is refused before it is read.
    const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (in < 0) return Status::io_error(what, std::strerror(errno));
    struct stat st{};
    if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(in);
      return Status::invalid_argument(what, "not a regular file");
    }
    (void)::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) & ~O_NONBLOCK);
    // Room for the copy, with a margin, before a byte is written.
    struct statvfs vfs{};
    if (::statvfs(options_.models_dir.c_str(), &vfs) == 0) {
      const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      const uint64_t need = static_cast<uint64_t>(st.st_size) + (64u << 20);
      if (free_bytes < need) {
        ::close(in);
        return Status::resource_exhausted(what, "not enough free space in " + options_.models_dir + ": the file needs " +
                                                    std::to_string(st.st_size >> 20) + " MiB (plus 64 MiB), " +
                                                    std::to_string(free_bytes >> 20) + " MiB free");
      }
    }
    std::string part = dst + ".part-XXXXXX";  // a temporary file of this import's own
    const int out = ::mkostemp(part.data(), O_CLOEXEC);
    if (out < 0) {
      const std::string why = std::strerror(errno);
      ::close(in);
      return Status::io_error("import to " + dst, why);
    }
    (void)::fchmod(out, 0640);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
    std::vector<char> buf(4u << 20);
    const int64_t total = st.st_size;
    int64_t done = 0, last_report = -1;
    Status failed;
    while (failed.is_ok()) {
      const ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) failed = Status::io_error(what, std::strerror(errno));
      if (n <= 0) break;
      EVP_DigestUpdate(md, buf.data(), static_cast<size_t>(n));
      for (ssize_t off = 0; off < n && failed.is_ok();) {
        const ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) failed = Status::io_error("import to " + part, std::strerror(errno));
        if (w > 0) off += w;
      }
      done += n;
      if (progress && (total == 0 || done * 100 / std::max<int64_t>(total, 1) != last_report)) {
        last_report = done * 100 / std::max<int64_t>(total, 1);
        progress(json{{"progress", {{"bytes", done}, {"total", total}}}}.dump());
      }
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    ::close(in);
    if (failed.is_ok() && ::fsync(out) != 0) failed = Status::io_error("import to " + part, std::strerror(errno));
    ::close(out);
    if (failed.is_ok()) {
      Result<engine::GgufFile> g = engine::GgufFile::open(part);
      if (!g.ok()) failed = Status::invalid_argument(what, "not a usable GGUF file: " + g.status().message());
    }
    if (failed.is_ok() && ::access(dst.c_str(), F_OK) == 0) {
      failed = Status::invalid_argument(what, dst + " exists already (left by an earlier import?); remove it first");
    }
    if (failed.is_ok() && ::rename(part.c_str(), dst.c_str()) != 0) failed = Status::io_error(dst, std::strerror(errno));
    if (!failed.is_ok()) {
      ::unlink(part.c_str());
      return failed;
    }
    static const char* hex = "0123456789abcdef";
    storage::ModelRecord rec;
    rec.id = id;
    rec.path = dst;
    for (unsigned i = 0; i < dlen; ++i) {
      rec.sha256 += hex[digest[i] >> 4];
      rec.sha256 += hex[digest[i] & 15];
    }
    rec.bytes = done;
    rec.added_us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    return rec;
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
  storage::StateStore& state_;
  ModelRegistry& models_;
  Moderation& moderation_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  Mutex workers_mu_;
  Mutex importing_mu_;
  std::set<std::string> importing_ SN_GUARDED_BY(importing_mu_);  // ids being imported
  std::vector<Worker> workers_ SN_GUARDED_BY(workers_mu_);  // one per connection, joined when over or at stop
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

AdminServer::AdminServer(AdminOptions options, storage::StateStore& state, ModelRegistry& models, Moderation& moderation)
    : impl_(std::make_unique<Impl>(std::move(options), state, models, moderation)) {}
AdminServer::~AdminServer() = default;
Status AdminServer::start() { return impl_->start(); }
void AdminServer::stop() { impl_->stop(); }
std::string AdminServer::handle(const std::string& line, unsigned uid,
                                const std::function<void(const std::string&)>& progress) {
  return impl_->handle(line, uid, progress);
}

}  // namespace sn::daemon
