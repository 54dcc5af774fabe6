#pragma once
// The two dense linear-algebra steps merging needs, on row-major float64 matrices, done by LAPACK (LAPACKE):
// a symmetric positive-definite solve (RegMean) and a thin SVD (re-factorizing a weight delta into LoRA factors).
#include <cstdint>
#include <vector>

namespace linfuse::merge {

// Solves S X = B for symmetric S (n x n, only its upper triangle is read) and B (n x m), by Cholesky (dpotrf +
// dpotrs). Returns false, leaving `solution` unspecified, when S is not numerically positive definite: the
// factorization fails or the reciprocal condition number (dpocon, 1-norm) is below `min_reciprocal_condition`.
bool solve_positive_definite(const std::vector<double>& matrix, const std::vector<double>& rhs, int64_t n, int64_t m,
                             std::vector<double>& solution, double min_reciprocal_condition = 1e-12);

// Thin SVD A = U diag(S) Vt of A (rows x cols) by divide and conquer (dgesdd); k = min(rows, cols), U is rows x k,
// Vt is k x cols, singular values descending. Throws std::runtime_error if LAPACK does not converge.
struct ThinSvd {
  std::vector<double> u, singular_values, vt;
  int64_t rows = 0, cols = 0, k = 0;
};
ThinSvd thin_svd(const std::vector<double>& matrix, int64_t rows, int64_t cols);

}  // namespace linfuse::merge
