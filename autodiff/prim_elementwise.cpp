// Elementwise primitives: forward kernel, VJP rule and JVP rule of each, side by side.
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "autodiff/activation_math.h"
#include "autodiff/rule_helpers.h"
#include "tensor/fast_math.h"
#include "tensor/kernels.h"

namespace linfuse {
using rules::add_defined;
using rules::binary_kernel;
using rules::unary_kernel;
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

using namespace activation_math;   // the activations' scalar formulas and constants

// ---------------- unary ----------------

class Neg : public Primitive {
  LINFUSE_PRIMITIVE("neg")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "neg", [](auto x) { return -x; }); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override { return {neg(g)}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return neg(t[0]); }
};

class Exp : public Primitive {
  LINFUSE_PRIMITIVE("exp")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "exp", [](auto x) { return fast::exp_of(x); }); }
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {mul(g, y)}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return mul(t[0], y); }
};

class Log : public Primitive {
  LINFUSE_PRIMITIVE("log")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "log", [](auto x) { return std::log(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {div(g, in[0])}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return div(t[0], in[0]); }
};

class Sqrt : public Primitive {
  LINFUSE_PRIMITIVE("sqrt")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "sqrt", [](auto x) { return std::sqrt(x); }); }
  // d sqrt(x) = 0.5 / sqrt(x)
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {mul(div(g, y), 0.5)}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return mul(div(t[0], y), 0.5); }
};

class Rsqrt : public Primitive {
  LINFUSE_PRIMITIVE("rsqrt")
  Tensor forward(const Tensors& in) override {
    return unary_kernel(in[0], "rsqrt", [](auto x) { return decltype(x)(1) / std::sqrt(x); });
  }
  // d x^{-1/2} = -0.5 x^{-3/2} = -0.5 y^3
  static Tensor slope(const Tensor& y) { return mul(mul(y, mul(y, y)), -0.5); }
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {mul(g, slope(y))}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return mul(t[0], slope(y)); }
};

class Tanh : public Primitive {
  LINFUSE_PRIMITIVE("tanh")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "tanh", [](auto x) { return fast::tanh_of(x); }); }
  static Tensor slope(const Tensor& y) { return rsub(1.0, mul(y, y)); }   // 1 - tanh^2
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {mul(g, slope(y))}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return mul(t[0], slope(y)); }
};

class Sigmoid : public Primitive {
  LINFUSE_PRIMITIVE("sigmoid")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "sigmoid", [](auto x) { return stable_sigmoid(x); }); }
  static Tensor slope(const Tensor& y) { return mul(y, rsub(1.0, y)); }   // s (1 - s)
  Tensors vjp(const Tensors&, const Tensor& y, const Tensor& g, const Wanted&) override { return {mul(g, slope(y))}; }
  Tensor jvp(const Tensors&, const Tensor& y, const Tensors& t) override { return mul(t[0], slope(y)); }
};

class Relu : public Primitive {
  LINFUSE_PRIMITIVE("relu")
  Tensor forward(const Tensors& in) override {
    return unary_kernel(in[0], "relu", [](auto x) { return relu_value(x); });
  }
  // The derivative is the constant mask x > 0 (0 at the kink, as PyTorch).
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, gt(in[0], 0.0))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], gt(in[0], 0.0)); }
};

class Abs : public Primitive {
  LINFUSE_PRIMITIVE("abs")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "abs", [](auto x) { return std::abs(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, sign(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], sign(in[0])); }
};

class Erf : public Primitive {
  LINFUSE_PRIMITIVE("erf")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "erf", [](auto x) { return fast::erf_of(x); }); }
  // d erf(x) = 2/sqrt(pi) exp(-x^2)
  static Tensor slope(const Tensor& x) { return mul(exp(neg(mul(x, x))), 2.0 / std::sqrt(std::numbers::pi)); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, slope(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], slope(in[0])); }
};

