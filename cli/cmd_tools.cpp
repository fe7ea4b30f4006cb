// `supernode inspect`, `supernode hw` and `supernode gen-model`.
#include <cstdio>
#include <string>

#include "commands.h"
#include "supernode/engine/model_gen.h"
#include "supernode/hal/cpu_features.h"
#include "supernode/hal/gpu.h"
#include "supernode/hal/topology.h"

namespace sn::cli {
namespace {

std::string value_text(const engine::GgufKv& kv) {
  using engine::GgufType;
  switch (kv.type) {
    case GgufType::kString: {
      std::string s(kv.s.substr(0, 120));
      for (char& c : s) {
        if (c == '\n') c = ' ';
      }
      return "\"" + s + (kv.s.size() > 120 ? "...\" (" + std::to_string(kv.s.size()) + " bytes)" : "\"");
    }
    case GgufType::kArray: {
      std::string s = std::string("[") + engine::gguf_type_name(kv.array.type()) + " x " +
                      std::to_string(kv.array.size()) + "]";
      const size_t show = std::min<size_t>(kv.array.size(), 4);
      if (show > 0) s += " ";
      for (size_t i = 0; i < show; ++i) {
        if (i) s += ", ";
        if (kv.array.type() == GgufType::kString) {
          s += "\"" + std::string(kv.array.str(i).substr(0, 24)) + "\"";
        } else if (kv.array.type() == GgufType::kFloat32 || kv.array.type() == GgufType::kFloat64) {
          s += std::to_string(kv.array.as_float(i));
        } else {
          s += std::to_string(kv.array.as_int(i));
        }
      }
      if (kv.array.size() > show) s += ", ...";
      return s;
    }
    case GgufType::kBool: return kv.u ? "true" : "false";
    case GgufType::kFloat32:
    case GgufType::kFloat64: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", kv.f);
      return buf;
    }
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64: return std::to_string(kv.i);
    default: return std::to_string(kv.u);
  }
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args("inspect", "MODEL [--no-tensors]", "Prints a GGUF file's metadata and tensor table.",
            {{{"--no-tensors"}, "", "metadata only", ""}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 1) return usage_error(Status::invalid_argument("inspect", "give exactly one MODEL path"));
  Result<engine::GgufFile> f = engine::GgufFile::open(args.positional()[0]);
  if (!f.ok()) return runtime_error(f.status());
  std::printf("file: %s\nGGUF version %u, %llu bytes, %zu metadata keys, %zu tensors, alignment %llu\n\n",
              f->path().c_str(), f->version(), static_cast<unsigned long long>(f->file_size()), f->kvs().size(),
              f->tensors().size(), static_cast<unsigned long long>(f->alignment()));
  for (const engine::GgufKv& kv : f->kvs()) {
    std::printf("  %-44s %-7s %s\n", std::string(kv.key).c_str(), engine::gguf_type_name(kv.type), value_text(kv).c_str());
  }
  if (!f->tensors().empty()) {
    Result<engine::ModelConfig> cfg = engine::read_model_config(*f);
    if (cfg.ok()) {
      std::printf("\nmodel: %s, %d layers, n_embd %d, n_ff %d, heads %d (kv %d, head dim %d), vocab %d, ctx %d, rope base %g%s\n",
                  engine::arch_name(cfg->arch), cfg->n_layer, cfg->n_embd, cfg->n_ff, cfg->n_head, cfg->n_head_kv,
                  cfg->head_dim, cfg->n_vocab, cfg->n_ctx_train, cfg->rope.freq_base, cfg->rope.neox ? " (neox)" : "");
    } else {
      std::printf("\nmodel: cannot run: %s\n", cfg.status().message().c_str());
    }
  }
  if (!args.has("--no-tensors") && !f->tensors().empty()) {
    std::printf("\n  %-36s %-8s %-24s %12s %12s\n", "tensor", "type", "shape", "offset", "bytes");
    uint64_t total = 0;
    for (const engine::GgufTensor& t : f->tensors()) {
      std::string shape;
      for (size_t i = 0; i < t.dims.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.dims[i]);
      std::printf("  %-36s %-8s %-24s %12llu %12llu\n", std::string(t.name).c_str(), hal::dtype_name(t.type),
                  shape.c_str(), static_cast<unsigned long long>(t.offset), static_cast<unsigned long long>(t.n_bytes));
      total += t.n_bytes;
    }
    std::printf("  total %.2f MB of tensor data\n", total / 1e6);
  }
  return 0;
}

int cmd_hw(int argc, char** argv) {
  Args args("hw", "[--no-gpu-bandwidth]",
            "Prints what the hardware abstraction layer found: CPU features, kernel family, topology,\n"
            "NVIDIA GPUs (with their measured copy bandwidth).",
            {{{"--no-gpu-bandwidth"}, "", "skip timing copies on each GPU (about 0.2 s per GPU)", ""}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  const hal::CpuFeatures& f = hal::cpu_features();
  std::printf("cpu: %s (%s)\n", f.brand.c_str(), f.vendor.c_str());
  struct Flag {
    const char* name;
    bool on;
  };
  const Flag flags[] = {{"sse4.2", f.sse42},         {"avx", f.avx},
                        {"avx2", f.avx2},            {"fma", f.fma},
                        {"f16c", f.f16c},            {"avx512f", f.avx512f},
                        {"avx512bw", f.avx512bw},    {"avx512vl", f.avx512vl},
                        {"avx512dq", f.avx512dq},    {"avx512vnni", f.avx512vnni},
                        {"avx512bf16", f.avx512bf16}, {"avx-vnni", f.avx_vnni}};
  std::string on, off;
  for (const Flag& fl : flags) (fl.on ? on : off) += std::string(" ") + fl.name;
  std::printf("isa:%s\n", on.c_str());
  if (!off.empty()) std::printf("missing:%s\n", off.c_str());
  std::printf("kernels: %s\n", hal::isa_name(hal::best_isa()));
  Result<hal::Topology> topo = hal::discover_topology();
  if (!topo.ok()) return runtime_error(topo.status());
  std::printf("%s", hal::describe_topology(*topo).c_str());
  const hal::GpuReport gpus = hal::discover_gpus({.measure_bandwidth = !args.has("--no-gpu-bandwidth")});
  std::printf("%s", hal::describe_gpus(gpus).c_str());
  return 0;
}

int cmd_gen_model(int argc, char** argv) {
  Args args("gen-model", "-o FILE [options]",
            "Writes a tiny GGUF model with random weights and a small real vocabulary, so tests and\n"
            "demos need no downloaded model. Its output text is meaningless.",
            {{{"-o", "--output"}, "FILE", "where to write the model", ""},
             {{"--tokenizer"}, "KIND", "spm (SentencePiece-style) or bpe (byte-level BPE)", "spm"},
             {{"--arch"}, "ARCH", "llama, qwen2 or qwen3", "llama"},
             {{"--type"}, "TYPE", "matrix type: f32, f16 or bf16", "f32"},
             {{"--embd"}, "N", "embedding width", "64"},
             {{"--layers"}, "N", "layers", "2"},
             {{"--heads"}, "N", "attention heads", "4"},
             {{"--kv-heads"}, "N", "KV heads", "2"},
             {{"--ff"}, "N", "feed-forward width", "128"},
             {{"--seed"}, "S", "random seed", "1"},
             {{"--chat-template"}, "FILE", "a Jinja chat template to store as tokenizer.chat_template", "none"}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-o")) return usage_error(Status::invalid_argument("gen-model", "-o FILE is required"));
  engine::TinyModelSpec spec;
  const std::string tk = args.str("--tokenizer", "spm");
  if (tk == "spm") {
    spec.tokenizer = engine::TokenizerKind::kSpm;
  } else if (tk == "bpe") {
    spec.tokenizer = engine::TokenizerKind::kBpe;
  } else {
    return usage_error(Status::invalid_argument("gen-model", "--tokenizer must be spm or bpe, got '" + tk + "'"));
  }
  spec.arch = args.str("--arch", "llama");
  if (args.has("--chat-template")) {
    Result<std::string> t = read_text_file(*args.value("--chat-template"));
    if (!t.ok()) return runtime_error(t.status());
    spec.chat_template = *t;
  }
  const std::string type = args.str("--type", "f32");
  if (type == "f32") {
    spec.type = hal::DType::kF32;
  } else if (type == "f16") {
    spec.type = hal::DType::kF16;
  } else if (type == "bf16") {
    spec.type = hal::DType::kBF16;
  } else {
    return usage_error(Status::invalid_argument("gen-model", "--type must be f32, f16 or bf16, got '" + type + "'"));
  }
  Result<long long> embd = args.integer("--embd", 64, 8, 8192);
  Result<long long> layers = args.integer("--layers", 2, 1, 128);
  Result<long long> heads = args.integer("--heads", 4, 1, 256);
  Result<long long> kv = args.integer("--kv-heads", 2, 1, 256);
  Result<long long> ff = args.integer("--ff", 128, 1, 65536);
  Result<long long> seed = args.integer("--seed", 1, 0, 1ll << 62);
  for (const Status* s : {&embd.status(), &layers.status(), &heads.status(), &kv.status(), &ff.status(), &seed.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  spec.n_embd = static_cast<int32_t>(*embd);
  spec.n_layer = static_cast<int32_t>(*layers);
  spec.n_head = static_cast<int32_t>(*heads);
  spec.n_head_kv = static_cast<int32_t>(*kv);
  spec.n_ff = static_cast<int32_t>(*ff);
  spec.seed = static_cast<uint64_t>(*seed);
  Result<std::string> bytes = engine::generate_tiny_model(spec);
  if (!bytes.ok()) return usage_error(bytes.status());
  const std::string out = *args.value("-o");
  FILE* f = std::fopen(out.c_str(), "wb");
  if (f == nullptr) return runtime_error(Status::io_error(out, "cannot create file"));
  const size_t written = std::fwrite(bytes->data(), 1, bytes->size(), f);
  if (std::fclose(f) != 0 || written != bytes->size()) return runtime_error(Status::io_error(out, "write failed"));
  std::fprintf(stderr, "gen-model: wrote %s (%zu bytes)\n", out.c_str(), bytes->size());
  return 0;
}

}  // namespace sn::cli
