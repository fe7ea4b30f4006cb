// The scheduler: see scheduler.h for the policy. Requests live in one map by id; the running
// list and the per-class, per-tenant waiting queues hold ids.
#include "supernode/scheduler/scheduler.h"

#include <algorithm>
#include <limits>
#include <string>
#include <unordered_set>

#include "supernode/base/check.h"

namespace sn::scheduler {

Scheduler::Scheduler(const SchedulerConfig& config, const Clock& clock)
    : config_(config),
      clock_(clock),
      fair_(std::holds_alternative<WeightedFairShare>(config.fairness)),
      kv_(config.kv) {
  SN_CHECK(config_.max_num_batched_tokens > 0 && config_.max_num_seqs > 0 && config_.max_waiting >= 0)
      << "max_num_batched_tokens " << config_.max_num_batched_tokens << ", max_num_seqs " << config_.max_num_seqs
      << ", max_waiting " << config_.max_waiting;
  if (fair_) {
    const auto& w = std::get<WeightedFairShare>(config_.fairness);
    SN_CHECK(w.interactive_weight > 0 && w.batch_weight > 0) << "class weights must be positive";
  }
}

double Scheduler::class_weight(PriorityClass c) const {
  if (!fair_) return 1.0;
  const auto& w = std::get<WeightedFairShare>(config_.fairness);
  return c == PriorityClass::kInteractive ? w.interactive_weight : w.batch_weight;
}

void Scheduler::attach_tiers(KvTiers* tiers) {
  SN_CHECK(step_ == 0) << "attach_tiers after the first step";
  tiers_ = tiers;
  if (tiers == nullptr) {
    kv_.set_evict_hook({});
  } else {
    kv_.set_evict_hook([tiers](int32_t block, const BlockHash& key) { tiers->demote(block, key); });
  }
}

void Scheduler::set_tenant_weight(const std::string& tenant, double weight) {
  SN_CHECK(weight > 0) << "tenant " << tenant << " weight " << weight;
  tenants_[tenant].weight = weight;
}

Status Scheduler::add_request(Request request) {
  const std::string ctx = "request " + std::to_string(request.id);
  if (request.prompt.empty()) return Status::invalid_argument(ctx, "empty prompt");
  if (request.max_tokens < 1) {
    return Status::invalid_argument(ctx, "max_tokens is " + std::to_string(request.max_tokens) + ", must be at least 1");
  }
  if (requests_.count(request.id) != 0) return Status::invalid_argument(ctx, "id already in use");
  // The last generated token is never fed back, so it needs no KV.
  int64_t longest = static_cast<int64_t>(request.prompt.size()) + request.max_tokens - 1;
  if (kv_.blocks_for(longest) > kv_.pool().num_blocks()) {
    return Status::invalid_argument(ctx, "prompt plus max_tokens needs " + std::to_string(kv_.blocks_for(longest)) +
                                             " KV blocks, the pool has " + std::to_string(kv_.pool().num_blocks()));
  }
  if (num_waiting_new_ >= config_.max_waiting) {
    ++stats_.rejected_busy;
    return Status::resource_exhausted("scheduler busy", "waiting queue is full (" +
                                                            std::to_string(config_.max_waiting) +
                                                            " requests); retry later");
  }
  Req& q = requests_[request.id];
  q.r = std::move(request);
  q.arrival_seq = next_arrival_++;
  q.root = block_hash_root(config_.model_id, q.r.cache_salt);
  q.metrics.arrival_ns = clock_.now_ns();
  q.metrics.num_prompt_tokens = static_cast<int32_t>(q.r.prompt.size());
  extend_block_hashes(q);
  activate(q);
  q.counts_as_new = true;
  ++num_waiting_new_;
  enqueue_waiting(q, /*front=*/false);
  return Status::ok();
}

Status Scheduler::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return Status::not_found("request " + std::to_string(id), "no such live request");
  Req& q = it->second;
  if (q.state == State::kRunning) {
    kv_.free(id);
    remove_running(q);
  } else {
    if (q.state == State::kFetching) fetching_.erase(q.fetch_ticket);
    remove_waiting(q);
  }
  deactivate(q);
  ++stats_.cancelled;
  requests_.erase(it);
  return Status::ok();
}

