// Reduction primitives: sum, max, logsumexp, var (and mean, min composed from them).
#include <stdexcept>

#include "autodiff/rule_helpers.h"
#include "tensor/kernels.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

// A reduced value (or cotangent) reshaped to keepdims form and broadcast back to the input's shape.
Tensor expand_back(const Tensor& reduced, const Shape& input_shape, const Axes& axes) {
  return broadcast_to(reshape(reduced, reduced_shape(input_shape, axes, true)), input_shape);
}

class Sum : public Primitive {
  LINFUSE_PRIMITIVE("sum")
 public:
  Sum(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  Tensor forward(const Tensors& in) override { return kernels::sum(in[0], axes_, keepdims_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {expand_back(g, in[0].shape(), axes_)};
  }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return sum(t[0], axes_, keepdims_); }

 private:
  Axes axes_;
  bool keepdims_;
};

// Ties share the gradient equally (the average of the one-sided derivatives, as JAX and PyTorch's amax).
class Max : public Primitive {
  LINFUSE_PRIMITIVE("max")
 public:
  Max(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  Tensor forward(const Tensors& in) override { return kernels::max(in[0], axes_, keepdims_); }
  // weights = [a == max] / count: a constant (the max is piecewise linear)
  Tensor weights(const Tensor& a, const Tensor& y) const {
    Tensor is_max = eq(a, expand_back(y.detach(), a.shape(), axes_));
    Tensor count = kernels::sum(is_max, axes_, true);
    return div(is_max, broadcast_to(count, a.shape()));
  }
  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const Wanted&) override {
    return {mul(expand_back(g, in[0].shape(), axes_), weights(in[0], y))};
  }
  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    return sum(mul(t[0], weights(in[0], y)), axes_, keepdims_);
  }

 private:
  Axes axes_;
  bool keepdims_;
};

// d lse = softmax over the reduced axes. Rows that are entirely -inf have lse = -inf and get zero weight.
class LogSumExp : public Primitive {
  LINFUSE_PRIMITIVE("logsumexp")
 public:
  LogSumExp(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  Tensor forward(const Tensors& in) override { return kernels::logsumexp(in[0], axes_, keepdims_); }
  Tensor weights(const Tensor& a, const Tensor& y) const {
    Tensor lse = expand_back(y, a.shape(), axes_);
    Tensor finite = isfinite(lse);
    // exp(a - lse) with a safe shift where the row is all -inf (there, a - 0 = -inf and exp gives 0).
    Tensor shift = where(finite, lse, zeros_like(lse));
    return where(finite, exp(sub(a, shift)), zeros_like(a));
  }
  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const Wanted&) override {
    return {mul(expand_back(g, in[0].shape(), axes_), weights(in[0], y))};
  }
  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    return sum(mul(t[0], weights(in[0], y)), axes_, keepdims_);
  }

 private:
  Axes axes_;
  bool keepdims_;
};

// var = sum((a - mean)^2) / (n - ddof);  d var = 2 (a - mean) / (n - ddof)
class Var : public Primitive {
  LINFUSE_PRIMITIVE("var")
 public:
  Var(Axes axes, bool keepdims, int64_t ddof) : axes_(std::move(axes)), keepdims_(keepdims), ddof_(ddof) {}
  Tensor forward(const Tensors& in) override { return kernels::var(in[0], axes_, keepdims_, ddof_); }
  Tensor slope(const Tensor& a) const {
    int64_t n = 1;
    for (int64_t d : axes_) n *= a.shape()[d];
    Tensor centered = sub(a, mean(a, axes_, true));
    return mul(centered, 2.0 / double(n - ddof_));
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {mul(expand_back(g, in[0].shape(), axes_), slope(in[0]))};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    return sum(mul(t[0], slope(in[0])), axes_, keepdims_);
  }

 private:
  Axes axes_;
  bool keepdims_;
  int64_t ddof_;
};

}  // namespace

Tensor sum(const Tensor& a, const Axes& axes, bool keepdims) {
  return apply_new<Sum>({a}, normalize_axes(axes, a.dim(), "sum"), keepdims);
}

Tensor mean(const Tensor& a, const Axes& axes, bool keepdims) {
  Axes ax = normalize_axes(axes, a.dim(), "mean");
  int64_t n = 1;
  for (int64_t d : ax) n *= a.shape()[d];
  if (n == 0) throw std::invalid_argument("[mean] cannot average over an empty axis of " + a.describe());
  return mul(sum(a, ax, keepdims), 1.0 / double(n));
}

Tensor max(const Tensor& a, const Axes& axes, bool keepdims) {
  return apply_new<Max>({a}, normalize_axes(axes, a.dim(), "max"), keepdims);
}

Tensor min(const Tensor& a, const Axes& axes, bool keepdims) { return neg(max(neg(a), axes, keepdims)); }

Tensor logsumexp(const Tensor& a, const Axes& axes, bool keepdims) {
  return apply_new<LogSumExp>({a}, normalize_axes(axes, a.dim(), "logsumexp"), keepdims);
}

Tensor var(const Tensor& a, const Axes& axes, bool keepdims, int64_t ddof) {
  return apply_new<Var>({a}, normalize_axes(axes, a.dim(), "var"), keepdims, ddof);
}

}  // namespace linfuse