class PowScalar : public Primitive {
  LINFUSE_PRIMITIVE("pow_scalar")
 public:
  explicit PowScalar(double p) : p_(p) {}
  Tensor forward(const Tensors& in) override {
    double p = p_;
    if (p == 2.0) return unary_kernel(in[0], "pow", [](auto x) { return x * x; });
    return unary_kernel(in[0], "pow", [p](auto x) { return std::pow(x, decltype(x)(p)); });
  }
  Tensor slope(const Tensor& x) const {
    if (p_ == 2.0) return mul(x, 2.0);
    if (p_ == 1.0) return ones_like(x);
    return mul(pow(x, p_ - 1.0), p_);
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, slope(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], slope(in[0])); }

 private:
  double p_;
};

class Clamp : public Primitive {
  LINFUSE_PRIMITIVE("clamp")
 public:
  Clamp(double low, double high) : low_(low), high_(high) {}
  Tensor forward(const Tensors& in) override {
    double lo = low_, hi = high_;
    return unary_kernel(in[0], "clamp", [lo, hi](auto x) {
      using T = decltype(x);
      return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x);
    });
  }
  Tensor inside(const Tensor& x) const {
    double lo = low_, hi = high_;
    return unary_kernel(x, "clamp", [lo, hi](auto v) { return v >= decltype(v)(lo) && v <= decltype(v)(hi) ? 1 : 0; });
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, inside(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], inside(in[0])); }

 private:
  double low_, high_;
};

// ---- activations and their derivatives (values and first derivatives: activation_math.h) ----
// gelu_tanh: d2 = (1 - th^2) (u' + 0.5 x (u'' - 2 th u'^2)),  u'' = 6 c k x
Tensor gelu_tanh_d2(const Tensor& x) {
  Tensor x2 = mul(x, x);
  Tensor th = tanh(mul(add(x, mul(mul(x2, x), kGeluCubic)), kSqrt2OverPi));
  Tensor du = mul(add(mul(x2, 3 * kGeluCubic), 1.0), kSqrt2OverPi);
  Tensor ddu = mul(x, 6 * kSqrt2OverPi * kGeluCubic);
  Tensor inner = add(du, mul(mul(x, 0.5), sub(ddu, mul(mul(th, mul(du, du)), 2.0))));
  return mul(rsub(1.0, mul(th, th)), inner);
}

class GeluTanhGrad : public Primitive {
  LINFUSE_PRIMITIVE("gelu_tanh_grad")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "gelu_tanh_grad", [](auto x) { return gelu_tanh_d1(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, gelu_tanh_d2(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], gelu_tanh_d2(in[0])); }
};

class GeluTanh : public Primitive {
  LINFUSE_PRIMITIVE("gelu_tanh")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "gelu_tanh", [](auto x) { return gelu_tanh_value(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, gelu_tanh_grad(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], gelu_tanh_grad(in[0])); }
};

// gelu_erf: d2 = phi(x) (2 - x^2)
Tensor gelu_erf_d2(const Tensor& x) {
  Tensor x2 = mul(x, x);
  Tensor phi = mul(exp(mul(x2, -0.5)), kInvSqrt2Pi);
  return mul(phi, rsub(2.0, x2));
}

class GeluErfGrad : public Primitive {
  LINFUSE_PRIMITIVE("gelu_erf_grad")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "gelu_erf_grad", [](auto x) { return gelu_erf_d1(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, gelu_erf_d2(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], gelu_erf_d2(in[0])); }
};

class GeluErf : public Primitive {
  LINFUSE_PRIMITIVE("gelu_erf")
  Tensor forward(const Tensors& in) override {
    return unary_kernel(in[0], "gelu_erf", [](auto x) { return gelu_erf_value(x); });
  }
  // A forward-mode pass followed by a VJP of the same node (a linearized model's training step) needs the
  // derivative twice: the JVP keeps it (when nothing is being recorded) for the VJP.
  // Not recording: g * d1(x) in one pass (the same bits as the two-pass mul(g, gelu_erf_grad(x))).
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    if (rules::recording()) return {mul(g, gelu_erf_grad(in[0]))};
    if (d1_.defined()) return {mul(g, d1_)};
    return {binary_kernel(g, in[0], "gelu_erf_vjp", [](auto gv, auto x) { return gv * gelu_erf_d1(x); })};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    if (rules::recording()) return mul(t[0], gelu_erf_grad(in[0]));
    d1_ = gelu_erf_grad(in[0]);
    return mul(t[0], d1_);
  }
  void release() override { d1_ = Tensor(); }

 private:
  Tensor d1_;
};