void Scheduler::extend_block_hashes(Req& q) {
  const int64_t bs = kv_.block_size();
  std::vector<int32_t> tokens(static_cast<size_t>(bs));
  while (static_cast<int64_t>(q.block_hashes.size() + 1) * bs <= q.num_known()) {
    int64_t start = static_cast<int64_t>(q.block_hashes.size()) * bs;
    for (int64_t i = 0; i < bs; ++i) tokens[static_cast<size_t>(i)] = q.token_at(start + i);
    const BlockHash& parent = q.block_hashes.empty() ? q.root : q.block_hashes.back();
    q.block_hashes.push_back(block_hash_next(parent, tokens, q.r.cache_extra_keys));
  }
}

bool Scheduler::higher_priority(const Req& a, const Req& b) const {
  if (fair_ && a.r.priority != b.r.priority) return a.r.priority < b.r.priority;
  return a.arrival_seq < b.arrival_seq;
}

void Scheduler::activate(Req& q) {
  Tenant& t = tenants_[q.r.tenant];
  if (t.running + t.waiting == 0) {
    double v = std::numeric_limits<double>::infinity();
    for (const auto& [name, other] : tenants_) {
      if (other.running + other.waiting > 0) v = std::min(v, other.vtime);
    }
    if (v != std::numeric_limits<double>::infinity()) t.vtime = std::max(t.vtime, v);
  }
  int c = static_cast<int>(q.r.priority);
  if (class_active_[c] == 0 && class_active_[1 - c] > 0) {
    class_vtime_[c] = std::max(class_vtime_[c], class_vtime_[1 - c]);
  }
  ++class_active_[c];
}

void Scheduler::deactivate(const Req& q) { --class_active_[static_cast<int>(q.r.priority)]; }

void Scheduler::link_waiting(Req& q, bool front) {
  std::deque<RequestId>& d = waiting_[static_cast<int>(q.r.priority)][q.r.tenant];
  if (front) {
    d.push_front(q.r.id);
  } else {
    d.push_back(q.r.id);
  }
  q.state = State::kWaiting;
}

void Scheduler::unlink_waiting(Req& q) {
  ClassQueue& cq = waiting_[static_cast<int>(q.r.priority)];
  auto it = cq.find(q.r.tenant);
  SN_CHECK(it != cq.end()) << "request " << q.r.id << " not in its waiting queue";
  auto pos = std::find(it->second.begin(), it->second.end(), q.r.id);
  SN_CHECK(pos != it->second.end()) << "request " << q.r.id << " not in its waiting queue";
  it->second.erase(pos);
  if (it->second.empty()) cq.erase(it);
}

void Scheduler::enqueue_waiting(Req& q, bool front) {
  link_waiting(q, front);
  ++tenants_[q.r.tenant].waiting;
  ++num_waiting_;
}

void Scheduler::remove_waiting(Req& q) {
  if (q.state == State::kWaiting) unlink_waiting(q);  // a parked request is in no queue
  --tenants_[q.r.tenant].waiting;
  --num_waiting_;
  if (q.counts_as_new) {
    q.counts_as_new = false;
    --num_waiting_new_;
  }
}

void Scheduler::insert_running(Req& q) {
  auto pos = std::find_if(running_.begin(), running_.end(),
                          [&](RequestId id) { return higher_priority(q, requests_.at(id)); });
  running_.insert(pos, q.r.id);
  q.state = State::kRunning;
  ++tenants_[q.r.tenant].running;
}

void Scheduler::remove_running(const Req& q) {
  auto pos = std::find(running_.begin(), running_.end(), q.r.id);
  SN_CHECK(pos != running_.end()) << "request " << q.r.id << " not running";
  running_.erase(pos);
  --tenants_[q.r.tenant].running;
}

