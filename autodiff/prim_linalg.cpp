// Matrix product primitive and the linear layer built on it.
#include <algorithm>
#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>

#include "autodiff/activation_math.h"
#include "autodiff/rule_helpers.h"
#include "tensor/elementwise.h"
#include "tensor/kernel_isa.h"
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
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    return addmm_tangent(t[0], in[1], t[1], in[2], t[2], alpha_, out.shape());
  }
  // tc + alpha (ta b + a tb) (undefined tangents are zeros), broadcast to out_shape. Not recording, the second
  // product accumulates in place onto the fresh buffer holding the first (one copy of the output-sized tangent
  // fewer).
  static Tensor addmm_tangent(const Tensor& tc, const Tensor& a, const Tensor& ta, const Tensor& b, const Tensor& tb,
                              double alpha, const Shape& out_shape) {
    auto scaled = [alpha](const Tensor& x) { return alpha == 1.0 ? x : mul(x, alpha); };
    Tensor acc = tc.defined() ? tc : Tensor();
    if (ta.defined()) acc = acc.defined() ? addmm(acc, ta, b, alpha) : scaled(matmul(ta, b));
    bool owned = ta.defined();   // acc is then a new contiguous (M, N) tensor
    if (tb.defined() && owned && !rules::recording()) kernels::addmm_into(acc, a, tb, alpha);
    else if (tb.defined()) acc = acc.defined() ? addmm(acc, a, tb, alpha) : scaled(matmul(a, tb));
    if (acc.defined() && acc.shape() != out_shape) acc = broadcast_to(acc, out_shape);
    return acc;
  }

 private:
  double alpha_;
};

// The rules of pre = x W^T + b, x (M, in), W (out, in), b (out) at in[2] when has_bias, for the primitives that fuse
// an epilogue onto a linear layer: the products Addmm (with a bias) or Matmul (without) form for linear(), in the
// same layout, so the same bits.
//   vjp: dx = g_pre W;  dW = g_pre^T x;  db = sum over rows of g_pre   (returned at in's indices)
//   jvp: pre_t = x_t W^T + x W_t^T + b_t
// pre = x W^T + b (b undefined: none) by the kernels those products use, for a forward that applies its epilogue over
// the whole output instead of in the GEMM's blocks (float64).
Tensor linear_pre(const Tensor& x, const Tensor& weight_t, const Tensor& bias) {
  return bias.defined() ? kernels::addmm(bias, x, weight_t, 1.0) : kernels::matmul(x, weight_t);
}
Tensors linear_vjp(const Tensors& in, const Tensor& g_pre, const Wanted& w, bool has_bias) {
  Tensors d(in.size());
  if (w[0]) d[0] = matmul(g_pre, in[1]);
  if (w[1]) d[1] = mT(matmul(mT(in[0]), g_pre));
  if (has_bias && w[2]) d[2] = sum_to(g_pre, in[2].shape());
  return d;
}
Tensor linear_jvp(const Tensors& in, const Tensors& t, bool has_bias, const Shape& out_shape) {
  const Tensor weight_t = mT(in[1]), weight_t_tangent = t[1].defined() ? mT(t[1]) : Tensor();
  if (has_bias) return Addmm::addmm_tangent(t[2], in[0], t[0], weight_t, weight_t_tangent, 1.0, out_shape);
  return rules::add_defined(t[0].defined() ? matmul(t[0], weight_t) : Tensor(),
                            t[1].defined() ? matmul(in[0], weight_t_tangent) : Tensor());
}

// One row of a fused activation's epilogue (FusedActivation below): d[j] = f'(v[j]) (d given) and v[j] = f(v[j]), in
// one loop, so that the compiler computes what the two share (GELU's erf and exp) once.
template <class T, class Value, class D1>
[[gnu::always_inline]] inline void activate_row(int64_t count, T* v, T* d, const Value& value_of, const D1& d1_of) {
  if (!d) {
    for (int64_t j = 0; j < count; ++j) v[j] = value_of(v[j]);
    return;
  }
  for (int64_t j = 0; j < count; ++j) {
    const T x = v[j];
    d[j] = d1_of(x);
    v[j] = value_of(x);
  }
}
// The same loop compiled for AVX-512, run where the CPU has it, as the elementwise engine's (tensor/elementwise.h):
// the same bits, one element at a time with no contraction.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
template <class T, class Value, class D1>
[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")]] void activate_row_wide(int64_t count, T* v, T* d,
                                                                                                   const Value& value_of,
                                                                                                   const D1& d1_of) {
  activate_row(count, v, d, value_of, d1_of);
}
#else
template <class T, class Value, class D1>
void activate_row_wide(int64_t count, T* v, T* d, const Value& value_of, const D1& d1_of) {
  activate_row(count, v, d, value_of, d1_of);
}
#endif

