// A new differentiable operation written from scratch: hypot(a, b) = sqrt(a^2 + b^2), elementwise.
//
// A primitive is one class with three rules side by side (autodiff/primitive.h):
//   forward  the value, from raw numbers (no autodiff inside);
//   vjp      output cotangent g -> input cotangents:   da = g a / y,   db = g b / y;
//   jvp      input tangents ta, tb -> output tangent:   ty = (a ta + b tb) / y.
// The rules are written with differentiable ops, so they can be differentiated again. Tangent slots are aligned
// with the inputs, and an undefined tangent means zero (forward mode along a alone leaves tb undefined).
// The gradient checker then compares the VJP and the JVP with finite differences and with each other
// (<u, J v> = <J^T u, v>); a wrong rule, like the one of Hypot<true> below, fails it.
//
// Run: build/examples/new_primitive
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "autodiff/gradcheck.h"   // GradcheckCase, run_gradcheck
#include "autodiff/ops.h"
#include "autodiff/primitive.h"   // Primitive, apply_new, LINFUSE_PRIMITIVE

using namespace linfuse;
using Tensors = std::vector<Tensor>;

template <bool kBroken>
class Hypot : public Primitive {
  LINFUSE_PRIMITIVE(kBroken ? "example_broken_hypot" : "example_hypot")

  Tensor forward(const Tensors& in) override {   // in[0], in[1]: the same shape, float32 or float64
    if (in[0].shape() != in[1].shape())
      throw std::invalid_argument("[hypot] shapes differ: " + in[0].describe() + " and " + in[1].describe());
    std::vector<double> a = in[0].to_vector<double>(), b = in[1].to_vector<double>(), y(a.size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = std::hypot(a[i], b[i]);   // no overflow for large a, b
    if (in[0].dtype() == DType::F64) return Tensor::from_vector(y, in[0].shape());
    return Tensor::from_vector(std::vector<float>(y.begin(), y.end()), in[0].shape());   // float32 in, float32 out
  }

  Tensors vjp(const Tensors& in, const Tensor& y, const Tensor& g, const std::vector<bool>& wanted) override {
    Tensors d(2);   // leave a cotangent undefined when nobody wants it
    if (wanted[0]) d[0] = div(mul(g, in[0]), y);
    if (wanted[1]) d[1] = div(mul(g, kBroken ? neg(in[1]) : in[1]), y);   // the broken rule flips a sign
    return d;
  }

  Tensor jvp(const Tensors& in, const Tensor& y, const Tensors& t) override {
    Tensor sum;   // a ta + b tb, skipping undefined (zero) tangents
    if (t[0].defined()) sum = mul(in[0], t[0]);
    if (t[1].defined()) sum = sum.defined() ? add(sum, mul(in[1], t[1])) : mul(in[1], t[1]);
    return sum.defined() ? div(sum, y) : Tensor();
  }
};

// The public op: apply_new runs forward, records a tape node if needed, and propagates tangents.
template <bool kBroken = false>
Tensor hypotenuse(const Tensor& a, const Tensor& b) { return apply_new<Hypot<kBroken>>({a, b}); }

bool check(const GradcheckCase& c) {
  GradcheckResult r = run_gradcheck(c, /*seed=*/0);
  std::printf("%-22s vjp error %.1e  jvp error %.1e  adjoint error %.1e  -> %s %s\n", c.name.c_str(), r.vjp_error,
              r.jvp_error, r.adjoint_error, r.passed ? "passed" : "failed", r.message.c_str());
  return r.passed;
}

int main() {
  // A case draws float64 inputs and names the function to check: here hypot on (3, 4) inputs.
  auto sample = [](Generator& g) {
    return Tensors{g.normal({3, 4}, 0, 1, DType::F64), g.normal({3, 4}, 0, 1, DType::F64)};
  };
  bool good = check({"hypot", sample, [](const Tensors& x) { return hypotenuse(x[0], x[1]); }});
  // Composed with other ops, e.g. as a loss term, it is checked the same way.
  bool composed = check({"tanh(hypot(a, b)) * a", sample,
                         [](const Tensors& x) { return mul(tanh(hypotenuse(x[0], x[1])), x[0]); }});
  bool broken = check({"broken hypot", sample, [](const Tensors& x) { return hypotenuse<true>(x[0], x[1]); }});

  Tensor three = Tensor::scalar(3, DType::F64), four = Tensor::scalar(4, DType::F64);
  std::printf("hypotenuse(3, 4) = %g\n", hypotenuse(three, four).item());
  bool ok = good && composed && !broken;   // the checker must accept the right rules and catch the wrong one
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
