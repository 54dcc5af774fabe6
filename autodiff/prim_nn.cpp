// Neural-network primitives: softmax, log_softmax, layer_norm, rms_norm, cross_entropy.
#include <stdexcept>

#include "autodiff/rule_helpers.h"
#include "tensor/kernels.h"
#include "tensor/kernels_norm_grad.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

// Moves `axis` last (a view), so the row kernels can work along the last axis.
Axes axis_last_order(int64_t rank, int64_t axis) {
  Axes order;
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis) order.push_back(d);
  order.push_back(axis);
  return order;
}
Axes inverse_order(const Axes& order) {
  Axes inv(order.size());
  for (size_t i = 0; i < order.size(); ++i) inv[order[i]] = (int64_t)i;
  return inv;
}
template <class Kernel>
Tensor along_axis(const Tensor& a, int64_t axis, Kernel kernel) {
  if (axis == a.dim() - 1) return kernel(a);
  Axes order = axis_last_order(a.dim(), axis);
  return kernels::contiguous(kernels::permute(kernel(kernels::permute(a, order)), inverse_order(order)));
}

// y = softmax(x);  vjp: y (g - <g, y>);  jvp: y (t - <t, y>)   (<,> summed along the axis)
class Softmax : public Primitive {
  LINFUSE_PRIMITIVE("softmax")
 public:
  explicit Softmax(int64_t axis) : axis_(axis) {}
  Tensor forward(const Tensors& in) override { return along_axis(in[0], axis_, kernels::softmax_last); }
  // Not recording and along the last axis: one fused row kernel.
  Tensor rule(const Tensor& y, const Tensor& v) const {
    if (!rules::recording() && axis_ == y.dim() - 1) return kernels::softmax_rule_last(y, v);
    return mul(y, sub(v, sum(mul(v, y), {axis_}, true)));
  }
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {rule(y, g)}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return rule(y, t[0]); }

 private:
  int64_t axis_;
};

// y = log_softmax(x);  vjp: g - softmax * sum(g);  jvp: t - <softmax, t>
class LogSoftmax : public Primitive {
  LINFUSE_PRIMITIVE("log_softmax")
 public:
  explicit LogSoftmax(int64_t axis) : axis_(axis) {}
  Tensor forward(const Tensors& in) override { return along_axis(in[0], axis_, kernels::log_softmax_last); }
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override {
    return {sub(g, mul(exp(y), sum(g, {axis_}, true)))};
  }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override {
    return sub(t[0], sum(mul(exp(y), t[0]), {axis_}, true));
  }

 private:
  int64_t axis_;
};