void Scheduler::charge(const Req& q, int64_t n) {
  Tenant& t = tenants_[q.r.tenant];
  t.vtime += static_cast<double>(n) / t.weight;
  t.tokens_scheduled += n;
  class_vtime_[static_cast<int>(q.r.priority)] += static_cast<double>(n) / class_weight(q.r.priority);
  stats_.tokens_scheduled += n;
}

void Scheduler::emit(SchedulerOutput& out, Req& q, int64_t n, const KvBlocks& blocks) {
  ScheduledSequence s;
  s.id = q.r.id;
  s.start_position = static_cast<int32_t>(q.num_computed);
  s.tokens.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s.tokens.push_back(q.token_at(q.num_computed + i));
  s.block_table.assign(blocks.ids().begin(), blocks.ids().end());
  s.want_token = q.num_computed + n == q.num_known();
  out.sequences.push_back(std::move(s));
  out.num_tokens += static_cast<int32_t>(n);
  q.scheduled_step = out.step;
  if (q.metrics.first_scheduled_ns < 0) q.metrics.first_scheduled_ns = clock_.now_ns();
  charge(q, n);
}

void Scheduler::park_for_fetch(Req& q, std::span<const BlockHash> keys) {
  unlink_waiting(q);
  q.state = State::kFetching;
  q.fetched = true;
  q.fetch_ticket = next_ticket_++;
  fetching_[q.fetch_ticket] = q.r.id;
  ++stats_.fetches;
  tiers_->fetch(q.fetch_ticket, std::vector<BlockHash>(keys.begin(), keys.end()));
}

void Scheduler::unpark_fetched() {
  for (uint64_t ticket : tiers_->take_completed()) {
    auto f = fetching_.find(ticket);
    if (f == fetching_.end()) continue;  // cancelled while its reads ran
    Req& q = requests_.at(f->second);
    fetching_.erase(f);
    link_waiting(q, /*front=*/true);
  }
}

void Scheduler::preempt(Req& q, SchedulerOutput& out) {
  kv_.free(q.r.id);
  remove_running(q);
  q.num_computed = 0;
  q.fetched = false;
  ++q.metrics.num_preemptions;
  ++stats_.preemptions;
  enqueue_waiting(q, /*front=*/true);
  out.preempted.push_back(q.r.id);
}

bool Scheduler::schedule_running(Req& q, int64_t n, SchedulerOutput& out) {
  for (;;) {
    std::optional<KvBlocks> blocks = kv_.allocate_slots(q.r.id, q.num_computed, n);
    if (blocks) {
      emit(out, q, n, *blocks);
      return true;
    }
    // running_ is in priority order: the last request not yet scheduled this step is the
    // lowest-priority one we may take blocks from. `q` itself qualifies, so one exists.
    Req* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      Req& r = requests_.at(*it);
      if (r.scheduled_step != out.step) {
        victim = &r;
        break;
      }
    }
    SN_CHECK(victim != nullptr) << "request " << q.r.id << " is running but was not found";
    preempt(*victim, out);
    if (victim == &q) return false;
  }
}

Scheduler::Req* Scheduler::pick_waiting() {
  Req* best = nullptr;
  if (!fair_) {
    for (ClassQueue& cq : waiting_) {
      for (auto& [tenant, d] : cq) {
        Req& r = requests_.at(d.front());
        if (best == nullptr || r.arrival_seq < best->arrival_seq) best = &r;
      }
    }
    return best;
  }
  int c = -1;
  for (int k = 0; k < 2; ++k) {
    if (!waiting_[k].empty() && (c < 0 || class_vtime_[k] < class_vtime_[c])) c = k;
  }
  if (c < 0) return nullptr;
  double best_v = 0;
  for (auto& [tenant, d] : waiting_[c]) {
    Req& r = requests_.at(d.front());
    double v = tenants_.at(tenant).vtime;
    if (best == nullptr || v < best_v || (v == best_v && r.arrival_seq < best->arrival_seq)) {
      best = &r;
      best_v = v;
    }
  }
  return best;
}

