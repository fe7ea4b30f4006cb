// Tiny GGUF models with random weights, so tests and a fresh install need no downloaded
// model. The vocabulary is small but real: SentencePiece-style (scored pieces with byte
// fallback) or byte-level BPE (merges, GPT-2 pre-tokenizer), built from an English word
// list so text round-trips through either tokenizer.
//
//   Result<std::string> bytes = generate_tiny_model({.tokenizer = TokenizerKind::kBpe});
//
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <string>

#include "supernode/base/status.h"
#include "supernode/engine/tokenizer.h"
#include "supernode/hal/dtype.h"

namespace sn::engine {

struct TinyModelSpec {
  std::string arch = "llama";  // llama, qwen2 (q/k/v biases) or qwen3 (q/k norms)
  TokenizerKind tokenizer = TokenizerKind::kSpm;
  int32_t n_embd = 64;
  int32_t n_layer = 2;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t n_ff = 128;
  int32_t n_ctx = 1024;
  hal::DType type = hal::DType::kF32;  // matrices: f32, f16 or bf16
  uint64_t seed = 1;
  std::string chat_template;  // tokenizer.chat_template; empty: none
};

// The GGUF file's bytes. Errors name the unsupported field.
[[nodiscard]] Result<std::string> generate_tiny_model(const TinyModelSpec& spec);

}  // namespace sn::engine
