#include "peft/finetune.h"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "autodiff/functional.h"
#include "autodiff/tape.h"
#include "nn/optim.h"
#include "nn/progress.h"
#include "tensor/kernels.h"

namespace linfuse::peft {

std::string mode_name(FinetuneMode mode) {
  switch (mode) {
    case FinetuneMode::Full: return "full";
    case FinetuneMode::LinearFull: return "linear-full";
    case FinetuneMode::Lora: return "lora";
    case FinetuneMode::LLora: return "l-lora";
    case FinetuneMode::LLoraLocal: return "l-lora-local";
  }
  return "?";
}

FinetuneMode mode_from_name(const std::string& name) {
  for (FinetuneMode m : all_modes())
    if (mode_name(m) == name) return m;
  throw std::invalid_argument("[finetune] unknown mode '" + name + "' (known: full, linear-full, lora, l-lora, l-lora-local)");
}

std::vector<FinetuneMode> all_modes() {
  return {FinetuneMode::Full, FinetuneMode::LinearFull, FinetuneMode::Lora, FinetuneMode::LLora, FinetuneMode::LLoraLocal};
}

bool is_lora_mode(FinetuneMode m) { return m == FinetuneMode::Lora || m == FinetuneMode::LLora || m == FinetuneMode::LLoraLocal; }
bool is_linearized_mode(FinetuneMode m) { return m == FinetuneMode::LinearFull || m == FinetuneMode::LLora; }

PreparedModel::PreparedModel(nn::Module& model, const std::vector<std::string>& patterns, const FinetuneConfig& config)
    : model_(model), mode_(config.mode) {
  auto selected = [&](const std::string& name) {
    for (const auto& p : patterns)
      if (nn::name_matches(p, name)) return true;
    return false;
  };
  std::vector<std::string> trainable_names;
  if (is_lora_mode(mode_)) {
    LoraConfig lora = config.lora;
    lora.mode = mode_ == FinetuneMode::LLoraLocal ? LoraMode::LocalLinear : LoraMode::Standard;
    // Restrict the targets to Linear layers inside the selected part of the model.
    std::vector<std::string> targets;
    for (auto& [name, module] : model.named_modules()) {
      if (!std::dynamic_pointer_cast<nn::Linear>(module) || !selected(name + ".weight")) continue;
      bool hit = false;
      for (const auto& t : lora.target_modules)
        hit |= t == "all-linear" || nn::name_matches(t, name) || nn::name_matches("*." + t, name);
      if (hit) targets.push_back(name);
    }
    if (targets.empty())
      throw std::invalid_argument("[finetune] no Linear layer inside the trainable part matches the LoRA targets");
    lora.target_modules = targets;
    for (const auto& name : apply_lora(model, lora)) {
      trainable_names.push_back(name + ".lora_A.weight");
      trainable_names.push_back(name + ".lora_B.weight");
    }
  } else {
    model.freeze_all();
    for (auto& e : model.named_parameters())
      if (selected(e.name)) {
        e.tensor->set_requires_grad(true);
        trainable_names.push_back(e.name);
      }
    if (trainable_names.empty()) throw std::invalid_argument("[finetune] no parameter matches the trainable patterns");
  }
  if (is_linearized_mode(mode_)) {
    linearized_ = std::make_unique<LinearizedModel>(model, LinearizedModel::ExactNames{trainable_names});
    initial_ = linearized_->phi0();
  } else {
    for (auto& e : model.named_parameters())
      if (e.tensor->requires_grad()) trainable_.push_back(e);
    for (auto& e : trainable_) initial_.insert(e.name, kernels::copy(*e.tensor));
  }
}

Tensor PreparedModel::forward(const std::function<Tensor()>& features) {
  return linearized_ ? (*linearized_)(features) : features();
}

Tensor PreparedModel::forward_with(const StateDict& state, const std::function<Tensor()>& features) {
  if (linearized_) {
    std::vector<Tensor> phi;
    for (const auto& name : linearized_->names()) phi.push_back(state.at(name));
    return linearized_call(features, linearized_->slots(), linearized_->phi0_tensors(), phi);
  }
  std::vector<Tensor> saved;
  for (auto& e : trainable_) {
    saved.push_back(*e.tensor);
    *e.tensor = state.at(e.name);
  }
  struct Restore {
    std::vector<nn::Module::NamedTensor>& slots;
    std::vector<Tensor>& saved;
    ~Restore() {
      for (size_t i = 0; i < slots.size(); ++i) *slots[i].tensor = saved[i];
    }
  } restore{trainable_, saved};
  return features();
}

std::vector<Tensor> PreparedModel::trainable_tensors() const {
  if (linearized_) return linearized_->parameters();
  std::vector<Tensor> out;
  for (auto& e : trainable_) out.push_back(*e.tensor);
  return out;
}

StateDict PreparedModel::trainable_state() const {
  if (linearized_) return linearized_->phi();
  StateDict sd;
  for (auto& e : trainable_) sd.insert(e.name, kernels::copy(*e.tensor));
  return sd;
}

void PreparedModel::load_trainable_state(const StateDict& state) {
  if (linearized_) {
    linearized_->set_phi(state);
    return;
  }
  if (state.size() != trainable_.size())
    throw std::invalid_argument("[PreparedModel] " + std::to_string(state.size()) + " tensors given for " +
                                std::to_string(trainable_.size()) + " trainable parameters");
  for (auto& e : trainable_) {
    if (!state.contains(e.name)) throw std::invalid_argument("[PreparedModel] missing trainable tensor '" + e.name + "'");
    const Tensor& v = state.at(e.name);
    if (v.shape() != e.tensor->shape())
      throw std::invalid_argument("[PreparedModel] '" + e.name + "' is " + v.describe() + ", expected " + e.tensor->describe());
    kernels::copy_into(*e.tensor, kernels::cast(v, e.tensor->dtype()));
  }
}

int64_t PreparedModel::num_trainable() const {
  int64_t n = 0;
  for (const Tensor& t : trainable_tensors()) n += t.numel();
  return n;
}

void FinetuneConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("[finetune] " + what); };
  if (steps < 1) fail("steps must be at least 1, got " + std::to_string(steps));
  if (!std::isfinite(learning_rate) || learning_rate <= 0)
    fail("learning_rate must be a positive number, got " + std::to_string(learning_rate));
  if (!std::isfinite(weight_decay) || weight_decay < 0) fail("weight_decay must be >= 0, got " + std::to_string(weight_decay));
  if (!(warmup_fraction >= 0 && warmup_fraction <= 1))
    fail("warmup_fraction must be in [0, 1], got " + std::to_string(warmup_fraction));
  if (!std::isfinite(max_grad_norm) || max_grad_norm <= 0)
    fail("max_grad_norm must be a positive number (gradients are clipped to it), got " + std::to_string(max_grad_norm));
  if (optimizer != "adamw" && optimizer != "sgd") fail("optimizer must be \"adamw\" or \"sgd\", got \"" + optimizer + "\"");
}

