#pragma once
// A float32 GEMM for products whose C is 8 or 16 columns wide: LoRA's x A^T and g B for ranks 8 and 16
// (3200 x 8 x 128 in the reference workload). OpenBLAS packs the whole wide operand for those; this kernel reads
// it once, in place, at 1.4-1.8x OpenBLAS's speed there. Internal to tensor/ (kernels_matmul.cpp decides, from
// the shape and the layout alone).
#include <cstdint>

namespace linfuse::kernels {

bool use_skinny_sgemm(bool ta, int64_t m, int64_t n, int64_t k);

// C (m x n, row stride ldc) = alpha op(A) op(B) + beta C, beta 0 or 1, for a product use_skinny_sgemm accepts.
// op(A) (m x k) is A (row stride lda) or its transpose when ta; op(B) (k x n) likewise. Runs in parallel over
// bands of rows. Every element of C is one multiply-add chain over k in increasing order, so the result depends
// neither on the banding nor on the thread count.
void skinny_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                  float* c, int64_t ldc, float alpha, float beta);

}  // namespace linfuse::kernels