// quick_gelu: d2 = a s (1 - s) (2 + a x (1 - 2 s))
Tensor quick_gelu_d2(const Tensor& x) {
  Tensor s = sigmoid(mul(x, kQuickGeluScale));
  Tensor ss = mul(s, rsub(1.0, s));
  Tensor inner = add(mul(mul(x, rsub(1.0, mul(s, 2.0))), kQuickGeluScale), 2.0);
  return mul(mul(ss, inner), kQuickGeluScale);
}

class QuickGeluGrad : public Primitive {
  LINFUSE_PRIMITIVE("quick_gelu_grad")
  Tensor forward(const Tensors& in) override { return unary_kernel(in[0], "quick_gelu_grad", [](auto x) { return quick_gelu_d1(x); }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, quick_gelu_d2(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], quick_gelu_d2(in[0])); }
};

class QuickGelu : public Primitive {
  LINFUSE_PRIMITIVE("quick_gelu")
  Tensor forward(const Tensors& in) override {
    return unary_kernel(in[0], "quick_gelu", [](auto x) { return quick_gelu_value(x); });
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, quick_gelu_grad(in[0]))}; }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return mul(t[0], quick_gelu_grad(in[0])); }
};

// ---------------- with a scalar ----------------

class AddScalar : public Primitive {
  LINFUSE_PRIMITIVE("add_scalar")
 public:
  explicit AddScalar(double c) : c_(c) {}
  Tensor forward(const Tensors& in) override {
    double c = c_;
    return unary_kernel(in[0], "add", [c](auto x) { return x + decltype(x)(c); });
  }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override { return {g}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return t[0]; }

 private:
  double c_;
};

class MulScalar : public Primitive {
  LINFUSE_PRIMITIVE("mul_scalar")
 public:
  explicit MulScalar(double c) : c_(c) {}
  Tensor forward(const Tensors& in) override {
    double c = c_;
    return unary_kernel(in[0], "mul", [c](auto x) { return x * decltype(x)(c); });
  }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override { return {mul(g, c_)}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return mul(t[0], c_); }

 private:
  double c_;
};

// ---------------- binary (inputs already broadcast to one shape) ----------------

class Add : public Primitive {
  LINFUSE_PRIMITIVE("add")
  Tensor forward(const Tensors& in) override { return binary_kernel(in[0], in[1], "add", [](auto a, auto b) { return a + b; }); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted&) override { return {g, g}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return add_defined(t[0], t[1]); }
};

class Sub : public Primitive {
  LINFUSE_PRIMITIVE("sub")
  Tensor forward(const Tensors& in) override { return binary_kernel(in[0], in[1], "sub", [](auto a, auto b) { return a - b; }); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const Wanted& w) override {
    return {g, w[1] ? neg(g) : Tensor()};
  }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override {
    return add_defined(t[0], t[1].defined() ? neg(t[1]) : Tensor());
  }
};

