// Matrix products on OpenBLAS, or on linfuse's own float32 kernels (skinny_gemm.h, packed_gemm.h) for the shapes
// and layouts where those are faster. Transposed views map to BLAS flags. OpenBLAS always runs single-threaded
// (its own threading does not give the same bits for 1 and 2 threads); parallelism comes from TBB over a
// batch of products and over tiles of C whose sizes depend only on the problem shape, so every element of
// C is computed by the same call whatever the thread count.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "tensor/kernels.h"
#include "tensor/packed_gemm.h"
#include "tensor/skinny_gemm.h"
#include "tensor/threading.h"

namespace linfuse::kernels {
namespace {

// How a (rows x cols) matrix view is laid out for BLAS: row-major with leading dimension ld, or its
// transpose (column-major). `ok` is false when neither holds and the view must be copied.
struct MatrixLayout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 0;
};

MatrixLayout matrix_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if ((col_stride == 1 || cols == 1) && row_stride >= std::max<int64_t>(cols, 1)) return {true, false, row_stride};
  if ((row_stride == 1 || rows == 1) && col_stride >= std::max<int64_t>(rows, 1)) return {true, true, col_stride};
  if (rows == 1 && cols == 1) return {true, false, 1};
  return {};
}

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
          int64_t ldc, T alpha, T beta) {
  auto fa = ta ? CblasTrans : CblasNoTrans;
  auto fb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, fa, fb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, fa, fb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

// A view whose last two dims BLAS can read directly (copied to contiguous otherwise).
Tensor blas_ready(const Tensor& t, MatrixLayout& layout) {
  int64_t r = t.dim();
  layout = matrix_layout(t.shape()[r - 2], t.shape()[r - 1], t.strides()[r - 2], t.strides()[r - 1]);
  if (layout.ok) return t;
  Tensor c = copy(t);
  layout = matrix_layout(c.shape()[r - 2], c.shape()[r - 1], c.strides()[r - 2], c.strides()[r - 1]);
  return c;
}

// t's dims from the largest stride to the smallest when t is a dense block laid out in that order (a permuted
// contiguous tensor, every dim of size 2 or more), else empty.
std::vector<int64_t> dense_order(const Tensor& t) {
  int64_t r = t.dim();
  std::vector<int64_t> order(r);
  for (int64_t i = 0; i < r; ++i) {
    if (t.shape()[i] < 2) return {};
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return t.strides()[x] > t.strides()[y]; });
  int64_t expected = 1;
  for (int64_t i = r - 1; i >= 0; --i) {
    if (t.strides()[order[i]] != expected) return {};
    expected *= t.shape()[order[i]];
  }
  return order;
}

// Tile sizes of C for an (m x n) product with inner size k: 256 x 256, halved (the larger side first) until
// there are enough tiles to share, but never below 64. A function of the shape alone.
void choose_tiles(int64_t m, int64_t n, int64_t k, int64_t& tm, int64_t& tn) {
  tm = std::min<int64_t>(m, 256);
  tn = std::min<int64_t>(n, 256);
  if (m * n * k < (int64_t(1) << 21)) {   // small: one call
    tm = m;
    tn = n;
    return;
  }
  auto tiles = [&] { return ((m + tm - 1) / tm) * ((n + tn - 1) / tn); };
  while (tiles() < 8 && (tm > 64 || tn > 64)) {
    if (tm >= tn && tm > 64) tm = (tm + 1) / 2;
    else tn = (tn + 1) / 2;
  }
}

// One tile [i0, i0+mm) x [j0, j0+nn) of C = op(A) op(B).
template <class T>
void gemm_tile(bool ta, bool tb, int64_t i0, int64_t mm, int64_t j0, int64_t nn, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, T* c, int64_t ldc, T alpha, T beta) {
  const T* at = ta ? a + i0 : a + i0 * lda;
  const T* bt = tb ? b + j0 * ldb : b + j0;
  gemm<T>(ta, tb, mm, nn, k, at, lda, bt, ldb, c + i0 * ldc + j0, ldc, alpha, beta);
}

