#include "autodiff/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autodiff/ops.h"
#include "autodiff/primitive.h"
#include "autodiff/tape.h"
#include "tensor/kernels.h"

namespace linfuse {
namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
double norm(const std::vector<double>& a) { return std::sqrt(dot(a, a)); }

// max |a - b| / max(1, max |b|), with non-finite entries counting as an infinite error unless both agree.
double max_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      if (!(a[i] == b[i])) return INFINITY;
      continue;
    }
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

Tensor with_values(const Tensor& like, const std::vector<double>& v) {
  return Tensor::from_vector(v, like.shape());
}

bool checked(const Tensor& t) { return t.dtype() == DType::F64; }

Tensor direction(Generator& gen, const Tensor& like, bool dyadic) {
  Tensor d = gen.normal(like.shape(), 0.0, 1.0, DType::F64);
  if (!dyadic) return d;
  std::vector<double> v = values(d);
  for (double& x : v) x = std::round(x * 64) / 64;
  return with_values(like, v);
}

double inner_with(const Tensor& u, const Tensor& y) {
  std::vector<double> a = values(u), b = values(y);
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(b[i])) s += a[i] * b[i];   // -inf outputs (fully masked rows) are flat: skipped
  return s;
}

}  // namespace

GradcheckResult run_gradcheck(const GradcheckCase& c, uint64_t seed) {
  GradcheckResult r;
  r.name = c.name;
  Generator gen(seed);
  Tensors x = c.sample(gen);
  std::ostringstream why;
  try {
    PrimitiveTrace trace;
    Tensor y0;
    {
      NoGradGuard no_grad;
      y0 = c.fn(x);
    }
    Tensor u = direction(gen, y0, c.dyadic);
    Tensors v(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      if (checked(x[i])) v[i] = direction(gen, x[i], c.dyadic);

    // ---- reverse mode ----
    Tensors leaves;
    Tensors wrt;
    for (const Tensor& xi : x) {
      Tensor leaf = xi.detach();
      if (checked(xi)) {
        leaf.set_requires_grad(true);
        wrt.push_back(leaf);
      }
      leaves.push_back(leaf);
    }
    Tensor y = c.fn(leaves);
    Tensors cot = grad({y}, wrt, {u}, /*retain_graph=*/false);
    // the same through the recorded (differentiable) rules
    Tensor y_rec = c.fn(leaves);
    Tensors cot_rec = grad({y_rec}, wrt, {u}, false, /*create_graph=*/true);

    double vjp_err = 0;
    size_t k = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!checked(x[i])) continue;
      std::vector<double> xv = values(x[i]), numeric(xv.size());
      for (size_t j = 0; j < xv.size(); ++j) {
        if (!std::isfinite(xv[j])) continue;   // -inf (masked) entries: the function is flat there
        Tensors xp = x, xm = x;
        std::vector<double> p = xv, m = xv;
        p[j] += c.step;
        m[j] -= c.step;
        xp[i] = with_values(x[i], p);
        xm[i] = with_values(x[i], m);
        NoGradGuard no_grad;
        numeric[j] = (inner_with(u, c.fn(xp)) - inner_with(u, c.fn(xm))) / (2 * c.step);
      }
      std::vector<double> analytic = values(cot[k]), recorded = values(cot_rec[k]);
      for (size_t j = 0; j < xv.size(); ++j)
        if (!std::isfinite(xv[j])) analytic[j] = numeric[j] = recorded[j] = 0;
      vjp_err = std::max({vjp_err, max_error(analytic, numeric), max_error(recorded, analytic)});
      ++k;
    }

    // ---- forward mode ----
    auto [y_fwd, jv] = jvp(c.fn, x, v);
    // and without gradient recording, where rules may take their fused kernels (layer norm, attention)
    Tensor jv_plain;
    {
      NoGradGuard no_grad;
      jv_plain = jvp(c.fn, x, v).second;
    }
    Linearized lin = linearize(c.fn, x);
    Tensor jv_lin = lin.jvp(v);
    Tensors xp = x, xm = x;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!checked(x[i])) continue;
      std::vector<double> xv = values(x[i]), dv = values(v[i]), p = xv, m = xv;
      for (size_t j = 0; j < xv.size(); ++j) {
        p[j] += c.step * dv[j];
        m[j] -= c.step * dv[j];
      }
      xp[i] = with_values(x[i], p);
      xm[i] = with_values(x[i], m);
    }
    std::vector<double> fp, fm;
    {
      NoGradGuard no_grad;
      fp = values(c.fn(xp));
      fm = values(c.fn(xm));
    }
    std::vector<double> numeric_jv(fp.size()), analytic_jv = values(jv), lin_jv = values(jv_lin);
    for (size_t j = 0; j < fp.size(); ++j) {
      numeric_jv[j] = (fp[j] == fm[j]) ? 0.0 : (fp[j] - fm[j]) / (2 * c.step);   // equal infinities: flat
    }
    r.jvp_error = std::max({max_error(analytic_jv, numeric_jv), max_error(lin_jv, analytic_jv),
                            max_error(values(jv_plain), analytic_jv)});
    r.vjp_error = vjp_err;

    // ---- adjoint identity: <u, J v> = <J^T u, v> ----
    std::vector<double> uv = values(u);
    double ujv = dot(uv, analytic_jv);
    double jtuv = 0, jtu_norm2 = 0, v_norm2 = 0;
    k = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!checked(x[i])) continue;
      std::vector<double> g = values(cot[k++]), dv = values(v[i]), xv = values(x[i]);
      for (size_t j = 0; j < g.size(); ++j) {
        if (!std::isfinite(xv[j])) continue;
        jtuv += g[j] * dv[j];
        jtu_norm2 += g[j] * g[j];
        v_norm2 += dv[j] * dv[j];
      }
    }
    double scale = norm(uv) * norm(analytic_jv) + std::sqrt(jtu_norm2 * v_norm2);
    r.adjoint_error = scale > 0 ? std::abs(ujv - jtuv) / scale : std::abs(ujv - jtuv);
    if (!std::isfinite(ujv) || !std::isfinite(jtuv)) r.adjoint_error = INFINITY;
    r.primitives = trace.names();
  } catch (const std::exception& e) {
    why << "threw: " << e.what();
    r.vjp_error = r.jvp_error = r.adjoint_error = INFINITY;
  }
  r.passed = r.vjp_error <= c.tolerance && r.jvp_error <= c.tolerance && r.adjoint_error <= kAdjointTolerance;
  if (!r.passed && why.str().empty()) {
    why << "errors above tolerance (vjp/jvp " << c.tolerance << ", adjoint " << kAdjointTolerance << ")";
  }
  r.message = why.str();
  return r;
}

}  // namespace linfuse