class Mul : public Primitive {
  LINFUSE_PRIMITIVE("mul")
  Tensor forward(const Tensors& in) override { return binary_kernel(in[0], in[1], "mul", [](auto a, auto b) { return a * b; }); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    return {w[0] ? mul(g, in[1]) : Tensor(), w[1] ? mul(g, in[0]) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    return add_defined(rules::mul_defined(t[0], in[1]), rules::mul_defined(t[1], in[0]));
  }
};

class Div : public Primitive {
  LINFUSE_PRIMITIVE("div")
  Tensor forward(const Tensors& in) override { return binary_kernel(in[0], in[1], "div", [](auto a, auto b) { return a / b; }); }
  // d(a/b) = da / b - (a/b) db / b
  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const Wanted& w) override {
    Tensor ga = div(g, in[1]);
    return {w[0] ? ga : Tensor(), w[1] ? neg(mul(ga, y)) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    Tensor num = add_defined(t[0], t[1].defined() ? neg(mul(y, t[1])) : Tensor());
    return div(num, in[1]);
  }
};

class Pow : public Primitive {
  LINFUSE_PRIMITIVE("pow")
  Tensor forward(const Tensors& in) override {
    return binary_kernel(in[0], in[1], "pow", [](auto a, auto b) { return std::pow(a, b); });
  }
  // d a^b = b a^(b-1) da + log(a) a^b db
  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const Wanted& w) override {
    return {w[0] ? mul(g, mul(in[1], pow(in[0], sub(in[1], 1.0)))) : Tensor(),
            w[1] ? mul(g, mul(log(in[0]), y)) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    return add_defined(rules::mul_defined(t[0], mul(in[1], pow(in[0], sub(in[1], 1.0)))),
                       rules::mul_defined(t[1], mul(log(in[0]), y)));
  }
};

class Maximum : public Primitive {
  LINFUSE_PRIMITIVE("maximum")
  Tensor forward(const Tensors& in) override {
    return binary_kernel(in[0], in[1], "maximum", [](auto a, auto b) { return a >= b ? a : b; });
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensor pick_a = ge(in[0], in[1]);
    return {w[0] ? mul(g, pick_a) : Tensor(), w[1] ? mul(g, rsub(1.0, pick_a)) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    Tensor pick_a = ge(in[0], in[1]);
    return add_defined(rules::mul_defined(t[0], pick_a), rules::mul_defined(t[1], rsub(1.0, pick_a)));
  }
};

class Where : public Primitive {
  LINFUSE_PRIMITIVE("where")
  bool differentiable_input(size_t i) const override { return i != 0; }
  Tensor forward(const Tensors& in) override {
    return dispatch_float(in[1].dtype(), "where", [&](auto tag) {
      using T = decltype(tag);
      return map<T, T, T, T>([](T c, T a, T b) { return c != T(0) ? a : b; }, in[0], in[1], in[2]);
    });
  }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    Tensor zero = zeros_like(g);
    return {Tensor(), w[1] ? where(in[0], g, zero) : Tensor(), w[2] ? where(in[0], zero, g) : Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    if (!t[1].defined() && !t[2].defined()) return Tensor();
    Tensor zero = zeros_like(y);
    return where(in[0], t[1].defined() ? t[1] : zero, t[2].defined() ? t[2] : zero);
  }
};

// ---------------- front-end helpers ----------------

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string("[") + op + "] dtypes differ: " + a.describe() + " and " + b.describe() +
                                "; cast one first");
}

// Broadcasts both operands to their common shape (differentiably) and applies P.
template <class P>
Tensor binary(const Tensor& a, const Tensor& b, const char* op) {
  check_same_dtype(a, b, op);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  return apply_new<P>({broadcast_to(a, shape), broadcast_to(b, shape)});
}

template <class F>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same_dtype(a, b, op);
  return binary_kernel(a, b, op, [f](auto x, auto y) { return f(x, y) ? 1 : 0; });
}

}  // namespace

Tensor neg(const Tensor& a) { return apply_new<Neg>({a}); }
Tensor exp(const Tensor& a) { return apply_new<Exp>({a}); }
Tensor log(const Tensor& a) { return apply_new<Log>({a}); }
Tensor sqrt(const Tensor& a) { return apply_new<Sqrt>({a}); }
Tensor rsqrt(const Tensor& a) { return apply_new<Rsqrt>({a}); }
Tensor tanh(const Tensor& a) { return apply_new<Tanh>({a}); }
Tensor sigmoid(const Tensor& a) { return apply_new<Sigmoid>({a}); }
Tensor relu(const Tensor& a) { return apply_new<Relu>({a}); }
Tensor gelu_tanh(const Tensor& a) { return apply_new<GeluTanh>({a}); }
Tensor gelu_erf(const Tensor& a) { return apply_new<GeluErf>({a}); }
Tensor quick_gelu(const Tensor& a) { return apply_new<QuickGelu>({a}); }
Tensor gelu_tanh_grad(const Tensor& a) { return apply_new<GeluTanhGrad>({a}); }
Tensor gelu_erf_grad(const Tensor& a) { return apply_new<GeluErfGrad>({a}); }
Tensor quick_gelu_grad(const Tensor& a) { return apply_new<QuickGeluGrad>({a}); }
Tensor erf(const Tensor& a) { return apply_new<Erf>({a}); }
Tensor abs(const Tensor& a) { return apply_new<Abs>({a}); }
Tensor pow(const Tensor& a, double exponent) { return apply_new<PowScalar>({a}, exponent); }
Tensor square(const Tensor& a) { return pow(a, 2.0); }
Tensor clamp(const Tensor& a, double low, double high) {
  if (!(low <= high)) throw std::invalid_argument("[clamp] low " + std::to_string(low) + " > high " + std::to_string(high));
  return apply_new<Clamp>({a}, low, high);
}