// An activation f applied to a product's output as the GEMM stores it (kernels::BlockFinish), with f' written
// beside it for the rules: the part linear_activation and lora_linear (with an activation) share.
class FusedActivation {
 public:
  explicit FusedActivation(Activation activation) : activation_(activation) {}

  // Whether a rule may run on this node (then forward keeps f'): gradients recorded for an input, or forward mode.
  static bool rules_may_run(const Tensors& in) {
    return DualLevel::active() ||
           (grad_enabled() && std::any_of(in.begin(), in.end(), [](const Tensor& t) { return t.requires_grad(); }));
  }
  // What the GEMM runs on each final block of an (m, n) float32 output: f in place, f' into d1 when kept.
  kernels::BlockFinish finish(int64_t m, int64_t n, bool keep_d1) {
    float* d1 = nullptr;
    if (keep_d1) {
      d1_ = Tensor::empty({m, n}, DType::F32);
      d1 = d1_.data<float>();
    }
    return [this, d1, n](float* block, int64_t ld, int64_t row, int64_t col, int64_t rows, int64_t cols) {
      activate_block<float>(block, ld, d1 ? d1 + row * n + col : nullptr, n, rows, cols);
    };
  }
  // f over a whole (m, n) output already computed (float64: the gradient checks).
  void apply(Tensor& y, bool keep_d1) {
    const int64_t m = y.size(0), n = y.size(1);
    if (!y.is_contiguous()) y = kernels::copy(y);
    if (keep_d1) d1_ = Tensor::empty({m, n}, y.dtype());
    dispatch_float(y.dtype(), "fused activation", [&](auto tag) {
      using T = decltype(tag);
      activate_block<T>(y.template data<T>(), n, keep_d1 ? d1_.template data<T>() : nullptr, n, m, n);
      return 0;
    });
  }
  // f'(pre): the one forward kept, or, recording where it depends on inputs that require grad (higher derivatives),
  // rebuilt from pre_with_ops() with differentiable ops.
  template <class PreWithOps>
  Tensor derivative(const Tensors& in, const PreWithOps& pre_with_ops) const {
    const bool constant = std::none_of(in.begin(), in.end(), [](const Tensor& t) { return t.requires_grad(); });
    if (d1_.defined() && (!rules::recording() || constant)) return d1_;
    return activation_derivative(activation_, pre_with_ops());
  }
  void release() { d1_ = Tensor(); }

 private:
  // values (rows x cols, row stride ld) = f(values), and d1 (row stride ld1; when given) = f'(values): one loop per
  // activation, the scalar formulas of activation_math.h.
  template <class T>
  void activate_block(T* values, int64_t ld, T* d1, int64_t ld1, int64_t rows, int64_t cols) const {
    using namespace activation_math;
    const bool wide = detail::kHaveWideElementwise && kernels::kernel_isa() == kernels::KernelIsa::avx512;
    auto run = [&](auto value_of, auto d1_of) {
      for (int64_t r = 0; r < rows; ++r) {
        T* d = d1 ? d1 + r * ld1 : nullptr;
        if (wide) activate_row_wide(cols, values + r * ld, d, value_of, d1_of);
        else activate_row(cols, values + r * ld, d, value_of, d1_of);
      }
    };
    switch (activation_) {
      case Activation::GeluErf: return run([](T x) { return gelu_erf_value(x); }, [](T x) { return gelu_erf_d1(x); });
      case Activation::GeluTanh: return run([](T x) { return gelu_tanh_value(x); }, [](T x) { return gelu_tanh_d1(x); });
      case Activation::QuickGelu: return run([](T x) { return quick_gelu_value(x); }, [](T x) { return quick_gelu_d1(x); });
      case Activation::Relu: return run([](T x) { return relu_value(x); }, [](T x) { return relu_d1(x); });
    }
  }

  Activation activation_;
  Tensor d1_;   // f'(pre) (M, out), kept by forward
};

