#include "nn/optim.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "tensor/kernels.h"
#include "tensor/threading.h"

namespace linfuse::nn {
namespace {

constexpr int64_t kGrain = 1 << 15;

void check_param(const Tensor& p, const char* op) {
  if (!p.defined() || !p.is_contiguous() || !is_floating(p.dtype()))
    throw std::invalid_argument(std::string("[") + op + "] parameters must be defined, contiguous and floating, got " +
                                p.describe());
}

// The parameter's gradient as a contiguous tensor of its dtype, or undefined when it has none.
Tensor gradient_of(const Tensor& p) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  if (g.shape() != p.shape())
    throw std::logic_error("[optimizer] gradient " + g.describe() + " does not match parameter " + p.describe());
  return kernels::contiguous(kernels::cast(g, p.dtype()));
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  for (const Tensor& p : params_) check_param(p, "optimizer");
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double weight_decay, bool nesterov)
    : Optimizer(std::move(params), lr), momentum_(momentum), weight_decay_(weight_decay), nesterov_(nesterov) {
  for (const Tensor& p : params_) velocity_.push_back(Tensor::zeros(p.shape(), p.dtype()));
}

void SGD::step() {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = gradient_of(params_[i]);
    if (!g.defined()) continue;
    dispatch_float(params_[i].dtype(), "SGD", [&](auto tag) {
      using T = decltype(tag);
      T* p = params_[i].template data<T>();
      const T* gp = g.template data<T>();
      T* vel = velocity_[i].template data<T>();
      bool first = steps_ == 1;
      parallel_for(params_[i].numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          double d = double(gp[j]) + weight_decay_ * double(p[j]);
          if (momentum_ != 0) {
            double vj = first ? d : momentum_ * double(vel[j]) + d;
            vel[j] = T(vj);
            d = nesterov_ ? d + momentum_ * vj : vj;
          }
          p[j] = T(double(p[j]) - lr_ * d);
        }
      });
    });
  }
}

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
    : Optimizer(std::move(params), lr), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay),
      decoupled_(decoupled) {
  for (const Tensor& p : params_) {
    m_.push_back(Tensor::zeros(p.shape(), p.dtype()));
    v_.push_back(Tensor::zeros(p.shape(), p.dtype()));
  }
}

void Adam::step() {
  ++steps_;
  double bias1 = 1.0 - std::pow(beta1_, double(steps_));
  double bias2 = 1.0 - std::pow(beta2_, double(steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = gradient_of(params_[i]);
    if (!g.defined()) continue;
    dispatch_float(params_[i].dtype(), "Adam", [&](auto tag) {
      using T = decltype(tag);
      T* p = params_[i].template data<T>();
      const T* gp = g.template data<T>();
      T* m = m_[i].template data<T>();
      T* v = v_[i].template data<T>();
      parallel_for(params_[i].numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          double pj = double(p[j]);
          double gj = double(gp[j]);
          if (decoupled_) pj -= lr_ * weight_decay_ * pj;   // AdamW: decay the weights, not the gradient
          else gj += weight_decay_ * pj;
          double mj = beta1_ * double(m[j]) + (1 - beta1_) * gj;
          double vj = beta2_ * double(v[j]) + (1 - beta2_) * gj * gj;
          m[j] = T(mj);
          v[j] = T(vj);
          p[j] = T(pj - lr_ * (mj / bias1) / (std::sqrt(vj / bias2) + eps_));
        }
      });
    });
  }
}

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0;   // summed in parameter order, each tensor in element order: deterministic
  for (const Tensor& p : params) {
    Tensor g = gradient_of(p);
    if (!g.defined()) continue;
    dispatch_float(g.dtype(), "grad_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* d = g.template data<T>();
      double acc[4] = {0, 0, 0, 0};
      int64_t n = g.numel(), j = 0;
      for (; j + 4 <= n; j += 4)
        for (int k = 0; k < 4; ++k) acc[k] += double(d[j + k]) * double(d[j + k]);
      for (; j < n; ++j) acc[0] += double(d[j]) * double(d[j]);
      total += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    });
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  double norm = grad_norm(params);
  if (!std::isfinite(norm))
    throw std::runtime_error("[clip_grad_norm] the gradient norm is " + std::to_string(norm) +
                             ": the loss diverged (lower the learning rate or check the inputs)");
  if (norm <= max_norm || norm == 0) return norm;
  double scale = max_norm / (norm + 1e-6);
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor scaled = kernels::copy(g);
    dispatch_float(scaled.dtype(), "clip_grad_norm", [&](auto tag) {
      using T = decltype(tag);
      T* d = scaled.template data<T>();
      const T s = T(scale);
      const int64_t n = scaled.numel();   // once: numel() multiplies out the shape on every call
      for (int64_t j = 0; j < n; ++j) d[j] *= s;
    });
    const_cast<Tensor&>(p).set_grad(scaled);
  }
  return norm;
}

double warmup_cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak_lr, double min_lr_ratio) {
  if (warmup_steps > 0 && step < warmup_steps) return peak_lr * double(step + 1) / double(warmup_steps);
  int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  double progress = std::min(1.0, double(step - warmup_steps) / double(decay_steps));
  double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine);
}

}  // namespace linfuse::nn
