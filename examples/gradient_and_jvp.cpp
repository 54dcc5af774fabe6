// Reverse mode, forward mode, and the identity that ties them together, on f(x) = tanh(W x).
//
// f maps R^3 to R^2, so its Jacobian J is a 2 x 3 matrix, and we know it in closed form:
//   J = diag(1 - y^2) W   with y = f(x),  since d tanh(z) = (1 - tanh(z)^2) dz.
// Reverse mode (a VJP) gives J^T u for a cotangent u in output space; forward mode (a JVP) gives J v for a
// tangent v in input space. Neither ever builds J. Here we build it by hand to check both, and then check the
// adjoint identity <u, J v> = <J^T u, v>, which holds only if the two modes are exact transposes of each other.
//
// Run: build/examples/gradient_and_jvp
#include <cmath>
#include <cstdio>

#include "autodiff/functional.h"   // grad, vjp, jvp: the autodiff entry points
#include "autodiff/ops.h"          // differentiable ops: matmul, tanh, sum, ...

using namespace linfuse;

// <a, b> over all entries.
double inner(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

int main() {
  const DType f64 = DType::F64;   // float64 so that the checks can be tight
  Tensor W = Tensor::from_list({0.5, -1.0, 2.0, 1.5, 0.3, -0.7}, {2, 3}, f64);
  Tensor x = Tensor::from_list({0.2, -0.4, 0.1}, {3}, f64);
  Function f = [&](const Tensors& in) { return tanh(matmul(W, in[0])); };   // (3) -> (2)

  // The Jacobian by hand: J[i][j] = (1 - y_i^2) W[i][j].
  Tensor y = f({x});
  Tensor J = mul(reshape(rsub(1.0, mul(y, y)), {2, 1}), W);   // (2, 3)

  // Forward mode: J v, by pushing the tangent v through every op (each op's JVP rule).
  Tensor v = Tensor::from_list({1.0, 2.0, -1.0}, {3}, f64);
  auto [y_again, Jv] = jvp(f, {x}, {v});
  double forward_error = max_abs_diff(Jv, matmul(J, v));

  // Reverse mode: J^T u, by pulling the cotangent u back through the recorded ops (each op's VJP rule).
  Tensor u = Tensor::from_list({0.7, -0.3}, {2}, f64);
  VjpResult pulled = vjp(f, {x});
  Tensor JTu = pulled.pullback(u)[0];
  double reverse_error = max_abs_diff(JTu, matmul(transpose(J, 0, 1), u));

  // A gradient is a VJP with u = dL/dy. For L = sum(y^2) / 2, dL/dy = y, so grad L = J^T y.
  Tensor leaf = x.detach().set_requires_grad(true);
  Tensor loss = div(sum(square(f({leaf}))), 2.0);
  Tensor dx = grad({loss}, {leaf})[0];
  double gradient_error = max_abs_diff(dx, matmul(transpose(J, 0, 1), y));

  // The adjoint identity: both sides are the number u^T J v, computed by two different programs.
  double left = inner(u, Jv), right = inner(JTu, v);
  double adjoint_error = std::abs(left - right);

  std::printf("y = f(x)      = [% .6f, % .6f]\n", y.to_vector<double>()[0], y.to_vector<double>()[1]);
  std::printf("J v  (jvp)    = [% .6f, % .6f]   |error vs J by hand| %.1e\n", Jv.to_vector<double>()[0],
              Jv.to_vector<double>()[1], forward_error);
  std::printf("J^T u (vjp)   = [% .6f, % .6f, % .6f]   |error| %.1e\n", JTu.to_vector<double>()[0],
              JTu.to_vector<double>()[1], JTu.to_vector<double>()[2], reverse_error);
  std::printf("grad L        |error vs J^T y| %.1e\n", gradient_error);
  std::printf("<u, J v> = %.15f\n<J^T u, v> = %.15f   difference %.1e\n", left, right, adjoint_error);

  bool ok = forward_error < 1e-14 && reverse_error < 1e-14 && gradient_error < 1e-14 && adjoint_error < 1e-14;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