// y = f(x W^T + b): a linear layer and its activation f in one primitive, x (M, in), W (out, in), b (out) or
// absent. The product's blocks go through f as the GEMM stores them, still in cache (kernels::addmm_finished),
// and f's derivative is written beside them, so the pre-activation makes no pass through memory of its own and
// the rules evaluate no erf or exp again:
//   forward: pre = x W^T + b;  y = f(pre);  keeps d1 = f'(pre) (M, out) when a rule may need it
//   vjp:     g_pre = g d1;  dx = g_pre W;  dW = g_pre^T x;  db = sum over rows of g_pre
//   jvp:     y_t = d1 (x_t W^T + x W_t^T + b_t)
// The same bits as linear() followed by the activation's own primitive (the same products in the same calls, the
// same scalar formulas, activation_math.h); tested. Recording (higher derivatives), d1 depends on x, W and b: the
// rules then rebuild pre with ops, unless none of the three requires grad (a linearized model's tangent pass).
class LinearActivation : public Primitive {
  LINFUSE_PRIMITIVE("linear_activation")
 public:
  LinearActivation(Activation activation, bool has_bias) : f_(activation), has_bias_(has_bias) {}
  Tensor forward(const Tensors& in) override {
    const bool keep_d1 = FusedActivation::rules_may_run(in);
    const Tensor weight_t = kernels::permute(in[1], {1, 0});
    const Tensor bias = has_bias_ ? in[2] : Tensor();
    if (in[0].dtype() != DType::F32) {   // float64: the product, then f over the whole output
      Tensor y = linear_pre(in[0], weight_t, bias);
      f_.apply(y, keep_d1);
      return y;
    }
    return kernels::addmm_finished(bias, in[0], weight_t, f_.finish(in[0].size(0), in[1].size(0), keep_d1));
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    return linear_vjp(in, mul(g, derivative(in)), w, has_bias_);
  }
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    Tensor pre_t = linear_jvp(in, t, has_bias_, out.shape());
    return pre_t.defined() ? mul(pre_t, derivative(in)) : Tensor();
  }
  void release() override { f_.release(); }

 private:
  Tensor derivative(const Tensors& in) const {
    return f_.derivative(in, [&] { return has_bias_ ? addmm(in[2], in[0], mT(in[1])) : matmul(in[0], mT(in[1])); });
  }

  FusedActivation f_;
  bool has_bias_;
};

// A residual stream r (M, N) added onto a product's output y, r + y (add's operands in add(r, y)'s order: one float
// addition per element, so the bits of the separate add), as the GEMM stores each final block of y
// (kernels::BlockFinish), or over the whole output where another kernel computed it (float64).
class FusedResidual {
 public:
  explicit FusedResidual(const Tensor& residual) : residual_(kernels::contiguous(residual)) {}
  // Valid while this object lives: the GEMM calls it before returning.
  kernels::BlockFinish finish() const {
    const float* r = residual_.data<float>();
    const int64_t n = residual_.size(1);
    return [r, n](float* block, int64_t ld, int64_t row, int64_t col, int64_t rows, int64_t cols) {
      add_block<float>(block, ld, r + row * n + col, n, rows, cols);
    };
  }
  void apply(Tensor& y) const {
    if (!y.is_contiguous()) y = kernels::copy(y);
    dispatch_float(y.dtype(), "fused residual", [&](auto tag) {
      using T = decltype(tag);
      add_block<T>(y.template data<T>(), y.size(1), residual_.template data<T>(), y.size(1), y.size(0), y.size(1));
      return 0;
    });
  }

 private:
  // block (rows x cols, row stride ld) = r (row stride ld_r) + block
  template <class T>
  static void add_block(T* block, int64_t ld, const T* r, int64_t ld_r, int64_t rows, int64_t cols) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) block[i * ld + j] = r[i * ld_r + j] + block[i * ld + j];
  }

  Tensor residual_;   // (M, N), contiguous
};

