#pragma once
// Partial linearization of a model, network level (the paper's equation; tangent-space fine-tuning of
// Ortiz-Jimenez et al. 2023 when every weight is selected):
//
//   f_lin(x; phi) = f(x; phi0) + J_phi f(x; phi0) (phi - phi0)
//
// for the parameters phi whose names match the chosen patterns (the LoRA adapters for L-LoRA, all weights
// for linearized full fine-tuning, any subset). The other parameters stay as they are.
//
// f_lin is computed as one primitive (LinearizedCall, registered and gradient-checked like every other):
//   forward  one pass of the model at phi0 carrying the tangent phi - phi0 (forward mode, tangents not
//            recorded), returning f0 + J v; the primal graph at phi0 is recorded when gradients are wanted;
//   vjp      one ordinary VJP of that primal graph seeded with the output cotangent g: J^T g. Exact, since
//            f_lin is linear in phi; no reverse-over-forward;
//   jvp      J t by another forward-mode pass.
// The trainable tensors phi are separate leaves; the module's own parameters keep phi0 throughout.
#include <functional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace linfuse::peft {

class LinearizedModel {
 public:
  // Linearizes `model` around its current values in the parameters matching any of `patterns` (globs or
  // "re:" regexes over full parameter names). Throws if nothing matches.
  LinearizedModel(nn::Module& model, const std::vector<std::string>& patterns);
  // Linearizes exactly the named parameters (in the model's order).
  struct ExactNames {
    std::vector<std::string> names;
  };
  LinearizedModel(nn::Module& model, const ExactNames& names);

  // f_lin for one call of the model: `forward` runs the wrapped model (reading its parameters) and returns
  // its output. Backward through the result deposits dL/dphi into parameters()[i].grad().
  Tensor operator()(const std::function<Tensor()>& forward);

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<Tensor>& parameters() const { return phi_; }   // the trainable leaves phi
  StateDict phi() const;    // copies of phi, by parameter name
  StateDict phi0() const;   // copies of the expansion point phi0
  void set_phi(const StateDict& values);   // e.g. phi0 + a merged task vector; names must match
  int64_t num_parameters() const;
  const std::vector<Tensor*>& slots() const { return slots_; }            // the module's parameter members
  const std::vector<Tensor>& phi0_tensors() const { return phi0_; }       // the expansion point

 private:
  void select(const std::function<bool(const std::string&)>& selected, const std::string& what);
  nn::Module& model_;
  std::vector<std::string> names_;
  std::vector<Tensor*> slots_;    // the module's parameter members (they hold phi0)
  std::vector<Tensor> phi0_;      // frozen copies of phi0
  std::vector<Tensor> phi_;       // trainable leaves
};

// Runs `forward` linearized at phi0 = current values of `slots` in direction phi - phi0, as a differentiable
// function of phi (the LinearizedCall primitive). Used by LinearizedModel; exposed for tests.
Tensor linearized_call(const std::function<Tensor()>& forward, const std::vector<Tensor*>& slots,
                       const std::vector<Tensor>& phi0, const std::vector<Tensor>& phi);

}  // namespace linfuse::peft
