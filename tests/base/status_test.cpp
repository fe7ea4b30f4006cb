// Status and Result basics.
#include <string>

#include "supernode/base/status.h"

#include <CppUTest/TestHarness.h>

TEST_GROUP(Status){};

TEST(Status, OkIsOk) {
  sn::Status s = sn::Status::ok();
  CHECK_TRUE(s.is_ok());
  STRCMP_EQUAL("ok", s.to_string().c_str());
}

TEST(Status, MessageJoinsContextAndDetail) {
  sn::Status s = sn::Status::corruption("model.gguf", "tensor x extends past end of file");
  CHECK_FALSE(s.is_ok());
  CHECK(s.code() == sn::Status::Code::kCorruption);
  STRCMP_EQUAL("model.gguf: tensor x extends past end of file", s.message().c_str());
  STRCMP_EQUAL("corruption: model.gguf: tensor x extends past end of file", s.to_string().c_str());
  STRCMP_EQUAL("loading: model.gguf: tensor x extends past end of file",
               s.with_context("loading").message().c_str());
}

static sn::Result<int> parse_positive(int v) {
  if (v <= 0) return sn::Status::invalid_argument("value", std::to_string(v) + " is not positive");
  return v;
}

static sn::Status chain(int v) {
  SN_RETURN_IF_ERROR(parse_positive(v).status());
  return sn::Status::ok();
}

TEST(Status, ResultCarriesValueOrStatus) {
  sn::Result<int> good = parse_positive(3);
  CHECK_TRUE(good.ok());
  LONGS_EQUAL(3, *good);
  sn::Result<int> bad = parse_positive(-1);
  CHECK_FALSE(bad.ok());
  STRCMP_EQUAL("value: -1 is not positive", bad.status().message().c_str());
  CHECK_FALSE(chain(-2).is_ok());
  CHECK_TRUE(chain(2).is_ok());
}
