#pragma once
// What the vision and text MergeTargets share: a suite's model prepared for one fine-tuning mode, the mode's
// initial state and LoRA scaling, the task list, and the model used for weight-space merges of LoRA modes
// (the plain network for lora and l-lora-local, W0 + Delta W exactly; the network linearized in all its
// weights for l-lora, f(W0) + J_W Delta W).
//
// Suite needs tasks() (each with .task.name), finetuned_state(mode, t) and finetune_config_for(mode);
// Prepared needs a constructor (Suite&, const peft::FinetuneConfig&) and a member `prepared`
// (std::unique_ptr<peft::PreparedModel>).
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/merge_target.h"
#include "nn/layers.h"
#include "tensor/kernels.h"
#include "tensor/random.h"

namespace linfuse::experiments {

template <class Suite, class Prepared>
class PreparedMergeTarget : public MergeTarget {
 public:
  PreparedMergeTarget(Suite& suite, peft::FinetuneMode mode)
      : suite_(suite), mode_(mode), model_(suite, suite.finetune_config_for(mode)) {
    initial_ = model_.prepared->initial_state();
    if (peft::is_lora_mode(mode)) scaling_ = suite.finetune_config_for(mode).lora.scaling();
  }

  peft::FinetuneMode mode() const override { return mode_; }
  int num_tasks() const override { return int(suite_.tasks().size()); }
  std::string task_name(int t) const override { return suite_.tasks()[size_t(t)].task.name; }
  const StateDict& initial_state() const override { return initial_; }
  const StateDict& finetuned_state(int t) const override { return suite_.finetuned_state(mode_, t); }
  double lora_scaling() const override { return scaling_; }

 protected:
  // The weight-space model holding W0 + delta ("<module>.weight" -> Delta W; other weights stay W0).
  Prepared& weight_space_model_with(const StateDict& delta) {
    if (!weight_space_) {
      peft::FinetuneConfig c = suite_.finetune_config_for(mode_);
      c.mode = mode_ == peft::FinetuneMode::LLora ? peft::FinetuneMode::LinearFull : peft::FinetuneMode::Full;
      weight_space_ = std::make_unique<Prepared>(suite_, c);
      weight_space_initial_ = weight_space_->prepared->initial_state();
    }
    StateDict state;
    for (auto& [name, w0] : weight_space_initial_) {
      if (delta.contains(name)) {
        NoGradGuard no_grad;
        state.insert(name, add(w0, cast(delta.at(name), w0.dtype())));
      } else {
        state.insert(name, w0);
      }
    }
    weight_space_->prepared->load_trainable_state(state);
    return *weight_space_;
  }

  // J f(state0) direction by forward mode: `outputs_with(state)` computes the outputs with the trainable part
  // holding `state` (through PreparedModel::forward_with); here state0 = the initial state, its tensors carrying
  // `direction` as their tangents. For the linearized modes f_lin is linear in phi, so this is exactly
  // f_lin(phi0 + direction) - f_lin(phi0).
  template <class OutputsWith>
  Tensor jvp_at_initial(const StateDict& direction, OutputsWith outputs_with) {
    if (direction.size() != initial_.size())
      throw std::invalid_argument("[output_jvp] the direction holds " + std::to_string(direction.size()) +
                                  " tensors, the trainable state of mode " + peft::mode_name(mode_) + " " +
                                  std::to_string(initial_.size()) + ": pass a task vector of this mode");
    std::vector<std::string> names;
    Tensors primals, tangents;
    for (auto& [name, value] : initial_) {
      names.push_back(name);
      primals.push_back(value);
      tangents.push_back(kernels::cast(direction.at(name), value.dtype()));
    }
    NoGradGuard no_grad;   // forward mode alone: nothing to record for a backward pass
    auto [outputs, tangent] = jvp(
        [&](const Tensors& duals) {
          StateDict state;
          for (size_t i = 0; i < names.size(); ++i) state.insert(names[i], duals[i]);
          return outputs_with(state);
        },
        primals, tangents);
    return tangent;
  }

  // The diagonal Fisher of task t's fine-tuned model (Matena & Raffel's "true" Fisher): the mean over
  // examples i < n of the squared gradient of loss_of(i, sample) = -log p(y_i | x_i), where each target draws
  // y_i once from the model's own prediction with `sample` (draw_class). Sums in float64, returned as float32.
  template <class LossOf>
  StateDict mean_squared_gradients(int t, int64_t n, LossOf loss_of) {
    model_.prepared->load_trainable_state(finetuned_state(t));
    std::vector<Tensor> params = model_.prepared->trainable_tensors();
    StateDict names = model_.prepared->trainable_state();
    std::vector<Tensor> sums;
    for (const Tensor& p : params) sums.push_back(Tensor::zeros(p.shape(), DType::F64));
    Generator sample(uint64_t(t) * 31 + 7);
    for (int64_t i = 0; i < n; ++i) {
      Tensors g = grad({loss_of(i, sample)}, params);
      for (size_t k = 0; k < params.size(); ++k) {
        std::vector<double> gv = g[k].to_vector<double>();
        double* s = sums[k].data<double>();
        for (size_t j = 0; j < gv.size(); ++j) s[j] += gv[j] * gv[j] / double(n);
      }
    }
    StateDict out;
    size_t k = 0;
    for (auto& [name, _] : names) out.insert(name, kernels::cast(sums[k++], DType::F32));
    return out;
  }

  // The class a uniform draw u in [0, 1) picks from probabilities p (the last one if rounding leaves u above
  // their sum).
  static size_t draw_class(const std::vector<double>& p, double u) {
    double c = 0;
    for (size_t k = 0; k < p.size(); ++k)
      if ((c += p[k]) > u) return k;
    return p.size() - 1;
  }

  // The modules of `model` whose "<module>.weight" is in the mode's state and that are plain Linear layers
  // (no LoRA adapter): the layers RegMean merges from their inputs' Gram matrices.
  std::vector<std::string> plain_linear_modules(nn::Module& model) const {
    std::vector<std::string> modules;
    for (auto& [name, _] : initial_) {
      if (name.size() <= 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
      std::string module = name.substr(0, name.size() - 7);
      auto linear = std::dynamic_pointer_cast<nn::Linear>(model.find_module(module));
      if (linear && !linear->adapter()) modules.push_back(module);
    }
    return modules;
  }

  Suite& suite_;
  peft::FinetuneMode mode_;
  Prepared model_;
  StateDict initial_;
  double scaling_ = 0;

 private:
  std::unique_ptr<Prepared> weight_space_;
  StateDict weight_space_initial_;
};

}  // namespace linfuse::experiments
