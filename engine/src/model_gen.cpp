// Tiny random-weight models. See model_gen.h.
#include "supernode/engine/model_gen.h"

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "supernode/engine/gguf.h"
#include "supernode/hal/fp16.h"

namespace sn::engine {
namespace {

constexpr const char* kWords[] = {
    "the", "a", "and", "to", "of", "in", "is", "it", "was", "that", "he", "she", "they", "with", "for", "on",
    "once", "upon", "time", "there", "little", "girl", "boy", "named", "lily", "tom", "day", "big", "red", "ball",
    "play", "park", "loved", "saw", "happy", "friend", "dog", "cat", "tree", "sun", "box", "cache", "model",
    "token", "hello", "world", "supernode", "serves", "internal", "applications", "local", "disks", "fast"};

// GPT-2's reversible byte → printable code point mapping.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

Vocab spm_vocab() {
  Vocab v;
  auto add = [&](std::string t, float score, int32_t type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0, 6);
  }
  std::set<std::string> seen;
  float score = -1;
  auto piece = [&](const std::string& p) {
    if (seen.insert(p).second) add(p, score--, 1);
  };
  const std::string space = "\xE2\x96\x81";  // U+2581
  piece(space);
  for (char c = 'a'; c <= 'z'; ++c) piece(std::string(1, c));
  for (char c = 'A'; c <= 'Z'; ++c) piece(std::string(1, c));
  for (const char* p : {".", ",", "!", "?", "'", "-", "0", "1", "2", "3"}) piece(p);
  for (const char* w : kWords) {
    const std::string word = space + w;
    for (size_t len = space.size() + 1; len <= word.size(); ++len) piece(word.substr(0, len));
  }
  return v;
}

Vocab bpe_vocab() {
  Vocab v;
  const std::vector<std::string> sym = byte_symbols();
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(sym[b]);
    v.types.push_back(1);
    seen.insert(sym[b]);
  }
  const std::string space = sym[' '];
  for (const char* w : kWords) {
    for (const std::string& word : {space + w, std::string(w)}) {
      // Left-to-right merges: (prefix, next char) → prefix + char.
      std::string prefix = word.substr(0, word.rfind(w, std::string::npos) == 0 ? 1 : space.size());
      size_t pos = prefix.size();
      while (pos < word.size()) {
        const std::string ch = word.substr(pos, 1);
        const std::string merged = prefix + ch;
        if (seen.insert(merged).second) {
          v.merges.push_back(prefix + " " + ch);
          v.tokens.push_back(merged);
          v.types.push_back(1);
        }
        prefix = merged;
        ++pos;
      }
    }
  }
  v.tokens.push_back("<|endoftext|>");
  v.types.push_back(3);
  return v;
}

std::string matrix_bytes(std::mt19937_64& rng, int64_t n, int64_t fan_in, hal::DType type) {
  std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(fan_in)));
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    const float x = dist(rng);
    if (type == hal::DType::kF32) {
      out.append(reinterpret_cast<const char*>(&x), 4);
    } else {
      const uint16_t h = type == hal::DType::kF16 ? hal::fp32_to_fp16(x) : hal::fp32_to_bf16(x);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return out;
}

std::string vector_bytes(std::mt19937_64& rng, int64_t n, float center, float spread) {
  std::uniform_real_distribution<float> dist(center - spread, center + spread);
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    const float x = dist(rng);
    out.append(reinterpret_cast<const char*>(&x), 4);
  }
  return out;
}

}  // namespace