SchedulerOutput Scheduler::schedule() {
  SN_CHECK(!in_flight_) << "schedule() called before update_from_output() of step " << step_;
  SchedulerOutput out;
  out.step = ++step_;
  in_flight_ = true;
  ++stats_.steps;
  const int32_t budget = config_.max_num_batched_tokens;
  if (tiers_ != nullptr && !fetching_.empty()) unpark_fetched();

  // 1 and 2: running requests, decodes first, then prefill chunks.
  const std::vector<RequestId> snapshot = running_;
  for (bool decode_pass : {true, false}) {
    for (RequestId id : snapshot) {
      if (out.num_tokens >= budget) break;
      auto it = requests_.find(id);
      if (it == requests_.end()) continue;
      Req& q = it->second;
      if (q.state != State::kRunning || q.scheduled_step == out.step) continue;
      bool decoding = q.num_computed >= static_cast<int64_t>(q.r.prompt.size());
      if (decoding != decode_pass) continue;
      int64_t n = std::min<int64_t>(q.num_known() - q.num_computed, budget - out.num_tokens);
      SN_CHECK(n > 0) << "running request " << q.r.id << " has nothing to compute";
      (void)schedule_running(q, n, out);
    }
  }

  // 3: admissions, unless this step had to preempt (blocks are short: admitting now would
  // only preempt again).
  if (out.preempted.empty()) {
    while (out.num_tokens < budget && static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
      Req* q = pick_waiting();
      if (q == nullptr) break;
      PrefixHit hit = kv_.find_prefix(q->block_hashes, q->num_known());
      // The chain past the tier-1 hits, up to the last full block before the last known token.
      std::span<const BlockHash> rest;
      int32_t n_lower = 0;
      if (tiers_ != nullptr) {
        const size_t limit = std::min(q->block_hashes.size(), static_cast<size_t>((q->num_known() - 1) / kv_.block_size()));
        if (hit.blocks.size() < limit) {
          rest = std::span<const BlockHash>(q->block_hashes).subspan(hit.blocks.size(), limit - hit.blocks.size());
          const KvTierProbe p = tiers_->probe(rest);
          if (p.any > p.host && !q->fetched) {
            park_for_fetch(*q, rest.subspan(static_cast<size_t>(p.host), static_cast<size_t>(p.any - p.host)));
            continue;
          }
          n_lower = p.host;
        }
      }
      const int64_t lower_tokens = static_cast<int64_t>(n_lower) * kv_.block_size();
      int64_t n = std::min<int64_t>(q->num_known() - hit.num_tokens - lower_tokens, budget - out.num_tokens);
      std::optional<KvBlocks> blocks = kv_.allocate_slots(q->r.id, hit.num_tokens, lower_tokens + n, hit);
      if (!blocks) break;
      // Promote what host RAM holds into the fresh blocks after the hit. allocate_slots may
      // have demoted blocks into host RAM and pushed some of these out: then stop there, and
      // compute from that block on (it and the rest are allocated already).
      int32_t promoted = 0;
      while (promoted < n_lower &&
             tiers_->promote(rest[static_cast<size_t>(promoted)],
                             blocks->ids()[hit.blocks.size() + static_cast<size_t>(promoted)])) {
        ++promoted;
      }
      const int64_t computed = hit.num_tokens + static_cast<int64_t>(promoted) * kv_.block_size();
      bool first_admission = q->metrics.first_scheduled_ns < 0;
      remove_waiting(*q);
      q->fetched = false;
      q->num_computed = computed;
      insert_running(*q);
      if (promoted > 0) kv_.cache_full_blocks(q->r.id, q->block_hashes, computed);  // findable in tier 1 again
      stats_.tokens_from_tiers += static_cast<int64_t>(promoted) * kv_.block_size();
      if (first_admission) q->metrics.num_cached_tokens = static_cast<int32_t>(computed);
      emit(out, *q, n, *blocks);
    }
  }
  return out;
}

