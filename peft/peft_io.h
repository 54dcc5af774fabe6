#pragma once
// LoRA adapters in the Hugging Face PEFT layout, so they move between linfuse and PEFT:
//   <dir>/adapter_config.json          PEFT's LoraConfig fields (peft_type LORA, r, lora_alpha, target_modules,
//                                      use_rslora, lora_dropout, init_lora_weights, base_model_name_or_path, ...)
//                                      plus a "linfuse" object with what PEFT has no field for (init name and
//                                      seed, base compensation, layer mode)
//   <dir>/adapter_model.safetensors    "base_model.model.<module>.lora_A.weight" (r, in) and ".lora_B.weight"
//   <dir>/adapter_initial.safetensors  the same keys at initialisation (phi0): task vectors are taken against it
// Files are written atomically; a missing or malformed file is an error naming it.
#include <string>
#include <vector>

#include "nn/module.h"
#include "peft/lora.h"

namespace linfuse::peft {

struct PeftAdapter {
  LoraConfig config;              // target_modules = the wrapped module names
  std::string base_model;         // base_model_name_or_path
  StateDict weights;              // keys "<module>.lora_A.weight" / ".lora_B.weight" (prefix stripped)
  StateDict initial;              // phi0 (empty if the file is absent)
};

// Writes the adapters currently attached to `model` (and `initial`, the adapters' phi0, when not empty).
void save_peft_adapter(const std::string& dir, nn::Module& model, const LoraConfig& config, const std::string& base_model,
                       const StateDict& initial = StateDict());
PeftAdapter load_peft_adapter(const std::string& dir);
// Attaches adapters to `model` as the files describe (if not attached yet) and loads their weights.
PeftAdapter load_peft_adapter_into(const std::string& dir, nn::Module& model);

// The PEFT key of an adapter parameter: "base_model.model." + name.
std::string peft_key(const std::string& name);

}  // namespace linfuse::peft
