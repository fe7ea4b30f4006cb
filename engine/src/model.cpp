// Model loading (configuration and weights from GGUF, all validated) and the transformer
// forward pass over a batch of tokens. See model.h.
//
// The forward follows llama.cpp's graph for these architectures so our logits track its
// reference outputs: pre-norm (RMSNorm) attention with RoPE and GQA, SwiGLU FFN, final
// RMSNorm and the output projection, only for the tokens whose logits are wanted.
#include "supernode/engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "supernode/base/check.h"

namespace sn::engine {
namespace {

std::string key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

Status tensor_error(const GgufFile& f, std::string_view name, const std::string& detail) {
  return Status::invalid_argument(f.path(), "tensor '" + std::string(name) + "' " + detail);
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Finds a tensor and checks its shape (ne0 first). Optional tensors return nullptr when absent.
Result<const GgufTensor*> find_tensor(const GgufFile& f, const std::string& name, std::vector<int64_t> dims,
                                      bool required = true) {
  const GgufTensor* t = f.tensor(name);
  if (t == nullptr) {
    if (!required) return static_cast<const GgufTensor*>(nullptr);
    return Status::invalid_argument(f.path(), "required tensor '" + name + "' is missing");
  }
  if (t->dims != dims) {
    return tensor_error(f, name, "has shape " + dims_text(t->dims) + ", expected " + dims_text(dims));
  }
  return t;
}

Result<hal::WeightView> weight(const GgufFile& f, const std::string& name, int64_t cols, int64_t rows,
                               uint64_t* total) {
  Result<const GgufTensor*> t = find_tensor(f, name, {cols, rows});
  if (!t.ok()) return t.status();
  const GgufTensor& g = **t;
  if (!hal::dtype_info(g.type).computable) {
    return Status::not_supported(f.path(), "tensor '" + name + "' has type " + hal::dtype_name(g.type) +
                                               ", which this engine does not support (supported: f32, f16, bf16, "
                                               "q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K)");
  }
  *total += g.n_bytes;
  return hal::WeightView{g.type, rows, cols, g.data};
}

Result<const float*> f32_vector(const GgufFile& f, const std::string& name, int64_t n, uint64_t* total,
                                bool required = true) {
  Result<const GgufTensor*> t = find_tensor(f, name, {n}, required);
  if (!t.ok()) return t.status();
  if (*t == nullptr) return static_cast<const float*>(nullptr);
  if ((*t)->type != hal::DType::kF32) {
    return tensor_error(f, name, std::string("has type ") + hal::dtype_name((*t)->type) + ", expected f32");
  }
  if (reinterpret_cast<uintptr_t>((*t)->data) % alignof(float) != 0) {
    return tensor_error(f, name, "data is not 4-byte aligned");
  }
  *total += (*t)->n_bytes;
  return reinterpret_cast<const float*>((*t)->data);
}

Result<int32_t> positive_int(const GgufFile& f, const std::string& k, std::optional<int64_t> fallback,
                             int64_t max = 1 << 24) {
  Result<int64_t> v = fallback ? f.get_int_or(k, *fallback) : f.get_int(k);
  if (!v.ok()) return v.status();
  if (*v <= 0 || *v > max) {
    return Status::invalid_argument(f.path(), "metadata key '" + k + "' is " + std::to_string(*v) + " (must be 1.." +
                                                  std::to_string(max) + ")");
  }
  return static_cast<int32_t>(*v);
}

}  // namespace

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kQwen3: return "qwen3";
  }
  return "unknown";
}

