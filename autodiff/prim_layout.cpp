// Layout primitives: reshape, permute, broadcast_to, slice, pad, concat, cast, copy. Their rules are each
// other: slice and pad are transposes, broadcast_to and sum_to are transposes.
#include <algorithm>
#include <stdexcept>

#include "autodiff/rule_helpers.h"
#include "tensor/kernels.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

class Reshape : public Primitive {
  LINFUSE_PRIMITIVE("reshape")
 public:
  explicit Reshape(Shape shape) : shape_(std::move(shape)) {}
  Tensor forward(const Tensors& in) override { return kernels::reshape(in[0], shape_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {reshape(g, in[0].shape())}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return reshape(t[0], y.shape()); }

 private:
  Shape shape_;
};

class Permute : public Primitive {
  LINFUSE_PRIMITIVE("permute")
 public:
  explicit Permute(Axes dims) : dims_(std::move(dims)) {}
  Tensor forward(const Tensors& in) override { return kernels::permute(in[0], dims_); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override {
    Axes inverse(dims_.size());
    for (size_t i = 0; i < dims_.size(); ++i) inverse[dims_[i]] = (int64_t)i;
    return {permute(g, inverse)};
  }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return permute(t[0], dims_); }

 private:
  Axes dims_;   // normalised
};

class BroadcastTo : public Primitive {
  LINFUSE_PRIMITIVE("broadcast_to")
 public:
  explicit BroadcastTo(Shape shape) : shape_(std::move(shape)) {}
  Tensor forward(const Tensors& in) override { return kernels::broadcast_to(in[0], shape_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {sum_to(g, in[0].shape())}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return broadcast_to(t[0], shape_); }

 private:
  Shape shape_;
};

class Slice : public Primitive {
  LINFUSE_PRIMITIVE("slice")
 public:
  Slice(Shape begin, Shape end, Shape step) : begin_(std::move(begin)), end_(std::move(end)), step_(std::move(step)) {}
  Tensor forward(const Tensors& in) override { return kernels::slice(in[0], begin_, end_, step_); }
  // The transpose of a strided slice is a pad with interior padding step-1.
  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const Wanted&) override {
    int64_t rank = in[0].dim();
    Shape low(rank), high(rank), interior(rank);
    for (int64_t d = 0; d < rank; ++d) {
      int64_t m = y.shape()[d];
      int64_t span = m > 0 ? (m - 1) * step_[d] + 1 : 0;
      low[d] = begin_[d];
      interior[d] = step_[d] - 1;
      high[d] = in[0].shape()[d] - begin_[d] - span;
    }
    return {pad(g, low, high, interior, 0.0)};
  }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return slice(t[0], begin_, end_, step_); }

 private:
  Shape begin_, end_, step_;
};

class Pad : public Primitive {
  LINFUSE_PRIMITIVE("pad")
 public:
  Pad(Shape low, Shape high, Shape interior, double value)
      : low_(std::move(low)), high_(std::move(high)), interior_(std::move(interior)), value_(value) {}
  Tensor forward(const Tensors& in) override { return kernels::pad(in[0], low_, high_, interior_, value_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    int64_t rank = in[0].dim();
    Shape begin(rank), end(rank), step(rank);
    for (int64_t d = 0; d < rank; ++d) {
      int64_t n = in[0].shape()[d];
      begin[d] = low_[d];
      step[d] = interior_[d] + 1;
      end[d] = n > 0 ? low_[d] + (n - 1) * step[d] + 1 : low_[d];
    }
    return {slice(g, begin, end, step)};
  }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return pad(t[0], low_, high_, interior_, 0.0); }

 private:
  Shape low_, high_, interior_;
  double value_;
};

class Concat : public Primitive {
  LINFUSE_PRIMITIVE("concat")
 public:
  explicit Concat(int64_t axis) : axis_(axis) {}
  Tensor forward(const Tensors& in) override { return kernels::concat(in, axis_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensors out(in.size());
    int64_t start = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      int64_t n = in[i].shape()[axis_];
      if (w[i]) out[i] = slice(g, axis_, start, start + n);
      start += n;
    }
    return out;
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    Tensors parts(in.size());
    for (size_t i = 0; i < in.size(); ++i) parts[i] = t[i].defined() ? t[i] : zeros_like(in[i]);
    return concat(parts, axis_);
  }

 private:
  int64_t axis_;   // normalised
};

