// Matrix product primitive and the linear layer built on it.
#include <stdexcept>

#include "autodiff/rule_helpers.h"
#include "tensor/kernels.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

Tensor mT(const Tensor& a) { return transpose(a, -1, -2); }

// c = a @ b with broadcast batch dims;  da = g b^T,  db = a^T g  (summed over broadcast batch dims)
class Matmul : public Primitive {
  LINFUSE_PRIMITIVE("matmul")
  Tensor forward(const Tensors& in) override { return kernels::matmul(in[0], in[1]); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    return {w[0] ? sum_to(matmul(g, mT(in[1])), in[0].shape()) : Tensor(),
            w[1] ? sum_to(matmul(mT(in[0]), g), in[1].shape()) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    return rules::add_defined(t[0].defined() ? matmul(t[0], in[1]) : Tensor(),
                              t[1].defined() ? matmul(in[0], t[1]) : Tensor());
  }
};

// out = c + alpha a @ b (2-D a, b; c broadcast to the output): one GEMM accumulating onto c.
//   vjp: dc = sum_to(g),  da = alpha g b^T,  db = alpha a^T g
//   jvp: tc + alpha (ta b + a tb), accumulated by addmm onto the tangent of c
class Addmm : public Primitive {
  LINFUSE_PRIMITIVE("addmm")
 public:
  explicit Addmm(double alpha) : alpha_(alpha) {}
  Tensor forward(const Tensors& in) override { return kernels::addmm(in[0], in[1], in[2], alpha_); }
  Tensor scaled(const Tensor& t) const { return alpha_ == 1.0 ? t : mul(t, alpha_); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    return {w[0] ? sum_to(g, in[0].shape()) : Tensor(), w[1] ? scaled(matmul(g, mT(in[2]))) : Tensor(),
            w[2] ? scaled(matmul(mT(in[1]), g)) : Tensor()};
  }
  // Not recording, the second product accumulates in place onto the fresh buffer holding the first (one copy
  // of the output-sized tangent fewer).
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    Tensor acc = t[0].defined() ? t[0] : Tensor();
    if (t[1].defined()) acc = acc.defined() ? addmm(acc, t[1], in[2], alpha_) : scaled(matmul(t[1], in[2]));
    bool owned = t[1].defined();   // acc is then a new contiguous (M, N) tensor
    if (t[2].defined() && owned && !rules::recording()) kernels::addmm_into(acc, in[1], t[2], alpha_);
    else if (t[2].defined()) acc = acc.defined() ? addmm(acc, in[1], t[2], alpha_) : scaled(matmul(in[1], t[2]));
    if (acc.defined() && acc.shape() != out.shape()) acc = broadcast_to(acc, out.shape());
    return acc;
  }

 private:
  double alpha_;
};

}  // namespace

Tensor addmm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(0))
    throw std::invalid_argument("[addmm] needs (M, K) and (K, N) operands, got " + a.describe() + " and " + b.describe());
  if (a.dtype() != b.dtype() || c.dtype() != a.dtype())
    throw std::invalid_argument("[addmm] dtypes differ: " + c.describe() + ", " + a.describe() + " and " + b.describe());
  return apply_new<Addmm>({c, a, b}, alpha);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() == 0 || b.dim() == 0)
    throw std::invalid_argument("[matmul] operands must have rank >= 1, got " + a.describe() + " and " + b.describe());
  if (a.dtype() != b.dtype())
    throw std::invalid_argument("[matmul] dtypes differ: " + a.describe() + " and " + b.describe());
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);
  if (a.size(-1) != b.size(-2))
    throw std::invalid_argument("[matmul] inner sizes differ: " + shape_str(a.shape()) + " x " + shape_str(b.shape()));
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2), Shape(b.shape().begin(), b.shape().end() - 2),
                                 "matmul");
  (void)batch;
  return apply_new<Matmul>({a, b});
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw std::invalid_argument("[linear] input " + x.describe() + " does not fit weight " + weight.describe() +
                                " (expected (..., in) and (out, in))");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    throw std::invalid_argument("[linear] bias " + bias.describe() + " does not fit weight " + weight.describe());
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  // Fold the leading dims into rows: one GEMM instead of a batch of them (also for the weight gradient).
  // The bias is accumulated by the GEMM itself (addmm), not added in a second pass.
  Tensor x2 = reshape(x, {-1, x.size(-1)});
  Tensor y = bias.defined() ? addmm(bias, x2, transpose(weight, 0, 1)) : matmul(x2, transpose(weight, 0, 1));
  return reshape(y, out_shape);
}

}  // namespace linfuse
