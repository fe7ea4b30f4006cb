// Metrics: what supernoded exposes at /metrics in Prometheus' text format (version 0.0.4):
// requests by model, tenant and status code, prompt and completion tokens, histograms of
// time to first token, time per output token and end-to-end latency, and per model the
// running and waiting requests, tokens computed, preemptions and the KV cache of every tier
// (blocks used and total, hits, misses, promotions, demotions, bytes moved, corrupt
// blocks dropped). Recording is cheap (one mutex, no allocation on known label sets).
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "supernode/base/mutex.h"
#include "supernode/daemon/model_host.h"

namespace sn::daemon {

class Metrics {
 public:
  // One finished API request. Times in seconds; negative when not applicable.
  void request_done(const std::string& model, const std::string& tenant, int status, int64_t prompt_tokens,
                    int64_t completion_tokens, double ttft_s, double tpot_s, double e2e_s);
  // One request refused before reaching a model (auth, quota, bad input).
  void request_refused(const std::string& route, int status);

  // The whole exposition, with the hosts' gauges read now.
  [[nodiscard]] std::string render(const std::vector<ModelHost*>& hosts) const;

  // Totals since start per model, and the time to first token of the latest requests: what
  // the admin UI's live view turns into rates and percentiles.
  struct Totals {
    int64_t requests = 0;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
  };
  struct Snapshot {
    std::map<std::string, Totals> models;
    std::vector<std::pair<double, double>> recent_ttft;  // (monotonic seconds at the end, ttft s)
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  struct Histogram {
    std::array<int64_t, kBuckets.size()> counts{};  // per bucket (not cumulative)
    int64_t count = 0;
    double sum = 0;
    void observe(double v);
  };
  struct PerModel {
    std::map<std::pair<std::string, int>, int64_t> requests;  // (tenant, status)
    std::map<std::string, int64_t> prompt_tokens, completion_tokens;  // by tenant
    Histogram ttft, tpot, e2e;
  };
  mutable Mutex mu_;
  std::map<std::string, PerModel> models_ SN_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, int64_t> refused_ SN_GUARDED_BY(mu_);
  std::map<std::string, Totals> totals_ SN_GUARDED_BY(mu_);
  static constexpr size_t kRecentTtft = 1024;
  std::vector<std::pair<double, double>> recent_ttft_ SN_GUARDED_BY(mu_);  // a ring
  size_t recent_next_ SN_GUARDED_BY(mu_) = 0;
};

}  // namespace sn::daemon
