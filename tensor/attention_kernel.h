#pragma once
// Attention for small heads as one pass per (batch item, head): the kernels behind the fused_attention primitive
// (autodiff/prim_attention.cpp, where the math is written out). For each item of q (..., Tq, D), k (..., Tk, D),
// v (..., Tk, Dv) they form the scores, the softmax and the products in local buffers of a few kilobytes (L1 for
// the reference workload's 50 x 50 x 32 heads), with no score tensor between operations and no GEMM packing per
// call. Items run in parallel; each is computed alone in a fixed order, so the bits do not depend on the thread
// count. q, k, v share their batch dims (no broadcasting). A 4-D result (B, H, T, D) is laid out (B, T, H, D) in
// memory, the layout of split_heads, so that merging heads (and splitting a gradient's heads) is a view.
#include "tensor/tensor.h"

namespace linfuse::kernels {

// out = softmax(scale q k^T + mask) v, (..., Tq, Dv). mask: undefined or broadcastable to (..., Tq, Tk), of q's
// dtype (-inf masks a key; a row masked entirely gives zeros). When `probabilities` is given it receives
// P = softmax(scale q k^T + mask), (..., Tq, Tk) contiguous, which the two kernels below start from.
Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                         Tensor* probabilities);

// Reverse mode from P and the output cotangent d_out (..., Tq, Dv):
//   dP = d_out v^T,  dB = P (dP - rowsum(dP P)),  dS = scale dB,  dq = dS k,  dk = dS^T q,  dv = P^T d_out.
// Computes only the cotangents whose pointer is not null; d_scores receives dB (..., Tq, Tk), the cotangent of the
// scores after scaling, which is the mask's when the mask is a learned bias (T5's position bias).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probabilities,
                        const Tensor& d_out, double scale, Tensor* dq, Tensor* dk, Tensor* dv, Tensor* d_scores = nullptr);

// Forward mode from P: tS = scale (tq k^T + q tk^T) + t_mask,  tP = P (tS - rowsum(tS P)),  t_out = tP v + P tv.
// An undefined tangent is zero (at least one must be defined); t_mask broadcasts to (..., Tq, Tk).
Tensor attention_tangent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probabilities, const Tensor& tq,
                         const Tensor& tk, const Tensor& tv, double scale, const Tensor& t_mask = Tensor());

}  // namespace linfuse::kernels