RequestEvent Scheduler::finish(Req& q, FinishReason reason) {
  RequestEvent ev;
  ev.id = q.r.id;
  ev.finish = reason;
  q.metrics.finished_ns = clock_.now_ns();
  q.metrics.num_output_tokens = static_cast<int32_t>(q.output.size());
  ev.metrics = q.metrics;
  kv_.free(q.r.id);
  remove_running(q);
  deactivate(q);
  ++stats_.finished;
  requests_.erase(q.r.id);
  return ev;
}

std::vector<RequestEvent> Scheduler::update_from_output(const SchedulerOutput& output, const StepResult& result) {
  SN_CHECK(in_flight_ && output.step == step_)
      << "update_from_output() for step " << output.step << ", expected the output of step " << step_;
  in_flight_ = false;
  std::unordered_map<RequestId, const SequenceResult*> by_id;
  by_id.reserve(result.sequences.size());
  for (const SequenceResult& r : result.sequences) by_id[r.id] = &r;

  std::vector<RequestEvent> events;
  const int64_t now = clock_.now_ns();
  for (const ScheduledSequence& s : output.sequences) {
    auto it = requests_.find(s.id);
    // Cancelled since schedule() (possibly with its id reused by a new request): ignore.
    if (it == requests_.end() || it->second.state != State::kRunning || it->second.scheduled_step != output.step) {
      continue;
    }
    Req& q = it->second;
    SN_CHECK(q.num_computed == s.start_position) << "request " << q.r.id << " computed " << q.num_computed
                                                 << " tokens, output starts at " << s.start_position;
    q.num_computed += static_cast<int64_t>(s.tokens.size());
    kv_.cache_full_blocks(q.r.id, q.block_hashes, q.num_computed);

    auto rit = by_id.find(s.id);
    const SequenceResult* res = rit == by_id.end() ? nullptr : rit->second;
    bool stop = res != nullptr && res->stop;
    RequestEvent ev;
    ev.id = q.r.id;
    if (s.want_token && res != nullptr && res->token) {
      int32_t t = *res->token;
      q.output.push_back(t);
      if (q.metrics.first_token_ns < 0) q.metrics.first_token_ns = now;
      q.metrics.last_token_ns = now;
      q.metrics.num_output_tokens = static_cast<int32_t>(q.output.size());
      extend_block_hashes(q);
      ev.token = t;
    }
    SN_CHECK(!s.want_token || ev.token || stop) << "no sampled token for request " << q.r.id << " in step " << output.step;
    std::optional<FinishReason> reason;
    if (ev.token && std::find(q.r.stop_token_ids.begin(), q.r.stop_token_ids.end(), *ev.token) != q.r.stop_token_ids.end()) {
      reason = FinishReason::kStopToken;
    } else if (static_cast<int32_t>(q.output.size()) >= q.r.max_tokens) {
      reason = FinishReason::kLength;
    } else if (stop) {
      reason = FinishReason::kStopFlag;
    }
    if (reason) {
      RequestEvent done = finish(q, *reason);
      done.token = ev.token;
      events.push_back(std::move(done));
    } else if (ev.token) {
      ev.metrics = q.metrics;
      events.push_back(std::move(ev));
    }
  }
  return events;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s = stats_;
  s.running = static_cast<int32_t>(running_.size());
  s.waiting = num_waiting_;
  s.fetching = static_cast<int32_t>(fetching_.size());
  return s;
}

TenantStats Scheduler::tenant_stats(const std::string& tenant) const {
  TenantStats s;
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return s;
  s.tokens_scheduled = it->second.tokens_scheduled;
  s.running = it->second.running;
  s.waiting = it->second.waiting;
  return s;
}

