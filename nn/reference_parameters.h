#pragma once
// What a reference model's config implies before the model is built (nn/reference_models.h): the parameters (names
// and shapes, in the module's order), how a weights file's names map onto them, and the memory they take. `linfuse
// forward` checks a weights file against these before it allocates anything, so that a config of the wrong size
// fails at once, naming the tensors, and a config too large for the machine fails with a message instead of
// std::bad_alloc (or minutes of initialising placeholder weights). tests/nn/test_reference_parameters.cpp checks
// that the shapes equal the built modules' for every model.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn/clip_config.h"
#include "nn/reference_models.h"
#include "tensor/shape.h"

namespace linfuse::nn {

struct ParameterShape {
  std::string name;   // Hugging Face's name ("vision_model.encoder.layers.0.mlp.fc1.weight")
  Shape shape;
};

// Every parameter of the model of `config`, in module order. Parses (and so validates) the config: throws
// std::invalid_argument naming the offending field.
std::vector<ParameterShape> reference_parameter_shapes(const ReferenceConfig& config);

// A single CLIP tower's config and the projection_dim it uses, from a CLIPModel config (CLIPModel's projection_dim)
// or the tower's own config (its projection_dim, as HF's *WithProjection models read it).
std::pair<CLIPVisionConfig, int64_t> clip_vision_tower_config(const nlohmann::json& config);
std::pair<CLIPTextConfig, int64_t> clip_text_tower_config(const nlohmann::json& config);

// Why a tensor of a weights or tangents file is skipped, as transformers skips it on load: an old persistent
// position_ids buffer (stored as I64 by transformers), T5's unused cross-attention relative_attention_bias, and for
// clip_vision / clip_text the other parts of a CLIPModel checkpoint. "" when the tensor is kept.
std::string reference_skip_reason(const std::string& model, const std::string& name);

// Parameter name -> tensor keyed by HF names as a file holds them, mapped onto the model's names: skipped tensors
// (reference_skip_reason) are dropped, each reported in `dropped`; for t5, the aliases of shared.weight
// (encoder/decoder.embed_tokens.weight, a tied lm_head.weight) fold into shared.weight (canonical_t5_state_dict).
// Other names pass through for the caller to check.
StateDict canonical_reference_names(const ReferenceConfig& config, const StateDict& by_name, std::vector<std::string>* dropped);

// Bytes of `parameters` in `dtype`; UINT64_MAX when the count overflows.
uint64_t parameter_bytes(const std::vector<ParameterShape>& parameters, DType dtype);

}  // namespace linfuse::nn
