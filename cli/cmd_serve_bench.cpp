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
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "supernode/scheduler/engine_loop.h"

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

// Workload (b) of issue 4: every prompt is the prefix text plus a short distinct suffix,
// 15-50 answer tokens, requests one at a time. The first request finds nothing cached
// (cold); the others find the prefix in the tier-1 prefix cache. Returns the exit code.
int run_prefix_workload(const Runtime& rt, const std::string& path, const std::string& prefix_text,
                        long long requests, long long batch_tokens, bool json) {
  const engine::Model& model = *rt.model;
  const engine::Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> prefix = tok.encode(prefix_text, {.add_special = true, .parse_special = false});
  constexpr int32_t kBlockSize = 16;
  constexpr int32_t kMaxAnswer = 50;
  const int64_t longest = static_cast<int64_t>(prefix.size()) + 64 + kMaxAnswer;
  scheduler::SchedulerConfig config;
  config.model_id = path;
  config.kv.block_size = kBlockSize;
  // Room for the cached prefix plus one request in flight.
  config.kv.num_blocks = static_cast<int32_t>(2 * ((longest + kBlockSize - 1) / kBlockSize) + 4);
  config.max_num_batched_tokens = static_cast<int32_t>(batch_tokens);
  config.max_num_seqs = 1;
  config.max_waiting = 2;
  scheduler::SteadyClock clock;
  scheduler::EngineLoop loop(model, *rt.backend, config, clock);
  std::fprintf(stderr, "serve-bench: prefix of %zu tokens, %lld requests one at a time, 15-50 answer tokens each\n",
               prefix.size(), requests);

  struct Sample {
    double ttft_s;
    int32_t cached;
  };
  std::vector<Sample> samples;
  for (long long i = 0; i < requests; ++i) {
    scheduler::GenerationRequest r;
    r.id = static_cast<scheduler::RequestId>(i + 1);
    r.prompt = prefix;
    const std::vector<int32_t> suffix =
        tok.encode(" Question " + std::to_string(i + 1) + ": what happened next?", {.add_special = false});
    r.prompt.insert(r.prompt.end(), suffix.begin(), suffix.end());
    r.max_tokens = static_cast<int32_t>(15 + (i * 7) % 36);
    r.sampling.temperature = 0.0f;
    r.ignore_eos = true;
    r.tenant = "bench";
    r.cache_salt = "bench";
    if (Status st = loop.add(std::move(r)); !st.is_ok()) return runtime_error(st);
    bool done = false;
    while (!done) {
      Result<std::vector<scheduler::RequestEvent>> events = loop.step();
      if (!events.ok()) return runtime_error(events.status());
      for (const scheduler::RequestEvent& ev : *events) {
        if (!ev.finish) continue;
        const scheduler::RequestMetrics& m = ev.metrics;
        samples.push_back({(m.first_token_ns - m.arrival_ns) / 1e9, m.num_cached_tokens});
        done = true;
      }
    }
    std::fprintf(stderr, "\rserve-bench: %lld/%lld requests, last TTFT %.3f s (%d prompt tokens cached)   ", i + 1,
                 requests, samples.back().ttft_s, samples.back().cached);
    std::fflush(stderr);
  }
  std::fputc('\n', stderr);
  const double cold = samples.front().ttft_s;
  std::vector<double> warm;
  for (size_t i = 1; i < samples.size(); ++i) warm.push_back(samples[i].ttft_s);
  const Summary w = summarize(warm);
  const double ratio = w.p50 > 0 ? cold / w.p50 : 0;
  if (json) {
    std::printf("{\"model\":\"%s\",\"workload\":\"prefix\",\"prefix_tokens\":%zu,\"requests\":%lld,"
                "\"ttft_cold_s\":%.4f,\"ttft_tier1_p50_s\":%.4f,\"ttft_tier1_p99_s\":%.4f,\"tier1_speedup\":%.1f,"
                "\"tier2\":null,\"tier3\":null}\n",
                path.c_str(), prefix.size(), requests, cold, w.p50, w.p99, ratio);
  } else {
    std::printf("prefix of %zu tokens, %lld requests\n", prefix.size(), requests);
    std::printf("TTFT cold:              %.3f s\n", cold);
    std::printf("TTFT warm, tier 1 (RAM): p50 %.4f s, p99 %.4f s = %.1fx faster than cold\n", w.p50, w.p99, ratio);
    std::printf("TTFT warm, tier 2/3:    not measured (the host-RAM and disk tiers are not wired in yet)\n");
  }
  return 0;
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
             {{"--prefix-file"}, "FILE", "workload (b): every prompt is FILE's text plus a short distinct suffix, "
                                         "15-50 answer tokens, one request at a time; reports TTFT cold and warm", ""},
             {{"--prefix-bytes"}, "N", "with --prefix-file: repeat the file's text to N bytes (0: as it is)", "0"},
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
    return run_prefix_workload(*rt, path, prefix, args.has("--requests") ? *requests : 8, *batch_tokens,
                               args.has("--json"));
  }
  const engine::Model& model = *rt->model;
  const int32_t n_vocab = model.config().n_vocab;

  scheduler::SchedulerConfig config;
  config.model_id = path;
  config.kv.num_blocks = static_cast<int32_t>(num_blocks);
  config.kv.block_size = kBlockSize;
  config.max_num_batched_tokens = static_cast<int32_t>(*batch_tokens);
  config.max_num_seqs = static_cast<int32_t>(*streams);
  config.max_waiting = static_cast<int32_t>(*streams) + 1;
  scheduler::SteadyClock clock;
  scheduler::EngineLoop loop(model, *rt->backend, config, clock);
  std::fprintf(stderr, "serve-bench: %lld streams, %lld requests, %lld prompt + %lld output tokens each; "
               "KV pool %lld blocks of %d (%.0f MB), %lld tokens per step\n",
               *streams, *requests, *prompt_tokens, *max_tokens, num_blocks, kBlockSize,
               static_cast<double>(num_blocks) * kBlockSize * model.config().n_layer * model.config().n_head_kv *
                   model.config().head_dim * 2 * 2 / 1e6,
               *batch_tokens);

  std::mt19937_64 rng(static_cast<uint64_t>(*seed));
  const int32_t bos = model.tokenizer().bos();
  uint64_t next_id = 1;
  auto submit = [&]() -> Status {
    scheduler::GenerationRequest r;
    r.id = next_id++;
    r.prompt.resize(static_cast<size_t>(*prompt_tokens));
    for (int32_t& t : r.prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
    if (bos >= 0) r.prompt[0] = bos;
    r.max_tokens = static_cast<int32_t>(*max_tokens);
    r.sampling.temperature = 0.0f;
    r.sampling.seed = r.id;
    r.ignore_eos = true;
    r.tenant = "bench";
    r.cache_salt = "bench";
    return loop.add(std::move(r));
  };

  using Steady = std::chrono::steady_clock;
  const auto t_start = Steady::now();
  long long submitted = 0, finished = 0, in_flight = 0;
  int64_t out_tokens = 0, prompt_total = 0;
  std::vector<double> ttft, tpot, e2e;
  // Steps that computed only decode tokens: the batched-decode rate, free of prefill.
  double decode_only_s = 0;
  int64_t decode_only_tokens = 0, decode_only_steps = 0;
  auto last_progress = t_start;
  auto progress = [&](bool force) {
    const auto now = Steady::now();
    if (!force && now - last_progress < std::chrono::milliseconds(250)) return;
    last_progress = now;
    const double s = std::chrono::duration<double>(now - t_start).count();
    std::fprintf(stderr, "\rserve-bench: %lld/%lld finished, %lld in flight, %lld output tokens, %.1f tok/s, %.1f s   ",
                 finished, *requests, in_flight, static_cast<long long>(out_tokens), s > 0 ? out_tokens / s : 0.0, s);
    std::fflush(stderr);
  };

  while (finished < *requests) {
    while (in_flight < *streams && submitted < *requests) {
      if (Status s = submit(); !s.is_ok()) return runtime_error(s);
      ++submitted;
      ++in_flight;
    }
    const scheduler::EngineLoopStats before = loop.stats();
    const auto t0 = Steady::now();
    Result<std::vector<scheduler::RequestEvent>> events = loop.step();
    const double dt = std::chrono::duration<double>(Steady::now() - t0).count();
    if (!events.ok()) return runtime_error(events.status());
    const scheduler::EngineLoopStats& after = loop.stats();
    const int64_t computed = after.tokens_computed - before.tokens_computed;
    const int64_t sampled = after.tokens_sampled - before.tokens_sampled;
    if (computed > 0 && computed == sampled) {
      decode_only_s += dt;
      decode_only_tokens += sampled;
      ++decode_only_steps;
    }
    for (const scheduler::RequestEvent& ev : *events) {
      if (ev.token) ++out_tokens;
      if (!ev.finish) continue;
      const scheduler::RequestMetrics& m = ev.metrics;
      ttft.push_back((m.first_token_ns - m.arrival_ns) / 1e9);
      e2e.push_back((m.finished_ns - m.arrival_ns) / 1e9);
      if (m.num_output_tokens > 1) tpot.push_back((m.last_token_ns - m.first_token_ns) / 1e9 / (m.num_output_tokens - 1));
      prompt_total += m.num_prompt_tokens;
      ++finished;
      --in_flight;
    }
    progress(false);
  }
  progress(true);
  std::fputc('\n', stderr);
  const double wall = std::chrono::duration<double>(Steady::now() - t_start).count();

  const Summary s_ttft = summarize(ttft), s_tpot = summarize(tpot), s_e2e = summarize(e2e);
  const double gen_tok_s = out_tokens / wall;
  const double total_tok_s = static_cast<double>(out_tokens + prompt_total) / wall;
  const double decode_tok_s = decode_only_s > 0 ? decode_only_tokens / decode_only_s : 0;
  const scheduler::EngineLoopStats& st = loop.stats();
  const scheduler::SchedulerStats sst = loop.scheduler().stats();
  const double forward_s = st.forward_ns / 1e9, sample_s = st.sample_ns / 1e9,
               sched_s = (st.schedule_ns + st.update_ns) / 1e9;
  if (args.has("--json")) {
    std::printf("{\"model\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"streams\":%lld,\"requests\":%lld,"
                "\"prompt_tokens\":%lld,\"max_tokens\":%lld,\"batch_tokens\":%lld,\"kv_blocks\":%lld,"
                "\"wall_s\":%.3f,\"output_tokens\":%lld,\"generation_tok_s\":%.3f,\"total_tok_s\":%.3f,"
                "\"ttft_p50_s\":%.4f,\"ttft_p99_s\":%.4f,\"tpot_p50_s\":%.4f,\"tpot_p99_s\":%.4f,"
                "\"e2e_p50_s\":%.4f,\"e2e_p99_s\":%.4f,\"decode_only_steps\":%lld,\"decode_only_tok_s\":%.3f,"
                "\"steps\":%llu,\"preemptions\":%lld,\"forward_s\":%.3f,\"sample_s\":%.3f,\"schedule_s\":%.3f}\n",
                path.c_str(), rt->pool->size(), hal::isa_name(rt->backend->isa()), *streams, *requests, *prompt_tokens,
                *max_tokens, *batch_tokens, num_blocks, wall, static_cast<long long>(out_tokens), gen_tok_s,
                total_tok_s, s_ttft.p50, s_ttft.p99, s_tpot.p50, s_tpot.p99, s_e2e.p50, s_e2e.p99,
                static_cast<long long>(decode_only_steps), decode_tok_s, static_cast<unsigned long long>(st.steps),
                static_cast<long long>(sst.preemptions), forward_s, sample_s, sched_s);
  } else {
    std::printf("model %s, %d threads, %s kernels\n", path.c_str(), rt->pool->size(), hal::isa_name(rt->backend->isa()));
    std::printf("%lld streams, %lld requests of %lld prompt + %lld output tokens, %.2f s wall, %llu steps, %lld preemptions\n",
                *streams, *requests, *prompt_tokens, *max_tokens, wall, static_cast<unsigned long long>(st.steps),
                static_cast<long long>(sst.preemptions));
    std::printf("| metric | p50 | p99 |\n|---|---|---|\n");
    std::printf("| TTFT | %.1f ms | %.1f ms |\n", s_ttft.p50 * 1e3, s_ttft.p99 * 1e3);
    std::printf("| time per output token | %.1f ms | %.1f ms |\n", s_tpot.p50 * 1e3, s_tpot.p99 * 1e3);
    std::printf("| end-to-end latency | %.2f s | %.2f s |\n", s_e2e.p50, s_e2e.p99);
    std::printf("generation throughput: %.1f tok/s (output tokens / wall time)\n", gen_tok_s);
    std::printf("total throughput: %.1f tok/s ((prompt + output tokens) / wall time)\n", total_tok_s);
    std::printf("decode-only steps: %lld, %.1f tok/s while decoding\n", static_cast<long long>(decode_only_steps),
                decode_tok_s);
    std::printf("time: forward %.2f s, sampling %.3f s, scheduling %.3f s\n", forward_s, sample_s, sched_s);
  }
  return 0;
}

}  // namespace sn::cli