Result<ModelConfig> read_model_config(const GgufFile& f) {
  ModelConfig c;
  Result<std::string_view> arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  c.arch_key = std::string(*arch);
  if (c.arch_key == "llama" || c.arch_key == "mistral") {
    c.arch = Arch::kLlama;
  } else if (c.arch_key == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (c.arch_key == "qwen3") {
    c.arch = Arch::kQwen3;
  } else {
    return Status::not_supported(f.path(), "architecture '" + c.arch_key +
                                               "' (supported: llama, mistral, qwen2, qwen3)");
  }
  Result<std::string_view> name = f.get_string_or("general.name", "");
  if (!name.ok()) return name.status();
  c.name = std::string(*name);
  const std::string& a = c.arch_key;

#define SN_ASSIGN(lhs, expr)          \
  do {                                \
    auto r_ = (expr);                 \
    if (!r_.ok()) return r_.status(); \
    lhs = *r_;                        \
  } while (0)

  SN_ASSIGN(c.n_embd, positive_int(f, key(a, "embedding_length"), std::nullopt));
  SN_ASSIGN(c.n_layer, positive_int(f, key(a, "block_count"), std::nullopt, 4096));
  SN_ASSIGN(c.n_ff, positive_int(f, key(a, "feed_forward_length"), std::nullopt));
  SN_ASSIGN(c.n_head, positive_int(f, key(a, "attention.head_count"), std::nullopt, 4096));
  if (const GgufKv* kv = f.find(key(a, "attention.head_count_kv")); kv != nullptr && kv->type == GgufType::kArray) {
    return Status::not_supported(f.path(), "per-layer attention.head_count_kv arrays");
  }
  SN_ASSIGN(c.n_head_kv, positive_int(f, key(a, "attention.head_count_kv"), c.n_head, 4096));
  if (c.n_head % c.n_head_kv != 0) {
    return Status::invalid_argument(f.path(), "attention.head_count " + std::to_string(c.n_head) +
                                                  " is not a multiple of attention.head_count_kv " +
                                                  std::to_string(c.n_head_kv));
  }
  if (c.n_embd % c.n_head != 0 && f.find(key(a, "attention.key_length")) == nullptr) {
    return Status::invalid_argument(f.path(), "embedding_length is not a multiple of attention.head_count");
  }
  SN_ASSIGN(c.head_dim, positive_int(f, key(a, "attention.key_length"), c.n_embd / std::max(1, c.n_head), 4096));
  int32_t value_length = 0;
  SN_ASSIGN(value_length, positive_int(f, key(a, "attention.value_length"), c.head_dim, 4096));
  if (value_length != c.head_dim) {
    return Status::not_supported(f.path(), "attention.value_length differing from attention.key_length");
  }
  SN_ASSIGN(c.n_ctx_train, positive_int(f, key(a, "context_length"), 2048, 1 << 26));
  double eps = 0;
  SN_ASSIGN(eps, f.get_float_or(key(a, "attention.layer_norm_rms_epsilon"), 1e-5));
  if (!(eps > 0 && eps < 1)) return Status::invalid_argument(f.path(), "layer_norm_rms_epsilon out of range");
  c.norm_eps = static_cast<float>(eps);

  double base = 0;
  SN_ASSIGN(base, f.get_float_or(key(a, "rope.freq_base"), 10000.0));
  if (!(base > 1.0 && std::isfinite(base))) return Status::invalid_argument(f.path(), "rope.freq_base out of range");
  c.rope.freq_base = static_cast<float>(base);
  SN_ASSIGN(c.rope.n_dims, positive_int(f, key(a, "rope.dimension_count"), c.head_dim, 4096));
  if (c.rope.n_dims > c.head_dim || c.rope.n_dims % 2 != 0) {
    return Status::invalid_argument(f.path(), "rope.dimension_count " + std::to_string(c.rope.n_dims) +
                                                  " must be even and at most the head size " +
                                                  std::to_string(c.head_dim));
  }
  std::string_view scaling;
  SN_ASSIGN(scaling, f.get_string_or(key(a, "rope.scaling.type"), "none"));
  double factor = 1.0;
  if (scaling == "linear") {
    SN_ASSIGN(factor, f.get_float_or(key(a, "rope.scaling.factor"), 1.0));
    if (!(factor >= 1.0 && factor < 1e6)) return Status::invalid_argument(f.path(), "rope.scaling.factor out of range");
  } else if (scaling != "none") {
    return Status::not_supported(f.path(), "rope.scaling.type '" + std::string(scaling) + "'");
  }
  c.rope.freq_scale = static_cast<float>(1.0 / factor);
  c.rope.neox = c.arch != Arch::kLlama;
  c.qkv_bias = c.arch == Arch::kQwen2;
  c.qk_norm = c.arch == Arch::kQwen3;

  if (f.find(key(a, "vocab_size")) != nullptr) {
    SN_ASSIGN(c.n_vocab, positive_int(f, key(a, "vocab_size"), std::nullopt, 1 << 22));
  } else {
    Result<const GgufArray*> tokens = f.get_array("tokenizer.ggml.tokens");
    if (!tokens.ok()) return tokens.status();
    c.n_vocab = static_cast<int32_t>((*tokens)->size());
  }
#undef SN_ASSIGN
  return c;
}

Result<std::unique_ptr<Model>> Model::load(const std::string& path, GgufOpenMode mode) {
  Result<GgufFile> f = GgufFile::open(path, mode);
  if (!f.ok()) return f.status();
  return from_gguf(std::move(*f));
}

Result<std::unique_ptr<Model>> Model::from_gguf(GgufFile file) {
  std::unique_ptr<Model> m(new Model(std::move(file)));
  SN_RETURN_IF_ERROR(m->init());
  return m;
}

Status Model::init() {
  const GgufFile& f = file_;
  if (f.tensors().empty()) {
    return Status::invalid_argument(f.path(), "has no tensors (a vocabulary-only file cannot run)");
  }
  Result<ModelConfig> cfg = read_model_config(f);
  if (!cfg.ok()) return cfg.status();
  config_ = std::move(*cfg);
  ModelConfig& c = config_;
  const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_head_kv} * c.head_dim;

  Result<hal::WeightView> w = weight(f, "token_embd.weight", c.n_embd, c.n_vocab, &weight_bytes_);
  if (!w.ok()) return w.status();
  token_embd_ = *w;
  if (f.tensor("output.weight") != nullptr) {
    w = weight(f, "output.weight", c.n_embd, c.n_vocab, &weight_bytes_);
    if (!w.ok()) return w.status();
    output_ = *w;
  } else {
    c.tied_embeddings = true;
    output_ = token_embd_;
  }
  Result<const float*> v = f32_vector(f, "output_norm.weight", c.n_embd, &weight_bytes_);
  if (!v.ok()) return v.status();
  output_norm_ = *v;
  v = f32_vector(f, "rope_freqs.weight", c.rope.n_dims / 2, &weight_bytes_, /*required=*/false);
  if (!v.ok()) return v.status();
  c.rope.freq_factors = *v;

  layers_.resize(c.n_layer);
  for (int i = 0; i < c.n_layer; ++i) {
    LayerWeights& L = layers_[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    struct Mat {
      hal::WeightView* dst;
      const char* name;
      int64_t cols, rows;
    };
    const Mat mats[] = {
        {&L.wq, "attn_q.weight", c.n_embd, q_dim},       {&L.wk, "attn_k.weight", c.n_embd, kv_dim},
        {&L.wv, "attn_v.weight", c.n_embd, kv_dim},      {&L.wo, "attn_output.weight", q_dim, c.n_embd},
        {&L.w_gate, "ffn_gate.weight", c.n_embd, c.n_ff}, {&L.w_up, "ffn_up.weight", c.n_embd, c.n_ff},
        {&L.w_down, "ffn_down.weight", c.n_ff, c.n_embd},
    };
    for (const Mat& m : mats) {
      w = weight(f, p + m.name, m.cols, m.rows, &weight_bytes_);
      if (!w.ok()) return w.status();
      *m.dst = *w;
    }
    struct Vec {
      const float** dst;
      const char* name;
      int64_t n;
      bool required;
    };
    const Vec vecs[] = {
        {&L.attn_norm, "attn_norm.weight", c.n_embd, true},
        {&L.ffn_norm, "ffn_norm.weight", c.n_embd, true},
        {&L.bq, "attn_q.bias", q_dim, c.qkv_bias},
        {&L.bk, "attn_k.bias", kv_dim, c.qkv_bias},
        {&L.bv, "attn_v.bias", kv_dim, c.qkv_bias},
        {&L.q_norm, "attn_q_norm.weight", c.head_dim, c.qk_norm},
        {&L.k_norm, "attn_k_norm.weight", c.head_dim, c.qk_norm},
    };
    for (const Vec& vv : vecs) {
      v = f32_vector(f, p + vv.name, vv.n, &weight_bytes_, vv.required);
      if (!v.ok()) return v.status();
      *vv.dst = *v;
    }
  }

  Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::from_gguf(f);
  if (!tok.ok()) return tok.status();
  tokenizer_ = std::move(*tok);
  if (tokenizer_->n_vocab() != c.n_vocab) {
    return Status::invalid_argument(f.path(), "the tokenizer has " + std::to_string(tokenizer_->n_vocab()) +
                                                  " tokens but token_embd.weight has " + std::to_string(c.n_vocab) +
                                                  " rows");
  }
  return Status::ok();
}

// ---- KV cache ----

KvCache::KvCache(const ModelConfig& config, int32_t n_blocks, int32_t block_size)
    : n_layer_(config.n_layer),
      n_kv_head_(config.n_head_kv),
      head_dim_(config.head_dim),
      n_blocks_(n_blocks),
      block_size_(block_size) {
  SN_CHECK(n_blocks > 0 && block_size > 0) << n_blocks << " blocks of " << block_size;
  block_elems_ = static_cast<size_t>(block_size) * n_kv_head_ * head_dim_;
  layer_elems_ = static_cast<size_t>(n_blocks) * block_elems_;
  k_.assign(layer_elems_ * n_layer_, 0);
  v_.assign(layer_elems_ * n_layer_, 0);
  free_.reserve(n_blocks);
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

hal::KvLayerView KvCache::layer(int32_t i) {
  SN_CHECK(i >= 0 && i < n_layer_) << "layer " << i;
  return hal::KvLayerView{k_.data() + layer_elems_ * i, v_.data() + layer_elems_ * i, block_size_, n_kv_head_,
                          head_dim_};
}

void KvCache::read_block(int32_t block, std::span<std::byte> out) const {
  SN_CHECK(block >= 0 && block < n_blocks_ && out.size() == block_bytes())
      << "block " << block << ", " << out.size() << " bytes";
  const size_t n = block_elems_ * sizeof(uint16_t);
  std::byte* dst = out.data();
  for (int32_t l = 0; l < n_layer_; ++l) {
    const size_t off = layer_elems_ * l + block_elems_ * block;
    std::memcpy(dst, k_.data() + off, n);
    std::memcpy(dst + n, v_.data() + off, n);
    dst += 2 * n;
  }
}

void KvCache::write_block(int32_t block, std::span<const std::byte> in) {
  SN_CHECK(block >= 0 && block < n_blocks_ && in.size() == block_bytes())
      << "block " << block << ", " << in.size() << " bytes";
  const size_t n = block_elems_ * sizeof(uint16_t);
  const std::byte* src = in.data();
  for (int32_t l = 0; l < n_layer_; ++l) {
    const size_t off = layer_elems_ * l + block_elems_ * block;
    std::memcpy(k_.data() + off, src, n);
    std::memcpy(v_.data() + off, src + n, n);
    src += 2 * n;
  }
}

int32_t KvCache::alloc() {
  if (free_.empty()) return -1;
  const int32_t b = free_.back();
  free_.pop_back();
  return b;
}

void KvCache::free(int32_t block) {
  SN_CHECK(block >= 0 && block < n_blocks_) << "block " << block;
  free_.push_back(block);
}

// ---- forward ----

Forward::Forward(const Model& model, hal::CpuBackend& backend, KvCache& cache)
    : model_(model), be_(backend), cache_(cache) {
  // Repack every matmul weight once into the backend's fastest layout (a no-op where it has
  // none, and for weights an earlier Forward on this backend already prepared).
  for (int il = 0; il < model_.config().n_layer; ++il) {
    const LayerWeights& L = model_.layer(il);
    for (const hal::WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) be_.prepare(*w);
  }
  be_.prepare(model_.output());
}

void Forward::ensure_capacity(int64_t n) {
  const ModelConfig& c = model_.config();
  const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_head_kv} * c.head_dim;
  auto grow = [](std::vector<float>& v, int64_t size) {
    if (static_cast<int64_t>(v.size()) < size) v.resize(size);
  };
  grow(x_, n * c.n_embd);
  grow(h_, n * std::max<int64_t>(c.n_embd, q_dim));
  grow(q_, n * q_dim);
  grow(k_, n * kv_dim);
  grow(v_, n * kv_dim);
  grow(attn_, n * q_dim);
  grow(gate_, n * c.n_ff);
  grow(up_, n * c.n_ff);
  grow(sel_, n * c.n_embd);
}

Status Forward::run(const Batch& batch, std::span<const int32_t* const> block_tables, std::vector<float>* logits) {
  const ModelConfig& c = model_.config();
  const int64_t n = static_cast<int64_t>(batch.size());
  if (batch.positions.size() != batch.tokens.size() || batch.seq.size() != batch.tokens.size() ||
      batch.want_logits.size() != batch.tokens.size()) {
    return Status::invalid_argument("batch", "tokens, positions, seq and want_logits differ in length");
  }
  if (n == 0) {
    logits->clear();
    return Status::ok();
  }
  for (int64_t t = 0; t < n; ++t) {
    if (batch.tokens[t] < 0 || batch.tokens[t] >= c.n_vocab) {
      return Status::invalid_argument("batch", "token id " + std::to_string(batch.tokens[t]) +
                                                   " is outside the vocabulary (0.." + std::to_string(c.n_vocab - 1) + ")");
    }
    if (batch.seq[t] < 0 || static_cast<size_t>(batch.seq[t]) >= block_tables.size()) {
      return Status::invalid_argument("batch", "sequence index " + std::to_string(batch.seq[t]) + " has no block table");
    }
    if (batch.positions[t] < 0) return Status::invalid_argument("batch", "negative position");
  }
  ensure_capacity(n);
  const int64_t E = c.n_embd;
  const int64_t q_dim = int64_t{c.n_head} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_head_kv} * c.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const hal::TokenPlacement tp{n, batch.positions.data(), batch.seq.data(), block_tables.data()};

  be_.get_rows(model_.token_embd(), batch.tokens.data(), n, x_.data());
  int64_t n_rows = n;  // rows still computed: all of them until the last layer's attention
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = model_.layer(il);
    be_.rms_norm(x_.data(), L.attn_norm, n, E, c.norm_eps, h_.data());
    be_.matmul(L.wq, h_.data(), n, q_.data(), q_dim);
    be_.matmul(L.wk, h_.data(), n, k_.data(), kv_dim);
    be_.matmul(L.wv, h_.data(), n, v_.data(), kv_dim);
    if (c.qkv_bias) {
      be_.add_bias(q_.data(), L.bq, n, q_dim);
      be_.add_bias(k_.data(), L.bk, n, kv_dim);
      be_.add_bias(v_.data(), L.bv, n, kv_dim);
    }
    if (c.qk_norm) {
      be_.rms_norm(q_.data(), L.q_norm, n * c.n_head, c.head_dim, c.norm_eps, q_.data());
      be_.rms_norm(k_.data(), L.k_norm, n * c.n_head_kv, c.head_dim, c.norm_eps, k_.data());
    }
    be_.rope(q_.data(), n, c.n_head, c.head_dim, batch.positions.data(), c.rope);
    be_.rope(k_.data(), n, c.n_head_kv, c.head_dim, batch.positions.data(), c.rope);
    hal::KvLayerView kv = cache_.layer(il);
    be_.kv_store(kv, tp, k_.data(), v_.data());
    be_.attention(kv, tp, q_.data(), c.n_head, scale, attn_.data());
    if (il == c.n_layer - 1) {
      // After the last attention only the rows whose logits are wanted matter: move them to
      // the front (in batch order) and finish the layer on those alone. Kernels are
      // batch-invariant, so their values do not change.
      int64_t kept = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (!batch.want_logits[t]) continue;
        if (kept != t) {
          std::memcpy(x_.data() + kept * E, x_.data() + t * E, E * sizeof(float));
          std::memcpy(attn_.data() + kept * q_dim, attn_.data() + t * q_dim, q_dim * sizeof(float));
        }
        ++kept;
      }
      n_rows = kept;
      if (n_rows == 0) break;
    }
    be_.matmul(L.wo, attn_.data(), n_rows, h_.data(), E);
    be_.add(x_.data(), h_.data(), n_rows * E, x_.data());

    be_.rms_norm(x_.data(), L.ffn_norm, n_rows, E, c.norm_eps, h_.data());
    be_.matmul(L.w_gate, h_.data(), n_rows, gate_.data(), c.n_ff);
    be_.matmul(L.w_up, h_.data(), n_rows, up_.data(), c.n_ff);
    be_.silu_mul(gate_.data(), up_.data(), n_rows * c.n_ff, gate_.data());
    be_.matmul(L.w_down, gate_.data(), n_rows, h_.data(), E);
    be_.add(x_.data(), h_.data(), n_rows * E, x_.data());
  }

  const int64_t n_out = n_rows;
  logits->resize(static_cast<size_t>(n_out) * c.n_vocab);
  if (n_out == 0) return Status::ok();
  be_.rms_norm(x_.data(), model_.output_norm(), n_out, E, c.norm_eps, sel_.data());
  be_.matmul(model_.output(), sel_.data(), n_out, logits->data(), c.n_vocab);
  return Status::ok();
}

