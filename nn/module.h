#pragma once
// Module: a node of a model with named parameters, buffers and child modules, giving hierarchical names
// ("vision_model.encoder.layers.0.self_attn.q_proj.weight") as Hugging Face models do.
//
// Parameters are Tensor members of the subclass, registered by address: the registry and the member are one
// handle. Values change in place (load_state_dict, optimizers), so every holder of the handle sees them.
// Modules are neither copyable nor movable (registered addresses must stay valid); hold them by shared_ptr.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/state_dict.h"
#include "tensor/tensor.h"

namespace linfuse::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (in constructors) ----
  // Registers a member tensor as a parameter (it will require gradients) or a buffer (it will not).
  void register_parameter(const std::string& name, Tensor& member);
  void register_buffer(const std::string& name, Tensor& member);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }
  void remove_module(const std::string& name);

  // ---- traversal ----
  struct NamedTensor {
    std::string name;
    Tensor* tensor;
  };
  std::vector<NamedTensor> named_parameters(const std::string& prefix = "");
  std::vector<NamedTensor> named_buffers(const std::string& prefix = "");
  std::vector<NamedTensor> trainable_parameters(const std::string& prefix = "");   // requires_grad only
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(const std::string& prefix = "");
  std::shared_ptr<Module> find_module(const std::string& dotted_name);   // nullptr if absent
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  Tensor& parameter(const std::string& dotted_name);   // throws naming the missing parameter

  // ---- state ----
  StateDict state_dict();                        // parameters then buffers, in registration order (handles, not copies)
  StateDict trainable_state_dict();              // copies of the trainable parameters
  // Copies values into the registered tensors in place. strict: every name must match both ways.
  // Shapes must agree; dtype is converted. Errors list every missing / unexpected / mismatched name.
  void load_state_dict(const StateDict& state, bool strict = true);

  // Freezing by name pattern: a glob ("*.q_proj.*", '*' also matches '.') or a regex prefixed "re:".
  int64_t freeze(const std::string& pattern);     // returns how many parameters matched
  int64_t unfreeze(const std::string& pattern);
  void freeze_all();
  int64_t num_parameters(bool trainable_only = false);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

  // The Module's class name for error messages and summaries ("Linear").
  virtual std::string type_name() const { return "Module"; }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  std::vector<std::pair<std::string, Tensor*>> parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Glob (fnmatch without path semantics, so '*' crosses dots) or, with the prefix "re:", an ECMAScript regex
// that must match the whole name.
bool name_matches(const std::string& pattern, const std::string& name);

// A list of child modules named "0", "1", ... (HF's nn.ModuleList).
template <class M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> m) {
    items_.push_back(m);
    register_module(std::to_string(items_.size() - 1), m);
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<M>& operator[](size_t i) const { return items_[i]; }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  std::string type_name() const override { return "ModuleList"; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace linfuse::nn
