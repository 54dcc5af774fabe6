#pragma once
// A float32 GEMM for the products of the reference workload's linear layers (x W^T and g W: k = 128 or 512 over
// 3200 token rows; LoRA's rank-8 products, k = 8) and attention's 32-wide batched products, where OpenBLAS spends
// a third of its time packing and zeroes every fresh C in a separate pass. This one packs op(B) once per product
// into panels 16 columns wide, reads op(A) in place (a transposed A is copied 6 rows at a time), and writes C
// straight from 6 x 16 register tiles (12 x 32 on CPUs with AVX-512, tensor/kernel_isa.h: the same bits). The weight gradients (g^T x, k = 3200) stay on OpenBLAS: there it only
// ties (see use_packed_sgemm). Internal to tensor/ (kernels_matmul.cpp decides, from the shape and the layout
// alone).
#include <cstdint>

#include "tensor/kernels.h"   // BlockFinish

namespace linfuse::kernels {

// Whether packed_sgemm beats OpenBLAS on `batch` products of this shape and layout (measured, see the .cpp).
bool use_packed_sgemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k);

// C (m x n, row stride ldc) = alpha op(A) op(B) + beta C, beta 0 or 1. op(A) (m x k) is A (row stride lda) or
// its transpose when ta; op(B) (k x n) likewise. Runs in parallel over tiles of C whose sizes depend only on
// (m, n, k) (a product under 2^21 multiply-adds is one tile, run on the calling thread), and every element of
// C is summed over k in the same blocks and order whatever the tiling, so the result does not depend on the
// thread count.
void packed_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, float beta);

// C = bias + alpha op(A) op(B), the bias row (n floats) added to every row as the register sums are stored: the
// same bits as filling C with the bias and calling packed_sgemm with beta = 1, without that pass over C. Then
// `finish`, when given, on every block of C (a register tile's) once its sums are final, while it is in cache.
void packed_sgemm_bias(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, const float* bias, float* c, int64_t ldc, float alpha,
                       const BlockFinish* finish = nullptr);

// One of two products of the same A side by side (packed_sgemm_pair): C (m x n, row stride ldc) = op(B) (k x n;
// B, row stride ldb, transposed when tb) times A, plus the bias row when given (the first product only).
struct SideProduct {
  bool tb;
  int64_t n;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  const float* bias = nullptr;
};
// Whether packed_sgemm_pair takes two products of an (m x k) A, n1 and n2 columns wide: the packed GEMM would run
// the first alone (either layout of its B), its width is a whole number of panels, and k is one block of k.
bool use_packed_sgemm_pair(int64_t m, int64_t n1, int64_t n2, int64_t k);
// first.c = A op(first B) (+ bias) and second.c = A op(second B), A (m x k, row stride lda) read once for both:
// the two B side by side in one packed operand, each register tile stored to the product its columns belong to.
// Every element is the one multiply-add chain over k that packed_sgemm (and skinny_sgemm) gives it. `first_finish`, when
// given, runs on every block of first.c once final, while it is in cache (as packed_sgemm_bias's).
void packed_sgemm_pair(int64_t m, int64_t k, const float* a, int64_t lda, const SideProduct& first, const SideProduct& second,
                       const BlockFinish* first_finish = nullptr);

}  // namespace linfuse::kernels
