#include "autodiff/primitive.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>

#include "autodiff/tape.h"

namespace linfuse {
namespace {

std::set<std::string>& primitive_names() {
  static std::set<std::string>* names = new std::set<std::string>();
  return *names;
}
thread_local PrimitiveTrace* active_trace = nullptr;

}  // namespace

bool register_primitive_name(const char* name) {
  primitive_names().insert(name);
  return true;
}

std::vector<std::string> registered_primitives() {
  return std::vector<std::string>(primitive_names().begin(), primitive_names().end());
}

PrimitiveTrace::PrimitiveTrace() : previous_(active_trace) { active_trace = this; }
PrimitiveTrace::~PrimitiveTrace() {
  active_trace = previous_;
  if (previous_)
    for (auto& n : names_) previous_->names_.push_back(n);
}
void PrimitiveTrace::note(const char* name) {
  if (active_trace && std::find(active_trace->names_.begin(), active_trace->names_.end(), name) == active_trace->names_.end())
    active_trace->names_.push_back(name);
}

Tensor apply_primitive(std::shared_ptr<Primitive> primitive, std::vector<Tensor> inputs) {
  PrimitiveTrace::note(primitive->name());
  Tensor output = primitive->forward(inputs);
  // A forward may hand back one of its inputs (a no-op cast); give the result its own identity.
  for (const Tensor& in : inputs)
    if (in.defined() && output.impl() == in.impl()) output = output.detach();

  bool record = false, has_tangent = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !primitive->differentiable_input(i)) continue;
    if (grad_enabled() && inputs[i].requires_grad()) record = true;
    if (DualLevel::active() && tangent_of(inputs[i]).defined()) has_tangent = true;
  }
  // Record first: a JVP rule may use the output, and reverse-over-forward must see that dependence.
  if (record) tape::record(primitive, inputs, output);
  if (has_tangent) {
    std::vector<Tensor> tangents(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].defined() && primitive->differentiable_input(i)) tangents[i] = tangent_of(inputs[i]);
    Tensor out_tangent;
    {
      bool recording_tangents = DualLevel::records_tangents();
      ForwardModeSuspend suspend;
      if (recording_tangents) {
        out_tangent = primitive->jvp(inputs, output, tangents);
      } else {
        NoGradGuard no_grad;
        out_tangent = primitive->jvp(inputs, output, tangents);
      }
    }
    if (out_tangent.defined() && (out_tangent.shape() != output.shape() || out_tangent.dtype() != output.dtype()))
      throw std::logic_error(std::string("[") + primitive->name() + "::jvp] returned a tangent " + out_tangent.describe() +
                             " for an output " + output.describe());
    set_tangent(output, out_tangent);
  }
  return output;
}

}  // namespace linfuse