FinetuneResult finetune(PreparedModel& prepared, const FinetuneConfig& config,
                        const std::function<Tensor(int64_t step)>& batch_loss) {
  config.validate();
  FinetuneResult result;
  result.trainable_parameters = prepared.num_trainable();
  std::vector<Tensor> params = prepared.trainable_tensors();
  std::unique_ptr<nn::Optimizer> optimizer;
  if (config.optimizer == "sgd")
    optimizer = std::make_unique<nn::SGD>(params, config.learning_rate, /*momentum=*/0.9, config.weight_decay);
  else
    optimizer = std::make_unique<nn::AdamW>(params, config.learning_rate, config.weight_decay);
  int64_t warmup = int64_t(std::round(config.warmup_fraction * double(config.steps)));
  prepared.module().train(true);
  nn::Progress progress(config.progress_label, config.steps);
  auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < config.steps; ++step) {
    optimizer->set_lr(nn::warmup_cosine_lr(step, warmup, config.steps, config.learning_rate));
    optimizer->zero_grad();
    Tensor loss = batch_loss(step);
    double value = loss.item();
    if (!std::isfinite(value))
      throw std::runtime_error("[finetune] the loss is " + std::to_string(value) + " at step " + std::to_string(step) +
                               " (" + mode_name(config.mode) + "): lower the learning rate or check the data");
    backward(loss);
    nn::clip_grad_norm(params, config.max_grad_norm);
    optimizer->step();
    result.losses.push_back(value);
    if (!config.progress_label.empty()) progress.update(step + 1, value);
  }
  progress.finish();
  prepared.module().train(false);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace linfuse::peft
