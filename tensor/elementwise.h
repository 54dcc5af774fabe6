#pragma once
// The elementwise engine: out[i] = f(in0[i], in1[i], ...) over the broadcast shape of the inputs, for any
// strided inputs (transposed, sliced, broadcast views). Every elementwise kernel and copy goes through here,
// so broadcasting is handled in one place.
#include <array>
#include <tuple>
#include <utility>

#include "tensor/kernel_isa.h"
#include "tensor/tensor.h"
#include "tensor/threading.h"

namespace linfuse {
namespace detail {

// One Tensor parameter per element type of the pack (lets `const TensorFor<In>&... inputs` expand).
template <class>
struct TensorForImpl {
  using type = Tensor;
};
template <class T>
using TensorFor = typename TensorForImpl<T>::type;

// Strides of `t` seen through a broadcast to `shape` (0 where t is broadcast).
Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op);

// Merges adjacent dims that are contiguous for every operand and drops size-1 dims, in place.
// strides[k] are the strides of operand k (operand 0 is the output).
void coalesce(Shape& shape, std::vector<Shape>& strides);

constexpr int64_t kElementwiseGrain = 1 << 15;

// The inner loop of map_into where every operand is contiguous: o[i] = f(in[i]...).
template <class Out, class F, class... In>
void unit_loop(int64_t count, Out* o, F& f, const In*... in) {
  for (int64_t i = 0; i < count; ++i) o[i] = f(in[i]...);
}

// The same loop compiled for AVX-512 (16 floats a register), run where the CPU has it (kernel_isa.h). The bits
// are the AVX2 loop's: f works on one element at a time, with no sum across elements that a wider register
// could reorder, and -ffp-contract=off keeps the compiler from fusing a multiply and an add on either path
// (tests/autodiff/test_elementwise_isa.cpp: every elementwise primitive; only a NaN's sign bit may differ). GCC
// inlines f into this wider function where f and what it calls are inline (an out-of-line call would run one
// element at a time).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
constexpr bool kHaveWideElementwise = true;
template <class Out, class F, class... In>
[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")]] void unit_loop_wide(int64_t count, Out* o, F& f,
                                                                                                   const In*... in) {
  for (int64_t i = 0; i < count; ++i) o[i] = f(in[i]...);
}
#else
constexpr bool kHaveWideElementwise = false;
template <class Out, class F, class... In>
void unit_loop_wide(int64_t count, Out* o, F& f, const In*... in) {
  unit_loop(count, o, f, in...);
}
#endif

// The inner loop where the output is contiguous and each input either contiguous or one value along the loop
// (stride 0: a scalar, or a per-row value broadcast along a row), bit K of Mask set for the latter: those values
// are loaded once, so the loop vectorizes like unit_loop (a stride-0 input read through a general stride does not).
template <unsigned Mask, class Out, class F, class... In, size_t... K>
void broadcast_loop(int64_t count, Out* o, F& f, std::index_sequence<K...>, const In*... in) {
  const std::tuple<In...> once{in[0]...};
  for (int64_t i = 0; i < count; ++i) o[i] = f((((Mask >> K) & 1u) ? std::get<K>(once) : in[i])...);
}

// broadcast_loop for the mask known at run time (inputs <= 3: up to 8 loops).
template <class Out, class F, class... In>
void broadcast_loop_for(unsigned mask, int64_t count, Out* o, F& f, const In*... in) {
  [&]<unsigned... M>(std::integer_sequence<unsigned, M...>) {
    (void)((mask == M ? (broadcast_loop<M>(count, o, f, std::index_sequence_for<In...>{}, in...), true) : false) || ...);
  }(std::make_integer_sequence<unsigned, (1u << sizeof...(In))>{});
}

}  // namespace detail

// Writes f(inputs...) into `out` (any strided, non-overlapping view of the broadcast shape).
template <class Out, class... In, class F>
void map_into(Tensor& out, F f, const detail::TensorFor<In>&... inputs) {
  constexpr size_t N = sizeof...(In);
  const Shape& shape = out.shape();
  std::vector<Shape> strides;
  strides.push_back(out.strides());
  (strides.push_back(detail::broadcast_strides(inputs, shape, "map")), ...);
  Shape cshape = shape;
  detail::coalesce(cshape, strides);
  int64_t rank = (int64_t)cshape.size();
  int64_t numel = out.numel();
  if (numel == 0) return;
  Out* out_base = static_cast<Out*>(out.raw_data());
  std::array<const void*, N> in_base{inputs.raw_data()...};
  int64_t inner = rank ? cshape[rank - 1] : 1;
  const bool wide = detail::kHaveWideElementwise && kernels::kernel_isa() == kernels::KernelIsa::avx512;

  parallel_for(numel, detail::kElementwiseGrain, [&](int64_t begin, int64_t end) {
    // Multi-index of `begin` in the coalesced shape (the last dim is the inner loop).
    std::vector<int64_t> index(rank, 0);
    int64_t rest = begin;
    for (int64_t d = rank - 1; d >= 0; --d) {
      index[d] = rest % cshape[d];
      rest /= cshape[d];
    }
    int64_t pos = begin;
    while (pos < end) {
      std::array<int64_t, N + 1> off{};
      for (size_t k = 0; k <= N; ++k)
        for (int64_t d = 0; d < rank - 1; ++d) off[k] += index[d] * strides[k][d];
      int64_t i0 = rank ? index[rank - 1] : 0;
      int64_t count = std::min(inner - i0, end - pos);
      Out* o = out_base + off[0] + i0 * (rank ? strides[0][rank - 1] : 0);
      int64_t os = rank ? strides[0][rank - 1] : 0;
      [&]<size_t... K>(std::index_sequence<K...>) {
        std::tuple<const In*...> ptrs{static_cast<const In*>(in_base[K]) + off[K + 1] +
                                      i0 * (rank ? strides[K + 1][rank - 1] : 0)...};
        std::array<int64_t, N> is{(rank ? strides[K + 1][rank - 1] : 0)...};
        bool unit = os == 1 && ((is[K] == 1) && ... && true);
        if (unit && wide) {
          detail::unit_loop_wide(count, o, f, std::get<K>(ptrs)...);
        } else if (unit) {
          detail::unit_loop(count, o, f, std::get<K>(ptrs)...);
        } else if (N <= 3 && os == 1 && ((is[K] == 0 || is[K] == 1) && ... && true)) {
          if constexpr (N <= 3)   // 2^N loops: instantiated for up to 3 inputs only
            detail::broadcast_loop_for(((unsigned(is[K] == 0) << K) | ... | 0u), count, o, f, std::get<K>(ptrs)...);
        } else {
          for (int64_t i = 0; i < count; ++i) o[i * os] = f(std::get<K>(ptrs)[i * is[K]]...);
        }
      }(std::make_index_sequence<N>{});
      pos += count;
      // advance the multi-index past this row segment
      if (rank) {
        index[rank - 1] += count;
        for (int64_t d = rank - 1; d > 0 && index[d] >= cshape[d]; --d) {
          index[d] = 0;
          ++index[d - 1];
        }
      }
    }
  });
}

// A new contiguous tensor of the broadcast shape of the inputs holding f(inputs...).
template <class Out, class... In, class F>
Tensor map(F f, const detail::TensorFor<In>&... inputs) {
  Shape shape;
  ((shape = broadcast_shapes(shape, inputs.shape(), "map")), ...);
  Tensor out = Tensor::empty(shape, dtype_of<Out>());
  map_into<Out, In...>(out, f, inputs...);
  return out;
}

}  // namespace linfuse
