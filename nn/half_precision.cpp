#include "nn/half_precision.h"

#include <bit>
#include <cmath>
#include <limits>

namespace linfuse {

float float16_to_float(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) {   // zero or subnormal: mantissa * 2^-24
    float magnitude = std::ldexp(float(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31)   // infinity or NaN (payload kept)
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

uint16_t float_to_float16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  uint16_t sign = uint16_t((x >> 16) & 0x8000);
  uint32_t magnitude = x & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7e00;   // NaN -> the canonical quiet NaN, as PyTorch
  int exponent = int(magnitude >> 23) - 127;
  if (exponent >= 16) return sign | 0x7c00;            // too large (or infinite) -> infinity
  uint32_t mantissa = magnitude & 0x7fffff;
  if (exponent >= -14) {                               // a normal float16: drop 13 mantissa bits
    uint32_t half = (uint32_t(exponent + 15) << 10) | (mantissa >> 13);
    uint32_t dropped = mantissa & 0x1fff;
    // Round to nearest, ties to even; a carry out of the mantissa correctly bumps the exponent (to infinity
    // for values at or above 65520).
    if (dropped > 0x1000 || (dropped == 0x1000 && (half & 1))) ++half;
    return sign | uint16_t(half);
  }
  if (exponent < -25) return sign;                     // below half the smallest subnormal -> zero
  // Subnormal float16: count units of 2^-24. value = (mantissa | implicit 1) * 2^(exponent - 23).
  uint32_t significand = mantissa | 0x800000;
  int shift = -exponent - 1;                           // 14 .. 24
  uint32_t half = significand >> shift;
  uint32_t dropped = significand & ((1u << shift) - 1);
  uint32_t halfway = 1u << (shift - 1);
  if (dropped > halfway || (dropped == halfway && (half & 1))) ++half;   // may carry into the smallest normal
  return sign | uint16_t(half);
}

float bfloat16_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

uint16_t float_to_bfloat16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffff) > 0x7f800000) return uint16_t((x >> 16) | 0x0040);   // NaN stays NaN (made quiet)
  uint32_t rounding = 0x7fff + ((x >> 16) & 1);                               // ties to even
  return uint16_t((x + rounding) >> 16);
}

float float8_e4m3_to_float(uint8_t bits) {
  // s eeee mmm, exponent bias 7, no infinities; s 1111 111 is NaN.
  bool negative = bits & 0x80;
  int exponent = (bits >> 3) & 0xf;
  int mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -9)
                                  : std::ldexp(float(8 + mantissa), exponent - 7 - 3);
  return negative ? -magnitude : magnitude;
}

// float8_e5m2 is the top byte of a float16.
float float8_e5m2_to_float(uint8_t bits) { return float16_to_float(uint16_t(bits) << 8); }

}  // namespace linfuse
