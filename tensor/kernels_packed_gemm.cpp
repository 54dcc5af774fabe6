// Packed float32 GEMM (tensor/packed_gemm.h), BLIS-style: op(B) is packed once per product into panels of
// kNR = 16 columns (k rows each, zero past n); C is cut into tiles (a function of the shape) run in parallel;
// inside a tile, for each block of at most kMaxDepth steps of k, each group of 6 rows of op(A) (in L1) sweeps the
// tile's panels (in L2) with a register tile of 6 x 16 (12 accumulators), broadcasting op(A) where it lies (a
// transposed A is first copied into 6-wide rows), and C is written straight from the registers. On AVX-512 CPUs
// (kernel_isa.h) the register tile is 12 (or 6) x 32, two panels at once: each element of C sees the same
// operations, so the same bits.
#include "tensor/packed_gemm.h"

#include <algorithm>
#include <cassert>
#include <memory>
#include <new>

#include "tensor/kernel_isa.h"
#include "tensor/simd.h"
#include "tensor/threading.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace linfuse::kernels {
namespace {

using namespace simd;   // Vec, kLanes, splat, load, store, multiply_add

constexpr int64_t kMR = 6;            // rows of a register tile
constexpr int64_t kNR = 2 * kLanes;   // columns of a register tile and of a packed panel
constexpr int64_t kMaxDepth = 512;    // steps of k summed in registers before C is written

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// What a register tile adds its sums to on the way out: nothing (no base), C itself (beta = 1: base = C, ld =
// ldc), or a bias row on every row (base = the bias, ld = 0), which saves filling C with copies of the bias
// first. The sum is the same either way: addend + alpha * (sum over k).
struct Addend {
  const float* base = nullptr;
  int64_t ld = 0;
  const float* row(int64_t r) const { return base ? base + r * ld : nullptr; }
};

// Where C's columns go: [0, split) to c (row stride ldc; the bias, or beta C, added there), [split, n) to c2 (row
// stride ldc2, beta 0): two products of one op(A) side by side (packed_sgemm_pair). split = n for one product.
// split is a multiple of kNR, so that no panel straddles the two.
struct Destination {
  float* c;
  int64_t ldc;
  float beta;
  const float* bias;
  int64_t split;
  float* c2 = nullptr;
  int64_t ldc2 = 0;
  const BlockFinish* finish = nullptr;   // run on each group of rows of a tile once final, on the first product's columns

  float* at(int64_t i, int64_t j) const { return j < split ? c + i * ldc + j : c2 + i * ldc2 + (j - split); }
  int64_t ld(int64_t j) const { return j < split ? ldc : ldc2; }
  // What the register sums of rows from i, columns from j, are added to: C itself after the first block of k;
  // in the first block the bias, C (beta = 1) or nothing in the first product, nothing in the second.
  Addend addend(int64_t i, int64_t j, bool first_block) const {
    if (!first_block) return Addend{at(i, j), ld(j)};
    if (j >= split) return Addend{};
    if (bias) return Addend{bias + j, 0};
    return beta != 0.0f ? Addend{at(i, j), ldc} : Addend{};
  }
};

// A buffer for the packed op(B), kept by the calling thread between products (a product of the workload packs
// up to 2 MB, which malloc would map and fault in afresh each time). A nested product on the same thread (TBB
// may run another task while this one waits) gets a buffer of its own.
class PackBuffer {
 public:
  explicit PackBuffer(size_t floats) {
    static thread_local Cached cached;
    if (!cached.in_use) {
      cached_ = &cached;
      cached.in_use = true;
      if (cached.size < floats) {
        cached.data.reset(new (std::align_val_t(64)) float[floats]);
        cached.size = floats;
      }
      data_ = cached.data.get();
    } else {
      own_.reset(new (std::align_val_t(64)) float[floats]);
      data_ = own_.get();
    }
  }
  ~PackBuffer() {
    if (cached_) cached_->in_use = false;
  }
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  float* data() { return data_; }

