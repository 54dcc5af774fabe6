#pragma once
// Element types of linfuse tensors. Models compute in float32, gradient checks in float64; int64 holds
// labels and token ids (never differentiated).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace linfuse {

enum class DType : uint8_t { F32, F64, I64 };

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
  }
  return "?";
}

inline bool is_floating(DType dtype) { return dtype == DType::F32 || dtype == DType::F64; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }

// Calls f(T{}) with T the C++ type of a floating dtype; `op` names the caller in the error.
template <class F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    default:
      throw std::invalid_argument(std::string("[") + op + "] needs a floating tensor (float32 or float64), got " +
                                  dtype_name(dtype));
  }
}

// Same for every dtype, int64 included (copies, views, gathers).
template <class F>
decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    case DType::I64: return f(int64_t{});
  }
  return f(float{});
}

}  // namespace linfuse
