// Indexing primitives. index_select/index_add and gather/scatter_add are each other's transposes; the
// int64 index input carries no derivative.
#include <stdexcept>

#include "autodiff/rule_helpers.h"
#include "tensor/kernels.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

class IndexSelect : public Primitive {
  LINFUSE_PRIMITIVE("index_select")
 public:
  explicit IndexSelect(int64_t axis) : axis_(axis) {}
  bool differentiable_input(size_t i) const override { return i == 0; }
  Tensor forward(const Tensors& in) override { return kernels::index_select(in[0], axis_, in[1]); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {index_add(in[0].shape(), axis_, in[1], g), Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return index_select(t[0], axis_, in[1]); }

 private:
  int64_t axis_;
};

class IndexAdd : public Primitive {
  LINFUSE_PRIMITIVE("index_add")
 public:
  IndexAdd(Shape shape, int64_t axis) : shape_(std::move(shape)), axis_(axis) {}
  bool differentiable_input(size_t i) const override { return i == 1; }
  Tensor forward(const Tensors& in) override { return kernels::index_add(shape_, axis_, in[0], in[1]); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {Tensor(), index_select(g, axis_, in[0])};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return index_add(shape_, axis_, in[0], t[1]); }

 private:
  Shape shape_;
  int64_t axis_;
};

class Gather : public Primitive {
  LINFUSE_PRIMITIVE("gather")
 public:
  explicit Gather(int64_t axis) : axis_(axis) {}
  bool differentiable_input(size_t i) const override { return i == 0; }
  Tensor forward(const Tensors& in) override { return kernels::gather(in[0], axis_, in[1]); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {scatter_add(in[0].shape(), axis_, in[1], g), Tensor()};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return gather(t[0], axis_, in[1]); }

 private:
  int64_t axis_;
};

class ScatterAdd : public Primitive {
  LINFUSE_PRIMITIVE("scatter_add")
 public:
  ScatterAdd(Shape shape, int64_t axis) : shape_(std::move(shape)), axis_(axis) {}
  bool differentiable_input(size_t i) const override { return i == 1; }
  Tensor forward(const Tensors& in) override { return kernels::scatter_add(shape_, axis_, in[0], in[1]); }
  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted&) override {
    return {Tensor(), gather(g, axis_, in[0])};
  }
  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override { return scatter_add(shape_, axis_, in[0], t[1]); }

 private:
  Shape shape_;
  int64_t axis_;
};

}  // namespace

Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index) {
  int64_t ax = normalize_axis(axis, a.dim(), "index_select");
  if (index.dim() != 1) throw std::invalid_argument("[index_select] index must be 1-D int64, got " + index.describe());
  kernels::check_indices(index, a.shape()[ax], "index_select");
  return apply_new<IndexSelect>({a, index}, ax);
}

Tensor index_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src) {
  int64_t ax = normalize_axis(axis, (int64_t)shape.size(), "index_add");
  Shape expected = shape;
  expected[ax] = index.numel();
  if (index.dim() != 1 || src.shape() != expected)
    throw std::invalid_argument("[index_add] source " + src.describe() + " and index " + index.describe() +
                                " do not fit shape " + shape_str(shape));
  return apply_new<IndexAdd>({index, src}, shape, ax);
}

Tensor gather(const Tensor& a, int64_t axis, const Tensor& index) {
  int64_t ax = normalize_axis(axis, a.dim(), "gather");
  return apply_new<Gather>({a, index}, ax);
}

Tensor scatter_add(const Shape& shape, int64_t axis, const Tensor& index, const Tensor& src) {
  int64_t ax = normalize_axis(axis, (int64_t)shape.size(), "scatter_add");
  return apply_new<ScatterAdd>({index, src}, shape, ax);
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  if (weight.dim() != 2) throw std::invalid_argument("[embedding] weight must be (vocab, dim), got " + weight.describe());
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  return reshape(index_select(weight, 0, kernels::reshape(ids, {-1})), out_shape);
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  return kernels::one_hot(labels, num_classes, dtype);
}

}  // namespace linfuse
