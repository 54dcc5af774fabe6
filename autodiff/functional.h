#pragma once
// The autodiff entry points, in JAX's vocabulary (primal, tangent, cotangent) plus PyTorch's imperative
// backward(). Reverse mode walks the tape (tape.h); forward mode propagates eager tangents.
#include <functional>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

using Tensors = std::vector<Tensor>;
using Function = std::function<Tensor(const Tensors&)>;

// Accumulates seed^T d(output)/d(leaf) into the .grad() of every leaf that requires a gradient.
// `seed` defaults to 1 for a one-element output. Without retain_graph the consumed nodes are freed.
// With create_graph the VJP rules are themselves recorded (for higher derivatives).
void backward(const Tensor& output, const Tensor& seed = Tensor(), bool retain_graph = false, bool create_graph = false);

// Gradients of sum_k <seeds[k], outputs[k]> with respect to `inputs` (leaves or intermediate results),
// returned rather than accumulated. An input the outputs do not depend on gets zeros.
Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& seeds = {}, bool retain_graph = false,
             bool create_graph = false);

// JAX vjp: evaluates f at primals and returns the output and its pullback, cotangent -> input cotangents.
// The pullback may be called several times.
struct VjpResult {
  Tensor output;
  std::function<Tensors(const Tensor&)> pullback;
};
VjpResult vjp(const Function& f, const Tensors& primals, bool create_graph = false);

// JAX jvp: (f(primals), J f(primals) tangents). The tangent computation is recorded on the tape when
// gradients are on, so grad() of the returned tangent is reverse-over-forward.
std::pair<Tensor, Tensor> jvp(const Function& f, const Tensors& primals, const Tensors& tangents);

// JAX linearize: evaluates f once and returns its output with the linear map tangents -> J tangents,
// which replays the JVP rules over the recorded primal computation without running f again.
struct Linearized {
  Tensor output;
  std::function<Tensor(const Tensors&)> jvp;
};
Linearized linearize(const Function& f, const Tensors& primals);

// Hessian-vector product of a scalar f, by reverse-over-forward: grad_x <grad f(x), v> = grad_x jvp(f, x, v).
Tensors hvp(const Function& f, const Tensors& primals, const Tensors& vectors);

// An identity op with its own autodiff identity (the tangent and cotangent pass through unchanged).
Tensor identity(const Tensor& a);

}  // namespace linfuse