// y = r + (x W^T + b): a linear layer whose output is added onto a residual stream r, x (M, in), W (out, in),
// b (out) or absent, r (M, out). The sum is formed as the GEMM stores each block of the product, still in cache
// (kernels::addmm_finished), so the layer's own output is never a tensor that makes a pass through memory:
//   forward: y = r + (x W^T + b)
//   vjp:     dr = g;  dx = g W;  dW = g^T x;  db = sum over rows of g
//   jvp:     y_t = r_t + (x_t W^T + x W_t^T + b_t)
// The same bits as add(r, linear(x, W, b)): the same products in the same calls, then the same one addition.
class LinearResidual : public Primitive {
  LINFUSE_PRIMITIVE("linear_residual")
 public:
  explicit LinearResidual(bool has_bias) : has_bias_(has_bias) {}
  Tensor forward(const Tensors& in) override {
    const Tensor weight_t = kernels::permute(in[1], {1, 0});
    const Tensor bias = has_bias_ ? in[2] : Tensor();
    const FusedResidual residual(in.back());
    if (in[0].dtype() != DType::F32) {   // float64: the product, then the residual over the whole output
      Tensor y = linear_pre(in[0], weight_t, bias);
      residual.apply(y);
      return y;
    }
    return kernels::addmm_finished(bias, in[0], weight_t, residual.finish());
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensors d = linear_vjp(in, g, w, has_bias_);
    if (w.back()) d.back() = g;
    return d;
  }
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    return rules::add_defined(t.back(), linear_jvp(in, t, has_bias_, out.shape()));
  }

 private:
  bool has_bias_;
};

// y = x W^T + b + s (x A^T) B^T = x W'^T + b with W' = W + s B A: a linear layer with a LoRA update, x (M, in),
// W (out, in), A (r, in), B (out, r), b (out) or absent. The update is folded into the weight: forming W' costs
// out in r multiply-adds, where adding (x A^T) B^T to the M rows' output costs M out r and a pass over that (M, out)
// output (and backward, (g B) A another M in r and a pass). x A^T, which B's gradient needs, comes from the same
// pass over x as x W'^T.
//   forward: W' = W + s B A (out, in);  y = x W'^T + b;  saves W' and x A^T (M, r) for the rules
//   vjp:     dx = g W';  dW = g^T x;  dA = s (g B)^T x;  dB = s g^T (x A^T);  db = sum over rows of g
//   jvp:     y_t = x_t W'^T + x W_t^T + b_t + s (x A_t^T) B^T + s (x A^T) B_t^T   (the tangent of W' is
//            W_t + s (B_t A + B A_t))
// With an activation f, y = f(that): f applied to the blocks of the product as they are stored, and the rules above
// see g f'(pre) for g and return f'(pre) times their tangent, as linear_activation's. With a residual r (M, out), the
// last input, y = r + that, added the same way (dr = g, tangent r_t + ...), as linear_residual's.
// B exactly zero (PEFT's init; for a whole run at a linearized L-LoRA's expansion point): W' = W, and every other
// term through B is zero, so the fast path skips them (dA = 0, no g B, no x A_t^T) and gives the same values; not
// while rules are recorded, where higher derivatives see B's terms.
class LoraLinear : public Primitive {
  LINFUSE_PRIMITIVE("lora_linear")
 public:
  LoraLinear(double scale, bool has_bias, std::optional<Activation> activation, bool has_residual)
      : scale_(scale),
        has_bias_(has_bias),
        has_residual_(has_residual),
        f_(activation ? std::optional<FusedActivation>(*activation) : std::nullopt) {}
  Tensor forward(const Tensors& in) override {
    const Tensor bias = has_bias_ ? in[4] : Tensor();
    const bool keep_d1 = f_ && FusedActivation::rules_may_run(in);
    std::optional<FusedResidual> residual;
    if (has_residual_) residual.emplace(in.back());
    b_is_zero_ = lora_skip_zero_b() && kernels::all_zero(in[3]);
    if (b_is_zero_) {
      folded_ = in[1];   // W + s B A is W
    } else {
      folded_ = kernels::copy(in[1]);
      kernels::addmm_into(folded_, in[3], in[2], scale_);   // W + s B A
    }
    const Tensor folded_t = kernels::permute(folded_, {1, 0}), lora_a_t = kernels::permute(in[2], {1, 0});
    Tensor y;
    if (in[0].dtype() == DType::F32 && (f_ || residual)) {   // f, then r, on the blocks of x W'^T + b as they are stored
      const kernels::BlockFinish finish_block = finish(in, keep_d1, residual);
      kernels::matmul_pair(in[0], folded_t, bias, lora_a_t, y, ax_, &finish_block);
      return y;
    }
    kernels::matmul_pair(in[0], folded_t, bias, lora_a_t, y, ax_);   // x W'^T + b and x A^T from one pass over x
    if (f_) f_->apply(y, keep_d1);   // float64, or nothing fused: f and r over the whole output
    if (residual) residual->apply(y);
    return y;
  }
  // W' = W + s B A: the saved one when no graph is recorded or when W, A and B need no gradient (a linearized
  // model's tangent pass), else rebuilt with ops so that higher derivatives see its dependence on them.
  Tensor folded_weight(const Tensors& in) const {
    const bool constant = !in[1].requires_grad() && !in[2].requires_grad() && !in[3].requires_grad();
    if (folded_.defined() && (!rules::recording() || constant)) return folded_;
    return add(in[1], mul(matmul(in[3], in[2]), scale_));
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
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g_out, const Wanted& w) override {
    const Tensor g = f_ ? mul(g_out, derivative(in)) : g_out;   // the cotangent of the pre-activation
    Tensors d(in.size());
    Tensor gb;   // g B (M, r); zero when B is, and then not formed
    if (w[0] && !skip_b() && !rules::recording())   // g W' and g B from one pass over g
      kernels::matmul_pair(g, folded_weight(in), Tensor(), in[3], d[0], gb);
    else {
      if (w[0]) d[0] = matmul(g, folded_weight(in));
      if (w[2] && !skip_b()) gb = matmul(g, in[3]);
    }
    if (w[1]) d[1] = matmul(mT(g), in[0]);
    if (w[2]) d[2] = skip_b() ? zeros_like(in[2]) : mul(matmul(mT(gb), in[0]), scale_);
    if (w[3]) d[3] = mul(matmul(mT(g), ax(in)), scale_);
    if (has_bias_ && w[4]) d[4] = sum_to(g, in[4].shape());
    if (has_residual_ && w.back()) d.back() = g_out;
    return d;
  }
  Tensor jvp(const Tensors& in, const Tensor& out, const Tensors& t) override {
    Tensor y;
    if (t[0].defined()) y = matmul(t[0], mT(folded_weight(in)));
    if (t[1].defined()) y = rules::add_defined(y, matmul(in[0], mT(t[1])));
    if (has_bias_ && t[4].defined()) y = rules::add_defined(y, broadcast_to(t[4], out.shape()));
    if (t[2].defined() && !skip_b()) y = accumulate(y, matmul(in[0], mT(t[2])), mT(in[3]));   // zero when B is
    if (t[3].defined()) y = accumulate(y, ax(in), mT(t[3]));
    if (f_ && y.defined()) y = mul(y, derivative(in));
    return has_residual_ ? rules::add_defined(t.back(), y) : y;
  }
  void release() override {
    ax_ = Tensor();
    folded_ = Tensor();
    if (f_) f_->release();
  }

