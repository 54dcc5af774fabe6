#include "merge/dense_linalg.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace linfuse::merge {

bool solve_positive_definite(const std::vector<double>& matrix, const std::vector<double>& rhs, int64_t n, int64_t m,
                             std::vector<double>& solution, double min_reciprocal_condition) {
  if (n == 0) {
    solution.clear();
    return true;
  }
  std::vector<double> factor = matrix;
  // The 1-norm of the symmetric matrix (from its upper triangle), needed by the condition estimate.
  double one_norm = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    double column = 0.0;
    for (int64_t i = 0; i < n; ++i) column += std::abs(i <= j ? matrix[i * n + j] : matrix[j * n + i]);
    one_norm = std::max(one_norm, column);
  }
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', lapack_int(n), factor.data(), lapack_int(n)) != 0) return false;
  double reciprocal_condition = 0.0;
  if (LAPACKE_dpocon(LAPACK_ROW_MAJOR, 'U', lapack_int(n), factor.data(), lapack_int(n), one_norm,
                     &reciprocal_condition) != 0 ||
      reciprocal_condition < min_reciprocal_condition)
    return false;
  solution = rhs;
  if (m == 0) return true;
  if (LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'U', lapack_int(n), lapack_int(m), factor.data(), lapack_int(n),
                     solution.data(), lapack_int(m)) != 0)
    return false;
  return true;
}

ThinSvd thin_svd(const std::vector<double>& matrix, int64_t rows, int64_t cols) {
  ThinSvd svd;
  svd.rows = rows;
  svd.cols = cols;
  svd.k = std::min(rows, cols);
  if (svd.k == 0) return svd;
  std::vector<double> a = matrix;   // dgesdd overwrites its input
  svd.u.resize(size_t(rows * svd.k));
  svd.singular_values.resize(size_t(svd.k));
  svd.vt.resize(size_t(svd.k * cols));
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', lapack_int(rows), lapack_int(cols), a.data(),
                                   lapack_int(cols), svd.singular_values.data(), svd.u.data(), lapack_int(svd.k),
                                   svd.vt.data(), lapack_int(cols));
  if (info != 0)
    throw std::runtime_error("[thin_svd] LAPACK dgesdd failed on a (" + std::to_string(rows) + "," +
                             std::to_string(cols) + ") matrix (info " + std::to_string(info) + ")");
  return svd;
}

}  // namespace linfuse::merge
