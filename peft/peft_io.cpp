#include "peft/peft_io.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "nn/atomic_file.h"
#include "nn/safetensors.h"
#include "tensor/kernels.h"

namespace linfuse::peft {
namespace {

const std::string kPrefix = "base_model.model.";

StateDict with_prefix(const StateDict& sd) {
  StateDict out;
  for (auto& [name, t] : sd) out.insert(peft_key(name), t);
  return out;
}

StateDict without_prefix(const StateDict& sd, const std::string& file) {
  StateDict out;
  for (auto& [name, t] : sd) {
    if (name.rfind(kPrefix, 0) != 0)
      throw std::runtime_error(file + ": key '" + name + "' lacks PEFT's prefix '" + kPrefix +
                               "' (is this an adapter_model.safetensors written by PEFT or linfuse?)");
    out.insert(name.substr(kPrefix.size()), t);
  }
  return out;
}

std::string mode_string(LoraMode m) { return m == LoraMode::Standard ? "standard" : "local-linear"; }

}  // namespace

std::string peft_key(const std::string& name) { return kPrefix + name; }

void save_peft_adapter(const std::string& dir, nn::Module& model, const LoraConfig& config, const std::string& base_model,
                       const StateDict& initial) {
  StateDict weights;
  std::vector<std::string> modules;
  for (auto& [name, adapter] : lora_adapters(model)) {
    modules.push_back(name);
    weights.insert(name + ".lora_A.weight", adapter->lora_A->weight);
    weights.insert(name + ".lora_B.weight", adapter->lora_B->weight);
  }
  if (modules.empty()) throw std::invalid_argument("[save_peft_adapter] the model has no LoRA adapters to save");
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = nullptr;
  j["base_model_name_or_path"] = base_model;
  j["r"] = config.rank;
  j["lora_alpha"] = config.alpha;
  j["lora_dropout"] = config.dropout;
  j["use_rslora"] = config.use_rslora;
  j["target_modules"] = modules;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["modules_to_save"] = nullptr;
  j["inference_mode"] = true;
  // PEFT: true = kaiming-uniform A / zero B, "gaussian"; it has no both-random init (false = leave as drawn).
  if (config.init == LoraInit::PeftDefault) j["init_lora_weights"] = true;
  else if (config.init == LoraInit::Gaussian) j["init_lora_weights"] = "gaussian";
  else j["init_lora_weights"] = false;
  j["linfuse"] = {{"init", lora_init_name(config.init)},
                  {"init_seed", config.init_seed},
                  {"compensate_base", config.compensate_base},
                  {"mode", mode_string(config.mode)}};
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
  save_safetensors(dir + "/adapter_model.safetensors", with_prefix(weights), {{"format", "pt"}});
  if (!initial.empty()) save_safetensors(dir + "/adapter_initial.safetensors", with_prefix(initial), {{"format", "pt"}});
}

PeftAdapter load_peft_adapter(const std::string& dir) {
  std::string config_path = dir + "/adapter_config.json";
  std::ifstream in(config_path);
  if (!in) throw std::runtime_error("cannot open " + config_path + ": not a PEFT adapter directory");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(config_path + ": invalid JSON (" + e.what() + ")");
  }
  PeftAdapter a;
  try {
    if (j.value("peft_type", std::string()) != "LORA")
      throw std::runtime_error("peft_type is '" + j.value("peft_type", std::string()) + "', only LORA is supported");
    a.config.rank = j.at("r").get<int64_t>();
    a.config.alpha = j.at("lora_alpha").get<double>();
    a.config.use_rslora = j.value("use_rslora", false);
    a.config.dropout = j.value("lora_dropout", 0.0);
    a.base_model = j.value("base_model_name_or_path", std::string());
    const auto& targets = j.at("target_modules");
    a.config.target_modules = targets.is_string() ? std::vector<std::string>{targets.get<std::string>()}
                                                  : targets.get<std::vector<std::string>>();
    const auto& init = j.value("init_lora_weights", nlohmann::json(true));
    if (init.is_string() && init.get<std::string>() == "gaussian") a.config.init = LoraInit::Gaussian;
    if (j.contains("linfuse")) {
      const auto& l = j["linfuse"];
      a.config.init = lora_init_from_name(l.value("init", std::string("peft")));
      a.config.init_seed = l.value("init_seed", uint64_t(0));
      a.config.compensate_base = l.value("compensate_base", true);
      a.config.mode = l.value("mode", std::string("standard")) == "local-linear" ? LoraMode::LocalLinear : LoraMode::Standard;
    }
    a.config.scaling();   // validates r
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(config_path + ": " + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(config_path + ": missing or invalid field (" + e.what() + ")");
  }
  std::string weights_path = dir + "/adapter_model.safetensors";
  a.weights = without_prefix(load_safetensors(weights_path), weights_path);
  std::string initial_path = dir + "/adapter_initial.safetensors";
  if (std::filesystem::exists(initial_path)) a.initial = without_prefix(load_safetensors(initial_path), initial_path);
  return a;
}

PeftAdapter load_peft_adapter_into(const std::string& dir, nn::Module& model) {
  PeftAdapter a = load_peft_adapter(dir);
  if (lora_adapters(model).empty()) {
    LoraConfig config = a.config;
    // Exact module names: wrap precisely the listed modules (PEFT also accepts suffixes; these are full names
    // when written by linfuse, suffixes when written by PEFT -- both match through apply_lora's "*." rule).
    apply_lora(model, config);
  }
  StateDict current;
  for (auto& [name, adapter] : lora_adapters(model)) {
    current.insert(name + ".lora_A.weight", adapter->lora_A->weight);
    current.insert(name + ".lora_B.weight", adapter->lora_B->weight);
  }
  std::vector<std::string> missing, unexpected;
  for (auto& [name, _] : current)
    if (!a.weights.contains(name)) missing.push_back(name);
  for (auto& [name, _] : a.weights)
    if (!current.contains(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty()) {
    std::string msg = dir + ": the adapter does not fit the model;";
    if (!missing.empty()) msg += " missing from the file: " + missing.front() + (missing.size() > 1 ? " ..." : "") + ";";
    if (!unexpected.empty()) msg += " not in the model: " + unexpected.front() + (unexpected.size() > 1 ? " ..." : "");
    throw std::runtime_error(msg);
  }
  for (auto& [name, t] : current) {
    const Tensor& src = a.weights.at(name);
    if (src.shape() != t.shape())
      throw std::runtime_error(dir + ": '" + name + "' is " + src.describe() + " in the file but " + t.describe() + " in the model");
    Tensor dst = t;
    kernels::copy_into(dst, kernels::cast(src, t.dtype()));
  }
  return a;
}

}  // namespace linfuse::peft