 private:
  // f'(pre), rebuilding pre with ops where higher derivatives need its dependence on the inputs
  Tensor derivative(const Tensors& in) const {
    return f_->derivative(in, [&] { return lora_linear(in[0], in[1], in[2], in[3], has_bias_ ? in[4] : Tensor(), scale_); });
  }
  // f, then r, on each block of the output as the last product stores it (float32)
  kernels::BlockFinish finish(const Tensors& in, bool keep_d1, const std::optional<FusedResidual>& residual) {
    kernels::BlockFinish activate = f_ ? f_->finish(in[0].size(0), in[1].size(0), keep_d1) : nullptr;
    kernels::BlockFinish add_residual = residual ? residual->finish() : nullptr;
    return [activate, add_residual](float* block, int64_t ld, int64_t row, int64_t col, int64_t rows, int64_t cols) {
      if (activate) activate(block, ld, row, col, rows, cols);
      if (add_residual) add_residual(block, ld, row, col, rows, cols);
    };
  }
  // The rules may leave out B's terms: B was zero in forward, and no rule is recorded (higher derivatives need them).
  bool skip_b() const { return b_is_zero_ && !rules::recording(); }

  double scale_;
  bool has_bias_, has_residual_;
  std::optional<FusedActivation> f_;   // the activation applied to the output, when fused
  Tensor ax_;       // x A^T (M, r), saved by forward
  Tensor folded_;   // W' = W + s B A (out, in), saved by forward
  bool b_is_zero_ = false;   // B exactly zero in forward (and the shortcut on)
};

}  // namespace

