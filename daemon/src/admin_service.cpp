// The admin service (admin_service.h): the one place where admin behaviour lives. Both
// transports (the Unix socket in admin.cpp, the HTTP admin API in admin_api.cpp) call it.
#include "supernode/daemon/admin_service.h"

#include "supernode/base/mutex.h"
#include "supernode/base/secret_file.h"
#include "supernode/daemon/log.h"
#include "supernode/engine/gguf.h"
#include "supernode/hal/cpu_features.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/gpu.h"
#include "supernode/hal/topology.h"

#include "random_hex.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

namespace sn::daemon {
namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

storage::Limits apply(storage::Limits l, const LimitsPatch& p) {
  if (p.rpm) l.rpm = *p.rpm;
  if (p.tpm) l.tpm = *p.tpm;
  if (p.concurrency) l.concurrency = *p.concurrency;
  if (p.models) l.models = *p.models;
  return l;
}

Status check_limits(const LimitsPatch& p) {
  const std::pair<const char*, const std::optional<int64_t>*> fields[] = {
      {"rpm", &p.rpm}, {"tpm", &p.tpm}, {"concurrency", &p.concurrency}};
  for (const auto& [name, v] : fields) {
    if (*v && **v < 0) return Status::invalid_argument(name, "must be a non-negative integer");
  }
  if (p.models) {
    for (const std::string& m : *p.models) {
      if (Status s = ModelRegistry::check_id(m); !s.is_ok()) return s.with_context("models");
    }
  }
  return Status::ok();
}

// Opens an import's source for reading: a regular file starting with the GGUF magic.
// O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; anything but a
// regular file is refused before it is read. Fills `st`; the caller closes the descriptor.
Result<int> open_model_source(const std::string& src, struct stat& st) {
  const std::string what = "import " + src;
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (in < 0) {
    const int err = errno;
    return err == ENOENT ? Status::not_found(what, std::strerror(err)) : Status::io_error(what, std::strerror(err));
  }
  if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(in);
    return Status::invalid_argument(what, "not a regular file");
  }
  (void)::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) & ~O_NONBLOCK);
  char magic[4] = {};
  if (::pread(in, magic, sizeof magic, 0) != 4 || std::memcmp(magic, "GGUF", 4) != 0) {
    ::close(in);
    return Status::invalid_argument(what, "not a GGUF file (no GGUF magic at its start)");
  }
  return in;
}

// What the GGUF header of a model file says; nullopt when it cannot be read.
std::optional<GgufSummary> summarize(const std::string& path) {
  Result<engine::GgufFile> f = engine::GgufFile::open(path);
  if (!f.ok()) return std::nullopt;
  GgufSummary s;
  Result<std::string_view> arch = f->get_string("general.architecture");
  if (arch.ok()) s.architecture = std::string(*arch);
  if (!s.architecture.empty()) {
    Result<int64_t> ctx = f->get_int(s.architecture + ".context_length");
    if (ctx.ok()) s.context_length = *ctx;
  }
  // The quantization: the type holding most weight elements (2-D tensors).
  std::map<hal::DType, int64_t> by_type;
  for (const engine::GgufTensor& t : f->tensors()) {
    s.parameters += t.n_elements();
    if (t.dims.size() >= 2) by_type[t.type] += t.n_elements();
  }
  int64_t best = -1;
  for (const auto& [type, n] : by_type) {
    if (n > best) {
      best = n;
      s.quantization = hal::dtype_name(type);
    }
  }
  return s;
}

uint64_t meminfo_bytes(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (in >> name >> kib >> unit) {
    if (name == std::string(key) + ":") return kib * 1024;
  }
  return 0;
}

}  // namespace

class AdminService::Impl {
 public:
  Impl(AdminServiceOptions options, storage::StateStore& state, ModelRegistry& models, Moderation& moderation)
      : options_(std::move(options)), state_(state), models_(models), moderation_(moderation) {}

