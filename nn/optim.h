#pragma once
// Optimizers (SGD with momentum, Adam, AdamW with decoupled weight decay), gradient clipping by global norm
// and the linear warm-up + cosine learning-rate schedule. They update parameter tensors in place, reading
// each parameter's accumulated .grad(); parameters without a gradient are skipped.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  const std::vector<Tensor>& params() const { return params_; }
  int64_t steps_taken() const { return steps_; }

 protected:
  std::vector<Tensor> params_;   // handles on the module's tensors
  double lr_;
  int64_t steps_ = 0;
};

// p -= lr * (m = momentum m + g + wd p)   (PyTorch's SGD, dampening 0; nesterov optional)
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double weight_decay = 0.0, bool nesterov = false);
  void step() override;

 private:
  double momentum_, weight_decay_;
  bool nesterov_;
  std::vector<Tensor> velocity_;
};

// Adam (Kingma & Ba) with bias correction; `decoupled` = AdamW (Loshchilov & Hutter): p -= lr wd p applied
// to the weights instead of adding wd p to the gradient. Moments are kept in float32/float64 like the params.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0.0, bool decoupled = false);
  void step() override;

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
  std::vector<Tensor> m_, v_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr, double weight_decay = 0.01, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8)
      : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, /*decoupled=*/true) {}
};

// Scales every gradient so that their joint L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The joint L2 norm of the gradients (accumulated in double, fixed order).
double grad_norm(const std::vector<Tensor>& params);

// Learning rate at `step` (0-based): linear warm-up (peak/warmup at step 0, peak at step warmup-1), then cosine decay to
// min_lr_ratio * peak at total_steps (as transformers' get_cosine_schedule_with_warmup, plus a floor).
double warmup_cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak_lr, double min_lr_ratio = 0.0);

}  // namespace linfuse::nn
