// Skinny float32 GEMM (tensor/skinny_gemm.h): register blocks of MR rows x NV vectors of C (8 x 1 for n = 8,
// 4 x 2 for n = 16), each summed over k with the rows of A read in place (one broadcast per row and step) and
// op(B) read as whole vectors (in place when row-major, else transposed once into a k x n buffer).
#include "tensor/skinny_gemm.h"

#include <algorithm>
#include <cassert>
#include <vector>

#include "tensor/simd.h"
#include "tensor/threading.h"

namespace linfuse::kernels {
namespace {

using namespace simd;   // Vec, kLanes, splat, load, store, multiply_add

struct Operands {
  const float* a;
  int64_t lda;   // op(A)(i, p) = a[i lda + p]
  const float* b;
  int64_t ldb;   // op(B)(p, j) = b[p ldb + j]
  float* c;
  int64_t ldc, m, n, k;
  float alpha, beta;
};

// Rows [i0, i0 + MR) (those past m computed on a repeated row and dropped), columns [j0, j0 + NV kLanes).
template <int MR, int NV>
void block(const Operands& o, int64_t i0, int64_t j0) {
  const float* rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = o.a + std::min(i0 + r, o.m - 1) * o.lda;
  Vec acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = splat(0.0f);
  const float* bp = o.b + j0;
  for (int64_t p = 0; p < o.k; ++p, bp += o.ldb) {
    Vec bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(bp + v * kLanes);
    for (int r = 0; r < MR; ++r) {
      Vec av = splat(rows[r][p]);
      for (int v = 0; v < NV; ++v) acc[r][v] = multiply_add(av, bv[v], acc[r][v]);
    }
  }
  Vec alpha = splat(o.alpha);
  for (int64_t r = 0; r < std::min<int64_t>(MR, o.m - i0); ++r)
    for (int v = 0; v < NV; ++v) {
      float* cv = o.c + (i0 + r) * o.ldc + j0 + v * kLanes;
      Vec out = o.alpha == 1.0f ? acc[r][v] : alpha * acc[r][v];
      if (o.beta != 0.0f) out = load(cv) + out;
      store(cv, out);
    }
}

}  // namespace

// Where this kernel beats OpenBLAS (measured on the reference workload's shapes): C of one or two vectors'
// width with the rows of A contiguous (x A^T and g B of a rank-8 or rank-16 adapter). With A transposed (the
// factors' gradients, k = the batch's rows) or k small (the rank-r update) OpenBLAS is as fast or faster.
bool use_skinny_sgemm(bool ta, int64_t m, int64_t n, int64_t k) {
  return !ta && (n == kLanes || n == 2 * kLanes) && m * n * k >= (int64_t(1) << 15);
}

void skinny_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                  float* c, int64_t ldc, float alpha, float beta) {
  assert(use_skinny_sgemm(ta, m, n, k) && (beta == 0.0f || beta == 1.0f));
  (void)ta;
  std::vector<float> transposed;
  Operands o{a, lda, b, ldb, c, ldc, m, n, k, alpha, beta};
  if (tb) {   // op(B) into k rows of n
    transposed.resize(size_t(k * n));
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) transposed[p * n + j] = b[j * ldb + p];
    o.b = transposed.data();
    o.ldb = n;
  }
  // Bands of rows for the threads, about 2^18 multiply-adds each; the banding changes no result.
  int64_t band = std::max<int64_t>(8, ((int64_t(1) << 18) / (k * n)) / 8 * 8);
  parallel_for(m, band, [&](int64_t r0, int64_t r1) {
    if (n == kLanes)
      for (int64_t i = r0; i < r1; i += 8) block<8, 1>(o, i, 0);
    else
      for (int64_t i = r0; i < r1; i += 4) block<4, 2>(o, i, 0);
  });
}

}  // namespace linfuse::kernels