class Cast : public Primitive {
  LINFUSE_PRIMITIVE("cast")
 public:
  explicit Cast(DType dtype) : dtype_(dtype) {}
  Tensor forward(const Tensors& in) override { return kernels::cast(in[0], dtype_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {cast(g, in[0].dtype())}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return cast(t[0], dtype_); }

 private:
  DType dtype_;
};

class Copy : public Primitive {
  LINFUSE_PRIMITIVE("copy")
  Tensor forward(const Tensors& in) override { return kernels::copy(in[0]); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override { return {g}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return t[0]; }
};

Axes normalized(const Axes& dims, int64_t rank, const char* op) {
  Axes out;
  for (int64_t d : dims) out.push_back(normalize_axis(d, rank, op));
  return out;
}

}  // namespace

Tensor reshape(const Tensor& a, const Shape& shape) {
  Shape resolved = resolve_reshape(a.shape(), shape, "reshape");
  if (resolved == a.shape()) return a;
  return apply_new<Reshape>({a}, resolved);
}

Tensor flatten(const Tensor& a, int64_t start_axis, int64_t end_axis) {
  if (a.dim() == 0) return reshape(a, {1});
  int64_t s = normalize_axis(start_axis, a.dim(), "flatten"), e = normalize_axis(end_axis, a.dim(), "flatten");
  Shape shape(a.shape().begin(), a.shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= a.shape()[d];
  shape.push_back(n);
  shape.insert(shape.end(), a.shape().begin() + e + 1, a.shape().end());
  return reshape(a, shape);
}

Tensor unsqueeze(const Tensor& a, int64_t axis) {
  int64_t ax = normalize_axis(axis, a.dim() + 1, "unsqueeze");
  Shape shape = a.shape();
  shape.insert(shape.begin() + ax, 1);
  return reshape(a, shape);
}

Tensor squeeze(const Tensor& a, int64_t axis) {
  int64_t ax = normalize_axis(axis, a.dim(), "squeeze");
  if (a.shape()[ax] != 1)
    throw std::invalid_argument("[squeeze] axis " + std::to_string(axis) + " of " + a.describe() + " is not of size 1");
  Shape shape = a.shape();
  shape.erase(shape.begin() + ax);
  return reshape(a, shape);
}

Tensor permute(const Tensor& a, const Axes& dims) {
  Axes d = normalized(dims, a.dim(), "permute");
  bool identity = true;
  for (size_t i = 0; i < d.size(); ++i) identity &= d[i] == (int64_t)i;
  if (identity && (int64_t)d.size() == a.dim()) return a;
  kernels::permute(a, d);   // validates
  return apply_new<Permute>({a}, d);
}

Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1) {
  Axes dims(a.dim());
  for (int64_t i = 0; i < a.dim(); ++i) dims[i] = i;
  std::swap(dims[normalize_axis(axis0, a.dim(), "transpose")], dims[normalize_axis(axis1, a.dim(), "transpose")]);
  return permute(a, dims);
}

Tensor broadcast_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  kernels::broadcast_to(a, shape);   // validates
  return apply_new<BroadcastTo>({a}, shape);
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  int64_t lead = a.dim() - (int64_t)shape.size();
  if (lead < 0) throw std::invalid_argument("[sum_to] cannot sum " + a.describe() + " to " + shape_str(shape));
  Axes axes;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (d < lead) axes.push_back(d);
    else if (shape[d - lead] == 1 && a.shape()[d] != 1) axes.push_back(d);
    else if (shape[d - lead] != a.shape()[d])
      throw std::invalid_argument("[sum_to] cannot sum " + a.describe() + " to " + shape_str(shape));
  }
  if (axes.empty()) return reshape(a, shape);
  return reshape(sum(a, axes, true), shape);
}

Tensor slice(const Tensor& a, const Shape& begin, const Shape& end, const Shape& step) {
  kernels::slice(a, begin, end, step);   // validates
  bool whole = true;
  for (int64_t d = 0; d < a.dim(); ++d) whole &= begin[d] == 0 && end[d] == a.shape()[d] && step[d] == 1;
  if (whole) return a;
  return apply_new<Slice>({a}, begin, end, step);
}

Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  int64_t ax = normalize_axis(axis, a.dim(), "slice");
  int64_t n = a.shape()[ax];
  if (step < 1) throw std::invalid_argument("[slice] step must be >= 1, got " + std::to_string(step));
  auto clampi = [n](int64_t i) { return std::clamp(i < 0 ? i + n : i, int64_t(0), n); };
  Shape begin(a.dim(), 0), end = a.shape(), steps(a.dim(), 1);
  begin[ax] = clampi(start);
  end[ax] = std::max(begin[ax], clampi(stop));
  steps[ax] = step;
  return slice(a, begin, end, steps);
}

Tensor select(const Tensor& a, int64_t axis, int64_t index) {
  int64_t ax = normalize_axis(axis, a.dim(), "select");
  int64_t n = a.shape()[ax];
  if (index < -n || index >= n)
    throw std::invalid_argument("[select] index " + std::to_string(index) + " out of range for axis of size " + std::to_string(n));
  if (index < 0) index += n;
  return squeeze(slice(a, ax, index, index + 1), ax);
}

Tensor pad(const Tensor& a, const Shape& low, const Shape& high, const Shape& interior_in, double value) {
  Shape interior = interior_in.empty() ? Shape(a.dim(), 0) : interior_in;
  kernels::pad(Tensor::empty(Shape(a.dim(), 0), a.dtype()), low, high, interior, value);   // validates cheaply
  return apply_new<Pad>({a}, low, high, interior, value);
}

Tensor concat(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) throw std::invalid_argument("[concat] needs at least one tensor");
  if (parts.size() == 1) return parts[0];
  return apply_new<Concat>(parts, normalize_axis(axis, parts[0].dim(), "concat"));
}

Tensor stack(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) throw std::invalid_argument("[stack] needs at least one tensor");
  int64_t ax = normalize_axis(axis, parts[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (const Tensor& p : parts) {
    if (p.shape() != parts[0].shape())
      throw std::invalid_argument("[stack] shapes differ: " + parts[0].describe() + " and " + p.describe());
    expanded.push_back(unsqueeze(p, ax));
  }
  return concat(expanded, ax);
}

Tensor cast(const Tensor& a, DType dtype) {
  if (a.dtype() == dtype) return a;
  if (!is_floating(dtype) || !is_floating(a.dtype())) {
    if (a.requires_grad()) throw std::invalid_argument("[cast] cannot differentiate a cast to or from int64");
    return kernels::cast(a, dtype);
  }
  return apply_new<Cast>({a}, dtype);
}

Tensor contiguous(const Tensor& a) {
  if (a.is_contiguous()) return a;
  return apply_new<Copy>({a});
}

}  // namespace linfuse