// ---- session ----

Session::Session(const Model& model, hal::CpuBackend& backend, int32_t max_tokens)
    : cache_(model.config(), (std::max(max_tokens, 1) + 15) / 16, 16),
      forward_(model, backend, cache_),
      max_tokens_(std::max(max_tokens, 1)) {}

void Session::reset() {
  for (int32_t b : blocks_) cache_.free(b);
  blocks_.clear();
  n_past_ = 0;
}

void Session::transform_full_blocks(const std::function<void(std::span<std::byte>)>& f) {
  std::vector<std::byte> buf(cache_.block_bytes());
  const int32_t full = n_past_ / cache_.block_size();
  for (int32_t i = 0; i < full; ++i) {
    cache_.read_block(blocks_[static_cast<size_t>(i)], buf);
    f(buf);
    cache_.write_block(blocks_[static_cast<size_t>(i)], buf);
  }
}

Status Session::eval(std::span<const int32_t> tokens, std::vector<float>* logits, bool all_logits, int32_t n_batch) {
  if (n_past_ + static_cast<int64_t>(tokens.size()) > max_tokens_) {
    return Status::resource_exhausted("context", std::to_string(n_past_ + tokens.size()) +
                                                     " tokens exceed the context size of " + std::to_string(max_tokens_));
  }
  if (logits != nullptr) logits->clear();
  std::vector<float> step;
  size_t done = 0;
  while (done < tokens.size()) {
    const size_t chunk = std::min<size_t>(std::max(n_batch, 1), tokens.size() - done);
    batch_.clear();
    for (size_t i = 0; i < chunk; ++i) {
      const int32_t pos = n_past_ + static_cast<int32_t>(i);
      while (static_cast<int32_t>(blocks_.size()) * cache_.block_size() <= pos) {
        const int32_t b = cache_.alloc();
        SN_CHECK(b >= 0) << "session cache sized for " << max_tokens_ << " tokens ran out";
        blocks_.push_back(b);
      }
      const bool last = done + i + 1 == tokens.size();
      batch_.add(tokens[done + i], pos, 0, logits != nullptr && (all_logits || last));
    }
    const int32_t* table = blocks_.data();
    SN_RETURN_IF_ERROR(forward_.run(batch_, std::span<const int32_t* const>(&table, 1), &step));
    if (logits != nullptr) logits->insert(logits->end(), step.begin(), step.end());
    n_past_ += static_cast<int32_t>(chunk);
    done += chunk;
  }
  return Status::ok();
}

}  // namespace sn::engine
