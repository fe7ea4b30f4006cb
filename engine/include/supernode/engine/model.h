// A loaded transformer model (llama, qwen2, qwen3, mistral families) and the forward pass
// over a batch of tokens from many sequences, with a paged F16 KV cache.
//
//   Result<std::unique_ptr<Model>> model = Model::load("model.gguf");
//   hal::ThreadPool pool({.n_threads = 2});
//   hal::CpuBackend backend(pool, hal::best_isa());
//   KvCache cache((*model)->config(), /*n_blocks=*/256);
//   Forward fwd(**model, backend, cache);
//   Batch b;  // tokens, their positions and sequences, and which need logits
//   fwd.run(b, block_tables, &logits);
//
// The model describes what to compute; the backend decides how (which ISA). The caller
// (a Session here, the scheduler later) owns block allocation: every position a batch
// writes must already have a block in its sequence's table.
//
// Thread safety: a Model is immutable after load() and may be shared. A Forward and its
// KvCache are driven by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/engine/gguf.h"
#include "supernode/engine/tokenizer.h"
#include "supernode/hal/cpu_backend.h"

namespace sn::engine {

enum class Arch { kLlama, kQwen2, kQwen3 };
[[nodiscard]] const char* arch_name(Arch arch);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_key;   // general.architecture as written ("llama", "mistral", "qwen2", ...)
  std::string name;       // general.name
  int32_t n_vocab = 0;
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;   // per head (key_length), usually n_embd / n_head
  int32_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  hal::RopeParams rope;   // freq_factors filled from rope_freqs.weight when present
  bool tied_embeddings = false;  // no output.weight: the logits reuse token_embd
  bool qkv_bias = false;         // qwen2
  bool qk_norm = false;          // qwen3
};

struct LayerWeights {
  const float* attn_norm = nullptr;
  hal::WeightView wq, wk, wv, wo;
  const float* bq = nullptr;
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;
  hal::WeightView w_gate, w_up, w_down;
};

class Model {
 public:
  // Maps, validates (metadata, every tensor's presence, shape and type) and prepares the
  // tokenizer. Errors name the file and the key or tensor at fault.
  [[nodiscard]] static Result<std::unique_ptr<Model>> load(const std::string& path,
                                                           GgufOpenMode mode = GgufOpenMode::kMapped);
  // The same over an already opened file (vocabulary-only files fail: no tensors).
  [[nodiscard]] static Result<std::unique_ptr<Model>> from_gguf(GgufFile file);

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const Tokenizer& tokenizer() const { return *tokenizer_; }
  [[nodiscard]] const GgufFile& gguf() const { return file_; }
  [[nodiscard]] const hal::WeightView& token_embd() const { return token_embd_; }
  [[nodiscard]] const hal::WeightView& output() const { return output_; }
  [[nodiscard]] const float* output_norm() const { return output_norm_; }
  [[nodiscard]] const LayerWeights& layer(int i) const { return layers_[i]; }
  // Total bytes of weights (what one decode step streams).
  [[nodiscard]] uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  explicit Model(GgufFile file) : file_(std::move(file)) {}
  Status init();

  GgufFile file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  hal::WeightView token_embd_;
  hal::WeightView output_;
  const float* output_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  uint64_t weight_bytes_ = 0;
};

// Reads only the configuration (for `inspect` and validation).
[[nodiscard]] Result<ModelConfig> read_model_config(const GgufFile& file);

// The paged F16 KV cache of every layer: n_blocks blocks of block_size positions, with a
// simple free list. (The scheduler will own allocation policy; this is the storage.)
class KvCache {
 public:
  KvCache(const ModelConfig& config, int32_t n_blocks, int32_t block_size = 16);

  [[nodiscard]] int32_t block_size() const { return block_size_; }
  [[nodiscard]] int32_t n_blocks() const { return n_blocks_; }
  [[nodiscard]] int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  [[nodiscard]] hal::KvLayerView layer(int32_t i);

  // One block's KV as bytes, the payload the lower cache tiers keep: for each layer, the
  // block's K rows then its V rows (block_size x n_kv_head x head_dim F16 values each).
  [[nodiscard]] size_t block_bytes() const { return 2 * block_elems_ * n_layer_ * sizeof(uint16_t); }
  [[nodiscard]] int32_t head_dim() const { return head_dim_; }
  // REQUIRES: 0 <= block < n_blocks(), out.size() == block_bytes() (SN_CHECK).
  void read_block(int32_t block, std::span<std::byte> out) const;
  void write_block(int32_t block, std::span<const std::byte> in);

  // A free block id, or -1 when none is left.
  [[nodiscard]] int32_t alloc();
  void free(int32_t block);

 private:
  int32_t n_layer_;
  int32_t n_kv_head_;
  int32_t head_dim_;
  int32_t n_blocks_;
  int32_t block_size_;
  size_t layer_elems_;
  size_t block_elems_;  // one block of one layer's K (or V)
  std::vector<uint16_t> k_;
  std::vector<uint16_t> v_;
  std::vector<int32_t> free_;
};

// One forward step's input: tokens from any number of sequences, in any order.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;     // position of each token in its sequence
  std::vector<int32_t> seq;           // index into the block tables passed to run()
  std::vector<uint8_t> want_logits;   // 1 where the caller needs this token's logits

  void add(int32_t token, int32_t position, int32_t seq_index, bool logits) {
    tokens.push_back(token);
    positions.push_back(position);
    seq.push_back(seq_index);
    want_logits.push_back(logits ? 1 : 0);
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seq.clear();
    want_logits.clear();
  }
  [[nodiscard]] size_t size() const { return tokens.size(); }
};

class Forward {
 public:
  Forward(const Model& model, hal::CpuBackend& backend, KvCache& cache);

  // Runs the batch. On success `logits` holds n_vocab floats for each token with
  // want_logits, in batch order. Errors: token ids out of range, positions without a block.
  [[nodiscard]] Status run(const Batch& batch, std::span<const int32_t* const> block_tables,
                           std::vector<float>* logits);

 private:
  void ensure_capacity(int64_t n_tokens);

  const Model& model_;
  hal::CpuBackend& be_;
  KvCache& cache_;
  // Activations, sized for the largest batch seen.
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_, sel_;
};

// A single sequence with its own blocks: the simple path for the CLI and tests.
class Session {
 public:
  Session(const Model& model, hal::CpuBackend& backend, int32_t max_tokens);

  // Appends tokens and computes them in chunks of `n_batch`; when `logits` is given it
  // receives the logits of the last token (or of every token when `all_logits`).
  [[nodiscard]] Status eval(std::span<const int32_t> tokens, std::vector<float>* logits, bool all_logits = false,
                            int32_t n_batch = 512);
  // Forgets everything (positions restart at 0).
  void reset();
  // Rewrites the KV of every full block so far in place: `f` gets each block's bytes (the
  // layout of KvCache::read_block) and may change them. For measuring cache encodings.
  void transform_full_blocks(const std::function<void(std::span<std::byte>)>& f);
  [[nodiscard]] int32_t n_past() const { return n_past_; }
  [[nodiscard]] int32_t max_tokens() const { return max_tokens_; }

 private:
  KvCache cache_;
  Forward forward_;
  int32_t max_tokens_;
  int32_t n_past_ = 0;
  std::vector<int32_t> blocks_;
  Batch batch_;
};

}  // namespace sn::engine
