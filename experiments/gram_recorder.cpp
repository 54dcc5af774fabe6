#include "experiments/gram_recorder.h"

#include <stdexcept>

#include "tensor/kernels.h"

namespace linfuse::experiments {

GramRecorder::GramRecorder(int64_t in_features) : gram_(Tensor::zeros({in_features, in_features}, DType::F64)) {}

Tensor GramRecorder::adapt(const Tensor& x, const Tensor& base_output) {
  Tensor rows = kernels::reshape(kernels::cast(x.detach(), DType::F64), {-1, x.size(-1)});
  Tensor g = kernels::matmul(kernels::permute(rows, {1, 0}), rows);   // (in, in)
  const double* src = g.data<double>();
  double* dst = gram_.data<double>();
  const int64_t n = g.numel();
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  rows_ += rows.size(0);
  return base_output;
}

GramRecording::GramRecording(nn::Module& model, const std::vector<std::string>& modules) {
  for (const auto& name : modules) {
    auto lin = std::dynamic_pointer_cast<nn::Linear>(model.find_module(name));
    if (!lin) throw std::invalid_argument("[GramRecording] '" + name + "' is not a Linear module of the model");
    if (lin->adapter()) throw std::invalid_argument("[GramRecording] '" + name + "' already has an adapter");
    auto recorder = std::make_shared<GramRecorder>(lin->in_features);
    lin->set_adapter(recorder);
    layers_.emplace_back(name, lin);
    recorders_.push_back(recorder);
  }
}

GramRecording::~GramRecording() {
  for (auto& [_, lin] : layers_) lin->remove_adapter();
}

StateDict GramRecording::grams() const {
  StateDict out;
  for (size_t i = 0; i < layers_.size(); ++i) out.insert(layers_[i].first, kernels::copy(recorders_[i]->gram()));
  return out;
}

}  // namespace linfuse::experiments
