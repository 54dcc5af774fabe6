// Indexing kernels: index_select / index_add (embedding lookup and its VJP), gather / scatter_add, one_hot.
// The scatters are deterministic: each output element receives its contributions in index order.
#include <stdexcept>

#include "tensor/kernels.h"
#include "tensor/threading.h"

namespace linfuse::kernels {

void check_indices(const Tensor& index, int64_t size, const char* op) {
  if (index.dtype() != DType::I64)
    throw std::invalid_argument(std::string("[") + op + "] indices must be int64, got " + index.describe());
  for (int64_t v : index.to_vector<int64_t>())
    if (v < 0 || v >= size)
      throw std::invalid_argument(std::string("[") + op + "] index " + std::to_string(v) + " is out of range [0, " +
                                  std::to_string(size) + ")");
}

namespace {
// (outer, axis, inner) factorisation of a shape around `axis`.
void split_around(const Shape& shape, int64_t axis, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t d = 0; d < (int64_t)shape.size(); ++d) {
    if (d < axis) outer *= shape[d];
    if (d > axis) inner *= shape[d];
  }
}
}  // namespace

Tensor index_select(const Tensor& a_in, int64_t axis, const Tensor& index_in) {
  axis = normalize_axis(axis, a_in.dim(), "index_select");
  if (index_in.dim() != 1) throw std::invalid_argument("[index_select] index must be 1-D, got " + index_in.describe());
  check_indices(index_in, a_in.shape()[axis], "index_select");
  Tensor a = contiguous(a_in), index = contiguous(index_in);
  Shape shape = a.shape();
  shape[axis] = index.numel();
  Tensor out = Tensor::empty(shape, a.dtype());
  int64_t outer, inner;
  split_around(a.shape(), axis, outer, inner);
  int64_t n_in = a.shape()[axis], n_out = index.numel();
  const int64_t* idx = index.data<int64_t>();
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* src = a.template data<T>();
    T* dst = out.template data<T>();
    parallel_for(outer * n_out, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t o = r / n_out, j = r % n_out;
        const T* s = src + (o * n_in + idx[j]) * inner;
        T* d = dst + r * inner;
        for (int64_t i = 0; i < inner; ++i) d[i] = s[i];
      }
    });
  });
  return out;
}

Tensor index_add(const Shape& shape, int64_t axis, const Tensor& index_in, const Tensor& src_in) {
  axis = normalize_axis(axis, (int64_t)shape.size(), "index_add");
  check_indices(index_in, shape[axis], "index_add");
  Tensor index = contiguous(index_in), src = contiguous(src_in);
  Tensor out = Tensor::zeros(shape, src.dtype());
  int64_t outer, inner;
  split_around(shape, axis, outer, inner);
  int64_t n_out = shape[axis], n_idx = index.numel();
  const int64_t* idx = index.data<int64_t>();
  dispatch_float(src.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.template data<T>();
    T* d = out.template data<T>();
    // Parallel over (outer, column blocks); within a block indices are visited in order.
    constexpr int64_t kCols = 512;
    int64_t col_blocks = (inner + kCols - 1) / kCols;
    parallel_for(outer * col_blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t o = t / col_blocks, c0 = (t % col_blocks) * kCols, c1 = std::min(inner, c0 + kCols);
        for (int64_t j = 0; j < n_idx; ++j) {
          const T* sr = s + (o * n_idx + j) * inner;
          T* dr = d + (o * n_out + idx[j]) * inner;
          for (int64_t i = c0; i < c1; ++i) dr[i] += sr[i];
        }
      }
    });
  });
  return out;
}

Tensor gather(const Tensor& a_in, int64_t axis, const Tensor& index_in) {
  axis = normalize_axis(axis, a_in.dim(), "gather");
  if (index_in.dim() != a_in.dim())
    throw std::invalid_argument("[gather] index " + index_in.describe() + " must have the rank of " + a_in.describe());
  for (int64_t d = 0; d < a_in.dim(); ++d)
    if (d != axis && index_in.shape()[d] != a_in.shape()[d])
      throw std::invalid_argument("[gather] index " + index_in.describe() + " and input " + a_in.describe() +
                                  " differ off the gather axis");
  check_indices(index_in, a_in.shape()[axis], "gather");
  Tensor a = contiguous(a_in), index = contiguous(index_in);
  Tensor out = Tensor::empty(index.shape(), a.dtype());
  int64_t outer, inner;
  split_around(index.shape(), axis, outer, inner);
  int64_t n_in = a.shape()[axis], n_out = index.shape()[axis];
  const int64_t* idx = index.data<int64_t>();
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* s = a.template data<T>();
    T* d = out.template data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n_out; ++j)
        for (int64_t i = 0; i < inner; ++i) {
          int64_t pos = (o * n_out + j) * inner + i;
          d[pos] = s[(o * n_in + idx[pos]) * inner + i];
        }
  });
  return out;
}

Tensor scatter_add(const Shape& shape, int64_t axis, const Tensor& index_in, const Tensor& src_in) {
  axis = normalize_axis(axis, (int64_t)shape.size(), "scatter_add");
  if (index_in.shape() != src_in.shape())
    throw std::invalid_argument("[scatter_add] index " + index_in.describe() + " and source " + src_in.describe() +
                                " must have the same shape");
  check_indices(index_in, shape[axis], "scatter_add");
  Tensor index = contiguous(index_in), src = contiguous(src_in);
  Tensor out = Tensor::zeros(shape, src.dtype());
  int64_t outer, inner;
  split_around(index.shape(), axis, outer, inner);
  int64_t n_out = shape[axis], n_idx = index.shape()[axis];
  const int64_t* idx = index.data<int64_t>();
  dispatch_float(src.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.template data<T>();
    T* d = out.template data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n_idx; ++j)
        for (int64_t i = 0; i < inner; ++i) {
          int64_t pos = (o * n_idx + j) * inner + i;
          d[(o * n_out + idx[pos]) * inner + i] += s[pos];
        }
  });
  return out;
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  check_indices(labels, num_classes, "one_hot");
  Shape shape = labels.shape();
  shape.push_back(num_classes);
  Tensor out = Tensor::zeros(shape, dtype);
  std::vector<int64_t> l = labels.to_vector<int64_t>();
  dispatch_float(dtype, "one_hot", [&](auto tag) {
    using T = decltype(tag);
    T* d = out.template data<T>();
    for (size_t i = 0; i < l.size(); ++i) d[int64_t(i) * num_classes + l[i]] = T(1);
  });
  return out;
}

}  // namespace linfuse::kernels
