// Row kernels of neural networks along the last axis: softmax, log_softmax, layer norm, RMS norm.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "tensor/fast_math.h"
#include "tensor/kernels.h"
#include "tensor/kernels_norm_grad.h"
#include "tensor/softmax_rows.h"
#include "tensor/threading.h"

namespace linfuse::kernels {
namespace {

// Rows of n elements per task in the row kernels: about 16 K elements.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(n, 1)); }

// Runs fn(row_index) for every row of a (rows x n) layout, a few rows per task.
template <class Fn>
void for_rows(int64_t rows, int64_t n, Fn fn) {
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fn(r);
  });
}

// Runs fn(first_row, group) over the rows of a (rows x n) layout, a few rows per task, `group` rows at a time
// (std::integral_constant kRowGroup, then 1 for the rest of a task's rows). For row kernels whose sums run in a fixed
// order along each row: a chain of dependent additions waits on each one's latency, and interleaving the chains of a
// group's rows overlaps them, while each row sees exactly its own operations (so the same bits).
constexpr int kRowGroup = 8;
template <class Fn>
void for_row_groups(int64_t rows, int64_t n, Fn fn) {
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + kRowGroup <= r1; r += kRowGroup) fn(r, std::integral_constant<int, kRowGroup>());
    for (; r < r1; ++r) fn(r, std::integral_constant<int, 1>());
  });
}

using row_kernels::sum_in_order;

void require_last_axis(const Tensor& a, const char* op) {
  if (a.dim() == 0) throw std::invalid_argument(std::string("[") + op + "] needs a tensor of rank >= 1");
}

}  // namespace

Tensor softmax_last(const Tensor& a_in) {
  require_last_axis(a_in, "softmax");
  Tensor a = contiguous(a_in);
  return dispatch_float(a.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(a.shape(), dtype_of<T>());
    int64_t n = a.size(-1), rows = n ? a.numel() / n : 0;
    const T* x = a.template data<T>();
    T* y = out.template data<T>();
    for_rows(rows, n, [&](int64_t r) { row_kernels::softmax(x + r * n, y + r * n, n); });
    return out;
  });
}

Tensor log_softmax_last(const Tensor& a_in) {
  require_last_axis(a_in, "log_softmax");
  Tensor a = contiguous(a_in);
  return dispatch_float(a.dtype(), "log_softmax", [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(a.shape(), dtype_of<T>());
    int64_t n = a.size(-1), rows = n ? a.numel() / n : 0;
    const T* x = a.template data<T>();
    T* y = out.template data<T>();
    for_rows(rows, n, [&](int64_t r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i]);
      if (!std::isfinite(m)) {
        for (int64_t i = 0; i < n; ++i) yr[i] = -std::numeric_limits<T>::infinity();
        return;
      }
      for (int64_t i = 0; i < n; ++i) yr[i] = fast::exp_of(xr[i] - m);
      T lse = T(double(m) + std::log(sum_in_order(yr, n)));
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - lse;
    });
    return out;
  });
}

void layer_norm(const Tensor& x_in, const Tensor& gamma_in, const Tensor& beta_in, double eps, Tensor& y, Tensor& mean,
                Tensor& rstd) {
  require_last_axis(x_in, "layer_norm");
  Tensor x = contiguous(x_in);
  int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  for (const Tensor* p : {&gamma_in, &beta_in})
    if (p->defined() && (p->dim() != 1 || p->size(0) != n || p->dtype() != x.dtype()))
      throw std::invalid_argument("[layer_norm] weight/bias " + p->describe() + " does not match the last dim of " +
                                  x.describe());
  Tensor gamma = gamma_in.defined() ? contiguous(gamma_in) : Tensor();
  Tensor beta = beta_in.defined() ? contiguous(beta_in) : Tensor();
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(x.shape(), dtype_of<T>());
    mean = Tensor::empty(row_shape, dtype_of<T>());
    rstd = Tensor::empty(row_shape, dtype_of<T>());
    const T* xp = x.template data<T>();
    const T* g = gamma.defined() ? gamma.template data<T>() : nullptr;
    const T* b = beta.defined() ? beta.template data<T>() : nullptr;
    T* yp = y.template data<T>();
    T* mp = mean.template data<T>();
    T* rp = rstd.template data<T>();
    // per row: mu = sum(x) / n, var = sum((x - mu)^2) / n in double, in order; y = (x - mu) rstd gamma + beta
    for_row_groups(rows, n, [&](int64_t r, auto group) {
      constexpr int R = decltype(group)::value;   // rows [r, r + R), their sums interleaved
      const T* xr = xp + r * n;
      double s[R] = {}, ss[R] = {}, mu[R];
      for (int64_t i = 0; i < n; ++i)
        for (int q = 0; q < R; ++q) s[q] += double(xr[q * n + i]);
      for (int q = 0; q < R; ++q) mu[q] = s[q] / double(n);
      for (int64_t i = 0; i < n; ++i)
        for (int q = 0; q < R; ++q) {
          double d = double(xr[q * n + i]) - mu[q];
          ss[q] += d * d;
        }
      for (int q = 0; q < R; ++q) {
        double inv = 1.0 / std::sqrt(ss[q] / double(n) + eps);
        mp[r + q] = T(mu[q]);
        rp[r + q] = T(inv);
        const T tm = T(mu[q]), ti = T(inv);
        const T* x_row = xr + q * n;
        T* yr = yp + (r + q) * n;
        for (int64_t i = 0; i < n; ++i) {
          T v = (x_row[i] - tm) * ti;
          if (g) v = v * g[i];
          if (b) v = v + b[i];
          yr[i] = v;
        }
      }
    });
  });
}

