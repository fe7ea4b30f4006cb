// Loads and validates a GGUF vocabulary (every tokenizer.* key) into a tok::Vocab, with
// llama.cpp's defaults per model kind, its end-of-generation detection by token text and
// its special-token partition. Called by Tokenizer::from_gguf (tokenizer.cpp) and, for
// the partition, by every encode.
//
// Thread safety: load_vocab builds a new Vocab; partition_special only reads one. Both
// are safe from any thread.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <string>

#include "tokenizer_internal.h"

namespace sn::engine::tok {

namespace {

constexpr std::string_view kPrefix = "tokenizer.";

bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool is_numeric(GgufType t) {
  return is_integer(t) || t == GgufType::kFloat32 || t == GgufType::kFloat64;
}

Status bad_key(const GgufFile& file, std::string_view key, const std::string& detail) {
  return Status::invalid_argument(file.path() + ": " + std::string(key), detail);
}

Status wrong_type(const GgufFile& file, const GgufKv& kv, const char* want) {
  std::string got = gguf_type_name(kv.type);
  if (kv.type == GgufType::kArray) got += std::string(" of ") + gguf_type_name(kv.array.type());
  return bad_key(file, kv.key, std::string("expected ") + want + ", found " + got);
}

// The special-token id keys: GGUF stores them as u32 with 0xFFFFFFFF (or -1) for "none".
constexpr std::string_view kIdKeys[] = {
    "tokenizer.ggml.bos_token_id",    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.cls_token_id",
    "tokenizer.ggml.mask_token_id",    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",     "tokenizer.ggml.prefix_token_id",
    "tokenizer.ggml.suffix_token_id",  "tokenizer.ggml.middle_token_id",
    "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id",
};
constexpr std::string_view kBoolKeys[] = {
    "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_sep_token", "tokenizer.ggml.add_space_prefix",
    "tokenizer.ggml.remove_extra_whitespaces",
};

// Checks the type of every tokenizer.* key we know; unknown keys are left alone (newer
// converters add keys we do not use).
Status check_key_types(const GgufFile& file) {
  for (const GgufKv& kv : file.kvs()) {
    const std::string_view key = kv.key;
    if (key.substr(0, kPrefix.size()) != kPrefix) continue;
    const bool is_array = kv.type == GgufType::kArray;
    const GgufType elem = is_array ? kv.array.type() : kv.type;
    if (key == "tokenizer.ggml.model" || key == "tokenizer.ggml.pre" ||
        key == "tokenizer.huggingface.json" || key == "tokenizer.rwkv.world" ||
        key.substr(0, 23) == "tokenizer.chat_template") {
      if (kv.type != GgufType::kString) return wrong_type(file, kv, "a string");
    } else if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.merges") {
      if (!is_array || elem != GgufType::kString) return wrong_type(file, kv, "an array of strings");
    } else if (key == "tokenizer.ggml.scores") {
      if (!is_array || !is_numeric(elem)) return wrong_type(file, kv, "an array of numbers");
    } else if (key == "tokenizer.ggml.token_type") {
      if (!is_array || !is_integer(elem)) return wrong_type(file, kv, "an array of integers");
    } else if (key == "tokenizer.ggml.precompiled_charsmap") {
      if (!is_array || !is_integer(elem)) return wrong_type(file, kv, "an array of bytes");
    } else if (key == "tokenizer.ggml.token_type_count") {
      if (!is_integer(kv.type)) return wrong_type(file, kv, "an integer");
    } else if (std::find(std::begin(kIdKeys), std::end(kIdKeys), key) != std::end(kIdKeys)) {
      if (!is_integer(kv.type)) return wrong_type(file, kv, "an integer token id");
    } else if (std::find(std::begin(kBoolKeys), std::end(kBoolKeys), key) != std::end(kBoolKeys)) {
      if (kv.type != GgufType::kBool) return wrong_type(file, kv, "a bool");
    }
  }
  return Status::ok();
}

// Reads a special-token id key: nullopt-like -2 when absent, -1 for "none".
Result<int32_t> read_id(const GgufFile& file, std::string_view key, int32_t n_tokens) {
  const GgufKv* kv = file.find(key);
  if (kv == nullptr) return -2;
  int64_t v = 0;
  if (kv->type == GgufType::kUint64 || kv->type == GgufType::kUint32 ||
      kv->type == GgufType::kUint16 || kv->type == GgufType::kUint8) {
    if (kv->type == GgufType::kUint32 && kv->u == 0xFFFFFFFFu) return -1;
    if (kv->type == GgufType::kUint64 && kv->u == std::numeric_limits<uint64_t>::max()) return -1;
    if (kv->u > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return bad_key(file, key, "token id " + std::to_string(kv->u) + " is out of range (vocabulary has " +
                                    std::to_string(n_tokens) + " tokens)");
    }
    v = static_cast<int64_t>(kv->u);
  } else {
    v = kv->i;
  }
  if (v == -1) return -1;
  if (v < 0 || v >= n_tokens) {
    return bad_key(file, key, "token id " + std::to_string(v) + " is out of range (vocabulary has " +
                                  std::to_string(n_tokens) + " tokens)");
  }
  return static_cast<int32_t>(v);
}

// The pre-tokenizer names whose llama.cpp defaults differ (add BOS, keep whole tokens).
bool pre_is_llama3_like(std::string_view pre) {
  return pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
         pre == "falcon-h1" || pre == "pixtral" || pre == "midm-2.0" || pre == "lfm2";
}

// Token texts llama.cpp treats as end of generation (and as control tokens) whatever
// their stored type: chat-turn terminators of the common model families.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
};
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",  // DeepSeek
    "<end_of_utterance>",
};

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<std::unique_ptr<Vocab>> load_vocab(const GgufFile& file) {
  SN_RETURN_IF_ERROR(check_key_types(file));
  auto vocab = std::make_unique<Vocab>();

  const GgufKv* model_kv = file.find("tokenizer.ggml.model");
  if (model_kv == nullptr) {
    return Status::invalid_argument(file.path() + ": tokenizer.ggml.model", "missing (the file has no vocabulary)");
  }
  const std::string_view model = model_kv->s;
  if (model == "llama") {
    vocab->kind = VocabKind::kSpm;
  } else if (model == "gpt2") {
    vocab->kind = VocabKind::kBpe;
  } else if (model == "bert" || model == "t5" || model == "rwkv" || model == "plamo2" ||
             model == "no_vocab" || model == "none") {
    return Status::not_supported(file.path() + ": tokenizer.ggml.model",
                                 "tokenizer '" + std::string(model) +
                                     "' is not supported (supported: llama, gpt2)");
  } else {
    return bad_key(file, "tokenizer.ggml.model",
                   "unknown tokenizer '" + std::string(model) + "' (supported: llama, gpt2)");
  }

  const GgufKv* tokens_kv = file.find("tokenizer.ggml.tokens");
  if (tokens_kv == nullptr) return bad_key(file, "tokenizer.ggml.tokens", "missing");
  const GgufArray& tokens = tokens_kv->array;
  if (tokens.size() == 0) return bad_key(file, "tokenizer.ggml.tokens", "is empty");
  if (tokens.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return bad_key(file, "tokenizer.ggml.tokens", "has too many tokens (" + std::to_string(tokens.size()) + ")");
  }
  const size_t n = tokens.size();
  const auto n_tokens = static_cast<int32_t>(n);

  const GgufKv* scores_kv = file.find("tokenizer.ggml.scores");
  if (scores_kv != nullptr && scores_kv->array.size() != n) {
    return bad_key(file, "tokenizer.ggml.scores",
                   "has " + std::to_string(scores_kv->array.size()) + " entries, tokenizer.ggml.tokens has " +
                       std::to_string(n));
  }
  const GgufKv* types_kv = file.find("tokenizer.ggml.token_type");
  if (types_kv != nullptr && types_kv->array.size() != n) {
    return bad_key(file, "tokenizer.ggml.token_type",
                   "has " + std::to_string(types_kv->array.size()) + " entries, tokenizer.ggml.tokens has " +
                       std::to_string(n));
  }

  vocab->text.resize(n);
  vocab->score.assign(n, 0.0f);
  vocab->attr.assign(n, kAttrNormal);
  vocab->to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    vocab->text[i] = std::string(tokens.str(i));
    // As llama.cpp: a repeated text maps to its last id.
    vocab->to_id[vocab->text[i]] = static_cast<int32_t>(i);
    if (scores_kv != nullptr) vocab->score[i] = static_cast<float>(scores_kv->array.as_float(i));
    if (types_kv != nullptr) {
      const int64_t t = types_kv->array.as_int(i);
      static constexpr uint32_t kByType[] = {kAttrUndefined, kAttrNormal,      kAttrUnknown, kAttrControl,
                                             kAttrUserDefined, kAttrUnused, kAttrByte};
      if (t < 0 || t > 6) {
        return bad_key(file, "tokenizer.ggml.token_type",
                       "token " + std::to_string(i) + " has type " + std::to_string(t) + " (valid: 0-6)");
      }
      vocab->attr[i] = kByType[t];
    }
  }

  Result<std::string_view> pre = file.get_string_or("tokenizer.ggml.pre", "default");
  if (!pre.ok()) return pre.status();
  vocab->pre = std::string(*pre);

  if (vocab->kind == VocabKind::kBpe) {
    const GgufKv* merges_kv = file.find("tokenizer.ggml.merges");
    if (merges_kv == nullptr) return bad_key(file, "tokenizer.ggml.merges", "missing (required by gpt2 vocabularies)");
    const GgufArray& merges = merges_kv->array;
    vocab->merge_rank.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string_view m = merges.str(r);
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (sp == std::string_view::npos) {
        return bad_key(file, "tokenizer.ggml.merges",
                       "merge " + std::to_string(r) + " '" + std::string(m) + "' is not of the form 'a b'");
      }
      const int32_t a = vocab->find(m.substr(0, sp));
      const int32_t b = vocab->find(m.substr(sp + 1));
      if (a < 0 || b < 0) {
        return bad_key(file, "tokenizer.ggml.merges",
                       "merge " + std::to_string(r) + " '" + std::string(m) + "': '" +
                           std::string(a < 0 ? m.substr(0, sp) : m.substr(sp + 1)) + "' is not a token");
      }
      const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
      vocab->merge_rank.emplace(key, static_cast<int32_t>(r));  // the first rank wins
    }
  }

  // Defaults per kind (llama.cpp's), then the metadata.
  auto in_range = [&](int32_t id) { return id < n_tokens ? id : -1; };
  if (vocab->kind == VocabKind::kSpm) {
    vocab->bos = in_range(1), vocab->eos = in_range(2), vocab->unk = 0;
    vocab->add_bos = true, vocab->add_eos = false, vocab->add_space_prefix = true;
  } else {
    vocab->bos = in_range(11), vocab->eos = in_range(11);
    vocab->add_bos = pre_is_llama3_like(vocab->pre) || vocab->pre == "tekken" || vocab->pre == "chameleon";
    vocab->add_space_prefix = false;
    vocab->ignore_merges = pre_is_llama3_like(vocab->pre) || vocab->pre == "tekken";
  }
  int32_t fim_ids[3] = {-1, -1, -1};
  for (std::string_view key : kIdKeys) {
    Result<int32_t> id = read_id(file, key, n_tokens);
    if (!id.ok()) return id.status();
    if (*id == -2) continue;
    if (key == "tokenizer.ggml.bos_token_id") vocab->bos = *id;
    if (key == "tokenizer.ggml.eos_token_id") vocab->eos = *id;
    if (key == "tokenizer.ggml.unknown_token_id") vocab->unk = *id;
    if (key == "tokenizer.ggml.eot_token_id") vocab->eot = *id;
    if (key == "tokenizer.ggml.eom_token_id") vocab->eom = *id;
    if (key == "tokenizer.ggml.fim_pad_token_id") fim_ids[0] = *id;
    if (key == "tokenizer.ggml.fim_rep_token_id") fim_ids[1] = *id;
    if (key == "tokenizer.ggml.fim_sep_token_id") fim_ids[2] = *id;
  }
  for (auto [key, dst] : {std::pair{"tokenizer.ggml.add_bos_token", &vocab->add_bos},
                          std::pair{"tokenizer.ggml.add_eos_token", &vocab->add_eos},
                          std::pair{"tokenizer.ggml.add_space_prefix", &vocab->add_space_prefix}}) {
    Result<bool> v = file.get_bool_or(key, *dst);
    if (!v.ok()) return v.status();
    *dst = *v;
  }
  if (vocab->unk >= n_tokens) vocab->unk = -1;

  // End of generation: EOS, EOT, EOM, FIM pad/rep/sep, and turn terminators found by
  // text (which llama.cpp also marks as control tokens so they print only on request).
  vocab->eog.assign(n, 0);
  auto mark_control = [&](int32_t id) {
    if ((vocab->attr[id] & kAttrControl) == 0) vocab->attr[id] = kAttrControl;
  };
  if (vocab->eot < 0) {
    for (std::string_view t : kEotTexts) {
      const int32_t id = vocab->find(t);
      if (id >= 0) {
        vocab->eot = id;
        mark_control(id);
        break;
      }
    }
  }
  if (vocab->eom < 0) {
    const int32_t id = vocab->find("<|eom_id|>");
    if (id >= 0) vocab->eom = id, mark_control(id);
  }
  for (std::string_view t : kEogTexts) {
    const int32_t id = vocab->find(t);
    if (id >= 0) {
      vocab->eog[id] = 1;
      mark_control(id);
    }
  }
  for (int32_t id : {vocab->eos, vocab->eot, vocab->eom, fim_ids[0], fim_ids[1], fim_ids[2]}) {
    if (id >= 0) vocab->eog[id] = 1;
  }

  for (int32_t id = 0; id < n_tokens; ++id) {
    if ((vocab->attr[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) != 0 && !vocab->text[id].empty()) {
      vocab->special_cache.push_back(id);
    }
  }
  std::stable_sort(vocab->special_cache.begin(), vocab->special_cache.end(), [&](int32_t a, int32_t b) {
    return vocab->text[a].size() > vocab->text[b].size();
  });

  // Phi-3 strips whitespace after its special tokens (llama.cpp keys this on the model
  // name because the attribute is missing from GGUF files).
  Result<std::string_view> name = file.get_string_or("general.name", "");
  if (name.ok()) {
    const std::string lower = lowercase(*name);
    if (lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos) {
      for (int32_t id : vocab->special_cache) vocab->attr[id] |= kAttrRstrip;
      auto set_rstrip = [&](std::string_view t, bool on) {
        const int32_t id = vocab->find(t);
        if (id < 0) return;
        vocab->attr[id] = on ? (vocab->attr[id] | kAttrRstrip) : (vocab->attr[id] & ~kAttrRstrip);
      };
      set_rstrip("</s>", true);
      for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set_rstrip(t, false);
    }
  }
  return vocab;
}

std::vector<Fragment> partition_special(const Vocab& vocab, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::vector<Fragment> next;
  for (int32_t id : vocab.special_cache) {
    const uint32_t attr = vocab.attr[id];
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown)) != 0) continue;
    const std::string& needle = vocab.text[id];
    bool any = false;
    for (const Fragment& f : frags) {
      if (f.token < 0 && text.substr(f.offset, f.length).find(needle) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      while (pos < end) {
        const size_t match = text.substr(0, end).find(needle, pos);
        if (match == std::string_view::npos) {
          next.push_back({-1, pos, end - pos});
          break;
        }
        size_t left_len = match - pos;
        if ((attr & kAttrLstrip) != 0) {
          while (left_len > 0 && is_space(text[pos + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back({-1, pos, left_len});
        next.push_back({id, match, needle.size()});
        pos = match + needle.size();
        if ((attr & kAttrRstrip) != 0) {
          while (pos < end && is_space(text[pos])) ++pos;
        }
      }
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace sn::engine::tok
