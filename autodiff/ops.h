#pragma once
// Differentiable tensor operations: the vocabulary models are written in. Every function here either
// applies one primitive (forward + VJP + JVP side by side, see primitive.h) or composes other functions, so
// reverse mode, forward mode and their nesting work through all of them.
// Binary ops broadcast NumPy-style; both operands must have the same dtype. Axes may be negative.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

using Axes = std::vector<int64_t>;

// ---- elementwise, unary ----
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu_tanh(const Tensor& a);    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2/T5 "gelu_new"
Tensor gelu_erf(const Tensor& a);     // x Phi(x), the exact GELU ("gelu" in Hugging Face configs)
Tensor quick_gelu(const Tensor& a);   // x sigmoid(1.702 x), OpenAI CLIP
Tensor erf(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor square(const Tensor& a);
Tensor clamp(const Tensor& a, double low, double high);   // gradient 1 inside [low, high], 0 outside
// The derivatives of the activations, as primitives of their own (fused kernels for the first derivative,
// differentiable again through their second-derivative rules).
Tensor gelu_tanh_grad(const Tensor& a);
Tensor gelu_erf_grad(const Tensor& a);
Tensor quick_gelu_grad(const Tensor& a);
// The activations of linear layers by kind, f(a) and f'(a) as the primitives above: the one place that maps a kind to
// its ops (nn::activate, and the rules of the layers that fuse f, use it).
enum class Activation { GeluErf, GeluTanh, QuickGelu, Relu };
Tensor activate(Activation activation, const Tensor& a);
Tensor activation_derivative(Activation activation, const Tensor& a);

// ---- elementwise, binary (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);   // ties send the gradient to a
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);   // condition != 0 picks a
// with a scalar (the scalar takes the tensor's dtype)
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);   // a - b
Tensor div(const Tensor& a, double b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);

// ---- comparisons and masks: not differentiable; 1 or 0 in the dtype of `a` ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor isfinite(const Tensor& a);
Tensor sign(const Tensor& a);
Tensor zeros_like(const Tensor& a);
Tensor ones_like(const Tensor& a);

// ---- reductions (empty axes = all axes) ----
Tensor sum(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor max(const Tensor& a, const Axes& axes = {}, bool keepdims = false);   // ties share the gradient
Tensor min(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor logsumexp(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor var(const Tensor& a, const Axes& axes = {}, bool keepdims = false, int64_t ddof = 0);

// ---- layout ----
Tensor reshape(const Tensor& a, const Shape& shape);   // one dim may be -1
Tensor flatten(const Tensor& a, int64_t start_axis = 0, int64_t end_axis = -1);
Tensor unsqueeze(const Tensor& a, int64_t axis);
Tensor squeeze(const Tensor& a, int64_t axis);
Tensor permute(const Tensor& a, const Axes& dims);
Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1);
Tensor broadcast_to(const Tensor& a, const Shape& shape);
Tensor sum_to(const Tensor& a, const Shape& shape);   // the reverse of broadcast_to
// a[start:stop:step] along one axis (negative start/stop count from the end, clamped like Python)
Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor slice(const Tensor& a, const Shape& begin, const Shape& end, const Shape& step);   // every axis
Tensor select(const Tensor& a, int64_t axis, int64_t index);   // drops the axis
Tensor pad(const Tensor& a, const Shape& low, const Shape& high, const Shape& interior = {}, double value = 0.0);
Tensor concat(const std::vector<Tensor>& parts, int64_t axis);
Tensor stack(const std::vector<Tensor>& parts, int64_t axis);
Tensor cast(const Tensor& a, DType dtype);
Tensor contiguous(const Tensor& a);   // a copy with the same autodiff identity chain

// ---- linear algebra ----
// NumPy matmul: (..., M, K) @ (..., K, N) with broadcast batch dims; 1-D operands are promoted.
Tensor matmul(const Tensor& a, const Tensor& b);
// c + alpha a @ b for 2-D a (M, K), b (K, N), c broadcastable to (M, N), computed by one GEMM accumulating
// onto c (a linear layer's bias, a LoRA update onto the base output).
Tensor addmm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha = 1.0);
// x (..., in) W (out, in) b (out) -> (..., out); b may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// f(x W^T + b) in one primitive, f applied as the product is stored and f' kept for the rules: the same values
// and gradients, bit for bit, as linear() then the activation's own op (see prim_linalg.cpp).
Tensor linear_activation(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation activation);
// x W^T + b + scale (x A^T) B^T for x (..., in), W (out, in), A (r, in), B (out, r), b (out) or undefined -> (..., out):
// a linear layer with a LoRA update, computed as x (W + scale B A)^T + b (the base output is never a tensor of its own).
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                   double scale);
// activation(lora_linear(...)) in one primitive: the activation applied as the product is stored,
// its derivative kept for the rules (the same bits as the two ops, as linear_activation).
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, const Tensor& bias,
                   double scale, Activation activation);
// residual + (x W^T + b) in one primitive, x (..., in), residual (..., out): a transformer layer's residual add formed
// as the product is stored, with no pass of its own over the layer's output; the same bits as add(residual,
// linear(x, W, b)) (see prim_linalg.cpp).
Tensor linear_residual(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual);
// Whether the lora_linear primitives leave out the terms through B when B is exactly zero (PEFT's init, and for a
// whole run at a network-level L-LoRA's expansion point): the same values, less work. On by default; off to measure
// it or to test it against the general path.
void set_lora_skip_zero_b(bool on);
bool lora_skip_zero_b();
// residual + lora_linear(...) in one primitive, residual (..., out), added as the product is stored
// (the same bits as the two ops, as linear_residual).
Tensor lora_linear_residual(const Tensor& x, const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b,
                            const Tensor& bias, double scale, const Tensor& residual);

// ---- neural-network functions ----
Tensor softmax(const Tensor& a, int64_t axis = -1);       // fully -inf rows give 0 (and zero gradient)
Tensor log_softmax(const Tensor& a, int64_t axis = -1);
// softmax(scale q k^T + bias) v, one primitive computed per (batch item, head) in local buffers
// (tensor/attention_kernel.h): q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with the same batch dims -> (..., Tq, Dv).
// bias: undefined, or broadcastable to (..., Tq, Tk) of q's dtype (-inf masks a key; a row masked entirely gives
// zeros): a constant mask, or a learned bias (T5's position bias plus its masks) whose gradient (summed over its
// broadcast dims) and tangent the rules carry. A 4-D result is laid out as split_heads' output, so merging heads is
// a view.
Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);
// Over the last dim; gamma/beta may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps = 1e-5);
Tensor rms_norm(const Tensor& x, const Tensor& gamma, double eps = 1e-6);
// Mean over rows whose label is not ignore_index of -log softmax(logits)[label]. logits (..., C), labels
// int64 (...). With every row ignored the loss is 0 (PyTorch gives NaN).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, int64_t ignore_index = -100);

// ---- indexing (int64 indices, not differentiable) ----
Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index);
Tensor index_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src);
Tensor gather(const Tensor& a, int64_t axis, const Tensor& index);
Tensor scatter_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src);
Tensor embedding(const Tensor& weight, const Tensor& ids);   // weight (V, D), ids (...) -> (..., D)
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::F32);

}  // namespace linfuse
