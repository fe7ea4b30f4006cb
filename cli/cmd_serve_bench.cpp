// `supernode serve-bench`: replays a serving workload against the scheduler in-process
// (scheduler::EngineLoop: continuous batching over the paged KV cache), without HTTP.
// Workload (a) of issue 4: S independent prompts kept in flight (a new request is submitted
// as soon as one finishes) until R have finished; prompts of P random tokens from a fixed
// seed; EOS ignored, so every request generates exactly N tokens. Reports TTFT, time per
// output token and end-to-end latency (p50/p99), generation throughput (output tokens per
// wall second) and total throughput (prompt + output tokens per wall second), plus where the
// steps' time went. A progress line goes to stderr, results to stdout. Runs on main().
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "commands.h"
#include "supernode/scheduler/engine_loop.h"
#include "supernode/storage/env.h"

namespace sn::cli {
namespace {

// Nearest-rank percentile of `v` (q in [0, 1]); 0 when empty.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Summary {
  double p50 = 0, p99 = 0;
};
Summary summarize(const std::vector<double>& v) { return {percentile(v, 0.50), percentile(v, 0.99)}; }

// The model's identity for cache keys and the disk tier: its path, size and modification
// time (a changed file is another model; its cached blocks become foreign).
std::string model_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path;
  return path + "@" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

struct PrefixOptions {
  long long requests = 4;     // per measured phase
  long long batch_tokens = 512;
  std::string kv_dir;         // tier 3; empty: none
  long long host_mb = 512;    // tier 2
  long long disk_mb = 4096;
  bool int8 = false;
  bool json = false;
};

// Workload (b) of issue 4: every prompt is the prefix text plus a short distinct suffix,
// 15-50 answer tokens, requests one at a time. Phases, each of `requests` requests:
//   restart  the first request, before anything else runs: finds the prefix only on disk when
//            an earlier process left it there (workload (c)), else it is cold like the next;
//   cold     under a salt never used before, so nothing is cached in any tier;
//   tier 1   the prefix cached in the KV pool;
//   tier 2   every cached tier-1 block demoted to host RAM before each request;
//   tier 3   demoted, then host RAM emptied, so only the disk holds it (with --kv-dir).
// Returns the exit code.
int run_prefix_workload(const Runtime& rt, const std::string& path, const std::string& prefix_text,
                        const PrefixOptions& o) {
  const engine::Model& model = *rt.model;
  const engine::Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> prefix = tok.encode(prefix_text, {.add_special = true, .parse_special = false});
  constexpr int32_t kBlockSize = 16;
  constexpr int32_t kMaxAnswer = 50;
  const int64_t longest = static_cast<int64_t>(prefix.size()) + 64 + kMaxAnswer;
  scheduler::SchedulerConfig config;
  config.model_id = model_identity(path);
  config.kv.block_size = kBlockSize;
  // Room for the cached prefix plus one request in flight.
  config.kv.num_blocks = static_cast<int32_t>(2 * ((longest + kBlockSize - 1) / kBlockSize) + 4);
  config.max_num_batched_tokens = static_cast<int32_t>(o.batch_tokens);
  config.max_num_seqs = 1;
  config.max_waiting = 2;
  scheduler::SteadyClock clock;
  scheduler::EngineLoop loop(model, *rt.backend, config, clock);
  scheduler::KvTiersConfig tc;
  tc.host_bytes = static_cast<uint64_t>(o.host_mb) << 20;
  tc.int8 = o.int8;
  if (!o.kv_dir.empty()) {
    tc.disk_dirs = {o.kv_dir};
    tc.disk_bytes_per_dir = static_cast<uint64_t>(o.disk_mb) << 20;
  }
  const auto t_open = std::chrono::steady_clock::now();
  Status opened = loop.enable_tiers(storage::posix_env(), tc, [](uint64_t scanned, uint64_t total) {
    if (scanned % 256 == 0 || scanned == total) {
      std::fprintf(stderr, "\rserve-bench: scanning the disk tier: %llu/%llu blocks   ",
                   static_cast<unsigned long long>(scanned), static_cast<unsigned long long>(total));
    }
  });
  if (!opened.is_ok()) return runtime_error(opened);
  const double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_open).count();
  const scheduler::KvTierStats at_open = loop.tiers()->stats();
  std::fprintf(stderr, "\rserve-bench: prefix of %zu tokens; tiers: host RAM %lld MB%s, disk %s (%lld blocks found, "
               "%lld dropped, %.2f s to open)\n",
               prefix.size(), o.host_mb, o.int8 ? " int8" : "", o.kv_dir.empty() ? "none" : o.kv_dir.c_str(),
               static_cast<long long>(at_open.disk.blocks), static_cast<long long>(at_open.disk.corrupt_dropped), open_s);