std::optional<std::vector<int32_t>> Scheduler::output_tokens(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second.output;
}

std::optional<RequestMetrics> Scheduler::metrics(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second.metrics;
}

Status Scheduler::check_invariants() const {
  SN_RETURN_IF_ERROR(kv_.check_consistency());
  auto fail = [](const std::string& what) { return Status::internal("scheduler", what); };
  if (static_cast<int32_t>(running_.size()) > config_.max_num_seqs) return fail("too many running requests");
  if (kv_.num_requests() != static_cast<int32_t>(running_.size())) return fail("blocks held by non-running requests");
  std::unordered_set<RequestId> seen;
  std::map<std::string, TenantStats> counted;
  int32_t active[2] = {0, 0};
  for (size_t i = 0; i < running_.size(); ++i) {
    auto it = requests_.find(running_[i]);
    if (it == requests_.end()) return fail("running id " + std::to_string(running_[i]) + " unknown");
    const Req& q = it->second;
    if (q.state != State::kRunning || !seen.insert(q.r.id).second) return fail("running list corrupt");
    if (i > 0 && higher_priority(q, requests_.at(running_[i - 1]))) return fail("running list out of order");
    if (q.num_computed >= q.num_known()) return fail("running request with nothing to compute");
    if (static_cast<int32_t>(kv_.blocks_of(q.r.id).size()) < kv_.blocks_for(q.num_computed)) {
      return fail("request " + std::to_string(q.r.id) + " lacks blocks for its computed tokens");
    }
    ++counted[q.r.tenant].running;
  }
  int32_t n_waiting = 0, n_new = 0;
  for (int c = 0; c < 2; ++c) {
    for (const auto& [tenant, d] : waiting_[c]) {
      if (d.empty()) return fail("empty tenant queue kept");
      for (RequestId id : d) {
        auto it = requests_.find(id);
        if (it == requests_.end()) return fail("waiting id unknown");
        const Req& q = it->second;
        if (q.state != State::kWaiting || !seen.insert(id).second) return fail("waiting queue corrupt");
        if (static_cast<int>(q.r.priority) != c || q.r.tenant != tenant) return fail("request in the wrong queue");
        if (q.num_computed != 0 || !kv_.blocks_of(id).empty()) return fail("waiting request holds KV");
        n_new += q.counts_as_new ? 1 : 0;
        ++n_waiting;
        ++counted[tenant].waiting;
      }
    }
  }
  for (const auto& [ticket, id] : fetching_) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return fail("parked id unknown");
    const Req& q = it->second;
    if (q.state != State::kFetching || q.fetch_ticket != ticket || !seen.insert(id).second) return fail("parked request corrupt");
    if (q.num_computed != 0 || !kv_.blocks_of(id).empty()) return fail("parked request holds KV");
    n_new += q.counts_as_new ? 1 : 0;
    ++n_waiting;
    ++counted[q.r.tenant].waiting;
  }
  if (tiers_ == nullptr && !fetching_.empty()) return fail("parked requests without tiers");
  if (n_waiting != num_waiting_ || n_new != num_waiting_new_) return fail("waiting counts wrong");
  if (seen.size() != requests_.size()) return fail("a live request is neither running nor waiting");
  for (const auto& [id, q] : requests_) {
    ++active[static_cast<int>(q.r.priority)];
    if (static_cast<int32_t>(q.output.size()) >= q.r.max_tokens) return fail("live request past max_tokens");
    if (static_cast<int64_t>(q.block_hashes.size()) != q.num_known() / kv_.block_size()) {
      return fail("block keys out of step with known tokens");
    }
  }
  if (active[0] != class_active_[0] || active[1] != class_active_[1]) return fail("class activity counts wrong");
  for (const auto& [name, t] : tenants_) {
    const TenantStats& c = counted[name];
    if (c.running != t.running || c.waiting != t.waiting) return fail("tenant " + name + " counts wrong");
  }
  return Status::ok();
}

}  // namespace sn::scheduler
