// The Prometheus exposition (metrics.h). Label values are escaped as the format requires
// (backslash, double quote, newline); histograms are cumulative with a +Inf bucket.
#include "supernode/daemon/metrics.h"

#include <chrono>
#include <cstdio>

namespace sn::daemon {
namespace {

std::string esc(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

std::string bound(double v) {  // bucket bounds as written in the source: 0.025, not 0.025000000000000001
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

void head(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

}  // namespace

void Metrics::Histogram::observe(double v) {
  if (v < 0) return;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (v <= kBuckets[i]) {
      ++counts[i];
      break;
    }
  }
  ++count;
  sum += v;
}

void Metrics::request_done(const std::string& model, const std::string& tenant, int status, int64_t prompt_tokens,
                           int64_t completion_tokens, double ttft_s, double tpot_s, double e2e_s) {
  MutexLock lock(mu_);
  PerModel& m = models_[model];
  ++m.requests[{tenant, status}];
  m.prompt_tokens[tenant] += prompt_tokens;
  m.completion_tokens[tenant] += completion_tokens;
  m.ttft.observe(ttft_s);
  m.tpot.observe(tpot_s);
  m.e2e.observe(e2e_s);
  Totals& t = totals_[model];
  ++t.requests;
  t.prompt_tokens += prompt_tokens;
  t.completion_tokens += completion_tokens;
  if (ttft_s >= 0) {
    const double now =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    if (recent_ttft_.size() < kRecentTtft) {
      recent_ttft_.emplace_back(now, ttft_s);
    } else {
      recent_ttft_[recent_next_] = {now, ttft_s};
    }
    recent_next_ = (recent_next_ + 1) % kRecentTtft;
  }
}

Metrics::Snapshot Metrics::snapshot() const {
  MutexLock lock(mu_);
  return Snapshot{totals_, recent_ttft_};
}

void Metrics::request_refused(const std::string& route, int status) {
  MutexLock lock(mu_);
  ++refused_[{route, status}];
}

std::string Metrics::render(const std::vector<ModelHost*>& hosts) const {
  std::string o;
  MutexLock lock(mu_);
  head(o, "supernode_requests_total", "counter", "Completed API requests by model, tenant and HTTP status.");
  for (const auto& [model, m] : models_) {
    for (const auto& [k, n] : m.requests) {
      o += "supernode_requests_total{model=\"" + esc(model) + "\",tenant=\"" + esc(k.first) + "\",code=\"" +
           std::to_string(k.second) + "\"} " + std::to_string(n) + "\n";
    }
  }
  head(o, "supernode_requests_refused_total", "counter", "Requests answered with an error before reaching a model.");
  for (const auto& [k, n] : refused_) {
    o += "supernode_requests_refused_total{route=\"" + esc(k.first) + "\",code=\"" + std::to_string(k.second) + "\"} " +
         std::to_string(n) + "\n";
  }
  head(o, "supernode_prompt_tokens_total", "counter", "Prompt tokens of completed requests.");
  for (const auto& [model, m] : models_) {
    for (const auto& [t, n] : m.prompt_tokens) {
      o += "supernode_prompt_tokens_total{model=\"" + esc(model) + "\",tenant=\"" + esc(t) + "\"} " + std::to_string(n) + "\n";
    }
  }
  head(o, "supernode_completion_tokens_total", "counter", "Generated tokens of completed requests.");
  for (const auto& [model, m] : models_) {
    for (const auto& [t, n] : m.completion_tokens) {
      o += "supernode_completion_tokens_total{model=\"" + esc(model) + "\",tenant=\"" + esc(t) + "\"} " +
           std::to_string(n) + "\n";
    }
  }
  const struct {
    const char* name;
    const char* help;
    Histogram PerModel::*h;
  } hists[] = {{"supernode_time_to_first_token_seconds", "Time from arrival to the first token.", &PerModel::ttft},
               {"supernode_time_per_output_token_seconds", "Mean time between output tokens, per request.", &PerModel::tpot},
               {"supernode_request_duration_seconds", "Time from arrival to the last token.", &PerModel::e2e}};
  for (const auto& hd : hists) {
    head(o, hd.name, "histogram", hd.help);
    for (const auto& [model, m] : models_) {
      const Histogram& h = m.*(hd.h);
      int64_t cum = 0;
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cum += h.counts[i];
        o += std::string(hd.name) + "_bucket{model=\"" + esc(model) + "\",le=\"" + bound(kBuckets[i]) + "\"} " +
             std::to_string(cum) + "\n";
      }
      o += std::string(hd.name) + "_bucket{model=\"" + esc(model) + "\",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
      o += std::string(hd.name) + "_sum{model=\"" + esc(model) + "\"} " + num(h.sum) + "\n";
      o += std::string(hd.name) + "_count{model=\"" + esc(model) + "\"} " + std::to_string(h.count) + "\n";
    }
  }
  // Gauges and counters read from the models now.
  std::vector<std::pair<std::string, ModelHost::Stats>> st;
  for (const ModelHost* h : hosts) st.emplace_back(h->id(), h->stats());
  auto family = [&](const char* name, const char* type, const char* help, auto get) {
    head(o, name, type, help);
    for (const auto& [id, s] : st) o += std::string(name) + "{model=\"" + esc(id) + "\"} " + num(static_cast<double>(get(s))) + "\n";
  };
  family("supernode_running_requests", "gauge", "Requests in the running batch.", [](const ModelHost::Stats& s) { return s.running; });
  family("supernode_waiting_requests", "gauge", "Requests queued for the batch.", [](const ModelHost::Stats& s) { return s.waiting; });
  family("supernode_engine_steps_total", "counter", "Continuous-batching steps.", [](const ModelHost::Stats& s) { return s.steps; });
  family("supernode_tokens_computed_total", "counter", "Tokens through the forward pass (prompt and fed-back output).",
         [](const ModelHost::Stats& s) { return s.tokens_computed; });
  family("supernode_preemptions_total", "counter", "Requests preempted for KV blocks.", [](const ModelHost::Stats& s) { return s.preemptions; });
  family("supernode_kv_tier1_blocks", "gauge", "KV blocks of tier 1 (device memory or RAM).", [](const ModelHost::Stats& s) { return s.kv.blocks_total; });
  family("supernode_kv_tier1_blocks_used", "gauge", "KV blocks of tier 1 in use.", [](const ModelHost::Stats& s) { return s.kv.blocks_used; });
  family("supernode_kv_tier1_blocks_cached", "gauge", "KV blocks of tier 1 holding a reusable prefix.", [](const ModelHost::Stats& s) { return s.kv.blocks_cached; });
  family("supernode_kv_tier1_hits_total", "counter", "Prefix blocks found in tier 1.", [](const ModelHost::Stats& s) { return s.kv.hits; });
  family("supernode_kv_tier1_misses_total", "counter", "Full blocks computed and offered to the cache.", [](const ModelHost::Stats& s) { return s.kv.misses; });
  family("supernode_kv_tier1_evictions_total", "counter", "Cached blocks reused for other content (demoted when tiers exist).", [](const ModelHost::Stats& s) { return s.kv.evictions; });
  family("supernode_kv_tier2_blocks", "gauge", "Host-RAM KV slots.", [](const ModelHost::Stats& s) { return s.tiers.host.blocks_total; });
  family("supernode_kv_tier2_blocks_used", "gauge", "Host-RAM KV slots in use.", [](const ModelHost::Stats& s) { return s.tiers.host.blocks_used; });
  family("supernode_kv_tier2_hits_total", "counter", "Prefix blocks found in host RAM.", [](const ModelHost::Stats& s) { return s.tiers.host.hits; });
  family("supernode_kv_tier2_misses_total", "counter", "Lookups that stopped in host RAM.", [](const ModelHost::Stats& s) { return s.tiers.host.misses; });
  family("supernode_kv_tier2_promotions_total", "counter", "Blocks copied from host RAM into tier 1.", [](const ModelHost::Stats& s) { return s.tiers.host.promotions; });
  family("supernode_kv_tier2_demotions_total", "counter", "Blocks taken into host RAM from tier 1.", [](const ModelHost::Stats& s) { return s.tiers.host.demotions; });
  family("supernode_kv_tier2_bytes_moved_total", "counter", "Bytes into and out of host RAM.", [](const ModelHost::Stats& s) { return s.tiers.host.bytes_in + s.tiers.host.bytes_out; });
  family("supernode_kv_tier3_blocks", "gauge", "KV blocks on disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.blocks; });
  family("supernode_kv_tier3_bytes", "gauge", "Bytes of KV blocks on disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.bytes; });
  family("supernode_kv_tier3_hits_total", "counter", "Prefix blocks found on disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.hits; });
  family("supernode_kv_tier3_misses_total", "counter", "Lookups that stopped on disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.misses; });
  family("supernode_kv_tier3_promotions_total", "counter", "Blocks read from disk into host RAM.", [](const ModelHost::Stats& s) { return s.tiers.disk.promotions; });
  family("supernode_kv_tier3_demotions_total", "counter", "Blocks written to disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.demotions; });
  family("supernode_kv_tier3_bytes_moved_total", "counter", "Bytes read from and written to disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.bytes_read + s.tiers.disk.bytes_written; });
  family("supernode_kv_tier3_corrupt_dropped_total", "counter", "Disk blocks that failed a check and were dropped.", [](const ModelHost::Stats& s) { return s.tiers.disk.corrupt_dropped; });
  family("supernode_kv_tier3_writes_failed_total", "counter", "Disk block writes that failed (I/O error, full disk, paused).", [](const ModelHost::Stats& s) { return s.tiers.disk.writes_failed; });
  family("supernode_kv_tier3_paused_dirs", "gauge", "Disk tier directories with writes paused after a full disk.", [](const ModelHost::Stats& s) { return s.tiers.disk.paused_dirs; });
  return o;
}

}  // namespace sn::daemon
