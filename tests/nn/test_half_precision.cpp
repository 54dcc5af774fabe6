// float16 / bfloat16 / float8 conversions: exhaustive over the narrow formats where that is cheap.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "nn/half_precision.h"

using namespace linfuse;

TEST_CASE("every float16 value survives float16 -> float32 -> float16", "[half]") {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = float16_to_float(uint16_t(bits));
    if (std::isnan(value)) {
      CHECK((float_to_float16(value) & 0x7fff) == 0x7e00);   // NaN stays NaN
      continue;
    }
    if (float_to_float16(value) != bits) FAIL("float16 " << bits << " -> " << value << " -> " << float_to_float16(value));
  }
}

TEST_CASE("float32 -> float16 rounds midpoints to even and is monotone", "[half]") {
  // Between consecutive finite positive halves h and h+1, the midpoint rounds to the even one, and values
  // just either side of the midpoint round to the nearer one.
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    float low = float16_to_float(h), high = float16_to_float(uint16_t(h + 1));
    float mid = 0.5f * (low + high);   // exact in float32: the halves have 11 significant bits
    uint16_t even = (h & 1) ? uint16_t(h + 1) : h;
    if (float_to_float16(mid) != even) FAIL("midpoint after " << h << " rounded to " << float_to_float16(mid));
    if (float_to_float16(std::nextafter(mid, 0.f)) != h) FAIL("below midpoint after " << h);
    if (float_to_float16(std::nextafter(mid, INFINITY)) != h + 1) FAIL("above midpoint after " << h);
    if (float_to_float16(-mid) != (even | 0x8000)) FAIL("negative midpoint after " << h);
  }
  CHECK(float_to_float16(65504.f) == 0x7bff);
  CHECK(float_to_float16(65519.99f) == 0x7bff);
  CHECK(float_to_float16(65520.f) == 0x7c00);   // rounds up to infinity
  CHECK(float_to_float16(1e30f) == 0x7c00);
  CHECK(float_to_float16(-INFINITY) == 0xfc00);
  CHECK(float_to_float16(std::ldexp(1.f, -25)) == 0x0000);   // half the smallest subnormal: tie to even (0)
  CHECK(float_to_float16(std::nextafter(std::ldexp(1.f, -25), 1.f)) == 0x0001);
  CHECK(float_to_float16(1e-40f) == 0x0000);
  CHECK(float_to_float16(-0.f) == 0x8000);
}

TEST_CASE("float32 -> bfloat16 rounds to nearest even and keeps NaN", "[half]") {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    uint32_t bits = rng();
    float value = std::bit_cast<float>(bits);
    uint16_t b = float_to_bfloat16(value);
    if (std::isnan(value)) {
      CHECK(std::isnan(bfloat16_to_float(b)));
      continue;
    }
    // The result is one of the two bfloat16 neighbours, the nearer one, ties to even.
    uint16_t truncated = uint16_t(bits >> 16);
    uint32_t remainder = bits & 0xffff;
    uint16_t expected = truncated;
    if (remainder > 0x8000 || (remainder == 0x8000 && (truncated & 1))) expected = uint16_t(truncated + 1);
    if (b != expected) FAIL("bfloat16 of bits " << bits << " gave " << b << ", expected " << expected);
  }
  CHECK(bfloat16_to_float(float_to_bfloat16(1.f)) == 1.f);
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);   // tie, even stays
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);   // tie, odd rounds up
}

TEST_CASE("float8 formats decode as specified", "[half]") {
  // e5m2 is float16's top byte; e4m3fn has bias 7, no infinity, NaN only at s.1111.111.
  for (uint32_t bits = 0; bits < 256; ++bits) {
    float e5m2 = float8_e5m2_to_float(uint8_t(bits));
    float via_half = float16_to_float(uint16_t(bits << 8));
    CHECK(((std::isnan(e5m2) && std::isnan(via_half)) || e5m2 == via_half));
    float e4m3 = float8_e4m3_to_float(uint8_t(bits));
    CHECK(std::isnan(e4m3) == ((bits & 0x7f) == 0x7f));
    CHECK_FALSE(std::isinf(e4m3));
  }
  CHECK(float8_e4m3_to_float(0x01) == std::ldexp(1.f, -9));   // smallest subnormal
  CHECK(float8_e4m3_to_float(0x08) == std::ldexp(1.f, -6));   // smallest normal
  CHECK(float8_e4m3_to_float(0x7e) == 448.f);                 // largest finite
  CHECK(float8_e4m3_to_float(0xc0) == -2.f);
}
