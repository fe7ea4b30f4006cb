// The GGUF reader: real files, generated files, and malformed input of every kind.
#include <cstring>
#include <string>

#include "supernode/engine/gguf.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::engine::GgufFile;
using sn::engine::GgufType;
using sn::engine::GgufWriter;
using sn::hal::DType;

namespace {

std::string small_file() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 2);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.add_f32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 2.0f});
  w.add_tensor("t0", {32, 2}, DType::kF32, std::string(32 * 2 * 4, '\x01'));
  w.add_tensor("t1", {64}, DType::kQ8_0, std::string(68, '\x02'));
  return w.serialize();
}

bool message_contains(const sn::Status& s, const char* what) {
  return s.message().find(what) != std::string::npos;
}

}  // namespace

TEST_GROUP(Gguf){};

TEST(Gguf, RoundTripsWriterOutput) {
  sn::Result<GgufFile> f = GgufFile::from_bytes("mem.gguf", small_file());
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  LONGS_EQUAL(3, f->version());
  STRCMP_EQUAL("llama", std::string(*f->get_string("general.architecture")).c_str());
  LONGS_EQUAL(2, *f->get_int("llama.block_count"));
  DOUBLES_EQUAL(10000.0, *f->get_float("llama.rope.freq_base"), 0.0);
  CHECK_TRUE(*f->get_bool("tokenizer.ggml.add_bos_token"));
  const sn::engine::GgufArray* tokens = *f->get_array("tokenizer.ggml.tokens");
  LONGS_EQUAL(3, tokens->size());
  STRCMP_EQUAL("c", std::string(tokens->str(2)).c_str());
  DOUBLES_EQUAL(-1.0, (*f->get_array("tokenizer.ggml.scores"))->as_float(1), 0.0);
  LONGS_EQUAL(2, f->tensors().size());
  const sn::engine::GgufTensor* t1 = f->tensor("t1");
  CHECK(t1 != nullptr);
  CHECK(t1->type == DType::kQ8_0);
  LONGS_EQUAL(68, t1->n_bytes);
  LONGS_EQUAL(0, (reinterpret_cast<uintptr_t>(t1->data) - reinterpret_cast<uintptr_t>(f->tensor("t0")->data)) % 32);
  LONGS_EQUAL(2, t1->data[0]);
}

TEST(Gguf, TypedGettersNameKeyAndTypes) {
  sn::Result<GgufFile> f = GgufFile::from_bytes("mem.gguf", small_file());
  CHECK_TRUE(f.ok());
  sn::Result<int64_t> missing = f->get_int("llama.nope");
  CHECK_FALSE(missing.ok());
  CHECK(missing.status().code() == sn::Status::Code::kNotFound);
  CHECK(message_contains(missing.status(), "llama.nope"));
  sn::Result<int64_t> wrong = f->get_int("general.architecture");
  CHECK_FALSE(wrong.ok());
  CHECK(message_contains(wrong.status(), "has type string, expected an integer"));
  LONGS_EQUAL(7, *f->get_int_or("llama.nope", 7));
  CHECK_FALSE(f->get_int_or("general.architecture", 7).ok());
}

TEST(Gguf, RejectsBadHeaders) {
  std::string good = small_file();
  sn::Result<GgufFile> r = GgufFile::from_bytes("x.gguf", "");
  CHECK(message_contains(r.status(), "empty file"));
  std::string bad = good;
  bad[0] = 'X';
  r = GgufFile::from_bytes("x.gguf", bad);
  CHECK(message_contains(r.status(), "not a GGUF file"));
  bad = good;
  bad[4] = 1;
  r = GgufFile::from_bytes("x.gguf", bad);
  CHECK(message_contains(r.status(), "GGUF version 1"));
  bad = good;
  const uint64_t huge = 1ull << 60;
  std::memcpy(&bad[16], &huge, 8);  // metadata count
  r = GgufFile::from_bytes("x.gguf", bad);
  CHECK(message_contains(r.status(), "cannot fit"));
  bad = good;
  std::memcpy(&bad[8], &huge, 8);  // tensor count
  r = GgufFile::from_bytes("x.gguf", bad);
  CHECK(message_contains(r.status(), "cannot fit"));
}

