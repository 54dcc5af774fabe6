#include "tensor/tensor.h"

#include <cstring>
#include <stdexcept>

namespace linfuse {

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("[empty] negative dimension in shape " + shape_str(shape));
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->shape = shape;
  t.impl_->strides = contiguous_strides(shape);
  t.impl_->dtype = dtype;
  t.impl_->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype));
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  int64_t n = t.numel();
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    T v = static_cast<T>(value);
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, size_t(t.numel()) * dtype_size(dtype));
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) t.data<T>()[i] = static_cast<T>(i);
  });
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  if ((int64_t)values.size() != shape_numel(shape))
    throw std::invalid_argument("[from_vector] " + std::to_string(values.size()) + " values do not fill shape " +
                                shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);

Tensor Tensor::from_list(std::initializer_list<double> values, const Shape& shape, DType dtype) {
  if ((int64_t)values.size() != shape_numel(shape))
    throw std::invalid_argument("[from_list] " + std::to_string(values.size()) + " values do not fill shape " +
                                shape_str(shape));
  Tensor t = empty(shape, dtype);
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t i = 0;
    for (double v : values) t.data<T>()[i++] = static_cast<T>(v);
  });
  return t;
}

static void require_defined(const TensorImpl* impl, const char* what) {
  if (!impl) throw std::logic_error(std::string("[Tensor::") + what + "] the tensor is undefined");
}

const Shape& Tensor::shape() const { require_defined(impl_.get(), "shape"); return impl_->shape; }
const Shape& Tensor::strides() const { require_defined(impl_.get(), "strides"); return impl_->strides; }
int64_t Tensor::offset() const { require_defined(impl_.get(), "offset"); return impl_->offset; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { require_defined(impl_.get(), "dtype"); return impl_->dtype; }
int64_t Tensor::size(int64_t axis) const { return shape()[normalize_axis(axis, dim(), "Tensor::size")]; }
const std::shared_ptr<Storage>& Tensor::storage() const { require_defined(impl_.get(), "storage"); return impl_->storage; }

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  int64_t expected = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape());
}

void* Tensor::raw_data() const {
  require_defined(impl_.get(), "data");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * int64_t(dtype_size(impl_->dtype));
}

template <class T>
T* Tensor::data() {
  require_defined(impl_.get(), "data");
  if (impl_->dtype != dtype_of<T>())
    throw std::invalid_argument(std::string("[Tensor::data] the tensor holds ") + dtype_name(impl_->dtype) +
                                ", not " + dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw_data());
}
template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}
template float* Tensor::data<float>();
template double* Tensor::data<double>();
template int64_t* Tensor::data<int64_t>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const int64_t* Tensor::data<int64_t>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out((size_t)numel());
  const Shape& sh = shape();
  const Shape& st = strides();
  int64_t rank = dim();
  dispatch_all(dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* base = static_cast<const S*>(raw_data());
    std::vector<int64_t> index(rank, 0);
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t off = 0;
      for (int64_t d = 0; d < rank; ++d) off += index[d] * st[d];
      out[i] = static_cast<T>(base[off]);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++index[d] < sh[d]) break;
        index[d] = 0;
      }
    }
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

double Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("[Tensor::item] needs a one-element tensor, got shape " + shape_str(shape()));
  return to_vector<double>()[0];
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  require_defined(impl_.get(), "as_strided");
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->storage = impl_->storage;
  t.impl_->shape = shape;
  t.impl_->strides = strides;
  t.impl_->offset = offset;
  t.impl_->dtype = impl_->dtype;
  return t;
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

AutogradMeta& Tensor::autograd() const {
  require_defined(impl_.get(), "autograd");
  if (!impl_->autograd) impl_->autograd = std::make_shared<AutogradMeta>();
  return *impl_->autograd;
}
bool Tensor::has_autograd() const { return impl_ && impl_->autograd; }

bool Tensor::requires_grad() const { return has_autograd() && impl_->autograd->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  if (on && !is_floating(dtype()))
    throw std::invalid_argument("[set_requires_grad] only floating tensors can require gradients, got " + describe());
  autograd().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return has_autograd() ? impl_->autograd->grad : Tensor(); }
void Tensor::set_grad(const Tensor& grad) { autograd().grad = grad; }
void Tensor::zero_grad() {
  if (has_autograd()) impl_->autograd->grad = Tensor();
}

}  // namespace linfuse