 private:
  struct AlignedDelete {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  struct Cached {
    std::unique_ptr<float[], AlignedDelete> data;
    size_t size = 0;
    bool in_use = false;
  };
  Cached* cached_ = nullptr;
  std::unique_ptr<float[], AlignedDelete> own_;
  float* data_ = nullptr;
};

// op(B) (k x n) into panels of kNR columns: panel q at packed + q k kNR holds op(B)(p, q kNR + j) at p kNR + j,
// zero past n. Read in place, the rows of a panel lie ldb apart and fall into a few sets of L1, which then holds
// only a fraction of the panel; packed, a panel's block of k is one contiguous stream.
void pack_b(bool tb, int64_t n, int64_t k, const float* b, int64_t ldb, float* packed) {
  const int64_t panels = ceil_div(n, kNR);
  if (!tb) {   // op(B)(p, j) = b[p ldb + j]: row by row, each row of b read once
    parallel_for(k, std::max<int64_t>(1, (int64_t(1) << 16) / (panels * kNR)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t q = 0; q < panels; ++q) {
          const float* src = b + p * ldb + q * kNR;
          float* row = packed + (q * k + p) * kNR;
          const int64_t cols = std::min(kNR, n - q * kNR);
          if (cols == kNR) {
            store(row, load(src));
            store(row + kLanes, load(src + kLanes));
          } else {
            std::copy(src, src + cols, row);
            std::fill(row + cols, row + kNR, 0.0f);
          }
        }
    });
    return;
  }
  parallel_for(panels, std::max<int64_t>(1, (int64_t(1) << 16) / (k * kNR)), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {   // op(B)(p, j) = b[j ldb + p]: column j of the panel is row j of b
      float* panel = packed + q * k * kNR;
      const int64_t j0 = q * kNR, cols = std::min(kNR, n - j0);
      for (int64_t p = 0; p < k; ++p) {
        float* row = panel + p * kNR;
        for (int64_t j = 0; j < cols; ++j) row[j] = b[(j0 + j) * ldb + p];
        std::fill(row + cols, row + kNR, 0.0f);
      }
    }
  });
}

// C rows [0, MR) x columns [0, cols) (cols <= kNR) = addend + alpha sum_p op(A)(r, p) panel(p, :) over `depth`
// steps, the addend left out when it has no base. op(A)(r, p) is a[r lda + p], or a[p lda + r] when TransposedA.
template <int MR, bool TransposedA>
void register_tile(const float* a, int64_t lda, const float* panel, int64_t depth, float* c,
                   int64_t ldc, int64_t cols, float alpha, Addend addend) {
  Vec acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = splat(0.0f);
  const float* rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = TransposedA ? a + r : a + r * lda;
  const int64_t step = TransposedA ? lda : 1;
  for (int64_t p = 0; p < depth; ++p, panel += kNR) {
    Vec b0 = load(panel), b1 = load(panel + kLanes);
    for (int r = 0; r < MR; ++r) {
      Vec av = splat(rows[r][p * step]);
      acc[r][0] = multiply_add(av, b0, acc[r][0]);
      acc[r][1] = multiply_add(av, b1, acc[r][1]);
    }
  }
  const Vec scale = splat(alpha);
  for (int r = 0; r < MR; ++r) {
    float* out = c + r * ldc;
    Vec lo = alpha == 1.0f ? acc[r][0] : scale * acc[r][0], hi = alpha == 1.0f ? acc[r][1] : scale * acc[r][1];
    const float* add = addend.row(r);
    if (cols == kNR) {
      if (add) {
        lo = load(add) + lo;
        hi = load(add + kLanes) + hi;
      }
      store(out, lo);
      store(out + kLanes, hi);
    } else {   // the last panel: the same sums, stored one by one
      float sums[kNR];
      store(sums, lo);
      store(sums + kLanes, hi);
      for (int64_t j = 0; j < cols; ++j) out[j] = add ? add[j] + sums[j] : sums[j];
    }
  }
}

