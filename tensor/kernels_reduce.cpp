// Reductions. Every reduction is computed row by row over a [kept..., reduced...] layout with a double
// accumulator and a fixed block order, so the bits never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "tensor/elementwise.h"
#include "tensor/kernels.h"

namespace linfuse::kernels {
namespace {

constexpr int64_t kBlock = 8192;   // rows longer than this are summed block by block

// Sum of n values in a fixed order: four interleaved accumulators per block, blocks added in order.
template <class T>
double sum_block(const T* x, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[0] += double(x[i]);
    acc[1] += double(x[i + 1]);
    acc[2] += double(x[i + 2]);
    acc[3] += double(x[i + 3]);
  }
  for (; i < n; ++i) acc[0] += double(x[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

template <class T>
double sum_row(const T* x, int64_t n) {
  double total = 0;
  for (int64_t b = 0; b < n; b += kBlock) total += sum_block(x + b, std::min(kBlock, n - b));
  return total;
}

struct RowLayout {
  Tensor rows;   // contiguous, shape (outer, inner)
  int64_t outer, inner;
  Shape out_shape;
};

RowLayout to_rows(const Tensor& a, const std::vector<int64_t>& axes_in, bool keepdims, const char* op) {
  std::vector<int64_t> axes = normalize_axes(axes_in, a.dim(), op);
  std::vector<int64_t> order;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!std::binary_search(axes.begin(), axes.end(), d)) {
      order.push_back(d);
      outer *= a.shape()[d];
    }
  for (int64_t d : axes) {
    order.push_back(d);
    inner *= a.shape()[d];
  }
  Tensor rows = contiguous(permute(a, order));
  return {rows, outer, inner, reduced_shape(a.shape(), axes, keepdims)};
}

// out[r] = row_fn(row r, inner) for every row; parallel over rows.
template <class T, class RowFn>
Tensor reduce_rows(const RowLayout& layout, RowFn row_fn) {
  Tensor out = Tensor::empty(layout.out_shape, dtype_of<T>());
  const T* x = layout.rows.data<T>();
  T* o = out.data<T>();
  int64_t inner = layout.inner;
  int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(inner, 1));
  parallel_for(layout.outer, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) o[r] = static_cast<T>(row_fn(x + r * inner, inner));
  });
  return out;
}

// Sum over the leading `k` axes of a contiguous tensor: accumulate whole rows into a column buffer.
template <class T>
Tensor sum_leading(const Tensor& a, int64_t k, bool keepdims) {
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < a.dim(); ++d) (d < k ? rows : cols) *= a.shape()[d];
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < k; ++d) axes.push_back(d);
  Tensor out = Tensor::empty(reduced_shape(a.shape(), axes, keepdims), dtype_of<T>());
  const T* x = a.data<T>();
  T* o = out.data<T>();
  constexpr int64_t kCols = 256;
  parallel_for(cols, kCols, [&](int64_t c0, int64_t c1) {
    double acc[kCols];
    for (int64_t j = c0; j < c1; ++j) acc[j - c0] = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = x + r * cols;
      for (int64_t j = c0; j < c1; ++j) acc[j - c0] += double(row[j]);
    }
    for (int64_t j = c0; j < c1; ++j) o[j] = static_cast<T>(acc[j - c0]);
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes_in, bool keepdims) {
  std::vector<int64_t> axes = normalize_axes(axes_in, a.dim(), "sum");
  return dispatch_float(a.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    // Column fast path: contiguous input reduced over a proper leading prefix of axes (bias gradients).
    int64_t k = (int64_t)axes.size();
    bool leading = k > 0 && k < a.dim() && axes.back() == k - 1 && a.is_contiguous();
    if (leading && a.numel() > 0) return sum_leading<T>(a, k, keepdims);
    RowLayout layout = to_rows(a, axes, keepdims, "sum");
    if (layout.outer == 1 && layout.inner > kBlock) {
      // One long row: blocks in parallel, combined in block order.
      const T* x = layout.rows.template data<T>();
      int64_t n = layout.inner, blocks = (n + kBlock - 1) / kBlock;
      std::vector<double> partial(blocks);
      parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) partial[b] = sum_block(x + b * kBlock, std::min(kBlock, n - b * kBlock));
      });
      double total = 0;
      for (double p : partial) total += p;
      return Tensor::full(layout.out_shape, total, dtype_of<T>());
    }
    return reduce_rows<T>(layout, [](const T* row, int64_t n) { return sum_row(row, n); });
  });
}

Tensor max(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims) {
  return dispatch_float(a.dtype(), "max", [&](auto tag) {
    using T = decltype(tag);
    RowLayout layout = to_rows(a, axes, keepdims, "max");
    if (layout.inner == 0) throw std::invalid_argument("[max] cannot reduce over an empty axis of " + a.describe());
    return reduce_rows<T>(layout, [](const T* row, int64_t n) {
      T m = row[0];
      for (int64_t i = 1; i < n; ++i)
        if (row[i] > m || std::isnan(row[i])) m = row[i];
      return double(m);
    });
  });
}

Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims) {
  return dispatch_float(a.dtype(), "logsumexp", [&](auto tag) {
    using T = decltype(tag);
    RowLayout layout = to_rows(a, axes, keepdims, "logsumexp");
    return reduce_rows<T>(layout, [](const T* row, int64_t n) {
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < n; ++i) m = std::max(m, double(row[i]));
      if (!std::isfinite(m)) return m;   // all -inf (or an +inf present): the max is the answer
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(double(row[i]) - m);
      return m + std::log(s);
    });
  });
}

Tensor var(const Tensor& a, const std::vector<int64_t>& axes, bool keepdims, int64_t ddof) {
  return dispatch_float(a.dtype(), "var", [&](auto tag) {
    using T = decltype(tag);
    RowLayout layout = to_rows(a, axes, keepdims, "var");
    if (layout.inner - ddof <= 0)
      throw std::invalid_argument("[var] " + std::to_string(layout.inner) + " elements leave no degrees of freedom with ddof " +
                                  std::to_string(ddof));
    return reduce_rows<T>(layout, [ddof](const T* row, int64_t n) {
      double mean = sum_row(row, n) / double(n);
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) {
        double d = double(row[i]) - mean;
        ss += d * d;
      }
      return ss / double(n - ddof);
    });
  });
}

bool all_zero(const Tensor& a) {
  const Tensor c = contiguous(a);
  return dispatch_float(c.dtype(), "all_zero", [&](auto tag) {
    using T = decltype(tag);
    const T* v = c.template data<T>();
    return std::all_of(v, v + c.numel(), [](T x) { return x == T(0); });
  });
}

}  // namespace linfuse::kernels