Tensor add(const Tensor& a, const Tensor& b) { return binary<Add>(a, b, "add"); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary<Sub>(a, b, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<Mul>(a, b, "mul"); }
Tensor div(const Tensor& a, const Tensor& b) { return binary<Div>(a, b, "div"); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary<Pow>(a, b, "pow"); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary<Maximum>(a, b, "maximum"); }
Tensor minimum(const Tensor& a, const Tensor& b) { return neg(maximum(neg(a), neg(b))); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor c = condition.dtype() == a.dtype() ? condition : kernels::cast(condition, a.dtype());
  return apply_new<Where>({kernels::broadcast_to(c, shape), broadcast_to(a, shape), broadcast_to(b, shape)});
}

Tensor add(const Tensor& a, double b) { return apply_new<AddScalar>({a}, b); }
Tensor mul(const Tensor& a, double b) { return apply_new<MulScalar>({a}, b); }
Tensor sub(const Tensor& a, double b) { return add(a, -b); }
Tensor rsub(double a, const Tensor& b) { return add(neg(b), a); }
Tensor div(const Tensor& a, double b) { return mul(a, 1.0 / b); }

Tensor activate(Activation activation, const Tensor& a) {
  switch (activation) {
    case Activation::GeluErf: return gelu_erf(a);
    case Activation::GeluTanh: return gelu_tanh(a);
    case Activation::QuickGelu: return quick_gelu(a);
    case Activation::Relu: return relu(a);
  }
  throw std::logic_error("[activate] unknown activation");
}

Tensor activation_derivative(Activation activation, const Tensor& a) {
  switch (activation) {
    case Activation::GeluErf: return gelu_erf_grad(a);
    case Activation::GeluTanh: return gelu_tanh_grad(a);
    case Activation::QuickGelu: return quick_gelu_grad(a);
    case Activation::Relu: return gt(a, 0.0);
  }
  throw std::logic_error("[activation_derivative] unknown activation");
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }

Tensor eq(const Tensor& a, const Tensor& b) { return compare(a, b, "eq", [](auto x, auto y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(a, b, "ne", [](auto x, auto y) { return x != y; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(a, b, "lt", [](auto x, auto y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(a, b, "le", [](auto x, auto y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(a, b, "gt", [](auto x, auto y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(a, b, "ge", [](auto x, auto y) { return x >= y; }); }
Tensor gt(const Tensor& a, double b) {
  return unary_kernel(a, "gt", [b](auto x) { return x > decltype(x)(b) ? 1 : 0; });
}
Tensor lt(const Tensor& a, double b) {
  return unary_kernel(a, "lt", [b](auto x) { return x < decltype(x)(b) ? 1 : 0; });
}
Tensor isfinite(const Tensor& a) { return unary_kernel(a, "isfinite", [](auto x) { return std::isfinite(x) ? 1 : 0; }); }
Tensor sign(const Tensor& a) { return unary_kernel(a, "sign", [](auto x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }); }
Tensor zeros_like(const Tensor& a) { return Tensor::zeros(a.shape(), a.dtype()); }
Tensor ones_like(const Tensor& a) { return Tensor::ones(a.shape(), a.dtype()); }

}  // namespace linfuse
