#pragma once
// The procedural image generators of the vision suite (internal to experiments/). Each draws one 28 x 28
// image (784 floats in [0, 1]) of class `label` using only `gen`; what each draws and what varies is
// documented above its definition.
#include <cstdint>

#include "tensor/random.h"

namespace linfuse::data {

using DrawImage = void (*)(int64_t label, Generator& gen, float* pixels);

// vision_geometry_generators.cpp
constexpr int64_t kShapeClasses = 8;       // circle, square, triangle, cross, star, crescent, heart, arrow
constexpr int64_t kDotCountClasses = 8;    // 1..8 dots
constexpr int64_t kPositionClasses = 9;    // the 3 x 3 cells, row by row
void draw_shape(int64_t label, Generator& gen, float* pixels);
void draw_dots(int64_t label, Generator& gen, float* pixels);
void draw_position_blob(int64_t label, Generator& gen, float* pixels);

// vision_pattern_generators.cpp
constexpr int64_t kGratingClasses = 8;     // orientations 0, 22.5, ..., 157.5 degrees
constexpr int64_t kTextureClasses = 6;     // checkerboard, grid, dotted, brick, zigzag, speckled
void draw_grating(int64_t label, Generator& gen, float* pixels);
void draw_texture(int64_t label, Generator& gen, float* pixels);

// vision_glyph_generator.cpp
constexpr int64_t kGlyphClasses = 10;      // the letters of kGlyphLetters
inline constexpr const char* kGlyphLetters = "ABCEFHKLPT";
void draw_glyph(int64_t label, Generator& gen, float* pixels);

}  // namespace linfuse::data