// register_tile for the `rows` (1 to kMR) rows left.
template <bool TransposedA>
void register_tile_rows(int64_t rows, const float* a, int64_t lda, const float* panel, int64_t depth,
                        float* c, int64_t ldc, int64_t cols, float alpha, Addend addend) {
  switch (rows) {
    case 6: return register_tile<6, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
    case 5: return register_tile<5, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
    case 4: return register_tile<4, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
    case 3: return register_tile<3, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
    case 2: return register_tile<2, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
    default: return register_tile<1, TransposedA>(a, lda, panel, depth, c, ldc, cols, alpha, addend);
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// The same register tile on AVX-512 (kernel_isa.h): MR rows x Panels adjacent packed panels, one 16-float register
// per panel row, so MR x 32 columns with two panels (up to 12 x 2 accumulators of the 32 registers). Every element
// of C gets exactly register_tile's operations (zero, one multiply-add per step of k in order, times alpha unless
// alpha is 1, plus the addend), so the two paths give the same bits. Only this function and its
// dispatcher are compiled for AVX-512 (the target attribute), and only called where the CPU has it.
template <int MR, int Panels, bool TransposedA>
[[gnu::target("avx512f")]] void register_tile_wide(const float* a, int64_t lda, const float* panel, int64_t panel_stride,
                                                   int64_t depth, float* c, int64_t ldc, int64_t cols, float alpha,
                                                   Addend addend) {
  constexpr int64_t kWide = 16;   // floats per AVX-512 register, = kNR: one panel row
  __m512 acc[MR][Panels];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int q = 0; q < Panels; ++q) acc[r][q] = _mm512_setzero_ps();
  const float* rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = TransposedA ? a + r : a + r * lda;
  const int64_t step = TransposedA ? lda : 1;
  for (int64_t p = 0; p < depth; ++p) {
    __m512 b[Panels];
#pragma GCC unroll 2
    for (int q = 0; q < Panels; ++q) b[q] = _mm512_loadu_ps(panel + q * panel_stride + p * kWide);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(rows[r][p * step]);
#pragma GCC unroll 2
      for (int q = 0; q < Panels; ++q) acc[r][q] = _mm512_fmadd_ps(av, b[q], acc[r][q]);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < Panels; ++q) {
      float* out = c + r * ldc + q * kWide;
      const float* add = addend.row(r) ? addend.row(r) + q * kWide : nullptr;
      const int64_t width = std::min(kWide, cols - q * kWide);
      __m512 v = alpha == 1.0f ? acc[r][q] : _mm512_mul_ps(scale, acc[r][q]);
      if (width == kWide) {
        if (add) v = _mm512_add_ps(_mm512_loadu_ps(add), v);
        _mm512_storeu_ps(out, v);
      } else {   // the last panel: the same sums, stored one by one
        alignas(64) float sums[kWide];
        _mm512_store_ps(sums, v);
        for (int64_t j = 0; j < width; ++j) out[j] = add ? add[j] + sums[j] : sums[j];
      }
    }
}

// register_tile_wide for the `rows` (1 to 12; 1 to kMR when TransposedA, whose rows come from a kMR-wide copy) rows
// left and `panels` (1 or 2) panels.
template <bool TransposedA, int Panels>
[[gnu::target("avx512f")]] void register_tile_wide_rows(int64_t rows, const float* a, int64_t lda, const float* panel,
                                                        int64_t panel_stride, int64_t depth, float* c, int64_t ldc,
                                                        int64_t cols, float alpha, Addend addend) {
#define LINFUSE_WIDE_TILE(R) \
  return register_tile_wide<R, Panels, TransposedA>(a, lda, panel, panel_stride, depth, c, ldc, cols, alpha, addend)
  if constexpr (!TransposedA) {
    switch (rows) {
      case 12: LINFUSE_WIDE_TILE(12);
      case 11: LINFUSE_WIDE_TILE(11);
      case 10: LINFUSE_WIDE_TILE(10);
      case 9: LINFUSE_WIDE_TILE(9);
      case 8: LINFUSE_WIDE_TILE(8);
      case 7: LINFUSE_WIDE_TILE(7);
      default: break;
    }
  }
  switch (rows) {
    case 6: LINFUSE_WIDE_TILE(6);
    case 5: LINFUSE_WIDE_TILE(5);
    case 4: LINFUSE_WIDE_TILE(4);
    case 3: LINFUSE_WIDE_TILE(3);
    case 2: LINFUSE_WIDE_TILE(2);
    default: LINFUSE_WIDE_TILE(1);
  }
#undef LINFUSE_WIDE_TILE
}
constexpr int64_t kWideMR = 12;   // rows of a wide register tile (op(A) not transposed)
constexpr bool kHaveWide = true;
#else
constexpr int64_t kWideMR = 6;
constexpr bool kHaveWide = false;
template <bool TransposedA, int Panels>
void register_tile_wide_rows(int64_t, const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t, int64_t, float,
                             Addend) {}
#endif

// Tiles of C: about 96 rows by up to 256 columns, split further (rows first, down to 24, then columns, down to
// 32) until there are 4 to share between threads (96 or 192 rows, 256 or 512 steps of k: the same speed within
// noise on the workload's shapes). Multiples of the register tile; a function of the shape alone.
void choose_packed_tiles(int64_t m, int64_t n, int64_t k, int64_t& tile_rows, int64_t& tile_cols) {
  int64_t row_tiles = ceil_div(m, 96), col_tiles = ceil_div(n, 256);
  while (m * n * k >= (int64_t(1) << 21) && row_tiles * col_tiles < 4) {
    if (ceil_div(m, row_tiles + 1) >= 24) ++row_tiles;
    else if (ceil_div(n, col_tiles + 1) >= 32) ++col_tiles;
    else break;
  }
  tile_rows = round_up(ceil_div(m, row_tiles), kMR);
  tile_cols = round_up(ceil_div(n, col_tiles), kNR);
}

// C = alpha op(A) op(B) + (beta C, or the bias row on every row), into `dest` (one product, or two side by side),
// tile by tile in parallel. In a tile, for each block of k, each group of kMR rows (a transposed A copied first into
// kMR-wide rows, in L1) sweeps the tile's panels. (The other order, a panel in L1 swept by the groups, ran at half
// this speed with A read in place, and no faster with A packed.)
template <bool TransposedA>
void packed_tiles(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* packed, const Destination& dest,
                  float alpha) {
  int64_t tile_rows, tile_cols;
  const int64_t depth_blocks = ceil_div(k, kMaxDepth), block_depth = ceil_div(k, depth_blocks);
  choose_packed_tiles(m, n, k, tile_rows, tile_cols);
  const int64_t col_tiles = ceil_div(n, tile_cols), tiles = ceil_div(m, tile_rows) * col_tiles;
  // The AVX-512 path (kernel_isa.h): the same sums in wider registers, 12-row groups where op(A) is read in place.
  const bool wide = kHaveWide && gemm_isa() == KernelIsa::avx512;
  const int64_t group_rows = wide && !TransposedA ? kWideMR : kMR;
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    alignas(64) float group[kMR * kMaxDepth + kLanes];   // + kLanes: pack's last vector store
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = (t / col_tiles) * tile_rows, i1 = std::min(m, i0 + tile_rows);
      const int64_t j0 = (t % col_tiles) * tile_cols, j1 = std::min(n, j0 + tile_cols);
      for (int64_t p0 = 0; p0 < k; p0 += block_depth) {
        const int64_t depth = std::min(block_depth, k - p0);
        for (int64_t i = i0; i < i1; i += group_rows) {
          const int64_t rows = std::min(group_rows, i1 - i);
          const float* rows_a = a + i * lda + p0;
          if (TransposedA) {   // op(A)(i + r, p0 + p) = a[(p0 + p) lda + i + r] into group[p kMR + r]
            const float* src = a + p0 * lda + i;
            if (i + kLanes <= m)   // 8 floats stay inside the row of a; the 2 past the group are overwritten next
              for (int64_t p = 0; p < depth; ++p) store(group + p * kMR, load(src + p * lda));
            else
              for (int64_t p = 0; p < depth; ++p)
                for (int64_t r = 0; r < rows; ++r) group[p * kMR + r] = src[p * lda + r];
            rows_a = group;
          }
          const int64_t a_stride = TransposedA ? kMR : lda;
          // AVX-512: two panels at a time; alone, the tile's last panel and one whose neighbour belongs to the
          // other product of a pair
          if (wide) {
            for (int64_t j = j0; j < j1;) {
              const float* panel = packed + ((j / kNR) * k + p0) * kNR;
              const bool pair = j + kNR < j1 && j + kNR != dest.split;
              if (pair)
                register_tile_wide_rows<TransposedA, 2>(rows, rows_a, a_stride, panel, k * kNR, depth, dest.at(i, j), dest.ld(j),
                                                        std::min(2 * kNR, j1 - j), alpha, dest.addend(i, j, p0 == 0));
              else
                register_tile_wide_rows<TransposedA, 1>(rows, rows_a, a_stride, panel, k * kNR, depth, dest.at(i, j), dest.ld(j),
                                                        std::min(kNR, j1 - j), alpha, dest.addend(i, j, p0 == 0));
              j += pair ? 2 * kNR : kNR;
            }
          } else {
            for (int64_t j = j0; j < j1; j += kNR) {
              const float* panel = packed + ((j / kNR) * k + p0) * kNR;
              register_tile_rows<TransposedA>(rows, rows_a, a_stride, panel, depth, dest.at(i, j), dest.ld(j),
                                              std::min(kNR, n - j), alpha, dest.addend(i, j, p0 == 0));
            }
          }
          // the group's rows of the tile are final after the last block of k, and still in L1
          if (dest.finish && p0 + depth == k && j0 < dest.split)
            (*dest.finish)(dest.at(i, j0), dest.ld(j0), i, j0, rows, std::min(j1, dest.split) - j0);
        }
      }
    }
  });
}