// y = xhat * gamma + beta, xhat = (x - mean) rstd, rstd = 1/sqrt(var + eps), over the last dim (n).
//   vjp: dxhat = g gamma;  dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat));
//        dgamma = sum(g xhat);  dbeta = sum(g)
//   jvp: dxhat = rstd (tc - xhat mean(xhat tc)), tc = t - mean(t);  dy = dxhat gamma + xhat tgamma + tbeta
class LayerNorm : public Primitive {
  LINFUSE_PRIMITIVE("layer_norm")
 public:
  LayerNorm(double eps, bool has_gamma, bool has_beta) : eps_(eps), has_gamma_(has_gamma), has_beta_(has_beta) {}
  Tensor forward(const Tensors& in) override {
    Tensor y;
    kernels::layer_norm(in[0], has_gamma_ ? in[1] : Tensor(), has_beta_ ? in[beta_slot()] : Tensor(), eps_, y, mean_, rstd_);
    return y;
  }
  size_t beta_slot() const { return has_gamma_ ? 2 : 1; }
  // xhat and rstd: from the saved statistics when no graph is being recorded, else recomputed with ops so
  // that higher derivatives see their dependence on x.
  void normalized(const Tensor& x, Tensor& xhat, Tensor& rstd) const {
    if (!rules::recording() && mean_.defined()) {
      rstd = unsqueeze(rstd_, -1);
      xhat = mul(sub(x, unsqueeze(mean_, -1)), rstd);
      return;
    }
    Tensor centered = sub(x, mean(x, {-1}, true));
    rstd = rsqrt(add(mean(mul(centered, centered), {-1}, true), eps_));
    xhat = mul(centered, rstd);
  }
  // Without recording, the x parts of both rules run as one fused row kernel on the saved statistics.
  bool fused() const { return !rules::recording() && mean_.defined(); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensors out(in.size());
    bool gamma_grad = has_gamma_ && w[1], beta_grad = has_beta_ && w[beta_slot()];
    if (w[0] && fused()) out[0] = kernels::layer_norm_dx(in[0], mean_, rstd_, has_gamma_ ? in[1] : Tensor(), g, false);
    if ((gamma_grad || beta_grad) && fused()) {   // dgamma and dbeta in one pass over x and g
      kernels::layer_norm_affine_grad(in[0], mean_, rstd_, g, gamma_grad ? &out[1] : nullptr,
                                      beta_grad ? &out[beta_slot()] : nullptr);
      return out;
    }
    Tensor xhat, rstd;
    if ((w[0] && !out[0].defined()) || gamma_grad) normalized(in[0], xhat, rstd);
    if (w[0] && !out[0].defined()) {
      Tensor dxhat = has_gamma_ ? mul(g, in[1]) : g;
      out[0] = mul(rstd, sub(sub(dxhat, mean(dxhat, {-1}, true)), mul(xhat, mean(mul(dxhat, xhat), {-1}, true))));
    }
    if (gamma_grad) out[1] = sum_to(mul(g, xhat), in[1].shape());
    if (has_beta_ && w[beta_slot()]) out[beta_slot()] = sum_to(g, in[beta_slot()].shape());
    return out;
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    bool affine_tangent = (has_gamma_ && t[1].defined()) || (has_beta_ && t[beta_slot()].defined());
    if (t[0].defined() && !affine_tangent && fused())
      return kernels::layer_norm_dx(in[0], mean_, rstd_, has_gamma_ ? in[1] : Tensor(), t[0], true);
    Tensor xhat, rstd;
    normalized(in[0], xhat, rstd);
    Tensor out;
    if (t[0].defined()) {
      Tensor tc = sub(t[0], mean(t[0], {-1}, true));
      Tensor dxhat = mul(rstd, sub(tc, mul(xhat, mean(mul(xhat, tc), {-1}, true))));
      out = has_gamma_ ? mul(dxhat, in[1]) : dxhat;
    }
    if (has_gamma_ && t[1].defined()) out = rules::add_defined(out, mul(xhat, t[1]));
    if (has_beta_ && t[beta_slot()].defined()) out = rules::add_defined(out, broadcast_to(t[beta_slot()], in[0].shape()));
    return out;
  }
  void release() override {
    mean_ = Tensor();
    rstd_ = Tensor();
  }

 private:
  double eps_;
  bool has_gamma_, has_beta_;
  Tensor mean_, rstd_;   // saved by forward, shape x.shape[:-1]
};

// y = x r gamma, r = 1/sqrt(mean(x^2) + eps) (T5: no mean subtraction, no bias).
//   vjp: dx = r (gg - x r^2 mean(gg x)), gg = g gamma;  dgamma = sum(g x r)
//   jvp: dy = (r t - x r^3 mean(x t)) gamma + x r tgamma
class RmsNorm : public Primitive {
  LINFUSE_PRIMITIVE("rms_norm")
 public:
  RmsNorm(double eps, bool has_gamma) : eps_(eps), has_gamma_(has_gamma) {}
  Tensor forward(const Tensors& in) override {
    Tensor y;
    kernels::rms_norm(in[0], has_gamma_ ? in[1] : Tensor(), eps_, y, rstd_);
    return y;
  }
  Tensor inv_rms(const Tensor& x) const {
    if (!rules::recording() && rstd_.defined()) return unsqueeze(rstd_, -1);
    return rsqrt(add(mean(mul(x, x), {-1}, true), eps_));
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    const Tensor& x = in[0];
    Tensor r = inv_rms(x);
    Tensors out(in.size());
    Tensor gg = has_gamma_ ? mul(g, in[1]) : g;
    if (w[0]) out[0] = mul(r, sub(gg, mul(mul(x, mul(r, r)), mean(mul(gg, x), {-1}, true))));
    if (has_gamma_ && w[1]) out[1] = sum_to(mul(g, mul(x, r)), in[1].shape());
    return out;
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    const Tensor& x = in[0];
    Tensor r = inv_rms(x);
    Tensor out;
    if (t[0].defined()) {
      Tensor d = sub(mul(r, t[0]), mul(mul(x, mul(r, mul(r, r))), mean(mul(x, t[0]), {-1}, true)));
      out = has_gamma_ ? mul(d, in[1]) : d;
    }
    if (has_gamma_ && t[1].defined()) out = rules::add_defined(out, mul(mul(x, r), t[1]));
    return out;
  }
  void release() override { rstd_ = Tensor(); }