TEST(Gguf, RejectsBadTensors) {
  {
    GgufWriter w;
    w.add_tensor("a", {32}, DType::kF32, std::string(128, 0));
    std::string bytes = w.serialize();
    bytes.resize(bytes.size() - 1);  // truncated data
    sn::Result<GgufFile> r = GgufFile::from_bytes("t.gguf", bytes);
    CHECK_FALSE(r.ok());
    CHECK(message_contains(r.status(), "tensor 'a' extends past end of file"));
  }
  {
    GgufWriter w;
    w.add_tensor("a", {32}, DType::kF32, std::string(128, 0));
    std::string bytes = w.serialize();
    // The tensor info follows the header: name len (8) + "a" + rank (4) + dim (8) + type (4).
    const size_t type_at = 24 + 8 + 1 + 4 + 8;
    uint32_t t = 4;  // the removed q4_2
    std::memcpy(&bytes[type_at], &t, 4);
    sn::Result<GgufFile> r = GgufFile::from_bytes("t.gguf", bytes);
    CHECK(message_contains(r.status(), "unknown tensor type 4"));
    t = 2;  // q4_0 with a 32-element row: 18 bytes, fits; fine
    std::memcpy(&bytes[type_at], &t, 4);
    CHECK_TRUE(GgufFile::from_bytes("t.gguf", bytes).ok());
    uint64_t off = 3;
    std::memcpy(&bytes[type_at + 4], &off, 8);
    r = GgufFile::from_bytes("t.gguf", bytes);
    CHECK(message_contains(r.status(), "not a multiple of the alignment"));
    int64_t dim = -5;
    std::memcpy(&bytes[24 + 8 + 1 + 4], &dim, 8);
    r = GgufFile::from_bytes("t.gguf", bytes);
    CHECK(message_contains(r.status(), "dimension 0 is -5"));
  }
  {
    GgufWriter w;
    w.add_tensor("a", {32}, DType::kF32, std::string(128, 0));
    w.add_tensor("a", {32}, DType::kF32, std::string(128, 0));
    sn::Result<GgufFile> r = GgufFile::from_bytes("t.gguf", w.serialize());
    CHECK(message_contains(r.status(), "duplicate tensor name 'a'"));
  }
  {
    GgufWriter w;
    w.add_u32("k", 1);
    w.add_u32("k", 2);
    sn::Result<GgufFile> r = GgufFile::from_bytes("t.gguf", w.serialize());
    CHECK(message_contains(r.status(), "duplicate key 'k'"));
  }
}

TEST(Gguf, MissingFileIsNotFound) {
  sn::Result<GgufFile> r = GgufFile::open("/nonexistent/model.gguf");
  CHECK(r.status().code() == sn::Status::Code::kNotFound);
  CHECK(message_contains(r.status(), "/nonexistent/model.gguf"));
}

TEST(Gguf, EveryTruncationIsAnError) {
  const std::string good = small_file();
  for (size_t n = 0; n < good.size(); ++n) {
    sn::Result<GgufFile> r = GgufFile::from_bytes("t.gguf", good.substr(0, n));
    CHECK_FALSE_TEXT(r.ok(), ("truncated to " + std::to_string(n)).c_str());
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_GROUP(ModelGguf){};

TEST(ModelGguf, ReadsSharedModels) {
  std::optional<std::string> path = sn::testing::shared_file("models/stories260K.gguf");
  if (!path) return;
  sn::Result<GgufFile> f = GgufFile::open(*path);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  LONGS_EQUAL(48, f->tensors().size());
  LONGS_EQUAL(5, *f->get_int("llama.block_count"));
  const sn::engine::GgufTensor* out = f->tensor("output.weight");
  CHECK(out != nullptr);
  LONGS_EQUAL(64, out->dims[0]);
  LONGS_EQUAL(512, out->dims[1]);
  // The last tensor ends exactly at the end of the file.
  uint64_t end = 0;
  for (const auto& t : f->tensors()) end = std::max<uint64_t>(end, f->data_offset() + t.offset + t.n_bytes);
  LONGS_EQUAL(f->file_size(), end);

  std::optional<std::string> vocab = sn::testing::shared_file("models/tokenizer-tests/ggml-vocab-deepseek-llm.gguf");
  if (!vocab) return;
  sn::Result<GgufFile> v = GgufFile::open(*vocab);
  CHECK_TRUE_TEXT(v.ok(), v.status().to_string().c_str());
  LONGS_EQUAL(0, v->tensors().size());
  LONGS_EQUAL(102400, (*v->get_array("tokenizer.ggml.tokens"))->size());
}
