#pragma once
// Raw tensor kernels: no autodiff, no tape. Each returns a new tensor (contiguous unless it is documented
// as a view). The differentiable ops in autodiff/ops.h are built on these.
#include <cstdint>
#include <functional>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse::kernels {

// ---- layout ----
// Views share storage with their input; `reshape` copies only when the input is not contiguous.
Tensor reshape(const Tensor& a, Shape shape);   // one dim may be -1
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);   // view
Tensor broadcast_to(const Tensor& a, const Shape& shape);            // view (stride 0 on broadcast dims)
// View of a[begin[d]:end[d]:step[d]] along every axis (already normalised, step >= 1).
Tensor slice(const Tensor& a, const Shape& begin, const Shape& end, const Shape& step);
Tensor contiguous(const Tensor& a);   // `a` itself when already contiguous
Tensor copy(const Tensor& a);         // always a fresh contiguous copy
Tensor cast(const Tensor& a, DType dtype);
void copy_into(Tensor& dst, const Tensor& src);   // dst (any strided view) = src, broadcast
Tensor concat(const std::vector<Tensor>& parts, int64_t axis);
// XLA-style pad: `low`/`high` elements before/after each axis and `interior` between neighbours, filled
// with `value`. The VJP of a strided slice is a pad with interior padding, and vice versa.
Tensor pad(const Tensor& a, const Shape& low, const Shape& high, const Shape& interior, double value);
// Sums `a` down to `shape` (the reverse of broadcasting): the VJP of broadcast_to.
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- reductions over normalised axes (empty = all); accumulate in double, deterministic order ----
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims);
Tensor max(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims);
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims);   // -inf for all -inf
Tensor var(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims, int64_t ddof);   // two-pass
// Whether every element is zero (-0 included): a fast path's test, e.g. a LoRA B at its init.
bool all_zero(const Tensor& a);

// ---- linear algebra ----
// Batched matmul with broadcast batch dims: a (..., M, K) @ b (..., K, N) -> (..., M, N). Transposed views
// (a permute of the last two dims) become BLAS transpose flags instead of copies.
Tensor matmul(const Tensor& a, const Tensor& b);
// Floating-point operations (2 m n k per product, summed over the batch) of every matmul above since the
// process started: an exact count, for benchmarks (relaxed atomic; one add per call). Kernels with products of
// their own (the fused attention) add theirs with count_flops.
uint64_t matmul_flops();
void count_flops(uint64_t flops);
// c + alpha a @ b for 2-D a (M, K), b (K, N) (transposed views are fine) and c broadcastable to (M, N): one
// GEMM that accumulates onto a copy of c (BLAS beta = 1), e.g. a linear layer's bias or a LoRA update added
// to the base output, without the separate elementwise passes.
Tensor addmm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha);
// Called on a block of a product's output once its sums are final (rows [row, row + rows), columns [col,
// col + cols), at `block` with row stride ld), by the thread that computed it.
using BlockFinish = std::function<void(float* block, int64_t ld, int64_t row, int64_t col, int64_t rows, int64_t cols)>;
// c + a @ b as addmm (alpha 1), float32, c a bias row or undefined (no bias), then `finish` on every block of the
// output: group of rows by group of rows as the packed GEMM stores them, while still in cache (a linear
// layer's activation without a pass of its own over the output), else once on the whole output (the same values).
Tensor addmm_finished(const Tensor& c, const Tensor& a, const Tensor& b, const BlockFinish& finish);
// out += alpha a @ b in place: out a contiguous (M, N) tensor the caller owns, a (M, K), b (K, N); one GEMM
// accumulating onto out (for derivative rules that sum products into a fresh buffer).
void addmm_into(Tensor& out, const Tensor& a, const Tensor& b, double alpha);
// out1 = a @ b1 (+ bias1, a row, when defined) and out2 = a @ b2 for one a (M, K): a LoRA linear's x W^T and
// x A^T, or g W and g B. Where linfuse's packed GEMM would run the first product and the skinny kernel the second
// (a rank-8 or rank-16 adapter), both come from one pass over a, with the bits of the two apart; elsewhere the two
// are computed apart. `finish1` (float32 only), when given, runs on every block of out1 once final, as addmm_finished's.
void matmul_pair(const Tensor& a, const Tensor& b1, const Tensor& bias1, const Tensor& b2, Tensor& out1, Tensor& out2,
                 const BlockFinish* finish1 = nullptr);

// ---- neural-network kernels along the last axis ----
Tensor softmax_last(const Tensor& a);       // fully -inf rows give zeros
Tensor log_softmax_last(const Tensor& a);   // fully -inf rows give -inf
// y = (x - mean) * rstd * gamma + beta over the last dim; mean and rstd (shape x.shape[:-1]) are returned.
// gamma and beta may be undefined (no affine part).
void layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y, Tensor& mean,
                Tensor& rstd);
// y = x * rstd * gamma with rstd = 1 / sqrt(mean(x^2) + eps) over the last dim (T5's RMSNorm).
void rms_norm(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& rstd);

// ---- indexing (indices are int64) ----
Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index);   // out.shape[axis] = index.numel()
// zeros(shape) with src added at index along axis (the VJP of index_select); deterministic.
Tensor index_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src);
Tensor gather(const Tensor& a, int64_t axis, const Tensor& index);         // take_along_axis
Tensor scatter_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src);   // VJP of gather
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype);    // labels (...) -> (..., C)

// Throws naming `op` when an index is outside [0, size).
void check_indices(const Tensor& index, int64_t size, const char* op);

}  // namespace linfuse::kernels