// linfuse's own float32 kernel for `batch` products of this shape and layout, where one beats OpenBLAS
// (nullptr: OpenBLAS runs them). Callers that fuse work into a product (a bias, a second product of the same A) ask
// here, so that they fuse exactly where the product alone would run on that kernel.
using OwnSgemm = void (*)(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                          int64_t, float, float);
OwnSgemm own_sgemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k) {
  if (use_skinny_sgemm(ta, m, n, k)) return &skinny_sgemm;
  if (use_packed_sgemm(ta, tb, batch, m, n, k)) return &packed_sgemm;
  return nullptr;
}

// C_i = alpha op(A_i) op(B_i) + beta C_i for every batch item i, tiled and run in parallel; C_i starts at
// c + coff[i] with row stride ldc.
template <class T>
void gemm_batched(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, const T* a,
                  const std::vector<int64_t>& aoff, int64_t lda, const T* b, const std::vector<int64_t>& boff, int64_t ldb,
                  T* c, const std::vector<int64_t>& coff, int64_t ldc, T alpha = T(1), T beta = T(0)) {
  if constexpr (std::is_same_v<T, float>) {
    // linfuse's own kernels where they beat OpenBLAS; each is parallel inside (over bands of rows or tiles of C),
    // and a batch of small packed products is run in parallel over its items.
    const OwnSgemm own_kernel = own_sgemm(ta, tb, batch, m, n, k);
    if (own_kernel) {
      auto items = [&](int64_t i0, int64_t i1) {
        for (int64_t item = i0; item < i1; ++item)
          own_kernel(ta, tb, m, n, k, a + aoff[item], lda, b + boff[item], ldb, c + coff[item], ldc, alpha, beta);
      };
      if (own_kernel == &packed_sgemm) parallel_for(batch, std::max<int64_t>(1, (int64_t(1) << 18) / (m * n * k)), items);
      else items(0, batch);
      return;
    }
  }
  int64_t tm, tn;
  choose_tiles(m, n, k, tm, tn);
  int64_t tiles_m = (m + tm - 1) / tm, tiles_n = (n + tn - 1) / tn, per_item = tiles_m * tiles_n;
  parallel_for(batch * per_item, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t item = t / per_item, tile = t % per_item;
      int64_t i0 = (tile / tiles_n) * tm, j0 = (tile % tiles_n) * tn;
      gemm_tile<T>(ta, tb, i0, std::min(tm, m - i0), j0, std::min(tn, n - j0), k, a + aoff[item], lda, b + boff[item], ldb,
                   c + coff[item], ldc, alpha, beta);
    }
  });
}

std::atomic<uint64_t> flop_counter{0};

// out (M, N) contiguous += alpha a (M, K) @ b (K, N): one GEMM with beta = 1, which accumulates onto what out
// holds instead of zeroing C first and adding in another pass. Shapes are checked by the callers.
// The same on operands blas_ready has already laid out.
template <class T>
void accumulate_ready(T* out, const Tensor& a, const MatrixLayout& la, const Tensor& b, const MatrixLayout& lb,
                      int64_t m, int64_t n, int64_t k, double alpha) {
  flop_counter.fetch_add(uint64_t(2 * m * n * k), std::memory_order_relaxed);
  gemm_batched<T>(la.transposed, lb.transposed, 1, m, n, k, static_cast<const T*>(a.raw_data()), {0}, la.ld,
                  static_cast<const T*>(b.raw_data()), {0}, lb.ld, out, {0}, n, T(alpha), T(1));
}
}  // namespace

uint64_t matmul_flops() { return flop_counter.load(std::memory_order_relaxed); }
void count_flops(uint64_t flops) { flop_counter.fetch_add(flops, std::memory_order_relaxed); }

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  if (a_in.dim() < 2 || b_in.dim() < 2)
    throw std::invalid_argument("[matmul] needs operands of rank >= 2, got " + a_in.describe() + " and " + b_in.describe());
  if (a_in.dtype() != b_in.dtype())
    throw std::invalid_argument("[matmul] dtypes differ: " + a_in.describe() + " and " + b_in.describe());
  int64_t m = a_in.size(-2), k = a_in.size(-1), n = b_in.size(-1);
  if (b_in.size(-2) != k)
    throw std::invalid_argument("[matmul] inner sizes differ: " + shape_str(a_in.shape()) + " x " + shape_str(b_in.shape()));
  Shape a_batch(a_in.shape().begin(), a_in.shape().end() - 2), b_batch(b_in.shape().begin(), b_in.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);

  return dispatch_float(a_in.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    Tensor out = Tensor::empty(out_shape, dtype_of<T>());
    if (out.numel() == 0) return out;
    if (k == 0) return Tensor::zeros(out_shape, dtype_of<T>());
    MatrixLayout la, lb;
    Tensor a = blas_ready(a_in, la), b = blas_ready(b_in, lb);
    int64_t batch_count = shape_numel(batch);
    flop_counter.fetch_add(uint64_t(2 * batch_count * m * n * k), std::memory_order_relaxed);

    // b shared by the whole batch and a's batch rows stacked with a uniform stride: one tall GEMM.
    bool b_shared = true;
    for (size_t d = 0; d + 2 < (size_t)b.dim(); ++d)
      if (b.shape()[d] != 1 && b.strides()[d] != 0) b_shared = false;
    if (b_shared && !la.transposed && a.dim() >= 2) {
      // a's leading dims must fold into rows: contiguous batch over rows of stride lda.
      bool foldable = true;
      int64_t expected = la.ld * m;
      Shape full_a_shape = batch;   // a broadcast to the batch (a's own dims must cover it)
      if ((int64_t)a_batch.size() != (int64_t)batch.size() || a_batch != batch) foldable = false;
      for (int64_t d = a.dim() - 3; foldable && d >= 0; --d) {
        if (a.shape()[d] == 1) continue;
        if (a.strides()[d] != expected) foldable = false;
        expected *= a.shape()[d];
      }
      if (foldable) {
        gemm_batched<T>(false, lb.transposed, 1, batch_count * m, n, k, static_cast<const T*>(a.raw_data()), {0}, la.ld,
                        static_cast<const T*>(b.raw_data()), {0}, lb.ld, out.template data<T>(), {0}, n);
        return out;
      }
    }

    // General batch: per-item offsets from broadcast batch strides.
    auto batch_offsets = [&](const Tensor& t) {
      std::vector<int64_t> offs(batch_count, 0);
      int64_t lead = (int64_t)batch.size() - (t.dim() - 2);
      for (int64_t i = 0; i < batch_count; ++i) {
        int64_t rest = i, off = 0;
        for (int64_t d = (int64_t)batch.size() - 1; d >= 0; --d) {
          int64_t idx = rest % batch[d];
          rest /= batch[d];
          int64_t td = d - lead;
          if (td >= 0 && t.shape()[td] != 1) off += idx * t.strides()[td];
        }
        offs[i] = off;
      }
      return offs;
    };
    // A batched operand of the output's shape that is a permuted dense block (attention's heads, split from or
    // merged into (B, T, H*D) by a transpose) passes its layout on to the output, so that undoing the transpose
    // afterwards is a view rather than a copy.
    for (const Tensor* like : {&a_in, &b_in})
      if (batch_count > 1 && like->shape() == out_shape && !like->is_contiguous()) {
        std::vector<int64_t> order = dense_order(*like);
        int64_t r = (int64_t)out_shape.size();
        if (order.empty() || (order.back() != r - 1 && order.back() != r - 2)) continue;
        Shape dense_shape;
        std::vector<int64_t> inverse(r);
        for (int64_t i = 0; i < r; ++i) {
          dense_shape.push_back(out_shape[order[i]]);
          inverse[order[i]] = i;
        }
        out = permute(Tensor::empty(dense_shape, dtype_of<T>()), inverse);
        break;
      }
    std::vector<int64_t> aoff = batch_offsets(a), boff = batch_offsets(b), coff = batch_offsets(out);
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* op = out.template data<T>();
    int64_t row_stride = out.strides()[out.dim() - 2], col_stride = out.strides()[out.dim() - 1];
    if (col_stride == 1)
      gemm_batched<T>(la.transposed, lb.transposed, batch_count, m, n, k, ap, aoff, la.ld, bp, boff, lb.ld, op, coff, row_stride);
    else   // C column-major: C^T = op(B)^T op(A)^T, row-major
      gemm_batched<T>(!lb.transposed, !la.transposed, batch_count, n, m, k, bp, boff, lb.ld, ap, aoff, la.ld, op, coff, col_stride);
    return out;
  });
}

namespace {
// addmm, with `finish` (float32 only) run on every block of the output once its sums are final.
Tensor addmm_impl(const Tensor& c, const Tensor& a_in, const Tensor& b_in, double alpha, const BlockFinish* finish) {
  if (a_in.dim() != 2 || b_in.dim() != 2)
    throw std::invalid_argument("[addmm] needs 2-D operands, got " + a_in.describe() + " and " + b_in.describe());
  if (a_in.dtype() != b_in.dtype() || c.dtype() != a_in.dtype())
    throw std::invalid_argument("[addmm] dtypes differ: " + c.describe() + ", " + a_in.describe() + " and " + b_in.describe());
  int64_t m = a_in.size(0), k = a_in.size(1), n = b_in.size(1);
  if (b_in.size(0) != k)
    throw std::invalid_argument("[addmm] inner sizes differ: " + shape_str(a_in.shape()) + " x " + shape_str(b_in.shape()));
  Shape out_shape{m, n};
  if (broadcast_shapes(c.shape(), out_shape, "addmm") != out_shape)
    throw std::invalid_argument("[addmm] " + c.describe() + " does not broadcast to " + shape_str(out_shape));
  return dispatch_float(a_in.dtype(), "addmm", [&](auto tag) {
    using T = decltype(tag);
    // out starts as c broadcast to (m, n): a bias row is replicated with memcpy, anything else copied; or,
    // where the packed GEMM runs the product, the bias is added as its sums are stored (the same bits).
    const bool bias_row = c.dim() == 1 && c.size(0) == n && c.strides()[0] == 1;
    auto start_from_c = [&] {
      if (!bias_row) return copy(broadcast_to(c, out_shape));
      Tensor out = Tensor::empty(out_shape, dtype_of<T>());
      const T* row = static_cast<const T*>(c.raw_data());
      T* o = out.template data<T>();
      parallel_for(m, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(n, 1)), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) std::copy(row, row + n, o + i * n);
      });
      return out;
    };
    if (m == 0 || n == 0 || k == 0) {
      Tensor out = start_from_c();
      if constexpr (std::is_same_v<T, float>)
        if (finish && m > 0 && n > 0) (*finish)(out.template data<float>(), n, 0, 0, m, n);
      return out;
    }
    MatrixLayout la, lb;
    Tensor a = blas_ready(a_in, la), b = blas_ready(b_in, lb);
    if constexpr (std::is_same_v<T, float>) {
      if (bias_row && own_sgemm(la.transposed, lb.transposed, 1, m, n, k) == &packed_sgemm) {
        Tensor out = Tensor::empty(out_shape, dtype_of<T>());
        flop_counter.fetch_add(uint64_t(2 * m * n * k), std::memory_order_relaxed);
        packed_sgemm_bias(la.transposed, lb.transposed, m, n, k, static_cast<const float*>(a.raw_data()), la.ld,
                          static_cast<const float*>(b.raw_data()), lb.ld, static_cast<const float*>(c.raw_data()),
                          out.template data<float>(), n, float(alpha), finish);
        return out;
      }
    }
    Tensor out = start_from_c();
    accumulate_ready<T>(out.template data<T>(), a, la, b, lb, m, n, k, alpha);
    if constexpr (std::is_same_v<T, float>)
      if (finish) (*finish)(out.template data<float>(), n, 0, 0, m, n);
    return out;
  });
}
}  // namespace

Tensor addmm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha) { return addmm_impl(c, a, b, alpha, nullptr); }

Tensor addmm_finished(const Tensor& c, const Tensor& a, const Tensor& b, const BlockFinish& finish) {
  if (a.dtype() != DType::F32)
    throw std::invalid_argument("[addmm_finished] is float32 only, got " + a.describe());
  if (c.defined()) return addmm_impl(c, a, b, 1.0, &finish);
  Tensor out = contiguous(matmul(a, b));
  if (out.numel() > 0) finish(out.data<float>(), out.size(1), 0, 0, out.size(0), out.size(1));
  return out;
}

void matmul_pair(const Tensor& a_in, const Tensor& b1, const Tensor& bias1, const Tensor& b2, Tensor& out1, Tensor& out2,
                 const BlockFinish* finish1) {
  if (a_in.dim() != 2 || b1.dim() != 2 || b2.dim() != 2 || b1.size(0) != a_in.size(1) || b2.size(0) != a_in.size(1))
    throw std::invalid_argument("[matmul_pair] needs (M, K), (K, N1) and (K, N2) operands, got " + a_in.describe() + ", " +
                                b1.describe() + " and " + b2.describe());
  const int64_t m = a_in.size(0), k = a_in.size(1), n1 = b1.size(1), n2 = b2.size(1);
  // The pair where, apart, the packed GEMM would run the first product and the skinny kernel the second: both
  // sum every element in one multiply-add chain over k, so one pass gives the bits of the two.
  const bool bias_row = bias1.defined() && bias1.dim() == 1 && bias1.size(0) == n1 && bias1.strides()[0] == 1;
  if (a_in.dtype() == DType::F32 && b1.dtype() == DType::F32 && b2.dtype() == DType::F32 &&
      (!bias1.defined() || (bias_row && bias1.dtype() == DType::F32)) && m > 0 && k > 0 &&
      use_packed_sgemm_pair(m, n1, n2, k)) {
    MatrixLayout la, l1, l2;
    Tensor a = blas_ready(a_in, la), first = blas_ready(b1, l1), second = blas_ready(b2, l2);
    if (!la.transposed && own_sgemm(false, l1.transposed, 1, m, n1, k) == &packed_sgemm &&
        own_sgemm(false, l2.transposed, 1, m, n2, k) == &skinny_sgemm) {
      out1 = Tensor::empty({m, n1}, DType::F32);
      out2 = Tensor::empty({m, n2}, DType::F32);
      flop_counter.fetch_add(uint64_t(2 * m * (n1 + n2) * k), std::memory_order_relaxed);
      packed_sgemm_pair(m, k, static_cast<const float*>(a.raw_data()), la.ld,
                        SideProduct{l1.transposed, n1, static_cast<const float*>(first.raw_data()), l1.ld, out1.data<float>(), n1,
                                    bias1.defined() ? static_cast<const float*>(bias1.raw_data()) : nullptr},
                        SideProduct{l2.transposed, n2, static_cast<const float*>(second.raw_data()), l2.ld, out2.data<float>(), n2},
                        finish1);
      return;
    }
  }
  if (finish1) out1 = addmm_finished(bias1, a_in, b1, *finish1);   // throws unless float32
  else out1 = bias1.defined() ? addmm(bias1, a_in, b1, 1.0) : matmul(a_in, b1);
  out2 = matmul(a_in, b2);
}

void addmm_into(Tensor& out, const Tensor& a_in, const Tensor& b_in, double alpha) {
  if (a_in.dim() != 2 || b_in.dim() != 2 || out.dim() != 2 || a_in.size(1) != b_in.size(0) || out.size(0) != a_in.size(0) ||
      out.size(1) != b_in.size(1) || !out.is_contiguous())
    throw std::invalid_argument("[addmm_into] needs a contiguous (M, N) output and (M, K), (K, N) operands, got " +
                                out.describe() + ", " + a_in.describe() + " and " + b_in.describe());
  if (a_in.dtype() != out.dtype() || b_in.dtype() != out.dtype())
    throw std::invalid_argument("[addmm_into] dtypes differ: " + out.describe() + ", " + a_in.describe() + " and " + b_in.describe());
  if (out.numel() == 0 || a_in.size(1) == 0) return;   // nothing to add
  dispatch_float(out.dtype(), "addmm_into", [&](auto tag) {
    using T = decltype(tag);
    MatrixLayout la, lb;
    Tensor a = blas_ready(a_in, la), b = blas_ready(b_in, lb);
    accumulate_ready<T>(out.template data<T>(), a, la, b, lb, a_in.size(0), b_in.size(1), a_in.size(1), alpha);
    return 0;
  });
}

}  // namespace linfuse::kernels