void rms_norm(const Tensor& x_in, const Tensor& gamma_in, double eps, Tensor& y, Tensor& rstd) {
  require_last_axis(x_in, "rms_norm");
  Tensor x = contiguous(x_in);
  int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  if (gamma_in.defined() && (gamma_in.dim() != 1 || gamma_in.size(0) != n || gamma_in.dtype() != x.dtype()))
    throw std::invalid_argument("[rms_norm] weight " + gamma_in.describe() + " does not match the last dim of " + x.describe());
  Tensor gamma = gamma_in.defined() ? contiguous(gamma_in) : Tensor();
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  dispatch_float(x.dtype(), "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(x.shape(), dtype_of<T>());
    rstd = Tensor::empty(row_shape, dtype_of<T>());
    const T* xp = x.template data<T>();
    const T* g = gamma.defined() ? gamma.template data<T>() : nullptr;
    T* yp = y.template data<T>();
    T* rp = rstd.template data<T>();
    for_rows(rows, n, [&](int64_t r) {
      const T* xr = xp + r * n;
      T* yr = yp + r * n;
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * double(xr[i]);
      T inv = T(1.0 / std::sqrt(ss / double(n) + eps));
      rp[r] = inv;
      for (int64_t i = 0; i < n; ++i) yr[i] = g ? (xr[i] * inv) * g[i] : xr[i] * inv;
    });
  });
}

Tensor softmax_rule_last(const Tensor& y_in, const Tensor& v_in) {
  require_last_axis(y_in, "softmax_rule");
  if (v_in.shape() != y_in.shape() || v_in.dtype() != y_in.dtype())
    throw std::invalid_argument("[softmax_rule] " + v_in.describe() + " does not match " + y_in.describe());
  Tensor y = contiguous(y_in), v = contiguous(v_in);
  return dispatch_float(y.dtype(), "softmax_rule", [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(y.shape(), dtype_of<T>());
    int64_t n = y.size(-1), rows = n ? y.numel() / n : 0;
    const T* yp = y.template data<T>();
    const T* vp = v.template data<T>();
    T* op = out.template data<T>();
    for_rows(rows, n, [&](int64_t r) { row_kernels::softmax_rule(yp + r * n, vp + r * n, op + r * n, n); });
    return out;
  });
}

void layer_norm_affine_grad(const Tensor& x_in, const Tensor& mean_in, const Tensor& rstd_in, const Tensor& g_in, Tensor* dgamma,
                            Tensor* dbeta) {
  require_last_axis(x_in, "layer_norm_affine_grad");
  if (g_in.shape() != x_in.shape() || g_in.dtype() != x_in.dtype())
    throw std::invalid_argument("[layer_norm_affine_grad] " + g_in.describe() + " does not match " + x_in.describe());
  Tensor x = contiguous(x_in), g = contiguous(g_in), mean = contiguous(mean_in), rstd = contiguous(rstd_in);
  int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  if (mean.numel() != rows || rstd.numel() != rows)
    throw std::invalid_argument("[layer_norm_affine_grad] statistics do not match " + x.describe());
  dispatch_float(x.dtype(), "layer_norm_affine_grad", [&](auto tag) {
    using T = decltype(tag);
    Tensor dg = Tensor::empty({n}, dtype_of<T>()), db = Tensor::empty({n}, dtype_of<T>());
    const T* xp = x.template data<T>();
    const T* gp = g.template data<T>();
    const T* mp = mean.template data<T>();
    const T* rp = rstd.template data<T>();
    T* dgp = dg.template data<T>();
    T* dbp = db.template data<T>();
    constexpr int64_t kCols = 256;
    parallel_for(n, kCols, [&](int64_t c0, int64_t c1) {
      double acc_gamma[kCols] = {}, acc_beta[kCols] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = xp + r * n;
        const T* gr = gp + r * n;
        T mu = mp[r], rs = rp[r];
        for (int64_t j = c0; j < c1; ++j) {
          T xh = (xr[j] - mu) * rs;
          acc_gamma[j - c0] += double(gr[j] * xh);
          acc_beta[j - c0] += double(gr[j]);
        }
      }
      for (int64_t j = c0; j < c1; ++j) {
        dgp[j] = static_cast<T>(acc_gamma[j - c0]);
        dbp[j] = static_cast<T>(acc_beta[j - c0]);
      }
    });
    if (dgamma) *dgamma = dg;
    if (dbeta) *dbeta = db;
    return 0;
  });
}

