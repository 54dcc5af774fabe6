#pragma once
// The models `linfuse forward` runs as a reference (an oracle for other implementations), each described by
// the tensors it takes and gives, with Hugging Face's names:
//
//   clip_vision  CLIPVisionModelWithProjection: vision_model.* + visual_projection.weight
//   clip_text    CLIPTextModelWithProjection:   text_model.* + text_projection.weight
//   clip         CLIPModel: both towers, logit_scale, logits and HF's clip_loss
//   t5           T5ForConditionalGeneration (teacher-forced), HF's cross-entropy loss
//
// A ReferenceModel is built from a config file (see read_reference_config for the layouts accepted), loads
// weights strictly by HF name, checks inputs against its specification (naming the tensor, its shape and the
// fix) and returns its outputs by name. Everything runs in eval mode (no dropout).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/module.h"
#include "tensor/state_dict.h"

namespace linfuse::nn {

// One tensor of the reference interface. `shape` is symbolic ("(B, C, H, W)"), `dtype` one of "float" (any
// floating type, cast to the compute dtype), "int64" (stored as I64, nothing else) or "0/1" (a mask: any
// numeric type, values 0 or 1).
struct ReferenceTensorSpec {
  std::string name, shape, dtype, doc;
  bool required = false;   // inputs only
};

struct ReferenceModelSpec {
  std::string name;      // "clip", "clip_vision", "clip_text", "t5"
  std::string summary;   // the Hugging Face class it mirrors
  std::vector<ReferenceTensorSpec> inputs, outputs;
  // Named losses and the scalar output each one is (besides sum_of_<output>, available for every output).
  std::vector<std::pair<std::string, std::string>> losses;
  const ReferenceTensorSpec* input(const std::string& name) const;    // nullptr if not an input
  const ReferenceTensorSpec* output(const std::string& name) const;   // nullptr if not an output
};

// Every model, in the order above.
const std::vector<ReferenceModelSpec>& reference_model_specs();
// Throws std::invalid_argument listing the known names.
const ReferenceModelSpec& reference_model_spec(const std::string& name);

// What a config file says: the model's name and its Hugging Face config (an object).
struct ReferenceConfig {
  std::string model;
  nlohmann::json config;
};

// Reads `path`, in one of two layouts:
//   {"model": "clip_vision", "config": {...HF config...}}   the wrapper
//   {...HF config.json...}                                  model_type "clip" -> clip, "t5" -> t5,
//                                                           "clip_vision_model" -> clip_vision, "clip_text_model" -> clip_text
// `model_override` (the --model option; empty for none) picks the model of a plain config ("clip_vision" from a
// CLIPModel config) and must agree with the wrapper's "model". Throws naming the file and the fix.
ReferenceConfig read_reference_config(const std::string& path, const std::string& model_override = "");

class ReferenceModel {
 public:
  virtual ~ReferenceModel() = default;
  const ReferenceModelSpec& spec() const { return reference_model_spec(name_); }
  Module& module() { return *module_; }
  DType dtype() const { return dtype_; }

  // (How a weights file's names map onto the module's: canonical_reference_names in nn/reference_parameters.h,
  // which needs only the config.)

  // Checks shapes and values of the inputs (present, known names and dtypes are checked by the caller from
  // the spec) and returns warnings for inputs where HF and linfuse are known to differ. Throws naming the
  // tensor, what was expected and the fix.
  virtual std::vector<std::string> check_inputs(const StateDict& inputs) const = 0;

  // The outputs in spec order, those the inputs allow (clip: loss only for as many images as texts; t5: loss
  // only with labels). Float inputs arrive already cast to dtype().
  virtual std::vector<std::pair<std::string, Tensor>> forward(const StateDict& inputs) = 0;

 protected:
  ReferenceModel(std::string name, std::shared_ptr<Module> module, DType dtype)
      : name_(std::move(name)), module_(std::move(module)), dtype_(dtype) {}

 private:
  std::string name_;
  std::shared_ptr<Module> module_;
  DType dtype_;
};

// Builds the model of `config` (initial weights are placeholders: load real ones) in `dtype`, in eval mode.
// Throws std::invalid_argument naming the offending config field.
std::unique_ptr<ReferenceModel> make_reference_model(const ReferenceConfig& config, DType dtype);

}  // namespace linfuse::nn