 private:
  double eps_;
  bool has_gamma_;
  Tensor rstd_;
};

// loss = sum over kept rows of (logsumexp(z) - z[label]) / kept.
//   vjp: g (softmax(z) - onehot(label)) keep / kept;  jvp: sum(keep (<softmax, t> - t[label])) / kept
class CrossEntropy : public Primitive {
  LINFUSE_PRIMITIVE("cross_entropy")
 public:
  CrossEntropy(const Tensor& labels, int64_t ignore_index, int64_t classes) {
    // labels (...) -> safe labels (ignored rows point at class 0) and a keep mask, both constants.
    std::vector<int64_t> l = labels.to_vector<int64_t>();
    std::vector<int64_t> safe(l.size());
    std::vector<double> keep(l.size());
    for (size_t i = 0; i < l.size(); ++i) {
      bool kept = l[i] != ignore_index;
      if (kept && (l[i] < 0 || l[i] >= classes))
        throw std::invalid_argument("[cross_entropy] label " + std::to_string(l[i]) + " is out of range [0, " +
                                    std::to_string(classes) + ") (ignore_index is " + std::to_string(ignore_index) + ")");
      safe[i] = kept ? l[i] : 0;
      keep[i] = kept ? 1.0 : 0.0;
      kept_ += kept;
    }
    Shape idx_shape = labels.shape();
    idx_shape.push_back(1);
    safe_labels_ = Tensor::from_vector(safe, idx_shape);
    keep_ = Tensor::from_vector(keep, labels.shape());
  }
  Tensor forward(const Tensors& in) override {
    const Tensor& z = in[0];
    Tensor lse = kernels::logsumexp(z, {z.dim() - 1}, false);
    Tensor picked = kernels::gather(z, -1, safe_labels_);
    const double* keep = keep_.data<double>();
    return dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      const T* l = lse.template data<T>();
      const T* p = picked.template data<T>();
      double total = 0;
      const int64_t rows = keep_.numel();
      for (int64_t i = 0; i < rows; ++i)
        if (keep[i] != 0) total += double(l[i]) - double(p[i]);
      return Tensor::scalar(kept_ ? total / double(kept_) : 0.0, z.dtype());
    });
  }
  Tensor keep_over_kept(const Tensor& z) const {
    return unsqueeze(mul(cast(keep_, z.dtype()), kept_ ? 1.0 / double(kept_) : 0.0), -1);
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    const Tensor& z = in[0];
    Tensor target = kernels::one_hot(kernels::reshape(safe_labels_, keep_.shape()), z.size(-1), z.dtype());
    return {mul(mul(sub(softmax(z, -1), target), keep_over_kept(z)), g)};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    const Tensor& z = in[0];
    Tensor per_row = sub(sum(mul(softmax(z, -1), t[0]), {-1}, true), gather(t[0], -1, safe_labels_));
    return sum(mul(per_row, keep_over_kept(z)));
  }

 private:
  Tensor safe_labels_, keep_;   // (..., 1) int64 and (...) float64 0/1
  int64_t kept_ = 0;
};

}  // namespace

Tensor softmax(const Tensor& a, int64_t axis) { return apply_new<Softmax>({a}, normalize_axis(axis, a.dim(), "softmax")); }
Tensor log_softmax(const Tensor& a, int64_t axis) {
  return apply_new<LogSoftmax>({a}, normalize_axis(axis, a.dim(), "log_softmax"));
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps) {
  Tensors in{x};
  if (gamma.defined()) in.push_back(gamma);
  if (beta.defined()) in.push_back(beta);
  return apply_new<LayerNorm>(in, eps, gamma.defined(), beta.defined());
}

Tensor rms_norm(const Tensor& x, const Tensor& gamma, double eps) {
  Tensors in{x};
  if (gamma.defined()) in.push_back(gamma);
  return apply_new<RmsNorm>(in, eps, gamma.defined());
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, int64_t ignore_index) {
  if (logits.dim() < 1) throw std::invalid_argument("[cross_entropy] logits need a class axis, got " + logits.describe());
  Shape expected(logits.shape().begin(), logits.shape().end() - 1);
  if (labels.shape() != expected || labels.dtype() != DType::I64)
    throw std::invalid_argument("[cross_entropy] labels " + labels.describe() + " must be int64 of shape " +
                                shape_str(expected) + " for logits " + logits.describe());
  return apply_new<CrossEntropy>({logits}, labels, ignore_index, logits.size(-1));
}

}  // namespace linfuse
