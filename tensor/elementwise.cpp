#include "tensor/elementwise.h"

#include <stdexcept>

namespace linfuse::detail {

Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op) {
  const Shape& ts = t.shape();
  if (ts.size() > shape.size())
    throw std::invalid_argument(std::string("[") + op + "] cannot broadcast " + shape_str(ts) + " to " + shape_str(shape));
  Shape out(shape.size(), 0);
  size_t lead = shape.size() - ts.size();
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i] == shape[lead + i]) out[lead + i] = t.strides()[i];
    else if (ts[i] == 1) out[lead + i] = 0;
    else
      throw std::invalid_argument(std::string("[") + op + "] cannot broadcast " + shape_str(ts) + " to " + shape_str(shape));
  }
  return out;
}

void coalesce(Shape& shape, std::vector<Shape>& strides) {
  Shape new_shape;
  std::vector<Shape> new_strides(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!new_shape.empty()) {
      bool mergeable = true;
      for (size_t k = 0; k < strides.size(); ++k)
        if (new_strides[k].back() != strides[k][d] * shape[d]) mergeable = false;
      if (mergeable) {
        new_shape.back() *= shape[d];
        for (size_t k = 0; k < strides.size(); ++k) new_strides[k].back() = strides[k][d];
        continue;
      }
    }
    new_shape.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) new_strides[k].push_back(strides[k][d]);
  }
  shape = std::move(new_shape);
  strides = std::move(new_strides);
}

}  // namespace linfuse::detail
