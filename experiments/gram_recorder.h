#pragma once
// Observes the inputs of Linear layers: attached as a layer's adapter it accumulates the Gram matrix X^T X of
// everything the layer sees (leading dims folded into rows), in float64, and leaves the output unchanged.
// RegMean's statistics.
#include <map>
#include <memory>
#include <string>

#include "nn/layers.h"
#include "nn/module.h"

namespace linfuse::experiments {

class GramRecorder : public nn::LinearAdapter {
 public:
  explicit GramRecorder(int64_t in_features);
  Tensor adapt(const Tensor& x, const Tensor& base_output) override;
  std::string type_name() const override { return "GramRecorder"; }
  const Tensor& gram() const { return gram_; }   // (in, in) float64
  int64_t rows() const { return rows_; }

 private:
  Tensor gram_;
  int64_t rows_ = 0;
};

// Attaches recorders to the Linear modules of `model` named in `modules` (which must have no adapter), and
// detaches them when destroyed.
class GramRecording {
 public:
  GramRecording(nn::Module& model, const std::vector<std::string>& modules);
  ~GramRecording();
  GramRecording(const GramRecording&) = delete;
  GramRecording& operator=(const GramRecording&) = delete;
  StateDict grams() const;   // module name -> (in, in) float64

 private:
  std::vector<std::pair<std::string, std::shared_ptr<nn::Linear>>> layers_;
  std::vector<std::shared_ptr<GramRecorder>> recorders_;
};

}  // namespace linfuse::experiments
