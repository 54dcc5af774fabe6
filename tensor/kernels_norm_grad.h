#pragma once
// Fused row kernels for the derivative rules of layer norm and softmax (used by autodiff/prim_nn.cpp when no
// graph is being recorded; the composite formulas remain for higher-order differentiation). Kept out of kernels.h so
// that the rest of the tree does not depend on them.
#include "tensor/tensor.h"

namespace linfuse::kernels {

// With xhat = (x - mean) rstd over the last dim (n) of x, mean and rstd as saved by layer_norm
// (shape x.shape[:-1]), gamma (n) or undefined, v shaped like x:
//   jvp = true:  out = gamma rstd (tc - xhat mean(xhat tc)),       tc = v - mean(v)        (tangent in x)
//   jvp = false: out = rstd ((u - mean(u)) - xhat mean(u xhat)),   u = v gamma             (cotangent of x)
// Row sums are accumulated in double in a fixed order.
Tensor layer_norm_dx(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma, const Tensor& v, bool jvp);

// The affine parameters' cotangents in one pass over x and g (shaped like x): dgamma = sum over rows of g xhat,
// dbeta = sum over rows of g, both of shape (n); either pointer may be null. Column sums are accumulated in
// double in row order (the bits of sum_to(mul(g, xhat)) and sum_to(g)).
void layer_norm_affine_grad(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& g, Tensor* dgamma,
                            Tensor* dbeta);

// Softmax's VJP and JVP rule along the last dim: y (v - <v, y>), y = softmax(x), v shaped like y; the row sum
// <v, y> of the float products is accumulated in double in a fixed order.
Tensor softmax_rule_last(const Tensor& y, const Tensor& v);

}  // namespace linfuse::kernels
