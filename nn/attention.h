#pragma once
// Multi-head attention pieces shared by the tiny CLIP and the tiny T5: head splitting, masks, scaled
// dot-product attention with an additive bias, and T5's relative position buckets.
#include <cstdint>

#include "tensor/tensor.h"

namespace linfuse::nn {

// (B, T, H*D) -> (B, H, T, D)
Tensor split_heads(const Tensor& x, int64_t num_heads);
// (B, H, T, D) -> (B, T, H*D)
Tensor merge_heads(const Tensor& x);

// softmax(scale * q k^T + bias) v with q (B,H,Tq,D), k and v (B,H,Tk,D); `bias` (may be undefined) is added
// to the scores and broadcasts to (B,H,Tq,Tk): masks use -inf, T5 adds its position bias. A query row whose
// keys are all masked attends to nothing (zeros), rather than producing NaN.
// It runs as the one fused primitive fused_attention (autodiff/ops.h), a learned bias's derivatives included;
// q, k, v of different batch dims run as composed_attention.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);
// The same by separate ops (batched q k^T, scale, bias, softmax, product with v), each a node of the tape: the
// derivative reaches the bias. Also the reference the fused primitive is tested and benchmarked against.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);

// (T, T) additive mask: 0 on and below the diagonal, -inf above (a query sees itself and the past).
Tensor causal_mask(int64_t length, DType dtype);
// attention_mask (B, Tk) of 1 (keep) / 0 (padding), any dtype -> additive (B, 1, 1, Tk) of 0 / -inf.
Tensor padding_mask(const Tensor& attention_mask, DType dtype);

// T5's bucket of a relative position (memory position - query position), as Hugging Face computes it:
// half the buckets exact, the rest log-spaced up to max_distance; bidirectional splits the buckets by sign,
// the causal variant maps every future position to bucket 0.
int64_t relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets, int64_t max_distance);
// (Tq, Tk) int64 buckets for query positions [offset, offset+Tq) against key positions [0, Tk).
Tensor relative_position_buckets(int64_t query_length, int64_t key_length, bool bidirectional, int64_t num_buckets,
                                 int64_t max_distance);

}  // namespace linfuse::nn
