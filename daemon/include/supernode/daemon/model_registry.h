// ModelRegistry: the models supernoded serves now, by id. The HTTP server looks a model up
// per request and keeps the shared_ptr for the request's life, so a model unloaded while
// serving goes away only after its last request let go of it; the admin socket loads and
// unloads models while the API serves.
//
//   ModelRegistry reg(loader);              // loader: (id, path) -> a started ModelHost
//   Status st = reg.load("tinyllama", "/var/lib/supernode/models/tinyllama.gguf");
//   std::shared_ptr<ModelHost> h = reg.find("tinyllama");   // nullptr when not loaded
//   st = reg.unload("tinyllama", std::chrono::seconds(30)); // drain, then stop
//
// Unloading first removes the id (new requests get 404), then waits up to the drain time
// for the model's requests to finish, then stops its engine (requests still running end
// with an error). Loading happens outside the registry's lock: the API keeps serving the
// other models meanwhile; a second load of an id being loaded is refused.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/mutex.h"
#include "supernode/base/status.h"
#include "supernode/base/thread_annotations.h"
#include "supernode/daemon/model_host.h"

namespace sn::daemon {

class ModelRegistry {
 public:
  using Loader = std::function<Result<std::shared_ptr<ModelHost>>(const std::string& id, const std::string& path)>;

  explicit ModelRegistry(Loader loader) : loader_(std::move(loader)) {}
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Loads `path` and serves it as `id`. Errors: invalid_argument (the id is loaded or loading,
  // or a bad id), those of the loader.
  [[nodiscard]] Status load(const std::string& id, const std::string& path);
  // Adds a host loaded elsewhere. Errors: invalid_argument (the id is taken).
  [[nodiscard]] Status add(std::shared_ptr<ModelHost> host, const std::string& path);
  // Stops serving `id`: see the file comment. Errors: not_found.
  [[nodiscard]] Status unload(std::string_view id, std::chrono::milliseconds drain);
  // Drains every model at once (bounded by `drain` in all), then stops them: for exit.
  void drain_all(std::chrono::milliseconds drain);

  [[nodiscard]] std::shared_ptr<ModelHost> find(std::string_view id) const;
  // The served models in load order.
  [[nodiscard]] std::vector<std::shared_ptr<ModelHost>> list() const;
  // The file a served model came from ("" when not served).
  [[nodiscard]] std::string path_of(std::string_view id) const;
  // Ids being loaded now.
  [[nodiscard]] std::vector<std::string> loading() const;

  // Model ids: 1-128 characters of [A-Za-z0-9._:-], not starting with '.' or '-'.
  [[nodiscard]] static Status check_id(std::string_view id);

 private:
  struct Entry {
    std::shared_ptr<ModelHost> host;
    std::string path;
  };
  Loader loader_;
  mutable Mutex mu_;
  std::vector<Entry> entries_ SN_GUARDED_BY(mu_);
  std::set<std::string, std::less<>> loading_ SN_GUARDED_BY(mu_);
};

}  // namespace sn::daemon
