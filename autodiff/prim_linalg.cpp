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

// y = x W^T + b + s (x A^T) B^T: a linear layer with a LoRA update, x (M, in), W (out, in), A (r, in), B (out, r),
// b (out) or absent. One output buffer: the base product, then the rank-r update accumulated onto it, so no base
// output is materialised for the tape to keep until backward. Forward saves x A^T (M, r) for the rules.
//   vjp: dx = g W + s (g B) A;  dW = g^T x;  dA = s (g B)^T x;  dB = s g^T (x A^T);  db = sum over rows of g
//   jvp: x_t W^T + x W_t^T + b_t + s ((x_t A^T + x A_t^T) B^T + (x A^T) B_t^T)
class LoraLinear : public Primitive {
  LINFUSE_PRIMITIVE("lora_linear")
 public:
  LoraLinear(double scale, bool has_bias) : scale_(scale), has_bias_(has_bias) {}
  Tensor forward(const Tensors& in) override {
    Tensor y;   // x W^T + b and x A^T from one pass over x where the kernels allow (the same bits as apart)
    kernels::matmul_pair(in[0], kernels::permute(in[1], {1, 0}), has_bias_ ? in[4] : Tensor(), kernels::permute(in[2], {1, 0}),
                         y, ax_);
    kernels::addmm_into(y, ax_, kernels::permute(in[3], {1, 0}), scale_);
    return y;
  }
  // x A^T: the saved one when no graph is recorded or when x and A need no gradient (a linearized model's
  // tangent pass), else recomputed with ops so that higher derivatives see its dependence on x and A.
  Tensor ax(const Tensors& in) const {
    if (ax_.defined() && (!rules::recording() || (!in[0].requires_grad() && !in[2].requires_grad()))) return ax_;
    return matmul(in[0], mT(in[2]));
  }
  // acc + s a b (acc undefined, or a fresh contiguous tensor of the calling rule, summed into in place when
  // nothing is recorded: a plain backward pass, a linearized model's tangent pass)
  Tensor accumulate(Tensor acc, const Tensor& a, const Tensor& b) const {
    if (!acc.defined()) return mul(matmul(a, b), scale_);
    if (rules::recording()) return addmm(acc, a, b, scale_);
    kernels::addmm_into(acc, a, b, scale_);
    return acc;
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensors d(in.size());
    Tensor gw, gb;   // g W (M, in), g B (M, r): from one pass over g when nothing is recorded
    if (w[0] && !rules::recording()) kernels::matmul_pair(g, in[1], Tensor(), in[3], gw, gb);
    else if (w[0] || w[2]) gb = matmul(g, in[3]);
    if (w[0]) d[0] = accumulate(gw.defined() ? gw : matmul(g, in[1]), gb, in[2]);   // g W + s (g B) A
    if (w[1]) d[1] = matmul(mT(g), in[0]);
    if (w[2]) d[2] = mul(matmul(mT(gb), in[0]), scale_);
    if (w[3]) d[3] = mul(matmul(mT(g), ax(in)), scale_);
    if (has_bias_ && w[4]) d[4] = sum_to(g, in[4].shape());
    return d;
  }
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    Tensor y, ax_t;
    if (t[0].defined() && !rules::recording()) {   // x_t W^T and x_t A^T from one pass over x_t
      kernels::matmul_pair(t[0], kernels::permute(in[1], {1, 0}), Tensor(), kernels::permute(in[2], {1, 0}), y, ax_t);
    } else if (t[0].defined()) {
      y = matmul(t[0], mT(in[1]));
      ax_t = matmul(t[0], mT(in[2]));
    }
    if (t[1].defined()) y = rules::add_defined(y, matmul(in[0], mT(t[1])));
    if (has_bias_ && t[4].defined()) y = rules::add_defined(y, broadcast_to(t[4], out.shape()));
    if (t[2].defined()) ax_t = rules::add_defined(ax_t, matmul(in[0], mT(t[2])));
    if (ax_t.defined()) y = accumulate(y, ax_t, mT(in[3]));
    if (t[3].defined()) y = accumulate(y, ax(in), mT(t[3]));
    return y;
  }
  void release() override { ax_ = Tensor(); }

 private:
  double scale_;
  bool has_bias_;
  Tensor ax_;   // x A^T (M, r), saved by forward
};

}  // namespace

Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                   double scale) {
  bool shapes_fit = x.dim() == 2 && weight.dim() == 2 && lora_a.dim() == 2 && lora_b.dim() == 2 &&
                    weight.size(1) == x.size(1) && lora_a.size(1) == x.size(1) && lora_b.size(0) == weight.size(0) &&
                    lora_b.size(1) == lora_a.size(0) && (!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)));
  if (!shapes_fit)
    throw std::invalid_argument("[lora_linear] expected x (M, in), W (out, in), A (r, in), B (out, r), b (out); got " +
                                x.describe() + ", " + weight.describe() + ", " + lora_a.describe() + ", " + lora_b.describe() +
                                (bias.defined() ? ", " + bias.describe() : std::string()));
  for (const Tensor* t : {&weight, &lora_a, &lora_b, &bias})
    if (t->defined() && t->dtype() != x.dtype())
      throw std::invalid_argument("[lora_linear] dtypes differ: x " + x.describe() + ", " + t->describe());
  Tensors in{x, weight, lora_a, lora_b};
  if (bias.defined()) in.push_back(bias);
  return apply_new<LoraLinear>(in, scale, bias.defined());
}

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