namespace {
// The output shape of a linear layer, x (..., in) W (out, in) b (out) -> (..., out), after checking the shapes fit.
Shape linear_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias, const std::string& op) {
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw std::invalid_argument("[" + op + "] input " + x.describe() + " does not fit weight " + weight.describe() +
                                " (expected (..., in) and (out, in))");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    throw std::invalid_argument("[" + op + "] bias " + bias.describe() + " does not fit weight " + weight.describe());
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  return out_shape;
}
// Every operand of a fused linear layer has x's dtype.
void check_dtypes(const Tensor& x, std::initializer_list<const Tensor*> operands, const std::string& op) {
  for (const Tensor* t : operands)
    if (t->defined() && t->dtype() != x.dtype())
      throw std::invalid_argument("[" + op + "] dtypes differ: x " + x.describe() + ", " + t->describe());
}
// A fused residual is added element for element onto the layer's output: no broadcasting.
void check_residual(const Tensor& residual, const Shape& out_shape, const std::string& op) {
  if (residual.shape() != out_shape)
    throw std::invalid_argument("[" + op + "] residual " + residual.describe() + " does not match the layer's output " +
                                shape_str(out_shape) + " (a fused residual is not broadcast; use add() for that)");
}
}  // namespace

Tensor linear_activation(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation activation) {
  const Shape out_shape = linear_output_shape(x, weight, bias, "linear_activation");
  check_dtypes(x, {&weight, &bias}, "linear_activation");
  Tensors in{reshape(x, {-1, x.size(-1)}), weight};   // leading dims folded into rows, as linear() does
  if (bias.defined()) in.push_back(bias);
  return reshape(apply_new<LinearActivation>(in, activation, bias.defined()), out_shape);
}

Tensor linear_residual(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  const Shape out_shape = linear_output_shape(x, weight, bias, "linear_residual");
  check_residual(residual, out_shape, "linear_residual");
  check_dtypes(x, {&weight, &bias, &residual}, "linear_residual");
  Tensors in{reshape(x, {-1, x.size(-1)}), weight};   // leading dims folded into rows, as linear() does
  if (bias.defined()) in.push_back(bias);
  in.push_back(reshape(residual, {-1, weight.size(0)}));
  return reshape(apply_new<LinearResidual>(in, bias.defined()), out_shape);
}

namespace {
Tensor lora_linear_impl(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                        double scale, std::optional<Activation> activation, const Tensor& residual) {
  const Shape out_shape = linear_output_shape(x, weight, bias, "lora_linear");
  const bool factors_fit = lora_a.dim() == 2 && lora_b.dim() == 2 && lora_a.size(1) == weight.size(1) &&
                           lora_b.size(0) == weight.size(0) && lora_b.size(1) == lora_a.size(0);
  if (!factors_fit)
    throw std::invalid_argument("[lora_linear] expected A (r, in) and B (out, r) for W " + weight.describe() + "; got " +
                                lora_a.describe() + ", " + lora_b.describe());
  if (residual.defined()) check_residual(residual, out_shape, "lora_linear_residual");
  check_dtypes(x, {&weight, &lora_a, &lora_b, &bias, &residual}, "lora_linear");
  Tensors in{reshape(x, {-1, x.size(-1)}), weight, lora_a, lora_b};   // leading dims folded into rows, as linear() does
  if (bias.defined()) in.push_back(bias);
  if (residual.defined()) in.push_back(reshape(residual, {-1, weight.size(0)}));
  return reshape(apply_new<LoraLinear>(in, scale, bias.defined(), activation, residual.defined()), out_shape);
}
}  // namespace

namespace {
std::atomic<bool> skip_zero_lora_b{true};
}
void set_lora_skip_zero_b(bool on) { skip_zero_lora_b = on; }
bool lora_skip_zero_b() { return skip_zero_lora_b; }

Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                   double scale) {
  return lora_linear_impl(x, weight, lora_a, lora_b, bias, scale, std::nullopt, Tensor());
}

Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                   double scale, Activation activation) {
  return lora_linear_impl(x, weight, lora_a, lora_b, bias, scale, activation, Tensor());
}

Tensor lora_linear_residual(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b,
                            const Tensor& bias, double scale, const Tensor& residual) {
  return lora_linear_impl(x, weight, lora_a, lora_b, bias, scale, std::nullopt, residual);
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
  const Shape out_shape = linear_output_shape(x, weight, bias, "linear");
  // Fold the leading dims into rows: one GEMM instead of a batch of them (also for the weight gradient).
  // The bias is accumulated by the GEMM itself (addmm), not added in a second pass.
  Tensor x2 = reshape(x, {-1, x.size(-1)});
  Tensor y = bias.defined() ? addmm(bias, x2, transpose(weight, 0, 1)) : matmul(x2, transpose(weight, 0, 1));
  return reshape(y, out_shape);
}

}  // namespace linfuse