  struct Sample {
    double ttft_s;
    int32_t cached;
    double first_step_forward_s;  // the forward pass of the step that sampled the first token
    double first_step_s;          // that whole step
  };
  long long next_id = 1;
  const std::string cold_salt = "bench-cold-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  auto run_one = [&](const std::string& salt, Sample* out) -> Status {
    scheduler::GenerationRequest r;
    r.id = static_cast<scheduler::RequestId>(next_id);
    r.prompt = prefix;
    const std::vector<int32_t> suffix =
        tok.encode(" Question " + std::to_string(next_id) + ": what happened next?", {.add_special = false});
    r.prompt.insert(r.prompt.end(), suffix.begin(), suffix.end());
    r.max_tokens = static_cast<int32_t>(15 + (next_id * 7) % 36);
    ++next_id;
    r.sampling.temperature = 0.0f;
    r.ignore_eos = true;
    r.tenant = "bench";
    r.cache_salt = salt;
    SN_RETURN_IF_ERROR(loop.add(std::move(r)));
    bool first = true;
    for (;;) {
      const int64_t forward_before = loop.stats().forward_ns;
      const auto t0 = std::chrono::steady_clock::now();
      Result<std::vector<scheduler::RequestEvent>> events = loop.step();
      if (!events.ok()) return events.status();
      for (const scheduler::RequestEvent& ev : *events) {
        if (ev.token && first) {
          first = false;
          out->first_step_forward_s = (loop.stats().forward_ns - forward_before) / 1e9;
          out->first_step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        if (!ev.finish) continue;
        const scheduler::RequestMetrics& m = ev.metrics;
        out->ttft_s = (m.first_token_ns - m.arrival_ns) / 1e9;
        out->cached = m.num_cached_tokens;
        return Status::ok();
      }
    }
  };
  // As a daemon that has been up a moment: the host-RAM tier mapped in, and the forward
  // pass's buffers touched by one short request (its own salt: it caches nothing we measure).
  loop.tiers()->wait_warm([](double f) {
    std::fprintf(stderr, "\rserve-bench: warming up the host-RAM tier: %3.0f%%   ", 100 * f);
  });
  std::fputc('\n', stderr);
  {
    scheduler::GenerationRequest w;
    w.id = 1u << 30;
    w.prompt.assign(prefix.begin(), prefix.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(prefix.size(), 32)));
    w.max_tokens = 2;
    w.sampling.temperature = 0.0f;
    w.ignore_eos = true;
    w.tenant = "bench";
    w.cache_salt = cold_salt + "-warmup";
    if (Status st = loop.add(std::move(w)); !st.is_ok()) return runtime_error(st);
    while (loop.has_work()) {
      Result<std::vector<scheduler::RequestEvent>> ev = loop.step();
      if (!ev.ok()) return runtime_error(ev.status());
    }
  }
  struct Phase {
    const char* name;
    std::vector<Sample> samples;
  };
  std::vector<Phase> phases;
  auto run_phase = [&](const char* name, long long n, const std::string& salt, int demote) -> Status {
    Phase ph{name, {}};
    for (long long i = 0; i < n; ++i) {
      if (demote >= 2) loop.spill_cached_blocks();
      if (demote >= 3) loop.tiers()->drop_host();
      Sample smp{};
      SN_RETURN_IF_ERROR(run_one(salt, &smp));
      ph.samples.push_back(smp);
      std::fprintf(stderr, "\rserve-bench: %s %lld/%lld, TTFT %.4f s (first step %.4f s, forward %.4f s; %d prompt tokens cached)   ",
                   name, i + 1, n, smp.ttft_s, smp.first_step_s, smp.first_step_forward_s, smp.cached);
      std::fflush(stderr);
    }
    std::fputc('\n', stderr);
    phases.push_back(std::move(ph));
    return Status::ok();
  };
  Status st = run_phase("restart", 1, "bench", 1);
  if (st.is_ok()) st = run_phase("cold", 1, cold_salt, 1);
  if (st.is_ok()) st = run_phase("tier1", o.requests, "bench", 1);
  if (st.is_ok()) st = run_phase("tier2", o.requests, "bench", 2);
  if (st.is_ok() && !o.kv_dir.empty()) st = run_phase("tier3", o.requests, "bench", 3);
  if (!st.is_ok()) return runtime_error(st);
  // Leave the prefix on disk for the next process (workload (c)).
  loop.spill_cached_blocks();

  const double cold = phases[1].samples.front().ttft_s;
  const scheduler::KvTierStats ts = loop.tiers()->stats();
  const int32_t restart_cached = phases[0].samples.front().cached;
  if (o.json) {
    std::printf("{\"model\":\"%s\",\"workload\":\"prefix\",\"prefix_tokens\":%zu,\"requests_per_phase\":%lld,"
                "\"kv_int8\":%s,\"ttft_cold_s\":%.4f",
                path.c_str(), prefix.size(), o.requests, o.int8 ? "true" : "false", cold);
    for (const Phase& ph : phases) {
      if (std::string(ph.name) == "cold") continue;
      std::vector<double> v;
      for (const Sample& smp : ph.samples) v.push_back(smp.ttft_s);
      const Summary s = summarize(v);
      std::printf(",\"%s\":{\"ttft_p50_s\":%.4f,\"ttft_p99_s\":%.4f,\"speedup\":%.2f,\"cached_tokens\":%d}", ph.name,
                  s.p50, s.p99, s.p50 > 0 ? cold / s.p50 : 0.0, ph.samples.front().cached);
    }
    std::printf(",\"host\":{\"blocks_used\":%lld,\"hits\":%lld,\"promotions\":%lld,\"demotions\":%lld,"
                "\"bytes_in\":%lld,\"bytes_out\":%lld},\"disk\":{\"blocks\":%lld,\"hits\":%lld,\"promotions\":%lld,"
                "\"demotions\":%lld,\"bytes_read\":%lld,\"bytes_written\":%lld,\"corrupt_dropped\":%lld,"
                "\"open_s\":%.3f}}\n",
                static_cast<long long>(ts.host.blocks_used), static_cast<long long>(ts.host.hits),
                static_cast<long long>(ts.host.promotions), static_cast<long long>(ts.host.demotions),
                static_cast<long long>(ts.host.bytes_in), static_cast<long long>(ts.host.bytes_out),
                static_cast<long long>(ts.disk.blocks), static_cast<long long>(ts.disk.hits),
                static_cast<long long>(ts.disk.promotions), static_cast<long long>(ts.disk.demotions),
                static_cast<long long>(ts.disk.bytes_read), static_cast<long long>(ts.disk.bytes_written),
                static_cast<long long>(ts.disk.corrupt_dropped), open_s);
  } else {
    std::printf("prefix of %zu tokens, %lld requests per phase, tier 2-3 blocks %s\n", prefix.size(), o.requests,
                o.int8 ? "int8" : "F16");
    std::printf("| phase | TTFT p50 | TTFT p99 | vs cold | prompt tokens cached |\n|---|---|---|---|---|\n");
    for (const Phase& ph : phases) {
      std::vector<double> v;
      for (const Sample& smp : ph.samples) v.push_back(smp.ttft_s);
      const Summary s = summarize(v);
      std::printf("| %s | %.4f s | %.4f s | %.1fx | %d |\n", ph.name, s.p50, s.p99, s.p50 > 0 ? cold / s.p50 : 0.0,
                  ph.samples.front().cached);
    }
    std::printf("restart: %s\n", restart_cached > 0
                                      ? "the first request found its prefix on disk, left by an earlier process (workload c)"
                                      : "nothing cached at start (run the same command again for workload c)");
    const scheduler::KvPoolStats ps = loop.scheduler().kv().pool().stats();
    std::printf("tier 1 (KV pool, %d blocks): %lld hits, %lld misses, %lld evictions (each demoted to host RAM)\n",
                ps.blocks_total, static_cast<long long>(ps.hits), static_cast<long long>(ps.misses),
                static_cast<long long>(ps.evictions));
    std::printf("host RAM: %lld blocks, %lld hits, %lld promotions, %lld demotions, %.1f MB in, %.1f MB out\n",
                static_cast<long long>(ts.host.blocks_used), static_cast<long long>(ts.host.hits),
                static_cast<long long>(ts.host.promotions), static_cast<long long>(ts.host.demotions),
                ts.host.bytes_in / 1e6, ts.host.bytes_out / 1e6);
    if (ts.has_disk) {
      std::printf("disk: %lld blocks (%.1f MB), %lld hits, %lld read, %lld written, %lld corrupt dropped, "
                  "opened in %.3f s\n",
                  static_cast<long long>(ts.disk.blocks), ts.disk.bytes / 1e6, static_cast<long long>(ts.disk.hits),
                  static_cast<long long>(ts.disk.promotions), static_cast<long long>(ts.disk.demotions),
                  static_cast<long long>(ts.disk.corrupt_dropped), open_s);
    }
  }
  return 0;
}

