#pragma once
// Fused row kernels for the derivative rules of layer norm (used by autodiff/prim_nn.cpp when no graph is
// being recorded; the composite formulas remain for higher-order differentiation). Kept out of kernels.h so
// that the rest of the tree does not depend on them.
#include "tensor/tensor.h"

namespace linfuse::kernels {

// With xhat = (x - mean) rstd over the last dim (n) of x, mean and rstd as saved by layer_norm
// (shape x.shape[:-1]), gamma (n) or undefined, v shaped like x:
//   jvp = true:  out = gamma rstd (tc - xhat mean(xhat tc)),       tc = v - mean(v)        (tangent in x)
//   jvp = false: out = rstd ((u - mean(u)) - xhat mean(u xhat)),   u = v gamma             (cotangent of x)
// Row sums are accumulated in double in a fixed order.
Tensor layer_norm_dx(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma, const Tensor& v, bool jvp);

}  // namespace linfuse::kernels
