#pragma once
// One run of `linfuse forward`: a reference model (nn/reference_models.h) with weights from a safetensors
// file, applied to inputs from another, giving its outputs and, on request, the gradient of a scalar loss for
// every parameter (reverse mode) and the JVP of every output along parameter tangents (forward mode, with
// DualLevel + set_tangent). Every check happens before anything is returned, so a caller that writes the
// result only on success never leaves a partial file.
#include <string>
#include <vector>

#include "nn/safetensors.h"
#include "tensor/state_dict.h"

namespace linfuse::nn {

struct ReferenceRunOptions {
  std::string config_path;     // see read_reference_config for the layouts
  std::string model;           // --model: empty for the config's own
  std::string weights_path;    // parameter name -> tensor, HF names
  std::string inputs_path;     // input name -> tensor (reference_model_spec(model).inputs)
  std::string tangents_path;   // parameter name -> tangent (missing = zero); empty: no JVP
  // Empty: no gradients. Else the scalar to differentiate: a named loss of the model ("clip_loss",
  // "cross_entropy") or "sum_of_<output>" for any output.
  std::string loss;
  DType dtype = DType::F32;    // the compute dtype: weights, float inputs and tangents are cast to it
};

struct ReferenceRunResult {
  std::string model;
  // The outputs (spec order), then "grad.<parameter>" (module order; with a loss), then "jvp.<output>" (with
  // tangents), all in the compute dtype.
  StateDict tensors;
  SafetensorsMetadata metadata;   // what was run: generator, model, dtype, loss, the input files
  // For stderr: inputs where HF and linfuse are known to differ, and tensors of the files that were skipped
  // (with the reason).
  std::vector<std::string> warnings, dropped;
};

// Throws std::invalid_argument / std::runtime_error whose message names the file, the tensor and the fix.
ReferenceRunResult run_reference(const ReferenceRunOptions& options);

// The losses `loss` may name for a model: its named ones, then sum_of_<output> for every output.
std::vector<std::string> reference_losses(const std::string& model);

}  // namespace linfuse::nn
