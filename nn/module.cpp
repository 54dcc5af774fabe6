#include "nn/module.h"

#include <fnmatch.h>

#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autodiff/ops.h"
#include "tensor/kernels.h"

namespace linfuse::nn {

bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("re:", 0) == 0) return std::regex_match(name, std::regex(pattern.substr(3)));
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument("[Module] '" + name + "' is not a valid member name (non-empty, no dots)");
  for (auto& [n, _] : parameters_)
    if (n == name) throw std::invalid_argument("[Module] '" + name + "' is already a parameter");
  for (auto& [n, _] : buffers_)
    if (n == name) throw std::invalid_argument("[Module] '" + name + "' is already a buffer");
  for (auto& [n, _] : children_)
    if (n == name) throw std::invalid_argument("[Module] '" + name + "' is already a child module");
}

void Module::register_parameter(const std::string& name, Tensor& member) {
  check_new_name(name);
  if (!member.defined()) throw std::invalid_argument("[Module] parameter '" + name + "' is undefined");
  member.set_requires_grad(true);
  parameters_.emplace_back(name, &member);
}

void Module::register_buffer(const std::string& name, Tensor& member) {
  check_new_name(name);
  buffers_.emplace_back(name, &member);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  if (!child) throw std::invalid_argument("[Module] child '" + name + "' is null");
  children_.emplace_back(name, std::move(child));
}

void Module::remove_module(const std::string& name) {
  std::erase_if(children_, [&](auto& c) { return c.first == name; });
}

std::vector<Module::NamedTensor> Module::named_parameters(const std::string& prefix) {
  std::vector<NamedTensor> out;
  for (auto& [n, t] : parameters_) out.push_back({prefix + n, t});
  for (auto& [n, c] : children_)
    for (auto& e : c->named_parameters(prefix + n + ".")) out.push_back(e);
  return out;
}

std::vector<Module::NamedTensor> Module::named_buffers(const std::string& prefix) {
  std::vector<NamedTensor> out;
  for (auto& [n, t] : buffers_) out.push_back({prefix + n, t});
  for (auto& [n, c] : children_)
    for (auto& e : c->named_buffers(prefix + n + ".")) out.push_back(e);
  return out;
}

std::vector<Module::NamedTensor> Module::trainable_parameters(const std::string& prefix) {
  std::vector<NamedTensor> out;
  for (auto& e : named_parameters(prefix))
    if (e.tensor->requires_grad()) out.push_back(e);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (auto& [n, c] : children_) {
    out.emplace_back(prefix + n, c);
    for (auto& e : c->named_modules(prefix + n + ".")) out.push_back(e);
  }
  return out;
}

std::shared_ptr<Module> Module::find_module(const std::string& dotted) {
  size_t dot = dotted.find('.');
  std::string head = dotted.substr(0, dot);
  for (auto& [n, c] : children_)
    if (n == head) return dot == std::string::npos ? c : c->find_module(dotted.substr(dot + 1));
  return nullptr;
}

Tensor& Module::parameter(const std::string& dotted) {
  for (auto& e : named_parameters())
    if (e.name == dotted) return *e.tensor;
  for (auto& e : named_buffers())
    if (e.name == dotted) return *e.tensor;
  throw std::out_of_range("[Module] no parameter or buffer named '" + dotted + "'");
}

StateDict Module::state_dict() {
  StateDict sd;
  for (auto& e : named_parameters()) sd.insert(e.name, *e.tensor);
  for (auto& e : named_buffers()) sd.insert(e.name, *e.tensor);
  return sd;
}

StateDict Module::trainable_state_dict() {
  StateDict sd;
  for (auto& e : trainable_parameters()) sd.insert(e.name, kernels::copy(*e.tensor));
  return sd;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<NamedTensor> targets = named_parameters();
  for (auto& b : named_buffers()) targets.push_back(b);
  std::set<std::string> known;
  std::vector<std::string> missing, mismatched;
  for (auto& t : targets) {
    known.insert(t.name);
    if (!state.contains(t.name)) {
      missing.push_back(t.name);
      continue;
    }
    const Tensor& src = state.at(t.name);
    if (src.shape() != t.tensor->shape())
      mismatched.push_back(t.name + " " + shape_str(src.shape()) + " vs model " + shape_str(t.tensor->shape()));
  }
  std::vector<std::string> unexpected;
  for (auto& [name, _] : state)
    if (!known.count(name)) unexpected.push_back(name);
  if (!mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::ostringstream msg;
    msg << "[load_state_dict] the state does not fit the model";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << "\n  " << what << " (" << names.size() << "):";
      for (size_t i = 0; i < names.size() && i < 20; ++i) msg << " " << names[i];
      if (names.size() > 20) msg << " ...";
    };
    list("shape differs", mismatched);
    if (strict) {
      list("missing from the state", missing);
      list("not in the model", unexpected);
    }
    throw std::invalid_argument(msg.str());
  }
  for (auto& t : targets) {
    if (!state.contains(t.name)) continue;
    Tensor src = kernels::cast(state.at(t.name), t.tensor->dtype());
    kernels::copy_into(*t.tensor, src);
  }
}

int64_t Module::freeze(const std::string& pattern) {
  int64_t n = 0;
  for (auto& e : named_parameters())
    if (name_matches(pattern, e.name)) {
      e.tensor->set_requires_grad(false);
      ++n;
    }
  return n;
}

int64_t Module::unfreeze(const std::string& pattern) {
  int64_t n = 0;
  for (auto& e : named_parameters())
    if (name_matches(pattern, e.name)) {
      e.tensor->set_requires_grad(true);
      ++n;
    }
  return n;
}

void Module::freeze_all() {
  for (auto& e : named_parameters()) e.tensor->set_requires_grad(false);
}

int64_t Module::num_parameters(bool trainable_only) {
  int64_t n = 0;
  for (auto& e : named_parameters())
    if (!trainable_only || e.tensor->requires_grad()) n += e.tensor->numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& e : named_parameters()) e.tensor->zero_grad();
}

}  // namespace linfuse::nn
