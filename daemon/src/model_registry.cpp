// ModelRegistry (model_registry.h).
#include "supernode/daemon/model_registry.h"

#include <algorithm>

namespace sn::daemon {

ModelRegistry::~ModelRegistry() { drain_all(std::chrono::milliseconds(0)); }

Status ModelRegistry::check_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return Status::invalid_argument("model id", "must be 1 to 128 characters");
  if (id.front() == '.' || id.front() == '-') {
    return Status::invalid_argument("model id '" + std::string(id) + "'", "must not start with '.' or '-'");
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-' || c == ':';
    if (!ok) {
      return Status::invalid_argument("model id '" + std::string(id) + "'",
                                      "may hold only letters, digits and . _ - :");
    }
  }
  return Status::ok();
}

Status ModelRegistry::load(const std::string& id, const std::string& path) {
  SN_RETURN_IF_ERROR(check_id(id));
  {
    MutexLock lock(mu_);
    const bool served = std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.host->id() == id; });
    if (served || loading_.count(id) != 0) {
      return Status::invalid_argument("model '" + id + "'", served ? "is already loaded" : "is being loaded");
    }
    loading_.insert(id);
  }
  Result<std::shared_ptr<ModelHost>> host = loader_(id, path);
  MutexLock lock(mu_);
  loading_.erase(id);
  if (!host.ok()) return host.status();
  entries_.push_back(Entry{std::move(*host), path});
  return Status::ok();
}

Status ModelRegistry::add(std::shared_ptr<ModelHost> host, const std::string& path) {
  SN_RETURN_IF_ERROR(check_id(host->id()));
  MutexLock lock(mu_);
  for (const Entry& e : entries_) {
    if (e.host->id() == host->id()) return Status::invalid_argument("model '" + host->id() + "'", "is already loaded");
  }
  if (loading_.count(host->id()) != 0) return Status::invalid_argument("model '" + host->id() + "'", "is being loaded");
  entries_.push_back(Entry{std::move(host), path});
  return Status::ok();
}

Status ModelRegistry::unload(std::string_view id, std::chrono::milliseconds drain) {
  std::shared_ptr<ModelHost> host;
  {
    MutexLock lock(mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.host->id() == id; });
    if (it == entries_.end()) return Status::not_found("model '" + std::string(id) + "'", "is not loaded");
    host = std::move(it->host);
    entries_.erase(it);
  }
  (void)host->wait_idle(drain);
  host->stop();
  return Status::ok();
}

void ModelRegistry::drain_all(std::chrono::milliseconds drain) {
  std::vector<Entry> all;
  {
    MutexLock lock(mu_);
    all.swap(entries_);
  }
  const auto deadline = std::chrono::steady_clock::now() + drain;
  for (Entry& e : all) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    (void)e.host->wait_idle(std::max(left, std::chrono::milliseconds(0)));
  }
  for (Entry& e : all) e.host->stop();
}

std::shared_ptr<ModelHost> ModelRegistry::find(std::string_view id) const {
  MutexLock lock(mu_);
  for (const Entry& e : entries_) {
    if (e.host->id() == id) return e.host;
  }
  return nullptr;
}

std::vector<std::shared_ptr<ModelHost>> ModelRegistry::list() const {
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<ModelHost>> out;
  for (const Entry& e : entries_) out.push_back(e.host);
  return out;
}

std::string ModelRegistry::path_of(std::string_view id) const {
  MutexLock lock(mu_);
  for (const Entry& e : entries_) {
    if (e.host->id() == id) return e.path;
  }
  return "";
}

std::vector<std::string> ModelRegistry::loading() const {
  MutexLock lock(mu_);
  return {loading_.begin(), loading_.end()};
}

}  // namespace sn::daemon
