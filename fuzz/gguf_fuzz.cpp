// libFuzzer target: the GGUF reader (engine/gguf.h) on arbitrary bytes, held in memory
// (GgufFile::from_bytes), then everything a loader reads from a file that validated: every
// key through the typed getters, every array element, every tensor's bytes, the tokenizer
// (encode/decode of a fixed text), the chat template and the model configuration, and
// Model::from_gguf last (it takes the file). A malformed file must fail with a Status that
// says why; nothing may read outside the file (ASan) or hit undefined behaviour (UBSan).
// Seeds: corpus/gguf/ (tiny generated models); dictionary: gguf.dict.
// Thread safety: libFuzzer calls the entry point from one thread.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/check.h"
#include "supernode/engine/chat_template.h"
#include "supernode/engine/gguf.h"
#include "supernode/engine/model.h"
#include "supernode/engine/tokenizer.h"

namespace {

using sn::Result;
using sn::engine::GgufArray;
using sn::engine::GgufFile;
using sn::engine::GgufKv;
using sn::engine::GgufTensor;
using sn::engine::GgufType;

// Bounds on the work one input may cause, so that a large but valid vocabulary or tensor
// table does not turn into a slow unit.
constexpr size_t kMaxArrayElements = 4096;
constexpr int32_t kMaxTokensToPiece = 2048;

// A status that explains itself: every failure names what is wrong.
void check_failure(const sn::Status& s) { SN_CHECK(!s.is_ok() && !s.message().empty()) << s.to_string(); }

void read_array(const GgufArray& a) {
  const size_t n = std::min(a.size(), kMaxArrayElements);
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    switch (a.type()) {
      case GgufType::kString: bytes += a.str(i).size(); break;
      case GgufType::kFloat32:
      case GgufType::kFloat64: (void)a.as_float(i); break;
      case GgufType::kArray: break;  // nested arrays: the reader keeps no elements
      default:
        (void)a.as_int(i);
        (void)a.as_float(i);
        break;
    }
  }
  (void)bytes;
}

void read_kvs(const GgufFile& f) {
  for (const GgufKv& kv : f.kvs()) {
    SN_CHECK(f.find(kv.key) != nullptr) << "key " << kv.key << " listed but not found";
    (void)sn::engine::gguf_type_name(kv.type);
    // Each getter either answers or says why it cannot (wrong type): never both.
    if (Result<int64_t> v = f.get_int(kv.key); !v.ok()) check_failure(v.status());
    if (Result<double> v = f.get_float(kv.key); !v.ok()) check_failure(v.status());
    if (Result<bool> v = f.get_bool(kv.key); !v.ok()) check_failure(v.status());
    if (Result<std::string_view> v = f.get_string(kv.key); !v.ok()) check_failure(v.status());
    if (Result<const GgufArray*> v = f.get_array(kv.key); v.ok()) {
      read_array(**v);
    } else {
      check_failure(v.status());
    }
  }
}

void read_tensors(const GgufFile& f) {
  uint64_t sum = 0;
  for (const GgufTensor& t : f.tensors()) {
    SN_CHECK(f.tensor(t.name) != nullptr) << "tensor " << t.name << " listed but not found";
    (void)t.n_elements();
    SN_CHECK(t.offset + t.n_bytes <= f.file_size()) << "tensor " << t.name << " past the end";
    if (t.n_bytes > 0) {
      SN_CHECK(t.data != nullptr) << "tensor " << t.name << " has no data";
      sum += t.data[0] + t.data[t.n_bytes - 1];  // ASan: both ends are inside the file
    }
  }
  (void)sum;
}

void use_tokenizer(const GgufFile& f) {
  Result<std::unique_ptr<sn::engine::Tokenizer>> tok = sn::engine::Tokenizer::from_gguf(f);
  if (!tok.ok()) {
    check_failure(tok.status());
    return;
  }
  const sn::engine::Tokenizer& t = **tok;
  const std::string text = "Hello world, <s> it's 42 \xC3\xA9t\xC3\xA9!\n  \xE2\x96\x81x \xFF";
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = t.encode(text, {.add_special = special, .parse_special = special});
    for (int32_t id : ids) SN_CHECK(id >= 0 && id < t.n_vocab()) << "encode gave token " << id;
    (void)t.decode(ids, special);
    sn::engine::IncrementalDetokenizer detok(t, special);
    for (int32_t id : ids) (void)detok.push(id);
    (void)detok.flush();
  }
  const int32_t n = std::min(t.n_vocab(), kMaxTokensToPiece);
  for (int32_t id = -1; id <= n; ++id) {
    (void)t.token_to_piece(id, id % 2 == 0);
    (void)t.is_eog(id);
  }
}

void use_chat_template(const GgufFile& f) {
  Result<sn::engine::GgufChatTemplate> src = sn::engine::chat_template_from_gguf(f);
  if (!src.ok()) {
    check_failure(src.status());
    return;
  }
  sn::engine::ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_loop_iterations = 100'000;
  Result<sn::engine::ChatTemplate> tmpl = sn::engine::ChatTemplate::parse(src->source, limits);
  if (!tmpl.ok()) {
    check_failure(tmpl.status());
    return;
  }
  Result<sn::engine::JsonValue> msgs =
      sn::engine::json_parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])");
  SN_CHECK(msgs.ok());
  sn::engine::ChatTemplateInputs in;
  in.messages = *msgs;
  in.add_generation_prompt = true;
  in.bos_token = src->bos_token;
  in.eos_token = src->eos_token;
  in.now = std::tm{};
  if (Result<std::string> out = tmpl->render(in); !out.ok()) check_failure(out.status());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Result<GgufFile> f = GgufFile::from_bytes("fuzz.gguf", bytes);
  if (!f.ok()) {
    check_failure(f.status());
    return 0;
  }
  SN_CHECK(f->file_size() == size);
  SN_CHECK(f->tensors().empty() || f->data_offset() <= size);  // no tensors: the data section may be past the end
  read_kvs(*f);
  read_tensors(*f);
  use_tokenizer(*f);
  use_chat_template(*f);
  if (Result<sn::engine::ModelConfig> c = sn::engine::read_model_config(*f); !c.ok()) check_failure(c.status());
  if (Result<std::unique_ptr<sn::engine::Model>> m = sn::engine::Model::from_gguf(std::move(*f)); !m.ok()) {
    check_failure(m.status());
  }
  return 0;
}
