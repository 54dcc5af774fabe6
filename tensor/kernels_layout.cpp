// Layout kernels: views, copies, casts, concatenation, padding, sum_to.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "tensor/elementwise.h"
#include "tensor/kernels.h"

namespace linfuse::kernels {

Tensor reshape(const Tensor& a, Shape shape) {
  shape = resolve_reshape(a.shape(), std::move(shape), "reshape");
  Tensor c = contiguous(a);
  return c.as_strided(shape, contiguous_strides(shape), c.offset());
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) {
  int64_t rank = a.dim();
  if ((int64_t)dims.size() != rank)
    throw std::invalid_argument("[permute] " + std::to_string(dims.size()) + " dims given for a tensor of rank " +
                                std::to_string(rank));
  std::vector<bool> seen(rank, false);
  Shape shape(rank), strides(rank);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = normalize_axis(dims[i], rank, "permute");
    if (seen[d]) throw std::invalid_argument("[permute] axis " + std::to_string(d) + " appears twice");
    seen[d] = true;
    shape[i] = a.shape()[d];
    strides[i] = a.strides()[d];
  }
  return a.as_strided(shape, strides, a.offset());
}

Tensor broadcast_to(const Tensor& a, const Shape& shape) {
  return a.as_strided(shape, detail::broadcast_strides(a, shape, "broadcast_to"), a.offset());
}

Tensor slice(const Tensor& a, const Shape& begin, const Shape& end, const Shape& step) {
  int64_t rank = a.dim();
  Shape shape(rank), strides(rank);
  int64_t offset = a.offset();
  for (int64_t d = 0; d < rank; ++d) {
    if (step[d] < 1 || begin[d] < 0 || end[d] > a.shape()[d] || begin[d] > end[d])
      throw std::invalid_argument("[slice] bad range [" + std::to_string(begin[d]) + ":" + std::to_string(end[d]) + ":" +
                                  std::to_string(step[d]) + "] on axis " + std::to_string(d) + " of size " +
                                  std::to_string(a.shape()[d]));
    shape[d] = (end[d] - begin[d] + step[d] - 1) / step[d];
    strides[d] = a.strides()[d] * step[d];
    offset += begin[d] * a.strides()[d];
  }
  return a.as_strided(shape, strides, offset);
}

void copy_into(Tensor& dst, const Tensor& src) {
  if (dst.dtype() != src.dtype())
    throw std::invalid_argument("[copy_into] dtypes differ: " + dst.describe() + " <- " + src.describe());
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_into<T, T>(dst, [](T x) { return x; }, src);
  });
}

Tensor copy(const Tensor& a) {
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  copy_into(out, a);
  return out;
}

Tensor contiguous(const Tensor& a) { return a.is_contiguous() ? a : copy(a); }

Tensor cast(const Tensor& a, DType dtype) {
  if (a.dtype() == dtype) return a;
  Tensor out = Tensor::empty(a.shape(), dtype);
  dispatch_all(dtype, [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_all(a.dtype(), [&](auto in_tag) {
      using I = decltype(in_tag);
      map_into<O, I>(out, [](I x) { return static_cast<O>(x); }, a);
    });
  });
  return out;
}

Tensor concat(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) throw std::invalid_argument("[concat] needs at least one tensor");
  const Tensor& first = parts[0];
  int64_t rank = first.dim();
  if (rank == 0) throw std::invalid_argument("[concat] cannot concatenate rank-0 tensors; reshape them first");
  axis = normalize_axis(axis, rank, "concat");
  Shape shape = first.shape();
  shape[axis] = 0;
  for (const Tensor& p : parts) {
    bool ok = p.dim() == rank && p.dtype() == first.dtype();
    for (int64_t d = 0; ok && d < rank; ++d)
      if (d != axis && p.shape()[d] != first.shape()[d]) ok = false;
    if (!ok)
      throw std::invalid_argument("[concat] parts disagree off axis " + std::to_string(axis) + ": " + first.describe() +
                                  " and " + p.describe());
    shape[axis] += p.shape()[axis];
  }
  Tensor out = Tensor::empty(shape, first.dtype());
  Shape begin(rank, 0), end = shape, step(rank, 1);
  for (const Tensor& p : parts) {
    end[axis] = begin[axis] + p.shape()[axis];
    Tensor view = slice(out, begin, end, step);
    copy_into(view, p);
    begin[axis] = end[axis];
  }
  return out;
}

Tensor pad(const Tensor& a, const Shape& low, const Shape& high, const Shape& interior, double value) {
  int64_t rank = a.dim();
  if ((int64_t)low.size() != rank || (int64_t)high.size() != rank || (int64_t)interior.size() != rank)
    throw std::invalid_argument("[pad] padding lists must have one entry per axis of " + a.describe());
  Shape shape(rank), begin(rank), end(rank), step(rank);
  for (int64_t d = 0; d < rank; ++d) {
    if (low[d] < 0 || high[d] < 0 || interior[d] < 0)
      throw std::invalid_argument("[pad] negative padding on axis " + std::to_string(d) + " (use slice to crop)");
    int64_t n = a.shape()[d];
    int64_t inner = n > 0 ? n + (n - 1) * interior[d] : 0;
    shape[d] = low[d] + inner + high[d];
    begin[d] = low[d];
    end[d] = low[d] + inner;
    step[d] = interior[d] + 1;
  }
  Tensor out = Tensor::full(shape, value, a.dtype());
  if (a.numel() == 0) return out;
  for (int64_t d = 0; d < rank; ++d) end[d] = std::min(end[d], shape[d]);
  Tensor view = slice(out, begin, end, step);
  copy_into(view, a);
  return out;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  int64_t lead = a.dim() - (int64_t)shape.size();
  if (lead < 0) throw std::invalid_argument("[sum_to] cannot sum " + a.describe() + " to " + shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (d < lead) axes.push_back(d);
    else if (shape[d - lead] == 1 && a.shape()[d] != 1) axes.push_back(d);
    else if (shape[d - lead] != a.shape()[d])
      throw std::invalid_argument("[sum_to] cannot sum " + a.describe() + " to " + shape_str(shape));
  }
  if (axes.empty()) return reshape(a, shape);
  return reshape(sum(a, axes, true), shape);
}

}  // namespace linfuse::kernels