Tensor layer_norm_dx(const Tensor& x_in, const Tensor& mean_in, const Tensor& rstd_in, const Tensor& gamma_in,
                     const Tensor& v_in, bool jvp) {
  require_last_axis(x_in, "layer_norm_dx");
  if (v_in.shape() != x_in.shape() || v_in.dtype() != x_in.dtype())
    throw std::invalid_argument("[layer_norm_dx] " + v_in.describe() + " does not match " + x_in.describe());
  Tensor x = contiguous(x_in), v = contiguous(v_in), mean = contiguous(mean_in), rstd = contiguous(rstd_in);
  Tensor gamma = gamma_in.defined() ? contiguous(gamma_in) : Tensor();
  int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  if (mean.numel() != rows || rstd.numel() != rows || (gamma.defined() && gamma.numel() != n))
    throw std::invalid_argument("[layer_norm_dx] statistics do not match " + x.describe());
  return dispatch_float(x.dtype(), "layer_norm_dx", [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(x.shape(), dtype_of<T>());
    const T* xp = x.template data<T>();
    const T* vp = v.template data<T>();
    const T* mp = mean.template data<T>();
    const T* rp = rstd.template data<T>();
    const T* g = gamma.defined() ? gamma.template data<T>() : nullptr;
    T* op = out.template data<T>();
    for_row_groups(rows, n, [&](int64_t r, auto group) {
      constexpr int R = decltype(group)::value;   // rows [r, r + R), their sums interleaved
      const T* xr = xp + r * n;
      const T* vr = vp + r * n;
      T* o = op + r * n;   // holds u (or tc) first, then the result
      // The elementwise parts row by row (they vectorise), the two sums over each row's stored terms with the rows'
      // chains interleaved: u, then sum(u); xhat u' (u' = u, or tc = u - mean(u) for the JVP), then its sum.
      thread_local std::vector<T> terms;   // xhat u' (R, n)
      terms.resize(size_t(R * n));
      const bool times_gamma = !jvp && g;
      for (int q = 0; q < R; ++q)
        for (int64_t i = 0; i < n; ++i) o[q * n + i] = times_gamma ? vr[q * n + i] * g[i] : vr[q * n + i];
      double s[R] = {}, p[R] = {};
      for (int64_t i = 0; i < n; ++i)
        for (int q = 0; q < R; ++q) s[q] += double(o[q * n + i]);
      T mu_u[R], mp_u[R], mu[R], rs[R];
      for (int q = 0; q < R; ++q) {
        mu_u[q] = T(s[q] / double(n));
        mu[q] = mp[r + q];
        rs[q] = rp[r + q];
      }
      for (int q = 0; q < R; ++q)
        for (int64_t i = 0; i < n; ++i) {
          T xh = (xr[q * n + i] - mu[q]) * rs[q];
          T u = jvp ? o[q * n + i] - mu_u[q] : o[q * n + i];
          if (jvp) o[q * n + i] = u;
          terms[size_t(q * n + i)] = xh * u;
        }
      for (int64_t i = 0; i < n; ++i)
        for (int q = 0; q < R; ++q) p[q] += double(terms[size_t(q * n + i)]);
      for (int q = 0; q < R; ++q) mp_u[q] = T(p[q] / double(n));
      for (int q = 0; q < R; ++q)
        for (int64_t i = 0; i < n; ++i) {
          T xh = (xr[q * n + i] - mu[q]) * rs[q];
          T val = jvp ? rs[q] * (o[q * n + i] - xh * mp_u[q]) : rs[q] * ((o[q * n + i] - mu_u[q]) - xh * mp_u[q]);
          if (jvp && g) val = val * g[i];
          o[q * n + i] = val;
        }
    });
    return out;
  });
}

}  // namespace linfuse::kernels