Result<std::string> generate_tiny_model(const TinyModelSpec& s) {
  if (s.arch != "llama" && s.arch != "qwen2" && s.arch != "qwen3") {
    return Status::invalid_argument("gen-model", "arch '" + s.arch + "' (choose llama, qwen2 or qwen3)");
  }
  if (s.type != hal::DType::kF32 && s.type != hal::DType::kF16 && s.type != hal::DType::kBF16) {
    return Status::invalid_argument("gen-model", std::string("type ") + hal::dtype_name(s.type) + " (choose f32, f16 or bf16)");
  }
  if (s.n_embd <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0 ||
      s.n_layer <= 0 || s.n_ff <= 0 || ((s.n_embd / s.n_head) % 2) != 0) {
    return Status::invalid_argument("gen-model", "inconsistent shape (n_embd, n_head, n_head_kv, n_ff, n_layer)");
  }
  const Vocab vocab = s.tokenizer == TokenizerKind::kSpm ? spm_vocab() : bpe_vocab();
  const int64_t n_vocab = static_cast<int64_t>(vocab.tokens.size());
  const int64_t hd = s.n_embd / s.n_head;
  const int64_t kv_dim = hd * s.n_head_kv;
  const std::string& a = s.arch;

  GgufWriter w;
  w.add_string("general.architecture", a);
  w.add_string("general.name", "supernode-tiny-" + a);
  w.add_u32("general.alignment", 32);
  w.add_u32(a + ".context_length", s.n_ctx);
  w.add_u32(a + ".embedding_length", s.n_embd);
  w.add_u32(a + ".block_count", s.n_layer);
  w.add_u32(a + ".feed_forward_length", s.n_ff);
  w.add_u32(a + ".attention.head_count", s.n_head);
  w.add_u32(a + ".attention.head_count_kv", s.n_head_kv);
  w.add_f32(a + ".rope.freq_base", a == "llama" ? 10000.0f : 1000000.0f);
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  if (s.tokenizer == TokenizerKind::kSpm) {
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_string_array("tokenizer.ggml.tokens", vocab.tokens);
    w.add_f32_array("tokenizer.ggml.scores", vocab.scores);
    w.add_i32_array("tokenizer.ggml.token_type", vocab.types);
    w.add_u32("tokenizer.ggml.bos_token_id", 1);
    w.add_u32("tokenizer.ggml.eos_token_id", 2);
    w.add_u32("tokenizer.ggml.unknown_token_id", 0);
    w.add_bool("tokenizer.ggml.add_bos_token", true);
  } else {
    const uint32_t eot = static_cast<uint32_t>(n_vocab - 1);
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "gpt-2");
    w.add_string_array("tokenizer.ggml.tokens", vocab.tokens);
    w.add_i32_array("tokenizer.ggml.token_type", vocab.types);
    w.add_string_array("tokenizer.ggml.merges", vocab.merges);
    w.add_u32("tokenizer.ggml.bos_token_id", eot);
    w.add_u32("tokenizer.ggml.eos_token_id", eot);
    w.add_bool("tokenizer.ggml.add_bos_token", false);
  }

  if (!s.chat_template.empty()) w.add_string("tokenizer.chat_template", s.chat_template);

  std::mt19937_64 rng(s.seed);
  auto mat = [&](const std::string& name, int64_t cols, int64_t rows) {
    w.add_tensor(name, {cols, rows}, s.type, matrix_bytes(rng, cols * rows, cols, s.type));
  };
  auto vec = [&](const std::string& name, int64_t n, float center, float spread) {
    w.add_tensor(name, {n}, hal::DType::kF32, vector_bytes(rng, n, center, spread));
  };
  // Embeddings of unit-ish scale so the random logits are well spread.
  w.add_tensor("token_embd.weight", {s.n_embd, n_vocab}, s.type, matrix_bytes(rng, s.n_embd * n_vocab, 1, s.type));
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    vec(p + "attn_norm.weight", s.n_embd, 1.0f, 0.1f);
    mat(p + "attn_q.weight", s.n_embd, s.n_embd);
    mat(p + "attn_k.weight", s.n_embd, kv_dim);
    mat(p + "attn_v.weight", s.n_embd, kv_dim);
    mat(p + "attn_output.weight", s.n_embd, s.n_embd);
    if (a == "qwen2") {
      vec(p + "attn_q.bias", s.n_embd, 0.0f, 0.5f);
      vec(p + "attn_k.bias", kv_dim, 0.0f, 0.5f);
      vec(p + "attn_v.bias", kv_dim, 0.0f, 0.5f);
    }
    if (a == "qwen3") {
      vec(p + "attn_q_norm.weight", hd, 1.0f, 0.1f);
      vec(p + "attn_k_norm.weight", hd, 1.0f, 0.1f);
    }
    vec(p + "ffn_norm.weight", s.n_embd, 1.0f, 0.1f);
    mat(p + "ffn_gate.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_up.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_down.weight", s.n_ff, s.n_embd);
  }
  vec("output_norm.weight", s.n_embd, 1.0f, 0.1f);
  mat("output.weight", s.n_embd, n_vocab);
  return w.serialize();
}

}  // namespace sn::engine
