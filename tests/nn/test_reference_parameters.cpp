// nn/reference_parameters.h: the parameters a reference model's config implies, computed without building the model,
// must be exactly the built module's (names, shapes, order) -- `linfuse forward` checks weights files against them.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../helpers.h"
#include "nn/reference_parameters.h"

using namespace linfuse;
using namespace linfuse::nn;
using json = nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(linfuse::testing::source_path(path));
  return json::parse(in);
}

std::vector<std::string> listed(const std::vector<ParameterShape>& parameters) {
  std::vector<std::string> out;
  for (const auto& p : parameters) out.push_back(p.name + " " + shape_str(p.shape));
  return out;
}

std::vector<std::string> built(const ReferenceConfig& config) {
  std::unique_ptr<ReferenceModel> model = make_reference_model(config, DType::F32);
  std::vector<std::string> out;
  for (const auto& p : model->module().state_dict()) out.push_back(p.first + " " + shape_str(p.second.shape()));
  return out;
}

}  // namespace

TEST_CASE("the parameters a config implies are the built model's, for every reference model", "[reference_parameters]") {
  json clip = read_json("tests/fixtures/forward_cli/clip.json");
  json vision_only = clip["vision_config"], text_only = clip["text_config"];
  text_only["num_hidden_layers"] = 3;
  text_only["projection_dim"] = 5;
  json t5_gated = read_json("tests/fixtures/forward_cli/t5.json");        // gated-gelu, untied lm_head
  json t5_relu = read_json("tests/fixtures/t5_relu_tied.json");           // relu, tied, 3 decoder blocks
  const std::vector<ReferenceConfig> configs = {{"clip", clip},         {"clip_vision", clip},   {"clip_text", clip},
                                                {"clip_vision", vision_only}, {"clip_text", text_only},
                                                {"t5", t5_gated},       {"t5", t5_relu}};
  for (const ReferenceConfig& config : configs) {
    INFO(config.model << " " << config.config.dump());
    CHECK(listed(reference_parameter_shapes(config)) == built(config));
  }
}

TEST_CASE("the parameters of an oversized config are listed and counted without allocating them", "[reference_parameters]") {
  json clip = read_json("tests/fixtures/forward_cli/clip.json");
  clip["text_config"]["vocab_size"] = 1000000000000LL;
  std::vector<ParameterShape> parameters = reference_parameter_shapes({"clip", clip});
  CHECK(listed(parameters)[1] == "text_model.embeddings.token_embedding.weight (1000000000000,8)");
  CHECK(parameter_bytes(parameters, DType::F32) > uint64_t(32e12));
  clip["text_config"]["vocab_size"] = int64_t(1) << 62;
  CHECK(parameter_bytes(reference_parameter_shapes({"clip", clip}), DType::F64) == UINT64_MAX);   // overflow, counted as such
}

TEST_CASE("skipped tensors: old position_ids buffers, T5's unused cross-attention bias, the other CLIP tower",
          "[reference_parameters]") {
  CHECK_FALSE(reference_skip_reason("clip", "text_model.embeddings.position_ids").empty());
  CHECK_FALSE(reference_skip_reason("clip_vision", "vision_model.embeddings.position_ids").empty());
  CHECK_FALSE(reference_skip_reason("t5", "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight").empty());
  CHECK_FALSE(reference_skip_reason("clip_vision", "text_projection.weight").empty());
  CHECK(reference_skip_reason("clip", "text_projection.weight").empty());
  CHECK(reference_skip_reason("clip_text", "text_model.embeddings.token_embedding.weight").empty());
}
