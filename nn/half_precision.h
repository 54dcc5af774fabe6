#pragma once
// Conversions between float32 and the narrow float formats found in checkpoints: IEEE float16 ("F16"),
// bfloat16 ("BF16", the top half of a float32) and the two 8-bit formats of arXiv 2209.05433 ("F8_E4M3",
// the finite-only "fn" variant PyTorch calls float8_e4m3fn, and "F8_E5M2"). Values are raw bit patterns.
// Narrowing rounds to nearest, ties to even, as PyTorch does; overflow gives infinity; NaN stays NaN.
#include <cstdint>

namespace linfuse {

float float16_to_float(uint16_t bits);
uint16_t float_to_float16(float value);

float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

float float8_e4m3_to_float(uint8_t bits);
float float8_e5m2_to_float(uint8_t bits);

}  // namespace linfuse
