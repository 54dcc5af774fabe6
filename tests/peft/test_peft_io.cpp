#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "autodiff/ops.h"
#include "nn/safetensors.h"
#include "peft/peft_io.h"
#include "peft_test_model.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::peft;
using linfuse::testing::max_abs_diff;
using linfuse::testing::source_path;

namespace {
// The model of tools/make_peft_fixture.py, with the same parameter names.
struct FixtureLayer : nn::Module {
  std::shared_ptr<nn::Linear> q_proj, v_proj, fc1, fc2;
  FixtureLayer(Generator& g) {
    q_proj = register_module("q_proj", std::make_shared<nn::Linear>(8, 8, true, g));
    v_proj = register_module("v_proj", std::make_shared<nn::Linear>(8, 8, true, g));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(8, 16, true, g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 8, true, g));
  }
};
struct FixtureNet : nn::Module {
  std::shared_ptr<nn::Module> encoder;
  std::shared_ptr<nn::ModuleList<FixtureLayer>> layers;
  FixtureNet() {
    Generator g(0);
    encoder = register_module("encoder", std::make_shared<nn::Module>());
    layers = encoder->register_module("layers", std::make_shared<nn::ModuleList<FixtureLayer>>());
    layers->push_back(std::make_shared<FixtureLayer>(g));
    layers->push_back(std::make_shared<FixtureLayer>(g));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = x;
    for (auto& l : *layers) {
      h = add(h, l->v_proj->forward(tanh(l->q_proj->forward(h))));
      h = add(h, l->fc2->forward(gelu_erf(l->fc1->forward(h))));
    }
    return h;
  }
};
Tensor json_tensor(const nlohmann::json& j) {
  return cast(Tensor::from_vector(j["data"].get<std::vector<double>>(), j["shape"].get<Shape>()), DType::F32);
}
}  // namespace

TEST_CASE("a PEFT adapter written by PyTorch loads and reproduces PyTorch's output", "[peft][io]") {
  std::string dir = source_path("tests/fixtures/peft_adapter");
  FixtureNet net;
  net.load_state_dict(load_safetensors(dir + "/base.safetensors"));
  PeftAdapter a = load_peft_adapter_into(dir, net);
  CHECK(a.config.rank == 4);
  CHECK(a.config.alpha == 16);
  CHECK(a.base_model == "tiny-test-net");
  CHECK(lora_adapters(net).size() == 6);   // q_proj, v_proj, fc1 in two layers
  std::ifstream in(dir + "/expected.json");
  nlohmann::json expected = nlohmann::json::parse(in);
  Tensor y = net.forward(json_tensor(expected["input"]));
  double err = max_abs_diff(y, json_tensor(expected["output"]));
  INFO("max abs difference to PyTorch " << err);
  CHECK(err < 1e-5);
}

TEST_CASE("PEFT-layout adapters round-trip with their initial state and linfuse's init fields", "[peft][io]") {
  linfuse::testing::TinyNet net(1);
  LoraConfig config;
  config.rank = 3;
  config.alpha = 6;
  config.init = LoraInit::BothRandom;
  config.init_seed = 77;
  config.target_modules = {"*.q_proj", "*.fc2"};
  apply_lora(net, config);
  StateDict initial;
  for (auto& [name, adapter] : lora_adapters(net)) {
    initial.insert(name + ".lora_A.weight", kernels::copy(adapter->lora_A->weight));
    initial.insert(name + ".lora_B.weight", kernels::copy(adapter->lora_B->weight));
  }
  for (auto& [name, adapter] : lora_adapters(net)) kernels::copy_into(adapter->lora_B->weight, mul(adapter->lora_B->weight, 3.0));
  std::string dir = (std::filesystem::temp_directory_path() / "linfuse_peft_roundtrip").string();
  std::filesystem::remove_all(dir);
  save_peft_adapter(dir, net, config, "linfuse/tiny-net", initial);
  PeftAdapter a = load_peft_adapter(dir);
  CHECK(a.config.init == LoraInit::BothRandom);
  CHECK(a.config.init_seed == 77);
  CHECK(a.config.target_modules == std::vector<std::string>{"layers.0.q_proj", "layers.0.fc2", "layers.1.q_proj", "layers.1.fc2"});
  CHECK(a.weights.size() == 8);
  CHECK(a.initial.size() == 8);
  for (auto& [name, adapter] : lora_adapters(net)) {
    CHECK(max_abs_diff(a.weights.at(name + ".lora_B.weight"), adapter->lora_B->weight) == 0);
    CHECK(max_abs_diff(a.initial.at(name + ".lora_A.weight"), initial.at(name + ".lora_A.weight")) == 0);
  }
  // A fresh model with the same base gets the same adapted function.
  linfuse::testing::TinyNet other(1);
  load_peft_adapter_into(dir, other);
  Tensor x = Generator(3).normal({2, 3, 8}, 0, 1, DType::F64);
  CHECK(max_abs_diff(other.forward(x), net.forward(x)) < 1e-12);
  std::ofstream(dir + "/adapter_config.json") << "{\"peft_type\": \"LORA\", \"r\": 0";
  CHECK_THROWS_WITH(load_peft_adapter(dir), Catch::Contains("adapter_config.json: invalid JSON"));
  std::filesystem::remove_all(dir);
  CHECK_THROWS_WITH(load_peft_adapter(dir), Catch::Contains("not a PEFT adapter directory"));
}