// packed_sgemm, with C's initial value either beta C or (when `bias` is given) the bias row on every row.
void packed_sgemm_impl(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float* c, int64_t ldc, float alpha, float beta, const float* bias,
                       const BlockFinish* finish = nullptr) {
  assert(beta == 0.0f || beta == 1.0f);
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {   // an empty sum
    for (int64_t i = 0; i < m; ++i)
      if (bias) std::copy(bias, bias + n, c + i * ldc);
      else if (beta == 0.0f) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    if (finish) (*finish)(c, ldc, 0, 0, m, n);
    return;
  }
  PackBuffer packed(size_t(ceil_div(n, kNR) * k * kNR));
  pack_b(tb, n, k, b, ldb, packed.data());
  Destination dest{c, ldc, beta, bias, n};
  dest.finish = finish;
  if (ta) packed_tiles<true>(m, n, k, a, lda, packed.data(), dest, alpha);
  else packed_tiles<false>(m, n, k, a, lda, packed.data(), dest, alpha);
}

}  // namespace

// Where this kernel beats OpenBLAS (micro_bench and the training step, 1 thread, A/B against OpenBLAS): op(A)
// not transposed with k up to one depth block (x W^T and g W of the workload's linear layers: 1.1-1.3x), down to
// the smallest k: a rank-8 LoRA's s B (A x) and (g B) A (3200 x 8 x 128 or 512) and the patch embedding (k = 16),
// where OpenBLAS zeroes C in a pass of its own (sgemm_beta) before adding the product (1.3-2.4x there). With A
// transposed (the weight gradients g^T x, k = 3200) it only matches OpenBLAS (0.96-1.19x in isolation, no
// difference within noise in the training step; timed again inside the full step: 0.9-1.1x per shape, the step
// +0.7%, 4 of 12 pairs faster), and a large square (1024^3) is no faster, so those stay on OpenBLAS. Nor does it
// help attention's scores Q K^T (op(B) transposed, C 50 wide: the same time per call inside the step). Without
// AVX2 and FMA (a build without -march=native) it is never chosen.
void packed_sgemm_pair(int64_t m, int64_t k, const float* a, int64_t lda, const SideProduct& first, const SideProduct& second,
                       const BlockFinish* first_finish) {
  assert(use_packed_sgemm_pair(m, first.n, second.n, k) && !second.bias);
  const int64_t n = first.n + second.n;
  PackBuffer packed(size_t(ceil_div(n, kNR) * k * kNR));
  pack_b(first.tb, first.n, k, first.b, first.ldb, packed.data());
  pack_b(second.tb, second.n, k, second.b, second.ldb, packed.data() + (first.n / kNR) * k * kNR);
  Destination dest{first.c, first.ldc, 0.0f, first.bias, first.n, second.c, second.ldc};
  dest.finish = first_finish;
  packed_tiles<false>(m, n, k, a, lda, packed.data(), dest, 1.0f);
}

