#pragma once
// Shapes and strides (in elements), NumPy broadcasting, and axis normalisation done once, here.
#include <cstdint>
#include <string>
#include <vector>

namespace linfuse {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);   // "(2,3,4)"

// Resolves a target shape with at most one -1 for `numel` elements; throws naming `op` when impossible.
Shape resolve_reshape(const Shape& from, Shape to, const char* op);

// NumPy broadcast of two shapes; throws naming `op` and both shapes when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Maps a possibly negative axis into [0, rank); throws naming `op` when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const char* op);
// Normalises, sorts and de-duplicates a list of axes; an empty list means "all axes".
std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t rank, const char* op);

// The shape left after reducing `axes` (normalised), with or without size-1 dims kept.
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& axes, bool keepdims);

}  // namespace linfuse
