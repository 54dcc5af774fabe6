#pragma once
// Helpers shared by the merging code: one check that sets of named tensors line up (listing every mismatch in
// one message), and float64 copies of tensors. Merging computes in float64 and stores results in the dtype of
// its inputs, so a float32 model loses nothing to summation order.
#include <string>
#include <vector>

#include "tensor/kernels.h"
#include "tensor/state_dict.h"

namespace linfuse::merge {

// How `b` differs from `a`, e.g. "missing in A: x; missing in B: y; shape differs: w (2,3) vs (3,2); dtype
// differs: v float32 vs float64". Empty when both hold the same names with the same shapes and dtypes (in any
// order). `a_label`/`b_label` replace "A"/"B" in the text.
std::string describe_mismatch(const StateDict& a, const StateDict& b, const std::string& a_label = "A",
                              const std::string& b_label = "B");

// Throws std::invalid_argument "[op] <a_label> and <b_label> do not match: <listing>. <fix>" when they differ.
void require_same_entries(const std::string& op, const StateDict& a, const StateDict& b,
                          const std::string& a_label = "A", const std::string& b_label = "B",
                          const std::string& fix = "build both from the same model and parameter selection");

// Checks every set against the first (labels "<what> 0", "<what> 1", ...); one error lists all mismatches.
// Throws when `sets` is empty.
void require_same_entries(const std::string& op, const std::vector<const StateDict*>& sets,
                          const std::string& what = "task vector");

// The elements of `t` in row-major order, as float64 (any layout, any dtype).
std::vector<double> to_float64(const Tensor& t);
// A new contiguous tensor of `shape` and `dtype` holding `values` (rounded once when dtype is float32).
Tensor from_float64(const std::vector<double>& values, const Shape& shape, DType dtype);

// Calls check(i, value) for the elements of a float32 / float64 tensor in row-major order (as double), without a
// float64 copy of the tensor, until check returns false. Returns the index where it stopped, or -1.
template <class Check>
int64_t find_element(const Tensor& t, Check&& check) {
  const Tensor c = kernels::contiguous(t);
  return dispatch_float(c.dtype(), "find_element", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const T* data = c.template data<T>();
    for (int64_t i = 0; i < c.numel(); ++i)
      if (!check(i, double(data[i]))) return i;
    return -1;
  });
}

// "a, b, c" (at most `limit` names, then "... (N more)").
std::string join_names(const std::vector<std::string>& names, size_t limit = 20);

}  // namespace linfuse::merge