bool use_packed_sgemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k) {
#if defined(__AVX2__) && defined(__FMA__)
  if (n < 2 * kNR || m < 2 * kMR || k > kMaxDepth) return false;
  if (batch > 1 && m * n * k < (int64_t(1) << 21))   // attention's products over (batch, heads), C 32 wide
    return !tb && n % kNR == 0;
  return !ta && m * n * k >= (int64_t(1) << 21);
#else
  (void)ta, (void)tb, (void)batch, (void)m, (void)n, (void)k;
  return false;
#endif
}

// The pair where the packed GEMM would run the first product alone (op(A) in place: B's layout does not matter) in one
// block of k, and the first product's columns fill whole panels.
bool use_packed_sgemm_pair(int64_t m, int64_t n1, int64_t n2, int64_t k) {
  return n1 % kNR == 0 && n2 > 0 && k <= kMaxDepth && use_packed_sgemm(false, false, 1, m, n1, k);
}

void packed_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, float beta) {
  packed_sgemm_impl(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, alpha, beta, nullptr);
}

void packed_sgemm_bias(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, const float* bias, float* c, int64_t ldc, float alpha, const BlockFinish* finish) {
  packed_sgemm_impl(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, alpha, 0.0f, bias, finish);
}

}  // namespace linfuse::kernels