struct StreamsOptions {
  std::string path;
  long long streams = 16, requests = 32, max_tokens = 64, prompt_tokens = 128, batch_tokens = 512;
  long long num_blocks = 0, seed = 1234;
};

struct StreamsResult {
  double wall = 0;
  int64_t out_tokens = 0, prompt_total = 0;
  std::vector<double> ttft, tpot, e2e;
  double decode_only_s = 0;
  int64_t decode_only_tokens = 0, decode_only_steps = 0;
  scheduler::EngineLoopStats stats;
  scheduler::SchedulerStats sched;
};

// Workload (a): `streams` requests kept in flight until `requests` have finished.
Result<StreamsResult> run_streams(const Runtime& rt, const StreamsOptions& o) {
  const engine::Model& model = *rt.model;
  const int32_t n_vocab = model.config().n_vocab;
  constexpr int32_t kBlockSize = 16;
  scheduler::SchedulerConfig config;
  config.model_id = model_identity(o.path);
  config.kv.num_blocks = static_cast<int32_t>(o.num_blocks);
  config.kv.block_size = kBlockSize;
  config.max_num_batched_tokens = static_cast<int32_t>(o.batch_tokens);
  config.max_num_seqs = static_cast<int32_t>(o.streams);
  config.max_waiting = static_cast<int32_t>(o.streams) + 1;
  scheduler::SteadyClock clock;
  scheduler::EngineLoop loop(model, *rt.backend, config, clock);
  std::fprintf(stderr, "serve-bench: %lld streams, %lld requests, %lld prompt + %lld output tokens each; "
               "KV pool %lld blocks of %d (%.0f MB), %lld tokens per step\n",
               o.streams, o.requests, o.prompt_tokens, o.max_tokens, o.num_blocks, kBlockSize,
               static_cast<double>(o.num_blocks) * kBlockSize * model.config().n_layer * model.config().n_head_kv *
                   model.config().head_dim * 2 * 2 / 1e6,
               o.batch_tokens);

  std::mt19937_64 rng(static_cast<uint64_t>(o.seed));
  const int32_t bos = model.tokenizer().bos();
  uint64_t next_id = 1;
  auto submit = [&]() -> Status {
    scheduler::GenerationRequest r;
    r.id = next_id++;
    r.prompt.resize(static_cast<size_t>(o.prompt_tokens));
    for (int32_t& t : r.prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
    if (bos >= 0) r.prompt[0] = bos;
    r.max_tokens = static_cast<int32_t>(o.max_tokens);
    r.sampling.temperature = 0.0f;
    r.sampling.seed = r.id;
    r.ignore_eos = true;
    r.tenant = "bench";
    r.cache_salt = "bench";
    return loop.add(std::move(r));
  };

  StreamsResult res;
  using Steady = std::chrono::steady_clock;
  const auto t_start = Steady::now();
  long long submitted = 0, finished = 0, in_flight = 0;
  auto last_progress = t_start;
  auto progress = [&](bool force) {
    const auto now = Steady::now();
    if (!force && now - last_progress < std::chrono::milliseconds(250)) return;
    last_progress = now;
    const double s = std::chrono::duration<double>(now - t_start).count();
    std::fprintf(stderr, "\rserve-bench: %lld/%lld finished, %lld in flight, %lld output tokens, %.1f tok/s, %.1f s   ",
                 finished, o.requests, in_flight, static_cast<long long>(res.out_tokens), s > 0 ? res.out_tokens / s : 0.0, s);
    std::fflush(stderr);
  };

  while (finished < o.requests) {
    while (in_flight < o.streams && submitted < o.requests) {
      SN_RETURN_IF_ERROR(submit());
      ++submitted;
      ++in_flight;
    }
    const scheduler::EngineLoopStats before = loop.stats();
    const auto t0 = Steady::now();
    Result<std::vector<scheduler::RequestEvent>> events = loop.step();
    const double dt = std::chrono::duration<double>(Steady::now() - t0).count();
    if (!events.ok()) return events.status();
    const scheduler::EngineLoopStats& after = loop.stats();
    const int64_t computed = after.tokens_computed - before.tokens_computed;
    const int64_t sampled = after.tokens_sampled - before.tokens_sampled;
    if (computed > 0 && computed == sampled) {
      res.decode_only_s += dt;
      res.decode_only_tokens += sampled;
      ++res.decode_only_steps;
    }
    for (const scheduler::RequestEvent& ev : *events) {
      if (ev.token) ++res.out_tokens;
      if (!ev.finish) continue;
      const scheduler::RequestMetrics& m = ev.metrics;
      res.ttft.push_back((m.first_token_ns - m.arrival_ns) / 1e9);
      res.e2e.push_back((m.finished_ns - m.arrival_ns) / 1e9);
      if (m.num_output_tokens > 1) res.tpot.push_back((m.last_token_ns - m.first_token_ns) / 1e9 / (m.num_output_tokens - 1));
      res.prompt_total += m.num_prompt_tokens;
      ++finished;
      --in_flight;
    }
    progress(false);
  }
  progress(true);
  std::fputc('\n', stderr);
  res.wall = std::chrono::duration<double>(Steady::now() - t_start).count();
  res.stats = loop.stats();
  res.sched = loop.scheduler().stats();
  return res;
}

void print_streams(const Runtime& rt, const StreamsOptions& o, const StreamsResult& r,
                   const std::optional<StreamsResult>& one, bool json) {
  const Summary s_ttft = summarize(r.ttft), s_tpot = summarize(r.tpot), s_e2e = summarize(r.e2e);
  const double gen_tok_s = r.out_tokens / r.wall;
  const double total_tok_s = static_cast<double>(r.out_tokens + r.prompt_total) / r.wall;
  const double decode_tok_s = r.decode_only_s > 0 ? r.decode_only_tokens / r.decode_only_s : 0;
  const double single_tok_s = one ? one->out_tokens / one->wall : 0;
  const scheduler::EngineLoopStats& st = r.stats;
  const double forward_s = st.forward_ns / 1e9, sample_s = st.sample_ns / 1e9,
               sched_s = (st.schedule_ns + st.update_ns) / 1e9;
  if (json) {
    std::printf("{\"model\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"streams\":%lld,\"requests\":%lld,"
                "\"prompt_tokens\":%lld,\"max_tokens\":%lld,\"batch_tokens\":%lld,\"kv_blocks\":%lld,"
                "\"wall_s\":%.3f,\"output_tokens\":%lld,\"generation_tok_s\":%.3f,\"total_tok_s\":%.3f,"
                "\"ttft_p50_s\":%.4f,\"ttft_p99_s\":%.4f,\"tpot_p50_s\":%.4f,\"tpot_p99_s\":%.4f,"
                "\"e2e_p50_s\":%.4f,\"e2e_p99_s\":%.4f,\"decode_only_steps\":%lld,\"decode_only_tok_s\":%.3f,"
                "\"single_stream_tok_s\":%.3f,"
                "\"steps\":%llu,\"preemptions\":%lld,\"forward_s\":%.3f,\"sample_s\":%.3f,\"schedule_s\":%.3f}\n",
                o.path.c_str(), rt.pool->size(), hal::isa_name(rt.backend->isa()), o.streams, o.requests, o.prompt_tokens,
                o.max_tokens, o.batch_tokens, o.num_blocks, r.wall, static_cast<long long>(r.out_tokens), gen_tok_s,
                total_tok_s, s_ttft.p50, s_ttft.p99, s_tpot.p50, s_tpot.p99, s_e2e.p50, s_e2e.p99,
                static_cast<long long>(r.decode_only_steps), decode_tok_s, single_tok_s,
                static_cast<unsigned long long>(st.steps), static_cast<long long>(r.sched.preemptions), forward_s,
                sample_s, sched_s);
    return;
  }
  std::printf("model %s, %d threads, %s kernels\n", o.path.c_str(), rt.pool->size(), hal::isa_name(rt.backend->isa()));
  std::printf("%lld streams, %lld requests of %lld prompt + %lld output tokens, %.2f s wall, %llu steps, %lld preemptions\n",
              o.streams, o.requests, o.prompt_tokens, o.max_tokens, r.wall, static_cast<unsigned long long>(st.steps),
              static_cast<long long>(r.sched.preemptions));
  std::printf("| metric | p50 | p99 |\n|---|---|---|\n");
  std::printf("| TTFT | %.1f ms | %.1f ms |\n", s_ttft.p50 * 1e3, s_ttft.p99 * 1e3);
  std::printf("| time per output token | %.1f ms | %.1f ms |\n", s_tpot.p50 * 1e3, s_tpot.p99 * 1e3);
  std::printf("| end-to-end latency | %.2f s | %.2f s |\n", s_e2e.p50, s_e2e.p99);
  std::printf("generation throughput: %.1f tok/s (output tokens / wall time)\n", gen_tok_s);
  std::printf("total throughput: %.1f tok/s ((prompt + output tokens) / wall time)\n", total_tok_s);
  std::printf("decode-only steps: %lld, %.1f tok/s while decoding\n", static_cast<long long>(r.decode_only_steps),
              decode_tok_s);
  if (one) {
    std::printf("single stream, same run: %.1f tok/s (%lld requests one at a time); %lld streams: %.2fx that\n",
                single_tok_s, static_cast<long long>(one->ttft.size()), o.streams,
                single_tok_s > 0 ? gen_tok_s / single_tok_s : 0.0);
  }
  std::printf("time: forward %.2f s, sampling %.3f s, scheduling %.3f s\n", forward_s, sample_s, sched_s);
}

}  // namespace

