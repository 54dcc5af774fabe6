#include "peft/lora.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernels.h"

namespace linfuse::peft {

std::string lora_init_name(LoraInit init) {
  switch (init) {
    case LoraInit::PeftDefault: return "peft";
    case LoraInit::Gaussian: return "gaussian";
    case LoraInit::BothRandom: return "both-random";
  }
  return "?";
}

LoraInit lora_init_from_name(const std::string& name) {
  if (name == "peft" || name == "default" || name == "true") return LoraInit::PeftDefault;
  if (name == "gaussian") return LoraInit::Gaussian;
  if (name == "both-random") return LoraInit::BothRandom;
  throw std::invalid_argument("[lora] unknown init '" + name + "' (known: peft, gaussian, both-random)");
}

double LoraConfig::scaling() const {
  if (rank <= 0) throw std::invalid_argument("[lora] rank must be positive, got " + std::to_string(rank));
  return use_rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

LoraAdapter::LoraAdapter(int64_t in, int64_t out, const LoraConfig& config, Generator& init, DType dtype)
    : scaling(config.scaling()) {
  int64_t r = config.rank;
  lora_A = register_module("lora_A", std::make_shared<nn::Linear>(in, r, false, init, dtype));
  lora_B = register_module("lora_B", std::make_shared<nn::Linear>(r, out, false, init, dtype));
  // nn::Linear(in, r) already drew A ~ U(-1/sqrt(in), 1/sqrt(in)) = kaiming_uniform(a = sqrt 5), as PEFT.
  // B drew U(-1/sqrt(r), 1/sqrt(r)) from the same stream; keep it only for BothRandom.
  if (config.init == LoraInit::Gaussian)
    kernels::copy_into(lora_A->weight, init.normal({r, in}, 0.0, 1.0 / double(r), dtype));
  if (config.init != LoraInit::BothRandom) kernels::copy_into(lora_B->weight, Tensor::zeros({out, r}, dtype));
  if (config.dropout > 0) dropout_ = std::make_shared<nn::Dropout>(config.dropout, config.dropout_seed);
  set_mode(config.mode);
}

void LoraAdapter::set_mode(LoraMode mode) {
  mode_ = mode;
  if (mode == LoraMode::LocalLinear) {
    A0 = kernels::copy(lora_A->weight);
    B0 = kernels::copy(lora_B->weight);
  } else {
    A0 = B0 = Tensor();
  }
}

// Fused when nothing needs the pieces: not merged, plain LoRA, no dropout on the LoRA input, and no adapter of A's
// or B's own (a RegMean Gram recorder must see their inputs).
bool LoraAdapter::fusable() const {
  return !merged_ && mode_ == LoraMode::Standard && !(dropout_ && is_training()) && !lora_A->adapter() && !lora_B->adapter() &&
         !lora_A->bias.defined() && !lora_B->bias.defined();
}

// The fusable layer as the one primitive lora_linear (activation or residual fused if given), (..., in) -> (..., out).
Tensor LoraAdapter::fused_forward(nn::Linear& base, const Tensor& x, std::optional<nn::Activation> activation,
                                  const Tensor& residual) {
  if (residual.defined())
    return lora_linear_residual(x, base.weight, lora_A->weight, lora_B->weight, base.bias, scaling, residual);
  if (activation) return lora_linear(x, base.weight, lora_A->weight, lora_B->weight, base.bias, scaling, *activation);
  return lora_linear(x, base.weight, lora_A->weight, lora_B->weight, base.bias, scaling);
}

Tensor LoraAdapter::forward_adapted(nn::Linear& base, const Tensor& x) {
  return fusable() ? fused_forward(base, x, std::nullopt, Tensor()) : LinearAdapter::forward_adapted(base, x);
}

Tensor LoraAdapter::forward_adapted_activated(nn::Linear& base, const Tensor& x, nn::Activation activation) {
  return fusable() ? fused_forward(base, x, activation, Tensor()) : LinearAdapter::forward_adapted_activated(base, x, activation);
}

Tensor LoraAdapter::forward_adapted_residual(nn::Linear& base, const Tensor& x, const Tensor& residual) {
  return fusable() ? fused_forward(base, x, std::nullopt, residual) : LinearAdapter::forward_adapted_residual(base, x, residual);
}

Tensor LoraAdapter::adapt(const Tensor& x, const Tensor& base_output) {
  if (merged_) return base_output;
  Tensor h = dropout_ && is_training() ? dropout_->forward(x) : x;
  Tensor update;
  if (mode_ == LoraMode::Standard && !lora_B->adapter() && lora_B->bias.defined() == false) {
    // base + s B (A x) as one GEMM accumulating onto the base output (addmm): no separate update tensor,
    // scaling pass or addition pass. (A Linear with an adapter of its own, e.g. a RegMean Gram recorder,
    // must see its input: then the general path below.)
    Tensor ax = lora_A->forward(h);   // (..., r)
    Tensor flat = addmm(reshape(base_output, {-1, base_output.size(-1)}), reshape(ax, {-1, ax.size(-1)}),
                        transpose(lora_B->weight, 0, 1), scaling);
    return reshape(flat, base_output.shape());
  }
  if (mode_ == LoraMode::LocalLinear && !lora_B->adapter() && !lora_B->bias.defined()) {
    // The same expansion written s B (A0 x) + s B0 (A x - A0 x), both terms accumulated by addmm onto the base
    // output: the rank-r difference replaces the third full-width product and the update/sum passes.
    auto flat = [](const Tensor& t) { return reshape(t, {-1, t.size(-1)}); };
    Tensor a0x = linear(h, A0);                         // (..., r)
    Tensor diff = sub(lora_A->forward(h), a0x);         // (A - A0) x
    Tensor y = addmm(flat(base_output), flat(a0x), transpose(lora_B->weight, 0, 1), scaling);
    y = addmm(y, flat(diff), transpose(B0, 0, 1), scaling);
    return reshape(y, base_output.shape());
  }
  if (mode_ == LoraMode::Standard) {
    update = lora_B->forward(lora_A->forward(h));   // (..., out)
  } else {
    // s (B A0 + B0 A - B0 A0) x: first-order Taylor expansion of s B A x around (A0, B0). A and B are applied
    // through their Linear modules, so whatever observes a Linear's input (RegMean's recorders) sees x for A
    // and A0 x for B.
    Tensor a0x = linear(h, A0);                          // (..., r)
    Tensor first = lora_B->forward(a0x);                 // B A0 x
    Tensor second = linear(lora_A->forward(h), B0);      // B0 A x
    Tensor constant = linear(a0x, B0);                   // B0 A0 x
    update = sub(add(first, second), constant);
  }
  return add(base_output, mul(update, scaling));
}

Tensor LoraAdapter::delta_weight() {
  NoGradGuard no_grad;
  return mul(matmul(lora_B->weight, lora_A->weight), scaling);
}

namespace {

bool is_target(const std::string& name, const LoraConfig& config) {
  bool hit = false;
  for (const auto& t : config.target_modules)
    if (t == "all-linear" || nn::name_matches(t, name) || nn::name_matches("*." + t, name) || t == name) hit = true;
  for (const auto& e : config.exclude_modules)
    if (nn::name_matches(e, name) || nn::name_matches("*." + e, name) || e == name) hit = false;
  return hit;
}

// A stable 64-bit hash of a module name (FNV-1a), so each module's init stream depends only on its name.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::vector<std::string> apply_lora(nn::Module& model, const LoraConfig& config) {
  config.scaling();   // validates the rank
  std::vector<std::string> wrapped, linears;
  Generator base(config.init_seed);
  for (auto& [name, module] : model.named_modules()) {
    auto lin = std::dynamic_pointer_cast<nn::Linear>(module);
    if (!lin || std::dynamic_pointer_cast<LoraAdapter>(lin->adapter())) continue;
    if (name.find(".lora_A") != std::string::npos || name.find(".lora_B") != std::string::npos) continue;
    linears.push_back(name);
    if (!is_target(name, config)) continue;
    Generator init = base.fork(name_hash(name));
    auto adapter = std::make_shared<LoraAdapter>(lin->in_features, lin->out_features, config, init, lin->weight.dtype());
    if (config.init == LoraInit::BothRandom && config.compensate_base) {
      // W0 <- W0 - s B0 A0: the adapted layer starts as the base layer.
      Tensor w = kernels::copy(lin->weight);
      NoGradGuard no_grad;
      kernels::copy_into(lin->weight, sub(w, adapter->delta_weight()));
    }
    lin->set_adapter(adapter);
    wrapped.push_back(name);
  }
  if (wrapped.empty()) {
    std::ostringstream msg;
    msg << "[apply_lora] no Linear module matches target_modules";
    for (auto& t : config.target_modules) msg << " '" << t << "'";
    msg << "; Linear modules are named like:";
    for (size_t i = 0; i < linears.size() && i < 5; ++i) msg << " " << linears[i];
    throw std::invalid_argument(msg.str());
  }
  model.freeze_all();
  for (const auto& name : wrapped) {
    model.unfreeze(name + ".lora_A.weight");
    model.unfreeze(name + ".lora_B.weight");
  }
  return wrapped;
}

std::vector<std::pair<std::string, std::shared_ptr<LoraAdapter>>> lora_adapters(nn::Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<LoraAdapter>>> out;
  for (auto& [name, module] : model.named_modules())
    if (auto lin = std::dynamic_pointer_cast<nn::Linear>(module))
      if (auto a = std::dynamic_pointer_cast<LoraAdapter>(lin->adapter())) out.emplace_back(name, a);
  return out;
}

namespace {
void shift_base(nn::Module& model, bool merge) {
  NoGradGuard no_grad;
  for (auto& [name, adapter] : lora_adapters(model)) {
    if (adapter->merged() == merge) continue;
    if (adapter->mode() != LoraMode::Standard)
      throw std::logic_error("[merge_lora] " + name + " is in layer-linearized mode; merge its weights in Standard mode");
    auto lin = std::dynamic_pointer_cast<nn::Linear>(model.find_module(name));
    if (merge) {
      Tensor w = kernels::copy(lin->weight);
      kernels::copy_into(lin->weight, add(w, adapter->delta_weight()));
      adapter->mark_merged(w);
    } else {
      kernels::copy_into(lin->weight, adapter->take_base_backup());
    }
  }
}
}  // namespace

void merge_lora(nn::Module& model) { shift_base(model, true); }
void unmerge_lora(nn::Module& model) { shift_base(model, false); }

void remove_lora(nn::Module& model) {
  for (auto& [name, _] : lora_adapters(model))
    std::dynamic_pointer_cast<nn::Linear>(model.find_module(name))->remove_adapter();
}

void set_lora_mode(nn::Module& model, LoraMode mode) {
  for (auto& [_, adapter] : lora_adapters(model)) adapter->set_mode(mode);
}

}  // namespace linfuse::peft
