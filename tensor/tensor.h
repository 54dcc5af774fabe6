#pragma once
// Tensor: a shared handle to a strided view of a Storage. Copying a Tensor copies the handle, not the data.
// Math lives elsewhere: raw kernels in tensor/kernels.h, differentiable ops in autodiff/ops.h.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace linfuse {

struct AutogradMeta;   // autodiff bookkeeping (defined below, used by autodiff/)
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;   // an undefined tensor (used for "no gradient" / "zero tangent")

  // --- factories (contiguous, row-major) ---
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor scalar(double value, DType dtype = DType::F32);   // rank 0
  static Tensor arange(int64_t n, DType dtype = DType::F32);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor from_list(std::initializer_list<double> values, const Shape& shape, DType dtype = DType::F32);

  // --- properties ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const { return (int64_t)shape().size(); }
  int64_t size(int64_t axis) const;   // negative axes allowed
  int64_t numel() const;
  DType dtype() const;
  bool is_contiguous() const;
  std::string describe() const;   // "float32(2,3)"

  // --- data access (the pointer is to the first element; checks the dtype) ---
  template <class T> T* data();
  template <class T> const T* data() const;
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const;

  // Copies of the elements in row-major order (any layout, any dtype converted to T).
  template <class T> std::vector<T> to_vector() const;
  double item() const;   // the value of a one-element tensor

  // A new view of the same storage; no autodiff (see autodiff/ops.h for differentiable views).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  // A view of the same data with no autodiff history: same storage, fresh identity.
  Tensor detach() const;

  // --- autodiff state (maintained by autodiff/) ---
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);   // marks a leaf; returns *this
  Tensor grad() const;                         // accumulated gradient of a leaf (undefined if none)
  void set_grad(const Tensor& grad);
  void zero_grad();                            // drops the accumulated gradient
  AutogradMeta& autograd() const;              // created on first use
  bool has_autograd() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  static Tensor from_impl(std::shared_ptr<TensorImpl> impl) {
    Tensor t;
    t.impl_ = std::move(impl);
    return t;
  }
  bool same_as(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

class Node;   // a tape entry, defined in autodiff/tape.h

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                  // accumulated gradient of a leaf
  std::shared_ptr<Node> node;   // the tape node that produced this tensor (non-leaves)
  Tensor tangent;               // forward-mode tangent, valid while `tangent_level` is the active dual level
  uint64_t tangent_level = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;   // in elements
  Shape shape;
  Shape strides;        // in elements; 0 for broadcast dims
  DType dtype = DType::F32;
  std::shared_ptr<AutogradMeta> autograd;
};

}  // namespace linfuse
