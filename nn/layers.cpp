#include "nn/layers.h"

#include <cmath>
#include <stdexcept>

#include "autodiff/ops.h"

namespace linfuse::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator& init, DType dtype)
    : in_features(in), out_features(out) {
  if (in <= 0 || out <= 0)
    throw std::invalid_argument("[Linear] sizes must be positive, got in " + std::to_string(in) + ", out " + std::to_string(out));
  double bound = 1.0 / std::sqrt(double(in));
  weight = init.uniform({out, in}, -bound, bound, dtype);
  register_parameter("weight", weight);
  if (with_bias) {
    bias = init.uniform({out}, -bound, bound, dtype);
    register_parameter("bias", bias);
  }
}

Tensor Linear::forward_base(const Tensor& x) { return linear(x, weight, bias); }

Tensor Linear::forward(const Tensor& x) { return adapter_ ? adapter_->forward_adapted(*this, x) : forward_base(x); }

Tensor LinearAdapter::forward_adapted(Linear& base, const Tensor& x) { return adapt(x, base.forward_base(x)); }

void Linear::set_adapter(std::shared_ptr<LinearAdapter> adapter) {
  remove_adapter();
  for (auto& [name, child] : adapter->children()) register_module(name, child);
  adapter_ = std::move(adapter);
}

void Linear::remove_adapter() {
  if (!adapter_) return;
  for (auto& [name, _] : adapter_->children()) remove_module(name);
  adapter_.reset();
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& init, DType dtype) {
  weight = init.normal({num, dim}, 0.0, 1.0, dtype);
  register_parameter("weight", weight);
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

LayerNorm::LayerNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = Tensor::ones({dim}, dtype);
  bias = Tensor::zeros({dim}, dtype);
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, weight, bias, eps); }

RMSNorm::RMSNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = Tensor::ones({dim}, dtype);
  register_parameter("weight", weight);
}

Tensor RMSNorm::forward(const Tensor& x) { return rms_norm(x, weight, eps); }

Dropout::Dropout(double p_, uint64_t seed) : p(p_), generator_(seed) {
  if (!(p >= 0 && p < 1)) throw std::invalid_argument("[Dropout] p must be in [0, 1), got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& x) {
  if (!acts()) return x;
  Tensor keep = generator_.bernoulli(x.shape(), 1.0 - p, x.dtype());
  return mul(x, mul(keep, 1.0 / (1.0 - p)));
}

Activation activation_from_name(const std::string& name) {
  if (name == "gelu") return Activation::GeluErf;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "relu") return Activation::Relu;
  throw std::invalid_argument("[activation] unknown activation '" + name +
                              "' (known: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu)");
}

std::string activation_name(Activation a) {
  switch (a) {
    case Activation::GeluErf: return "gelu";
    case Activation::GeluTanh: return "gelu_new";
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Relu: return "relu";
  }
  return "?";
}

Tensor activate_linear(Activation a, Linear& layer, const Tensor& x) {
  if (layer.adapter()) return layer.adapter()->forward_adapted_activated(layer, x, a);
  return linear_activation(x, layer.weight, layer.bias, a);
}

Tensor LinearAdapter::forward_adapted_activated(Linear& base, const Tensor& x, Activation activation) {
  return activate(activation, forward_adapted(base, x));
}

Tensor add_linear(const Tensor& residual, Linear& layer, const Tensor& x) {
  if (layer.adapter()) return layer.adapter()->forward_adapted_residual(layer, x, residual);
  return linear_residual(x, layer.weight, layer.bias, residual);
}

Tensor LinearAdapter::forward_adapted_residual(Linear& base, const Tensor& x, const Tensor& residual) {
  return add(residual, forward_adapted(base, x));
}

}  // namespace linfuse::nn
