#include "nn/attention.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.h"
#include "autodiff/tape.h"

namespace linfuse::nn {

namespace {
void check_attention_operands(const Tensor& q, const Tensor& k, const Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || q.size(-1) != k.size(-1) || k.size(-2) != v.size(-2))
    throw std::invalid_argument("[attention] expected q (B,H,Tq,D), k (B,H,Tk,D), v (B,H,Tk,Dv); got " + q.describe() +
                                ", " + k.describe() + ", " + v.describe());
}
}  // namespace

Tensor split_heads(const Tensor& x, int64_t num_heads) {
  if (x.dim() != 3 || x.size(2) % num_heads != 0)
    throw std::invalid_argument("[split_heads] expected (B, T, H*D) with H = " + std::to_string(num_heads) + ", got " +
                                x.describe());
  return transpose(reshape(x, {x.size(0), x.size(1), num_heads, x.size(2) / num_heads}), 1, 2);
}

Tensor merge_heads(const Tensor& x) {
  if (x.dim() != 4) throw std::invalid_argument("[merge_heads] expected (B, H, T, D), got " + x.describe());
  return reshape(transpose(x, 1, 2), {x.size(0), x.size(2), x.size(1) * x.size(3)});
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  check_attention_operands(q, k, v);
  bool same_batch = q.size(0) == k.size(0) && q.size(1) == k.size(1) && k.size(0) == v.size(0) && k.size(1) == v.size(1);
  bool same_dtype = !bias.defined() || bias.dtype() == q.dtype();
  if (same_batch && same_dtype) return fused_attention(q, k, v, bias, scale);
  return composed_attention(q, k, v, bias, scale);
}

Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  check_attention_operands(q, k, v);
  Tensor scores = matmul(q, transpose(k, -1, -2));   // (B, H, Tq, Tk)
  if (scale != 1.0) scores = mul(scores, scale);
  if (bias.defined()) scores = add(scores, bias);
  return matmul(softmax(scores, -1), v);
}

Tensor causal_mask(int64_t length, DType dtype) {
  std::vector<double> m(size_t(length * length), 0.0);
  for (int64_t i = 0; i < length; ++i)
    for (int64_t j = i + 1; j < length; ++j) m[i * length + j] = -std::numeric_limits<double>::infinity();
  return cast(Tensor::from_vector(m, {length, length}), dtype);
}

Tensor padding_mask(const Tensor& attention_mask, DType dtype) {
  if (attention_mask.dim() != 2)
    throw std::invalid_argument("[padding_mask] attention_mask must be (B, T), got " + attention_mask.describe());
  std::vector<double> keep = attention_mask.to_vector<double>();
  for (double& k : keep) k = k != 0 ? 0.0 : -std::numeric_limits<double>::infinity();
  return cast(Tensor::from_vector(keep, {attention_mask.size(0), 1, 1, attention_mask.size(1)}), dtype);
}

int64_t relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  int64_t n = relative_position;
  if (bidirectional) {
    num_buckets /= 2;
    if (n > 0) bucket += num_buckets;
    n = std::abs(n);
  } else {
    n = -std::min<int64_t>(n, 0);
  }
  int64_t max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  // Computed in float32 like Hugging Face (relative_position.float()), then truncated toward zero.
  float scaled = std::log(float(n) / float(max_exact)) / std::log(float(max_distance) / float(max_exact)) *
                 float(num_buckets - max_exact);
  int64_t large = max_exact + int64_t(scaled);
  return bucket + std::min<int64_t>(large, num_buckets - 1);
}

Tensor relative_position_buckets(int64_t query_length, int64_t key_length, bool bidirectional, int64_t num_buckets,
                                 int64_t max_distance) {
  std::vector<int64_t> b(size_t(query_length * key_length));
  for (int64_t i = 0; i < query_length; ++i)
    for (int64_t j = 0; j < key_length; ++j)
      b[i * key_length + j] = relative_position_bucket(j - i, bidirectional, num_buckets, max_distance);
  return Tensor::from_vector(b, {query_length, key_length});
}

}  // namespace linfuse::nn
