// The dtype table and the scalar f16/bf16 conversions.
#include <cmath>
#include <cstring>

#include "supernode/hal/dtype.h"
#include "supernode/hal/fp16.h"

#include <CppUTest/TestHarness.h>

using sn::hal::DType;

TEST_GROUP(DType){};

TEST(DType, BlockGeometryMatchesGgml) {
  LONGS_EQUAL(18, sn::hal::dtype_info(DType::kQ4_0).block_bytes);
  LONGS_EQUAL(32, sn::hal::dtype_info(DType::kQ4_0).block_elems);
  LONGS_EQUAL(210, sn::hal::dtype_info(DType::kQ6_K).block_bytes);
  LONGS_EQUAL(256, sn::hal::dtype_info(DType::kQ6_K).block_elems);
  LONGS_EQUAL(144, *sn::hal::dtype_row_bytes(DType::kQ4_K, 256));
  LONGS_EQUAL(2048 / 32 * 34, *sn::hal::dtype_row_bytes(DType::kQ8_0, 2048));
  CHECK_FALSE(sn::hal::dtype_row_bytes(DType::kQ4_0, 33).has_value());
  CHECK_FALSE(sn::hal::dtype_info(uint32_t{4}).has_value());   // removed q4_2
  CHECK_FALSE(sn::hal::dtype_info(uint32_t{1000}).has_value());
  STRCMP_EQUAL("q5_K", sn::hal::dtype_name(DType::kQ5_K));
  CHECK_FALSE(sn::hal::dtype_info(DType::kQ2_K).computable);
  CHECK_TRUE(sn::hal::dtype_info(DType::kBF16).computable);
}

TEST_GROUP(Fp16){};

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = sn::hal::fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    LONGS_EQUAL(h, sn::hal::fp32_to_fp16(f));
  }
}

TEST(Fp16, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
  LONGS_EQUAL(0x3C00, sn::hal::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)));
  LONGS_EQUAL(0x3C01, sn::hal::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)));
  LONGS_EQUAL(0x7C00, sn::hal::fp32_to_fp16(70000.0f));
  LONGS_EQUAL(0x0001, sn::hal::fp32_to_fp16(std::ldexp(1.0f, -24)));
  LONGS_EQUAL(0x0000, sn::hal::fp32_to_fp16(std::ldexp(1.0f, -26)));
}

TEST(Fp16, Bf16RoundsToNearestEven) {
  LONGS_EQUAL(0x3F80, sn::hal::fp32_to_bf16(1.0f));
  float f;
  uint32_t bits = 0x3F808000u;  // halfway: ties to even (0x3F80)
  std::memcpy(&f, &bits, 4);
  LONGS_EQUAL(0x3F80, sn::hal::fp32_to_bf16(f));
  bits = 0x3F818000u;  // halfway, odd below: rounds up
  std::memcpy(&f, &bits, 4);
  LONGS_EQUAL(0x3F82, sn::hal::fp32_to_bf16(f));
  DOUBLES_EQUAL(1.0, sn::hal::bf16_to_fp32(0x3F80), 0.0);
}
