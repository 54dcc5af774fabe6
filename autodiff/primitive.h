#pragma once
// A primitive is one differentiable operation, defined in one place with three rules side by side:
//   forward  computes the output from raw input tensors (kernels only, no autodiff),
//   vjp      maps the output cotangent to input cotangents (ops only, so it is differentiable itself),
//   jvp      maps input tangents to the output tangent (ops only).
// Tangent and cotangent slots are aligned with the inputs; an undefined tensor means zero.
// Every primitive class registers its name (LINFUSE_PRIMITIVE), and the gradient-check registry must cover
// every registered name: a test fails if one is left unchecked.
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

class Primitive {
 public:
  virtual ~Primitive() = default;
  virtual const char* name() const = 0;
  virtual Tensor forward(const std::vector<Tensor>& inputs) = 0;
  // Cotangents for the inputs with wanted[i] set (others may be left undefined).
  virtual std::vector<Tensor> vjp(const std::vector<Tensor>& inputs, const Tensor& output, const Tensor& cotangent,
                                  const std::vector<bool>& wanted) = 0;
  virtual Tensor jvp(const std::vector<Tensor>& inputs, const Tensor& output, const std::vector<Tensor>& tangents) = 0;
  // Inputs such as indices and masks carry no derivative.
  virtual bool differentiable_input(size_t) const { return true; }
  // Frees state saved by forward for the rules (called once backward has used the node).
  virtual void release() {}
};

// Runs a primitive: forward, then records a tape node (when an input requires grad and grad mode is on)
// and computes the output tangent (when an input has a tangent at the active dual level).
Tensor apply_primitive(std::shared_ptr<Primitive> primitive, std::vector<Tensor> inputs);

template <class P, class... Args>
Tensor apply_new(std::vector<Tensor> inputs, Args&&... args) {
  return apply_primitive(std::make_shared<P>(std::forward<Args>(args)...), std::move(inputs));
}

// Registry of primitive names (filled by LINFUSE_PRIMITIVE at static-initialisation time).
bool register_primitive_name(const char* name);
std::vector<std::string> registered_primitives();

// Records the names of primitives applied on this thread while alive (used by the gradient checks to
// know which primitives a check exercised).
class PrimitiveTrace {
 public:
  PrimitiveTrace();
  ~PrimitiveTrace();
  const std::vector<std::string>& names() const { return names_; }
  static void note(const char* name);

 private:
  std::vector<std::string> names_;
  PrimitiveTrace* previous_;
};

}  // namespace linfuse

// Declares name() and registers the primitive. Use inside a class deriving from Primitive.
#define LINFUSE_PRIMITIVE(NAME)                                                       \
 public:                                                                              \
  const char* name() const override { return (void)registered_, NAME; }              \
                                                                                      \
 private:                                                                             \
  static inline const bool registered_ = ::linfuse::register_primitive_name(NAME);   \
                                                                                      \
 public:
