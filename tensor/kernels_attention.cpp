// The fused attention kernels (attention_kernel.h). Per (batch item, head) every product is a small GEMM
// C = alpha A B in which B is read a row of whole 32-byte vectors at a time (K^T and V^T are transposed into a
// local buffer, other operands read in place) and A one entry at a time, in place, row-major or transposed. Each
// entry of C is summed over k in order by one multiply-add per step, so neither the register tiles nor the thread
// count change its bits (and a wider vector would not either: the sums run along k, never across lanes). On the
// AVX-512 path (kernel_isa.h) the float32 products run on 16-lane tiles (wide_tile), each entry by the same operations.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/attention_kernel.h"
#include "tensor/fast_math.h"
#include "tensor/kernel_isa.h"
#include "tensor/kernels.h"
#include "tensor/simd.h"
#include "tensor/softmax_rows.h"
#include "tensor/threading.h"

namespace linfuse::kernels {
namespace {

template <class T> struct Simd;
template <> struct Simd<float> {
  using Vec = simd::Vec;
  static constexpr int64_t lanes = 8;
};
template <> struct Simd<double> {
  using Vec = simd::VecD;
  static constexpr int64_t lanes = 4;
};

template <class V, class T>
V load(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// One register tile: C (Rows x Vecs vectors) = alpha A B (+ C when Accumulate), A (Rows x k) with entry (i, p) at
// a[i * a_row + p * a_col], B (k x Vecs vectors) with row p at b + p * ldb. Inlined into its caller: a product of
// the reference workload is some 20 tiles of 32 or 50 steps, where a call's own cost would show.
template <class T, int Rows, int Vecs, bool Accumulate>
[[gnu::always_inline]] inline void tile(int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b, int64_t ldb, T* c,
                                        int64_t ldc, T alpha) {
  using V = typename Simd<T>::Vec;
  constexpr int64_t L = Simd<T>::lanes;
  V acc[Rows][Vecs];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < Vecs; ++v) acc[r][v] = V{};
  for (int64_t p = 0; p < k; ++p) {
    V bv[Vecs];
#pragma GCC unroll 4
    for (int v = 0; v < Vecs; ++v) bv[v] = load<V>(b + p * ldb + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      V ar = simd::splat(a[r * a_row + p * a_col]);
#pragma GCC unroll 4
      for (int v = 0; v < Vecs; ++v) acc[r][v] = simd::multiply_add(ar, bv[v], acc[r][v]);
    }
  }
  const V scale = simd::splat(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < Vecs; ++v) {
      V out = acc[r][v] * scale;
      if constexpr (Accumulate) out += load<V>(c + r * ldc + v * L);
      __builtin_memcpy(c + r * ldc + v * L, &out, sizeof out);
    }
}

template <class T, int Vecs, bool Accumulate>
void tile_of_rows(int64_t rows, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b, int64_t ldb, T* c,
                  int64_t ldc, T alpha) {
  switch (rows) {
    case 6: return tile<T, 6, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
    case 5: return tile<T, 5, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
    case 4: return tile<T, 4, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
    case 3: return tile<T, 3, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
    case 2: return tile<T, 2, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
    default: return tile<T, 1, Vecs, Accumulate>(k, a, a_row, a_col, b, ldb, c, ldc, alpha);
  }
}

// C (m x n) = alpha A B (+ C when accumulate), n a multiple of the lanes. Register tiles of 12 accumulators: up to 6
// rows x 2 vectors (with 2 vectors of B and 1 of A, 15 of the 16 AVX registers), or 4 rows x 3 vectors for the
// first block of an odd number of vectors (50 keys: 7 vectors = 3 + 2 + 2). The rows are split into tiles of
// near-equal height (50 = 6 x 6 + 3 x 5 rather than 8 x 6 + 2): a short tile has too few independent sums to
// keep the multiply-add units busy.
template <class T, bool Accumulate>
void small_gemm_tiles(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b,
                      int64_t ldb, T* c, int64_t ldc, T alpha) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t vecs = n / L;
  for (int64_t j = 0; j < vecs;) {
    const int64_t width = (j == 0 && vecs % 2 == 1) ? std::min<int64_t>(3, vecs) : 2;
    const int64_t max_rows = width == 3 ? 4 : 6, tiles = (m + max_rows - 1) / max_rows;
    for (int64_t t = 0, i = 0; t < tiles; ++t) {
      const int64_t rows = m / tiles + (t < m % tiles ? 1 : 0);
      const T* at = a + i * a_row;
      const T* bt = b + j * L;
      T* ct = c + i * ldc + j * L;
      if (width == 3) tile_of_rows<T, 3, Accumulate>(rows, k, at, a_row, a_col, bt, ldb, ct, ldc, alpha);
      else if (width == 2) tile_of_rows<T, 2, Accumulate>(rows, k, at, a_row, a_col, bt, ldb, ct, ldc, alpha);
      else tile_of_rows<T, 1, Accumulate>(rows, k, at, a_row, a_col, bt, ldb, ct, ldc, alpha);
      i += rows;
    }
    j += width;
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// The same register tile on AVX-512 (kernel_isa.h), float32: Rows x 2 registers of 16 floats, 32 columns of C. Every
// element of C gets exactly tile()'s operations (zero, one multiply-add per step of k in order, times alpha, plus C
// when accumulating), so the two paths give the same bits. Only these functions are compiled for AVX-512 (the
// target attribute), and only called where the CPU has it.
template <int Rows, bool Accumulate>
[[gnu::target("avx512f")]] void wide_tile(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                                          int64_t ldb, float* c, int64_t ldc, float alpha) {
  constexpr int Vecs = 2, L = 16;
  __m512 acc[Rows][Vecs];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    __m512 bv[Vecs];
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) bv[v] = _mm512_loadu_ps(b + p * ldb + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r * a_row + p * a_col]);
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) {
      __m512 out = _mm512_mul_ps(acc[r][v], scale);
      if constexpr (Accumulate) out = _mm512_add_ps(out, _mm512_loadu_ps(c + r * ldc + v * L));
      _mm512_storeu_ps(c + r * ldc + v * L, out);
    }
}

// C (m x n) = alpha A B (+ C) on AVX-512 tiles of up to 8 rows x 32 columns (16 accumulators, 2 registers of B, 1 of
// A: 19 of the 32 registers), rows in tiles of near-equal height as small_gemm_tiles; n a multiple of 32.
template <bool Accumulate>
[[gnu::target("avx512f")]] void wide_gemm_tiles(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row,
                                                int64_t a_col, const float* b, int64_t ldb, float* c, int64_t ldc,
                                                float alpha) {
  constexpr int64_t kWideCols = 32, kMaxRows = 8;
  const int64_t tiles = (m + kMaxRows - 1) / kMaxRows;
  for (int64_t j = 0; j < n; j += kWideCols)
    for (int64_t t = 0, i = 0; t < tiles; ++t) {
      const int64_t rows = m / tiles + (t < m % tiles ? 1 : 0);
      const float* at = a + i * a_row;
      float* ct = c + i * ldc + j;
#define LINFUSE_WIDE_ATTENTION_TILE(R) wide_tile<R, Accumulate>(k, at, a_row, a_col, b + j, ldb, ct, ldc, alpha); break
      switch (rows) {
        case 8: LINFUSE_WIDE_ATTENTION_TILE(8);
        case 7: LINFUSE_WIDE_ATTENTION_TILE(7);
        case 6: LINFUSE_WIDE_ATTENTION_TILE(6);
        case 5: LINFUSE_WIDE_ATTENTION_TILE(5);
        case 4: LINFUSE_WIDE_ATTENTION_TILE(4);
        case 3: LINFUSE_WIDE_ATTENTION_TILE(3);
        case 2: LINFUSE_WIDE_ATTENTION_TILE(2);
        default: LINFUSE_WIDE_ATTENTION_TILE(1);
      }
#undef LINFUSE_WIDE_ATTENTION_TILE
      i += rows;
    }
}
constexpr bool kHaveWide = true;
#else
constexpr bool kHaveWide = false;
template <bool Accumulate>
void wide_gemm_tiles(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, float) {}
#endif

template <class T, bool Accumulate>
void small_gemm_on_path(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b,
                        int64_t ldb, T* c, int64_t ldc, T alpha) {
  if constexpr (std::is_same_v<T, float>) {
    // The AVX-512 path (kernel_isa.h): whole 32-column blocks on wide tiles, the 8 to 24 columns left (50 keys padded
    // to 56: 24) on AVX2 tiles. (Wide tiles with a masked last register for those were measured 2-3% slower.)
    if (kHaveWide && kernel_isa() == KernelIsa::avx512) {
      const int64_t wide_cols = n / 32 * 32;
      if (wide_cols > 0) wide_gemm_tiles<Accumulate>(m, wide_cols, k, a, a_row, a_col, b, ldb, c, ldc, alpha);
      if (wide_cols < n)
        small_gemm_tiles<T, Accumulate>(m, n - wide_cols, k, a, a_row, a_col, b + wide_cols, ldb, c + wide_cols, ldc, alpha);
      return;
    }
  }
  small_gemm_tiles<T, Accumulate>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha);
}

template <class T>
void small_gemm(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b, int64_t ldb, T* c,
                int64_t ldc, T alpha, bool accumulate) {
  if (accumulate) small_gemm_on_path<T, true>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha);
  else small_gemm_on_path<T, false>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha);
}

// The (rows x cols) matrices of a (..., rows, cols) tensor, one per batch item (batch dims flattened row-major).
template <class T>
struct Matrices {
  T* data = nullptr;
  Shape batch_shape, batch_strides;
  int64_t row_stride = 0, col_stride = 0;
  Matrices() = default;
  explicit Matrices(Tensor t) : data(t.data<T>()) {
    int64_t rank = t.dim();
    batch_shape.assign(t.shape().begin(), t.shape().end() - 2);
    batch_strides.assign(t.strides().begin(), t.strides().end() - 2);
    row_stride = t.strides()[rank - 2];
    col_stride = t.strides()[rank - 1];
  }
  T* item(int64_t index) const {
    int64_t offset = 0;
    for (int64_t d = int64_t(batch_shape.size()) - 1; d >= 0; --d) {
      offset += (index % batch_shape[d]) * batch_strides[d];
      index /= batch_shape[d];
    }
    return data + offset;
  }
};

// A B operand: `rows` rows of whole vectors, row p at data + p * ld.
template <class T>
struct Operand {
  const T* data;
  int64_t ld;
};

// The rows of a (rows x cols) matrix as a B operand: in place when cols is a multiple of the lanes, else a
// zero-padded copy in `buffer`.
template <class T>
Operand<T> rows_of(const T* src, int64_t rows, int64_t cols, int64_t stride, std::vector<T>& buffer) {
  if (cols % Simd<T>::lanes == 0) return {src, stride};
  int64_t ld = round_up(cols, Simd<T>::lanes);
  buffer.assign(size_t(rows * ld), T(0));
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * stride, src + r * stride + cols, buffer.data() + r * ld);
  return {buffer.data(), ld};
}

#if defined(__AVX__) && defined(__FMA__)
// dst (8 x 8, row stride dst_stride) = the transpose of src (8 x 8, row stride src_stride), through registers.
inline void transpose_8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {   // interleave row pairs
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {   // then pairs of pairs
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {   // then the 128-bit halves
    _mm256_storeu_ps(dst + i * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// The transpose of a (rows x cols) matrix as a B operand (cols x rows, zero-padded to whole vectors). float32
// moves 8 x 8 blocks through registers, element by element a few times slower.
template <class T>
Operand<T> transpose_of(const T* src, int64_t rows, int64_t cols, int64_t stride, std::vector<T>& buffer) {
  int64_t ld = round_up(rows, Simd<T>::lanes);
  buffer.resize(size_t(cols * ld));
  T* out = buffer.data();
  int64_t r0 = 0, c0 = 0;
#if defined(__AVX__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) {
    c0 = cols / 8 * 8;
    for (; r0 + 8 <= rows; r0 += 8)
      for (int64_t c = 0; c < c0; c += 8) transpose_8x8(src + r0 * stride + c, stride, out + c * ld + r0, ld);
  }
#endif
  for (int64_t r = 0; r < rows; ++r)   // what the blocks left: the last rows, and the last columns of the rest
    for (int64_t c = r < r0 ? c0 : 0; c < cols; ++c) out[c * ld + r] = src[r * stride + c];
  for (int64_t c = 0; c < cols; ++c) std::fill(out + c * ld + rows, out + (c + 1) * ld, T(0));
  return {out, ld};
}

// Where a product's C (rows x cols) goes: the destination rows themselves when cols is a multiple of the lanes,
// else `buffer`, which finish() copies out.
template <class T>
struct Output {
  T* dst;
  int64_t rows, cols, stride;
  T* c;
  int64_t ldc, padded_cols;
  Output(T* dst_, int64_t rows_, int64_t cols_, int64_t stride_, std::vector<T>& buffer)
      : dst(dst_), rows(rows_), cols(cols_), stride(stride_), c(dst_), ldc(stride_),
        padded_cols(round_up(cols_, Simd<T>::lanes)) {
    if (padded_cols == cols) return;
    buffer.assign(size_t(rows * padded_cols), T(0));
    c = buffer.data();
    ldc = padded_cols;
  }
  void finish() const {
    if (c == dst) return;
    for (int64_t r = 0; r < rows; ++r) std::copy(c + r * ldc, c + r * ldc + cols, dst + r * stride);
  }
};

// Local buffers of one task, reused across its items.
template <class T>
struct Workspace {
  std::vector<T> transposed, scores, operand, operand2, output;
};

constexpr int64_t kItemsPerTask = 4;   // a fixed chunking: the bits do not depend on the thread count

// The last axis with unit stride, as the kernels read it.
Tensor unit_rows(const Tensor& t) { return t.strides().back() == 1 || t.size(-1) == 1 ? t : contiguous(t); }

// A fresh (..., T, D) result; a 4-D one (B, H, T, D) is laid out (B, T, H, D), the heads' layout.
Tensor empty_in_heads_layout(const Shape& shape, DType dtype) {
  if (shape.size() != 4) return Tensor::empty(shape, dtype);
  return permute(Tensor::empty({shape[0], shape[2], shape[1], shape[3]}, dtype), {0, 2, 1, 3});
}

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

void check_operands(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim() || batch_of(k) != batch_of(q) || batch_of(v) != batch_of(q) ||
      k.size(-1) != q.size(-1) || v.size(-2) != k.size(-2) || k.dtype() != q.dtype() || v.dtype() != q.dtype())
    throw std::invalid_argument(std::string("[") + op + "] expected q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) " +
                                "of one dtype and the same batch dims, got " + q.describe() + ", " + k.describe() +
                                ", " + v.describe());
}

Shape with_last_two(const Tensor& batch_like, int64_t rows, int64_t cols) {
  Shape s = batch_of(batch_like);
  s.push_back(rows);
  s.push_back(cols);
  return s;
}

// A mask (or its tangent) broadcast to the scores' shape (..., Tq, Tk); undefined stays undefined.
Tensor as_scores(const Tensor& mask, const Tensor& q, int64_t tq, int64_t tk, const std::string& what) {
  if (!mask.defined()) return Tensor();
  if (mask.dtype() != q.dtype()) throw std::invalid_argument(what + mask.describe() + " must have the dtype of q " + q.describe());
  return broadcast_to(mask, with_last_two(q, tq, tk));
}

int64_t items_of(const Tensor& t) {
  int64_t n = 1;
  for (int64_t d : batch_of(t)) n *= d;
  return n;
}

}  // namespace

Tensor attention_forward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in, double scale,
                         Tensor* probabilities) {
  check_operands(q_in, k_in, v_in, "attention_forward");
  Tensor q = unit_rows(q_in), k = unit_rows(k_in), v = unit_rows(v_in);
  const int64_t items = items_of(q), tq = q.size(-2), tk = k.size(-2), d = q.size(-1), dv = v.size(-1);
  Tensor mask = as_scores(mask_in, q, tq, tk, "[attention_forward] mask ");
  Tensor out = empty_in_heads_layout(with_last_two(q, tq, dv), q.dtype());
  count_flops(uint64_t(2 * items * tq * tk * (d + dv)));   // S and O
  if (probabilities) *probabilities = Tensor::empty(with_last_two(q, tq, tk), q.dtype());
  dispatch_float(q.dtype(), "attention_forward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t L = Simd<T>::lanes;
    Matrices<T> Q(q), K(k), V(v), O(out), M;
    if (mask.defined()) M = Matrices<T>(mask);
    T* saved = probabilities ? probabilities->template data<T>() : nullptr;
    const int64_t tkp = round_up(tk, L);
    parallel_for(items, kItemsPerTask, [&](int64_t first, int64_t last) {
      Workspace<T> w;
      w.scores.assign(size_t(tq * tkp), T(0));
      T* s = w.scores.data();   // (tq x tkp): the scores, then P in place
      for (int64_t item = first; item < last; ++item) {
        // S = scale Q K^T (+ mask), then P = softmax(S) row by row
        Operand<T> kt = transpose_of(K.item(item), tk, d, K.row_stride, w.transposed);
        small_gemm<T>(tq, tkp, d, Q.item(item), Q.row_stride, 1, kt.data, kt.ld, s, tkp, T(scale), false);
        if (M.data)
          for (int64_t i = 0; i < tq; ++i) {
            const T* m = M.item(item) + i * M.row_stride;
            for (int64_t j = 0; j < tk; ++j) s[i * tkp + j] += m[j * M.col_stride];
          }
        row_kernels::softmax_rows(s, s, tq, tk, tkp, [](T x) { return fast::exp_nonpositive_of(x); });
        if (saved)
          for (int64_t i = 0; i < tq; ++i) std::copy(s + i * tkp, s + i * tkp + tk, saved + (item * tq + i) * tk);
        // O = P V
        Operand<T> vb = rows_of(V.item(item), tk, dv, V.row_stride, w.operand);
        Output<T> o(O.item(item), tq, dv, O.row_stride, w.output);
        small_gemm<T>(tq, o.padded_cols, tk, s, tkp, 1, vb.data, vb.ld, o.c, o.ldc, T(1), false);
        o.finish();
      }
    });
  });
  return out;
}

void attention_backward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& probabilities,
                        const Tensor& d_out_in, double scale, Tensor* dq, Tensor* dk, Tensor* dv_out, Tensor* d_scores) {
  check_operands(q_in, k_in, v_in, "attention_backward");
  Tensor q = unit_rows(q_in), k = unit_rows(k_in), v = unit_rows(v_in), g = unit_rows(d_out_in);
  const int64_t items = items_of(q), tq = q.size(-2), tk = k.size(-2), d = q.size(-1), dv = v.size(-1);
  if (g.shape() != with_last_two(q, tq, dv) || probabilities.shape() != with_last_two(q, tq, tk) || !probabilities.is_contiguous())
    throw std::invalid_argument("[attention_backward] cotangent " + g.describe() + " or probabilities " +
                                probabilities.describe() + " do not match q " + q.describe() + ", v " + v.describe());
  count_flops(uint64_t(2 * items * tq * tk * ((dv_out ? dv : 0) + (dq || dk ? dv : 0) + (dq ? d : 0) + (dk ? d : 0))));
  if (dq) *dq = empty_in_heads_layout(q.shape(), q.dtype());
  if (dk) *dk = empty_in_heads_layout(k.shape(), q.dtype());
  if (dv_out) *dv_out = empty_in_heads_layout(v.shape(), q.dtype());
  if (d_scores) *d_scores = Tensor::empty(with_last_two(q, tq, tk), q.dtype());
  dispatch_float(q.dtype(), "attention_backward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t L = Simd<T>::lanes;
    Matrices<T> Q(q), K(k), V(v), G(g), DQ, DK, DV;
    if (dq) DQ = Matrices<T>(*dq);
    if (dk) DK = Matrices<T>(*dk);
    if (dv_out) DV = Matrices<T>(*dv_out);
    const T* saved = probabilities.template data<T>();
    T* d_bias = d_scores ? d_scores->template data<T>() : nullptr;
    const int64_t tkp = round_up(tk, L);
    parallel_for(items, kItemsPerTask, [&](int64_t first, int64_t last) {
      Workspace<T> w;
      w.scores.assign(size_t(tq * tkp), T(0));
      T* ds = w.scores.data();   // (tq x tkp): dP, then dS in place
      for (int64_t item = first; item < last; ++item) {
        const T* p = saved + item * tq * tk;   // P (tq x tk), read in place as A or A^T
        Operand<T> gb = rows_of(G.item(item), tq, dv, G.row_stride, w.operand);
        if (dv_out) {   // dV = P^T dO
          Output<T> o(DV.item(item), tk, dv, DV.row_stride, w.output);
          small_gemm<T>(tk, o.padded_cols, tq, p, 1, tk, gb.data, gb.ld, o.c, o.ldc, T(1), false);
          o.finish();
        }
        if (!dq && !dk && !d_bias) continue;
        // dP = dO V^T; dS = scale P (dP - rowsum(dP P))
        Operand<T> vt = transpose_of(V.item(item), tk, dv, V.row_stride, w.transposed);
        small_gemm<T>(tq, tkp, dv, G.item(item), G.row_stride, 1, vt.data, vt.ld, ds, tkp, T(1), false);
        if (!d_bias) {
          row_kernels::softmax_rule_rows(p, tk, ds, ds, tkp, tq, tk, T(scale));
        } else {   // dB = P (dP - rowsum(dP P)) written out, then dS = scale dB: the rule applies the scale last, so
                   // these are dS's bits either way
          row_kernels::softmax_rule_rows(p, tk, ds, ds, tkp, tq, tk, T(1));
          for (int64_t i = 0; i < tq; ++i) {
            T* row = ds + i * tkp;
            std::copy(row, row + tk, d_bias + (item * tq + i) * tk);
            if (scale != 1.0)
              for (int64_t j = 0; j < tk; ++j) row[j] = row[j] * T(scale);
          }
        }
        if (dq) {   // dQ = dS K
          Operand<T> kb = rows_of(K.item(item), tk, d, K.row_stride, w.operand2);
          Output<T> o(DQ.item(item), tq, d, DQ.row_stride, w.output);
          small_gemm<T>(tq, o.padded_cols, tk, ds, tkp, 1, kb.data, kb.ld, o.c, o.ldc, T(1), false);
          o.finish();
        }
        if (dk) {   // dK = dS^T Q
          Operand<T> qb = rows_of(Q.item(item), tq, d, Q.row_stride, w.operand2);
          Output<T> o(DK.item(item), tk, d, DK.row_stride, w.output);
          small_gemm<T>(tk, o.padded_cols, tq, ds, 1, tkp, qb.data, qb.ld, o.c, o.ldc, T(1), false);
          o.finish();
        }
      }
    });
  });
}

Tensor attention_tangent(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& probabilities,
                         const Tensor& tq_in, const Tensor& tk_in, const Tensor& tv_in, double scale, const Tensor& t_mask_in) {
  check_operands(q_in, k_in, v_in, "attention_tangent");
  Tensor q = unit_rows(q_in), k = unit_rows(k_in), v = unit_rows(v_in);
  const int64_t items = items_of(q), tq = q.size(-2), tk = k.size(-2), d = q.size(-1), dv = v.size(-1);
  Tensor t_q = tq_in.defined() ? unit_rows(tq_in) : Tensor(), t_k = tk_in.defined() ? unit_rows(tk_in) : Tensor(),
         t_v = tv_in.defined() ? unit_rows(tv_in) : Tensor();
  if ((t_q.defined() && t_q.shape() != q.shape()) || (t_k.defined() && t_k.shape() != k.shape()) ||
      (t_v.defined() && t_v.shape() != v.shape()) || probabilities.shape() != with_last_two(q, tq, tk) ||
      !probabilities.is_contiguous())
    throw std::invalid_argument("[attention_tangent] tangents or probabilities " + probabilities.describe() +
                                " do not match q " + q.describe() + ", k " + k.describe() + ", v " + v.describe());
  if (!t_q.defined() && !t_k.defined() && !t_v.defined() && !t_mask_in.defined())
    throw std::invalid_argument("[attention_tangent] needs at least one tangent (an undefined one means zero)");
  Tensor t_mask = as_scores(t_mask_in, q, tq, tk, "[attention_tangent] mask tangent ");
  Tensor out = empty_in_heads_layout(with_last_two(q, tq, dv), q.dtype());
  count_flops(uint64_t(2 * items * tq * tk * ((t_q.defined() ? d : 0) + (t_k.defined() ? d : 0) +
                                              (t_q.defined() || t_k.defined() || t_mask.defined() ? dv : 0) + (t_v.defined() ? dv : 0))));
  dispatch_float(q.dtype(), "attention_tangent", [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t L = Simd<T>::lanes;
    Matrices<T> Q(q), K(k), V(v), O(out), TQ, TK, TV, TM;
    if (t_mask.defined()) TM = Matrices<T>(t_mask);
    if (t_q.defined()) TQ = Matrices<T>(t_q);
    if (t_k.defined()) TK = Matrices<T>(t_k);
    if (t_v.defined()) TV = Matrices<T>(t_v);
    const T* saved = probabilities.template data<T>();
    const int64_t tkp = round_up(tk, L);
    const bool score_tangent = TQ.data || TK.data || TM.data;
    parallel_for(items, kItemsPerTask, [&](int64_t first, int64_t last) {
      Workspace<T> w;
      w.scores.assign(size_t(tq * tkp), T(0));
      T* ts = w.scores.data();   // (tq x tkp): tS, then tP in place
      for (int64_t item = first; item < last; ++item) {
        const T* p = saved + item * tq * tk;
        if (TQ.data) {   // tS = scale tQ K^T
          Operand<T> kt = transpose_of(K.item(item), tk, d, K.row_stride, w.transposed);
          small_gemm<T>(tq, tkp, d, TQ.item(item), TQ.row_stride, 1, kt.data, kt.ld, ts, tkp, T(scale), false);
        }
        if (TK.data) {   // tS (+)= scale Q tK^T
          Operand<T> tkt = transpose_of(TK.item(item), tk, d, TK.row_stride, w.transposed);
          small_gemm<T>(tq, tkp, d, Q.item(item), Q.row_stride, 1, tkt.data, tkt.ld, ts, tkp, T(scale), TQ.data != nullptr);
        }
        if (TM.data)   // tS (+)= t_mask
          for (int64_t i = 0; i < tq; ++i) {
            const T* m = TM.item(item) + i * TM.row_stride;
            T* row = ts + i * tkp;
            for (int64_t j = 0; j < tk; ++j) row[j] = TQ.data || TK.data ? row[j] + m[j * TM.col_stride] : m[j * TM.col_stride];
          }
        if (score_tangent) row_kernels::softmax_rule_rows(p, tk, ts, ts, tkp, tq, tk);   // tP = P (tS - rowsum(tS P))
        Output<T> o(O.item(item), tq, dv, O.row_stride, w.output);
        if (score_tangent) {   // tO = tP V
          Operand<T> vb = rows_of(V.item(item), tk, dv, V.row_stride, w.operand);
          small_gemm<T>(tq, o.padded_cols, tk, ts, tkp, 1, vb.data, vb.ld, o.c, o.ldc, T(1), false);
        }
        if (TV.data) {   // tO (+)= P tV
          Operand<T> tvb = rows_of(TV.item(item), tk, dv, TV.row_stride, w.operand2);
          small_gemm<T>(tq, o.padded_cols, tk, p, tk, 1, tvb.data, tvb.ld, o.c, o.ldc, T(1), score_tangent);
        }
        o.finish();
      }
    });
  });
  return out;
}

}  // namespace linfuse::kernels