int cmd_serve_bench(int argc, char** argv) {
  Args args("serve-bench",
            "-m MODEL [-t 2] --streams S --requests R --max-tokens N [--prompt-tokens P] [--json]",
            "Replays a serving workload against the scheduler in-process (continuous batching, paged KV):\n"
            "S requests are kept in flight (a new one is submitted when one finishes) until R have\n"
            "finished. Prompts are P random tokens (fixed seed, no shared prefixes); EOS is ignored, so\n"
            "each request generates N tokens, greedily. Reports TTFT, time per output token (TPOT),\n"
            "end-to-end latency (p50/p99), generation throughput (output tokens / wall time) and total\n"
            "throughput ((prompt + output tokens) / wall time). --streams 1 gives the single-stream rate.",
            {{{"-m", "--model"}, "FILE", "GGUF model", ""},
             {{"-t", "--threads"}, "N", "compute threads", "one per physical core"},
             {{"--streams"}, "S", "requests kept in flight", "16"},
             {{"--requests"}, "R", "requests to finish in all", "2 x streams"},
             {{"--max-tokens"}, "N", "tokens generated per request", "64"},
             {{"--prompt-tokens"}, "P", "prompt tokens per request", "128"},
             {{"--batch-tokens"}, "N", "token budget per step (max_num_batched_tokens)", "512"},
             {{"--kv-blocks"}, "N", "KV blocks of 16 tokens (0: enough for every stream's prompt + output)", "0"},
             {{"--seed"}, "N", "seed of the random prompts", "1234"},
             {{"--single-requests"}, "N", "afterwards, N of the same requests one at a time: the single-stream rate "
                                          "from the same run (0: skip)", "2"},
             {{"--prefix-file"}, "FILE", "workload (b): every prompt is FILE's text plus a short distinct suffix, "
                                         "15-50 answer tokens, one request at a time; reports TTFT cold and warm", ""},
             {{"--prefix-bytes"}, "N", "with --prefix-file: repeat the file's text to N bytes (0: as it is)", "0"},
             {{"--kv-dir"}, "DIR", "with --prefix-file: the disk tier (tier 3) of the KV cache; run again on the same "
                                   "DIR to measure a restart (workload c)", ""},
             {{"--kv-host-mb"}, "MB", "with --prefix-file: host RAM for tier 2", "512"},
             {{"--kv-disk-mb"}, "MB", "with --kv-dir: disk space for tier 3", "4096"},
             {{"--kv-int8"}, "", "keep tier 2-3 blocks as int8 with per-row scales", ""},
             {{"--json"}, "", "print one JSON object instead of a table", ""}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.positional().empty()) {
    return usage_error(Status::invalid_argument("serve-bench", "unexpected argument '" + args.positional().front() +
                                                                   "' (see supernode serve-bench --help)"));
  }
  if (!args.has("-m")) return usage_error(Status::invalid_argument("serve-bench", "-m MODEL is required"));
  Result<long long> threads = args.integer("-t", 0, 0, 1024);
  Result<long long> streams = args.integer("--streams", 16, 1, 4096);
  Result<long long> requests = args.integer("--requests", streams.ok() ? *streams * 2 : 1, 1, 1 << 24);
  Result<long long> max_tokens = args.integer("--max-tokens", 64, 1, 1 << 20);
  Result<long long> prompt_tokens = args.integer("--prompt-tokens", 128, 1, 1 << 20);
  Result<long long> batch_tokens = args.integer("--batch-tokens", 512, 1, 1 << 20);
  Result<long long> kv_blocks = args.integer("--kv-blocks", 0, 0, 1 << 26);
  Result<long long> seed = args.integer("--seed", 1234, 0, (1LL << 62));
  Result<long long> single = args.integer("--single-requests", 2, 0, 1 << 20);
  if (!single.ok()) return usage_error(single.status());
  for (const Status* s : {&threads.status(), &streams.status(), &requests.status(), &max_tokens.status(),
                          &prompt_tokens.status(), &batch_tokens.status(), &kv_blocks.status(), &seed.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  constexpr int32_t kBlockSize = 16;
  const long long blocks_per_request = (*prompt_tokens + *max_tokens + kBlockSize - 1) / kBlockSize;
  if (*kv_blocks != 0 && *kv_blocks < blocks_per_request) {
    return usage_error(Status::invalid_argument(
        "serve-bench", "--kv-blocks " + std::to_string(*kv_blocks) + " cannot hold one request (" +
                           std::to_string(*prompt_tokens + *max_tokens) + " tokens need " +
                           std::to_string(blocks_per_request) + " blocks of " + std::to_string(kBlockSize) + ")"));
  }
  const long long num_blocks = *kv_blocks != 0 ? *kv_blocks : blocks_per_request * *streams;
  if (num_blocks > (1LL << 26)) {
    return usage_error(Status::invalid_argument("serve-bench", "the KV pool would need " + std::to_string(num_blocks) +
                                                                   " blocks; lower --streams, --prompt-tokens or --max-tokens"));
  }
  const std::string path = *args.value("-m");

  Result<Runtime> rt = load_runtime(path, static_cast<int>(*threads));
  if (!rt.ok()) return runtime_error(rt.status());
  if (args.has("--prefix-file")) {
    Result<long long> prefix_bytes = args.integer("--prefix-bytes", 0, 0, 1 << 26);
    if (!prefix_bytes.ok()) return usage_error(prefix_bytes.status());
    Result<std::string> text = read_text_file(*args.value("--prefix-file"));
    if (!text.ok()) return runtime_error(text.status());
    if (text->empty()) return usage_error(Status::invalid_argument("serve-bench", "--prefix-file is empty"));
    std::string prefix = *text;
    if (*prefix_bytes > 0) {
      while (static_cast<long long>(prefix.size()) < *prefix_bytes) prefix += *text;
      prefix.resize(static_cast<size_t>(*prefix_bytes));
    }
    PrefixOptions po;
    po.requests = args.has("--requests") ? *requests : 4;
    po.batch_tokens = *batch_tokens;
    po.kv_dir = args.value("--kv-dir").value_or("");
    Result<long long> host_mb = args.integer("--kv-host-mb", 512, 1, 1 << 24);
    Result<long long> disk_mb = args.integer("--kv-disk-mb", 4096, 1, 1LL << 32);
    if (!host_mb.ok()) return usage_error(host_mb.status());
    if (!disk_mb.ok()) return usage_error(disk_mb.status());
    po.host_mb = *host_mb;
    po.disk_mb = *disk_mb;
    po.int8 = args.has("--kv-int8");
    po.json = args.has("--json");
    return run_prefix_workload(*rt, path, prefix, po);
  }
  StreamsOptions so;
  so.path = path;
  so.streams = *streams;
  so.requests = *requests;
  so.max_tokens = *max_tokens;
  so.prompt_tokens = *prompt_tokens;
  so.batch_tokens = *batch_tokens;
  so.num_blocks = num_blocks;
  so.seed = *seed;
  Result<StreamsResult> main_run = run_streams(*rt, so);
  if (!main_run.ok()) return runtime_error(main_run.status());
  // The single-stream rate from the same run, for comparison: the same requests one at a time.
  std::optional<StreamsResult> one;
  if (*single > 0 && *streams > 1) {
    StreamsOptions o1 = so;
    o1.streams = 1;
    o1.requests = *single;
    o1.num_blocks = std::max<long long>(blocks_per_request, 1);
    Result<StreamsResult> r1 = run_streams(*rt, o1);
    if (!r1.ok()) return runtime_error(r1.status());
    one = *r1;
  }
  print_streams(*rt, so, *main_run, one, args.has("--json"));
  return 0;
}

}  // namespace sn::cli
