// Loading a CLIP checkpoint in Hugging Face's layout and running it: the config.json fields and the parameter
// names are transformers' own (nn/clip.h lists them), so a state dict saved by PyTorch loads by name.
//
// The files are the test fixture of `linfuse forward` (tests/fixtures/forward_cli/, written by
// tools/make_forward_fixture.py with PyTorch): a tiny CLIP's config and weights, a batch of inputs, and the
// outputs PyTorch computed from them in float64. We run the same model and compare. The tiny T5 works the same
// way (nn/t5.h: T5Config::load, T5ForConditionalGeneration::load_hf_state_dict).
//
// Run: build/examples/load_hf_checkpoint [fixture folder, default tests/fixtures/forward_cli]
#include <cmath>
#include <cstdio>
#include <string>

#include "autodiff/tape.h"     // NoGradGuard
#include "nn/clip.h"           // CLIPConfig, CLIPModel, save_pretrained, load_pretrained_clip
#include "nn/safetensors.h"    // load_safetensors

using namespace linfuse;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

int main(int argc, char** argv) {
  const std::string fixtures = argc > 1 ? argv[1] : "tests/fixtures/forward_cli";
  NoGradGuard no_grad;   // inference only

  // config.json (HF's CLIPConfig fields) and the weights by HF name, loaded into a float64 model.
  nn::CLIPConfig config = nn::CLIPConfig::from_json_file(fixtures + "/clip.json");
  Generator unused(0);   // initial values, overwritten by the checkpoint
  auto clip = std::make_shared<nn::CLIPModel>(config, unused, DType::F64);
  clip->load_state_dict(load_safetensors(fixtures + "/clip_weights.safetensors"));   // strict: every name must match
  std::printf("loaded %lld parameters, e.g. %s\n", (long long)clip->num_parameters(),
              clip->state_dict().names()[5].c_str());

  // Inputs: pixel_values (3, 3, 8, 8), input_ids and attention_mask (3, 6); outputs as HF's CLIPOutput.
  StateDict inputs = load_safetensors(fixtures + "/clip_inputs.safetensors");
  StateDict expected = load_safetensors(fixtures + "/clip_expected_f64.safetensors");
  const Tensor &pixels = inputs.at("pixel_values"), &ids = inputs.at("input_ids"), &mask = inputs.at("attention_mask");
  nn::CLIPOutput out = clip->forward(pixels, ids, mask);
  double error = std::max({max_abs_diff(out.image_embeds, expected.at("image_embeds")),
                           max_abs_diff(out.text_embeds, expected.at("text_embeds")),
                           max_abs_diff(out.logits_per_image, expected.at("logits_per_image"))});
  std::printf("logits_per_image, row 0: % .6f % .6f % .6f\n", out.logits_per_image.to_vector<double>()[0],
              out.logits_per_image.to_vector<double>()[1], out.logits_per_image.to_vector<double>()[2]);
  std::printf("largest difference from PyTorch's float64 outputs: %.1e\n", error);

  // A folder in HF's layout (config.json + model.safetensors) round-trips: transformers' from_pretrained reads it.
  const std::string folder = "hf_clip_checkpoint";
  nn::save_pretrained(*clip, folder);
  auto reloaded = nn::load_pretrained_clip(folder, DType::F64);
  nn::CLIPOutput again = reloaded->forward(pixels, ids, mask);
  double round_trip = max_abs_diff(again.logits_per_image, out.logits_per_image);
  std::printf("saved to %s/config.json + model.safetensors; reloaded, difference %.1e\n", folder.c_str(), round_trip);

  bool ok = error < 1e-10 && round_trip == 0.0;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