  ~Impl() {
    std::vector<std::thread> threads;
    {
      MutexLock lock(jobs_mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  AdminServiceOptions options_;
  storage::StateStore& state_;
  ModelRegistry& models_;
  Moderation& moderation_;

  Mutex importing_mu_;
  std::set<std::string> importing_ SN_GUARDED_BY(importing_mu_);  // model ids being imported

  mutable Mutex jobs_mu_;
  std::map<std::string, ImportJob> jobs_ SN_GUARDED_BY(jobs_mu_);
  std::vector<std::thread> threads_ SN_GUARDED_BY(jobs_mu_);

  Mutex setup_mu_;  // one setup at a time

  // GGUF summaries by path, kept while the file's size and mtime stay the same: a model
  // list does not re-read every header each time the page refreshes.
  struct CachedSummary {
    int64_t size = -1;
    int64_t mtime_ns = -1;
    std::optional<GgufSummary> summary;
  };
  Mutex summaries_mu_;
  std::map<std::string, CachedSummary> summaries_ SN_GUARDED_BY(summaries_mu_);

  std::optional<GgufSummary> summary_of(const std::string& path) {
    struct stat st{};
    if (path.empty() || ::stat(path.c_str(), &st) != 0) return std::nullopt;
    const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    {
      MutexLock lock(summaries_mu_);
      auto it = summaries_.find(path);
      if (it != summaries_.end() && it->second.size == st.st_size && it->second.mtime_ns == mtime_ns) {
        return it->second.summary;
      }
    }
    std::optional<GgufSummary> s = summarize(path);
    MutexLock lock(summaries_mu_);
    summaries_[path] = CachedSummary{st.st_size, mtime_ns, s};
    return s;
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

  // A source path an import may read: absolute, no "..", and under an import root when
  // the site configured some. Symbolic links are resolved before the root is checked.
  Status check_source(const std::string& src) const {
    const std::string what = "import " + src;
    if (src.empty()) return Status::invalid_argument("path", "is required");
    if (src.front() != '/') return Status::invalid_argument(what, "the path must be absolute");
    for (const auto& part : std::filesystem::path(src)) {
      if (part == "..") return Status::invalid_argument(what, "the path must not contain '..'");
    }
    if (options_.import_roots.empty()) return Status::ok();
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::canonical(src, ec);
    if (ec) return Status::not_found(what, ec.message());
    for (const std::string& root : options_.import_roots) {
      const std::filesystem::path r = std::filesystem::weakly_canonical(root, ec);
      if (ec) continue;
      const auto mis = std::mismatch(r.begin(), r.end(), real.begin(), real.end());
      if (mis.first == r.end()) return Status::ok();
    }
    return Status::permission_denied(what, "the path is outside the import directories of this box");
  }

  // Copies `src` to MODELS_DIR/ID.gguf (through a temporary file, fsynced, renamed), hashing
  // it on the way, then checks that the copy parses as GGUF.
  Result<storage::ModelRecord> copy_model(const std::string& src, const std::string& id,
                                          const std::function<void(int64_t, int64_t)>& progress) {
    const std::string what = "import " + src;
    SN_RETURN_IF_ERROR(check_source(src));
    Result<std::optional<storage::ModelRecord>> existing = find_model(id);
    if (!existing.ok()) return existing.status();
    if (*existing) return Status::failed_precondition(what, "model id '" + id + "' is already in the catalog");
    std::error_code ec;
    std::filesystem::create_directories(options_.models_dir, ec);
    if (ec) return Status::io_error("models directory " + options_.models_dir, ec.message());
    const std::string dst = options_.models_dir + "/" + id + ".gguf";
    // One import per id at a time (a second one of the same id is refused, not mixed in).
    {
      MutexLock lock(importing_mu_);
      if (!importing_.insert(id).second) return Status::failed_precondition(what, "model id '" + id + "' is being imported");
    }
    struct Done {
      Impl& impl;
      std::string id;
      ~Done() {
        MutexLock lock(impl.importing_mu_);
        impl.importing_.erase(id);
      }
    } done_importing{*this, id};
    struct stat st{};
    Result<int> opened = open_model_source(src, st);
    if (!opened.ok()) return opened.status();
    const int in = *opened;
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
    if (progress) progress(0, total);
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
      const int64_t pct = done * 100 / std::max<int64_t>(total, 1);
      if (progress && pct != last_report) {
        last_report = pct;
        progress(done, total);
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
      failed = Status::failed_precondition(what, dst + " exists already (left by an earlier import?); remove it first");
    }
    if (failed.is_ok() && ::rename(part.c_str(), dst.c_str()) != 0) failed = Status::io_error(dst, std::strerror(errno));
    if (!failed.is_ok()) {
      ::unlink(part.c_str());
      return failed;
    }
    storage::ModelRecord rec;
    rec.id = id;
    rec.path = dst;
    rec.sha256 = hex_text(digest, dlen);
    rec.bytes = done;
    rec.added_us = now_us();
    return rec;
  }

  void set_job(const std::string& import_id, const std::function<void(ImportJob&)>& f) {
    MutexLock lock(jobs_mu_);
    auto it = jobs_.find(import_id);
    if (it != jobs_.end()) f(it->second);
  }
};

AdminService::AdminService(AdminServiceOptions options, storage::StateStore& state, ModelRegistry& models,
                           Moderation& moderation)
    : impl_(std::make_unique<Impl>(std::move(options), state, models, moderation)) {}
AdminService::~AdminService() = default;

Result<storage::TenantRecord> AdminService::create_tenant(const CreateTenantRequest& req, const AdminActor& actor) {
  SN_RETURN_IF_ERROR(check_limits(req.limits));
  storage::Limits l;
  const storage::Limits& d = impl_->options_.default_tenant_limits;
  l.rpm = req.limits.rpm.value_or(d.rpm);
  l.tpm = req.limits.tpm.value_or(d.tpm);
  l.concurrency = req.limits.concurrency.value_or(d.concurrency);
  l.models = req.limits.models.value_or(std::vector<std::string>{});
  return impl_->state_.create_tenant(req.name, l, actor.name);
}

Result<std::vector<storage::TenantRecord>> AdminService::list_tenants() const { return impl_->state_.list_tenants(); }

Result<storage::TenantRecord> AdminService::update_tenant(const std::string& name, const LimitsPatch& limits,
                                                          const AdminActor& actor) {
  SN_RETURN_IF_ERROR(check_limits(limits));
  Result<std::optional<storage::TenantRecord>> t = impl_->state_.find_tenant(name);
  if (!t.ok()) return t.status();
  if (!*t) return Status::not_found("tenant '" + name + "'", "no such tenant");
  const storage::Limits l = apply((*t)->limits, limits);
  SN_RETURN_IF_ERROR(impl_->state_.set_tenant_limits(name, l, actor.name));
  storage::TenantRecord out = **t;
  out.limits = l;
  return out;
}

Result<CreatedKey> AdminService::create_key(const CreateKeyRequest& req, const AdminActor& actor) {
  SN_RETURN_IF_ERROR(check_limits(req.limits));
  if (req.tenant.empty()) return Status::invalid_argument("tenant", "is required");
  Result<storage::NewApiKey> k = impl_->state_.create_key(req.tenant, apply({}, req.limits), req.label, actor.name);
  if (!k.ok()) return k.status();
  return CreatedKey{k->key, k->record.key_id};
}

Result<std::vector<storage::ApiKeyRecord>> AdminService::list_keys(const std::string& tenant) const {
  return impl_->state_.list_keys(tenant);
}

Status AdminService::revoke_key(const std::string& key_id, const AdminActor& actor) {
  return impl_->state_.revoke_key(key_id, actor.name);
}

Result<std::vector<storage::UsageRow>> AdminService::usage(const storage::UsageQuery& query) {
  (void)impl_->state_.flush_usage();
  return impl_->state_.usage(query);
}

Result<std::vector<storage::AuditRecord>> AdminService::audit(const storage::AuditQuery& query) const {
  return impl_->state_.audit_query(query);
}

Result<storage::AuditVerification> AdminService::verify_audit() const { return impl_->state_.verify_audit(); }

Status AdminService::backup(const std::string& path, const AdminActor& actor) {
  if (path.empty()) return Status::invalid_argument("path", "is required");
  SN_RETURN_IF_ERROR(impl_->state_.backup(path));
  (void)impl_->state_.audit(actor.name, "backup", path);
  return Status::ok();
}

Result<storage::ModelRecord> AdminService::import_model(const std::string& path, const std::string& id_in,
                                                        const AdminActor& actor,
                                                        const std::function<void(int64_t, int64_t)>& progress) {
  const std::string id = id_in.empty() ? std::filesystem::path(path).stem().string() : id_in;
  SN_RETURN_IF_ERROR(ModelRegistry::check_id(id).with_context("id"));
  Result<storage::ModelRecord> rec = impl_->copy_model(path, id, progress);
  if (!rec.ok()) return rec.status();
  SN_RETURN_IF_ERROR(impl_->state_.put_model(*rec, actor.name));
  return rec;
}

Result<ImportJob> AdminService::start_import(const std::string& path, const std::string& id_in,
                                             const AdminActor& actor) {
  const std::string id = id_in.empty() ? std::filesystem::path(path).stem().string() : id_in;
  SN_RETURN_IF_ERROR(ModelRegistry::check_id(id).with_context("id"));
  // What can be refused at once is refused at once (the caller gets a 400, not a job that
  // fails a moment later).
  SN_RETURN_IF_ERROR(impl_->check_source(path));
  struct stat st{};
  Result<int> opened = open_model_source(path, st);
  if (!opened.ok()) return opened.status();
  ::close(*opened);
  Result<std::optional<storage::ModelRecord>> existing = impl_->find_model(id);
  if (!existing.ok()) return existing.status();
  if (*existing) return Status::failed_precondition("import " + path, "model id '" + id + "' is already in the catalog");
  ImportJob job;
  job.import_id = "imp-" + random_hex(8);
  job.id = id;
  job.path = path;
  job.state = "running";
  job.total = st.st_size;
  job.started_us = now_us();
  MutexLock lock(impl_->jobs_mu_);
  impl_->jobs_[job.import_id] = job;
  Impl* impl = impl_.get();
  const std::string import_id = job.import_id;
  impl_->threads_.emplace_back([this, impl, import_id, path, id, actor] {
    Result<storage::ModelRecord> rec = import_model(path, id, actor, [&](int64_t bytes, int64_t total) {
      impl->set_job(import_id, [&](ImportJob& j) {
        j.bytes = bytes;
        j.total = total;
      });
    });
    impl->set_job(import_id, [&](ImportJob& j) {
      j.state = rec.ok() ? "done" : "failed";
      if (!rec.ok()) j.error = rec.status().message();
    });
    if (!rec.ok()) log(LogLevel::kWarning, "model import failed: " + rec.status().to_string(), {.model = id});
  });
  return job;
}

std::vector<ImportJob> AdminService::imports() const {
  MutexLock lock(impl_->jobs_mu_);
  std::vector<ImportJob> out;
  for (const auto& [id, job] : impl_->jobs_) out.push_back(job);
  std::sort(out.begin(), out.end(), [](const ImportJob& a, const ImportJob& b) { return a.started_us > b.started_us; });
  return out;
}

std::optional<ImportJob> AdminService::import_job(const std::string& import_id) const {
  MutexLock lock(impl_->jobs_mu_);
  auto it = impl_->jobs_.find(import_id);
  if (it == impl_->jobs_.end()) return std::nullopt;
  return it->second;
}

Result<std::vector<ModelInfo>> AdminService::list_models() const {
  Result<std::vector<storage::ModelRecord>> cat = impl_->state_.list_models();
  if (!cat.ok()) return cat.status();
  std::vector<ModelInfo> out;
  std::set<std::string> seen;
  for (const storage::ModelRecord& m : *cat) {
    ModelInfo i;
    i.id = m.id;
    i.path = m.path;
    i.sha256 = m.sha256;
    i.bytes = m.bytes;
    i.added_us = m.added_us;
    i.in_catalog = true;
    const std::shared_ptr<ModelHost> h = impl_->models_.find(m.id);
    i.loaded = h != nullptr;
    i.autoload = impl_->autoload(m.id);
    if (h) i.in_flight = h->in_flight();
    i.gguf = impl_->summary_of(m.path);
    out.push_back(std::move(i));
    seen.insert(m.id);
  }
  for (const std::shared_ptr<ModelHost>& h : impl_->models_.list()) {
    if (seen.count(h->id()) != 0) continue;
    ModelInfo i;
    i.id = h->id();
    i.path = impl_->models_.path_of(h->id());
    i.loaded = true;
    i.in_flight = h->in_flight();
    i.gguf = impl_->summary_of(i.path);
    struct stat st{};
    if (::stat(i.path.c_str(), &st) == 0) i.bytes = st.st_size;
    out.push_back(std::move(i));
  }
  for (const std::string& id : impl_->models_.loading()) {
    ModelInfo i;
    i.id = id;
    i.loading = true;
    out.push_back(std::move(i));
  }
  return out;
}

Status AdminService::load_model(const std::string& id, const AdminActor& actor) {
  if (id.empty()) return Status::invalid_argument("id", "is required");
  Result<std::optional<storage::ModelRecord>> m = impl_->find_model(id);
  if (!m.ok()) return m.status();
  if (!*m) {
    return Status::not_found("model '" + id + "'", "not in the catalog: import it first (supernode models import PATH)");
  }
  SN_RETURN_IF_ERROR(impl_->models_.load(id, (*m)->path));
  (void)impl_->state_.set_setting("models.autoload." + id, "1", actor.name);
  (void)impl_->state_.audit(actor.name, "models.load", id);
  return Status::ok();
}

Status AdminService::unload_model(const std::string& id, const AdminActor& actor) {
  if (id.empty()) return Status::invalid_argument("id", "is required");
  SN_RETURN_IF_ERROR(impl_->models_.unload(id, impl_->options_.drain));
  if (impl_->autoload(id)) (void)impl_->state_.set_setting("models.autoload." + id, "0", actor.name);
  (void)impl_->state_.audit(actor.name, "models.unload", id);
  return Status::ok();
}

Status AdminService::remove_model(const std::string& id, const AdminActor& actor) {
  if (id.empty()) return Status::invalid_argument("id", "is required");
  if (impl_->models_.find(id) != nullptr) return Status::failed_precondition("model '" + id + "'", "is loaded: unload it first");
  Result<std::optional<storage::ModelRecord>> m = impl_->find_model(id);
  if (!m.ok()) return m.status();
  if (!*m) return Status::not_found("model '" + id + "'", "not in the catalog");
  SN_RETURN_IF_ERROR(impl_->state_.remove_model(id, actor.name));
  (void)impl_->state_.set_setting("models.autoload." + id, "0", actor.name);
  // Only files that import made are ours to delete.
  if (std::filesystem::path((*m)->path).parent_path() == std::filesystem::path(impl_->options_.models_dir)) {
    std::error_code ec;
    std::filesystem::remove((*m)->path, ec);
  }
  return Status::ok();
}

std::vector<ModelStatus> AdminService::status() const {
  std::vector<ModelStatus> out;
  for (const std::shared_ptr<ModelHost>& h : impl_->models_.list()) {
    const ModelHost::Stats s = h->stats();
    ModelStatus m;
    m.id = h->id();
    m.running = s.running;
    m.waiting = s.waiting;
    m.steps = s.steps;
    m.tokens_generated = s.tokens_generated;
    m.kv_blocks_used = s.kv.blocks_used;
    m.kv_blocks = s.kv.blocks_total;
    m.host_tier_blocks = s.tiers.host.blocks_used;
    m.disk_tier_blocks = s.tiers.disk.blocks;
    // Blocks reused from the prefix cache (any tier) over blocks looked up.
    const double hits = static_cast<double>(s.kv.hits + s.tiers.host.hits + s.tiers.disk.hits);
    const double lookups = hits + static_cast<double>(s.kv.misses);
    m.kv_hit_rate = lookups > 0 ? hits / lookups : 0.0;
    out.push_back(std::move(m));
  }
  return out;
}

Result<size_t> AdminService::add_moderation_term(const std::string& term, const std::string& scope,
                                                 const AdminActor& actor) {
  SN_RETURN_IF_ERROR(impl_->state_.add_moderation_term(term, scope.empty() ? "both" : scope, actor.name));
  Result<std::vector<storage::ModerationTerm>> terms = impl_->state_.list_moderation_terms();
  if (!terms.ok()) return terms.status();
  impl_->moderation_.set_terms(*terms);
  return terms->size();
}

Result<size_t> AdminService::remove_moderation_term(const std::string& term, const AdminActor& actor) {
  SN_RETURN_IF_ERROR(impl_->state_.remove_moderation_term(term, actor.name));
  Result<std::vector<storage::ModerationTerm>> terms = impl_->state_.list_moderation_terms();
  if (!terms.ok()) return terms.status();
  impl_->moderation_.set_terms(*terms);
  return terms->size();
}

Result<std::vector<storage::ModerationTerm>> AdminService::list_moderation_terms() const {
  return impl_->state_.list_moderation_terms();
}

bool AdminService::setup_required() const {
  Result<int64_t> n = impl_->state_.count_users();
  return n.ok() && *n == 0;
}

Result<std::string> AdminService::ensure_setup_token() {
  const std::string path = impl_->options_.state_dir + "/setup-token";
  if (!setup_required()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);  // a token left from before setup is of no use
    return std::string();
  }
  if (::access(path.c_str(), F_OK) == 0) return path;
  const std::string token = random_hex(24);
  if (token.empty()) return Status::internal("setup token", "no random bytes");
  SN_RETURN_IF_ERROR(write_secret_file(path, token + "\n"));
  return path;
}

Result<storage::UserRecord> AdminService::setup(const std::string& token, const std::string& username,
                                                const std::string& password) {
  MutexLock lock(impl_->setup_mu_);
  if (!setup_required()) return Status::failed_precondition("setup", "the box is set up already: log in");
  const std::string path = impl_->options_.state_dir + "/setup-token";
  Result<std::string> want = read_secret_file(path);
  if (!want.ok()) return Status::failed_precondition("setup", "no setup token: restart the daemon to write one");
  std::string expected = *want;
  while (!expected.empty() && (expected.back() == '\n' || expected.back() == '\r' || expected.back() == ' ')) {
    expected.pop_back();
  }
  if (token.size() != expected.size() || expected.empty() ||
      CRYPTO_memcmp(token.data(), expected.data(), expected.size()) != 0) {
    (void)impl_->state_.audit("web setup", "setup.refused", "wrong setup token");
    return Status::permission_denied("token", "wrong setup token: it is in " + path);
  }
  Result<storage::UserRecord> u = impl_->state_.create_user(username, password, "admin", "web setup");
  if (!u.ok()) return u.status();
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return u;
}

Result<std::optional<storage::UserRecord>> AdminService::check_password(const std::string& username,
                                                                        const std::string& password) {
  return impl_->state_.check_password(username, password);
}

Result<std::vector<storage::UserRecord>> AdminService::list_users() const { return impl_->state_.list_users(); }

Result<std::optional<storage::UserRecord>> AdminService::find_user(const std::string& username) const {
  return impl_->state_.find_user(username);
}

Result<storage::UserRecord> AdminService::create_user(const std::string& username, const std::string& password,
                                                      const std::string& role, const AdminActor& actor) {
  return impl_->state_.create_user(username, password, role, actor.name);
}

Result<storage::UserRecord> AdminService::update_user(const std::string& username,
                                                      const std::optional<std::string>& password,
                                                      const std::optional<std::string>& role, const AdminActor& actor) {
  Result<std::optional<storage::UserRecord>> u = impl_->state_.find_user(username);
  if (!u.ok()) return u.status();
  if (!*u) return Status::not_found("user '" + username + "'", "no such user");
  if (role && *role != (*u)->role) SN_RETURN_IF_ERROR(impl_->state_.set_user_role(username, *role, actor.name));
  if (password) SN_RETURN_IF_ERROR(impl_->state_.set_user_password(username, *password, actor.name));
  Result<std::optional<storage::UserRecord>> after = impl_->state_.find_user(username);
  if (!after.ok()) return after.status();
  if (!*after) return Status::not_found("user '" + username + "'", "no such user");
  return **after;
}

Status AdminService::delete_user(const std::string& username, const AdminActor& actor) {
  return impl_->state_.delete_user(username, actor.name);
}

HardwareInfo AdminService::hardware() const {
  HardwareInfo hw;
  const hal::CpuFeatures& f = hal::cpu_features();
  hw.cpu_model = f.brand;
  hw.isa = hal::isa_name(hal::best_isa());
  const std::pair<const char*, bool> flags[] = {{"avx2", f.avx2},         {"fma", f.fma},
                                                {"f16c", f.f16c},         {"avx512f", f.avx512f},
                                                {"avx512bw", f.avx512bw}, {"avx512vnni", f.avx512vnni},
                                                {"avx512bf16", f.avx512bf16}, {"avx_vnni", f.avx_vnni}};
  for (const auto& [name, on] : flags) {
    if (on) hw.cpu_flags.emplace_back(name);
  }
  if (Result<hal::Topology> t = hal::discover_topology(); t.ok()) {
    hw.packages = t->packages;
    hw.cores = t->physical_cores;
    hw.threads = t->logical_cpus;
    hw.memory_total_bytes = t->total_memory_bytes;
    for (const hal::NumaNode& n : t->numa_nodes) hw.numa_nodes.push_back({n.index, n.memory_bytes, n.cpus});
  }
  if (hw.memory_total_bytes == 0) hw.memory_total_bytes = meminfo_bytes("MemTotal");
  hw.memory_available_bytes = meminfo_bytes("MemAvailable");
  // GPUs as discovered once (discovery initializes the driver: not per request).
  static const hal::GpuReport gpus = hal::discover_gpus();
  for (const hal::GpuProps& g : gpus.gpus) {
    hw.gpus.push_back({g.name, static_cast<uint64_t>(std::max<int64_t>(0, g.memory_total)),
                       static_cast<uint64_t>(std::max<int64_t>(0, g.memory_free))});
  }
  // A directory not made yet (the KV tier's before its first block) is shown with the
  // file system it will be on: its nearest existing parent's.
  auto disk = [&](const char* tier, const std::string& path) {
    struct statvfs v{};
    if (path.empty()) return;
    std::filesystem::path p(path);
    while (::statvfs(p.c_str(), &v) != 0) {
      if (!p.has_parent_path() || p.parent_path() == p) return;
      p = p.parent_path();
    }
    hw.disks.push_back({tier, path, static_cast<uint64_t>(v.f_blocks) * v.f_frsize,
                        static_cast<uint64_t>(v.f_bavail) * v.f_frsize});
  };
  disk("state", impl_->options_.state_dir);
  disk("models", impl_->options_.models_dir);
  for (const std::string& d : impl_->options_.kv_dirs) disk("kv", d);
  return hw;
}

void AdminService::audit_event(const AdminActor& actor, const std::string& action, const std::string& detail) {
  (void)impl_->state_.audit(actor.name, action, detail);
}

}  // namespace sn::daemon
