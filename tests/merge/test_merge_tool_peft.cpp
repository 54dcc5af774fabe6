// linfuse merge on LoRA adapters in the HF PEFT layout, in adapter-parameter space and in weight space, against
// merge_lora_adapter_space / merge_lora_weight_space and against Delta W computed directly.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "merge/methods.h"
#include "merge_helpers.h"
#include "merge_tool_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::error_of;
using linfuse::testing::run_tool;
using linfuse::testing::same_values;
using linfuse::testing::TempFolder;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "base_model.model.";
constexpr double kScaling = 4.0 / 2.0;   // the fixture's lora_alpha / r

// The fixture's adapters and base model, copied so that tests can alter them.
struct LoraInputs {
  TempFolder folder;
  LoraInputs() {
    std::string fixture = linfuse::testing::source_path("tests/fixtures/merge_tool");
    for (const char* name : {"lora_a", "lora_b"}) fs::copy(fixture + "/" + name, folder / name, fs::copy_options::recursive);
    fs::copy(fixture + "/lora_base.safetensors", folder / "lora_base.safetensors");
  }
  StateDict adapter(const std::string& name, const std::string& file = "adapter_model.safetensors") const {
    StateDict out;
    for (const auto& [key, tensor] : load_safetensors(folder / name + "/" + file)) out.insert(key.substr(kPrefix.size()), tensor);
    return out;
  }
  std::vector<StateDict> adapters() const { return {adapter("lora_a"), adapter("lora_b")}; }
  StateDict initial() const { return adapter("lora_a", "adapter_initial.safetensors"); }
  StateDict base() const { return load_safetensors(folder / "lora_base.safetensors"); }
};

StateDict with_prefix(const StateDict& sd) {
  StateDict out;
  for (const auto& [name, tensor] : sd) out.insert(kPrefix + name, tensor);
  return out;
}

TaskVectorMerge ties_merge(double keep) {
  return [keep](const std::vector<TaskVector>& tvs) {
    TiesOptions o;
    o.keep_fraction = keep;
    return ties_merging(tvs, o);
  };
}

}  // namespace

TEST_CASE("Weight space: merging one adapter reproduces its Delta W = s (B A - B0 A0) on the base", "[merge_tool][peft]") {
  LoraInputs in;
  json config = {{"method", "task_arithmetic"}, {"models", {"lora_a"}}, {"space", "weight"},
                 {"base", "lora_base.safetensors"}, {"hyperparameters", {{"lambda", 1.0}}}, {"output", "merged.safetensors"}};
  MergeReport report = run_tool(config, in.folder.path(), 5);
  CHECK(report.space == "weight");
  CHECK(report.warnings.empty());
  StateDict merged = load_safetensors(in.folder / "merged.safetensors");
  StateDict base = in.base(), adapter = in.adapter("lora_a"), initial = in.initial();
  // Bit for bit the library's Delta W ...
  CHECK(same_values(merged, apply(base, lora_weight_delta(adapter, initial, kScaling))));
  // ... which is s (B A - B0 A0), computed here directly in float64.
  for (const LoraModule& module : find_lora_modules(adapter)) {
    auto a = adapter.at(module.a_name()).to_vector<double>(), b = adapter.at(module.b_name()).to_vector<double>();
    auto a0 = initial.at(module.a_name()).to_vector<double>(), b0 = initial.at(module.b_name()).to_vector<double>();
    auto w0 = base.at(module.weight_name()).to_vector<double>(), w = merged.at(module.weight_name()).to_vector<double>();
    double worst = 0.0;
    for (int64_t o = 0; o < module.out_features; ++o)
      for (int64_t i = 0; i < module.in_features; ++i) {
        double delta = 0.0;
        for (int64_t r = 0; r < module.rank; ++r)
          delta += b[o * module.rank + r] * a[r * module.in_features + i] - b0[o * module.rank + r] * a0[r * module.in_features + i];
        worst = std::max(worst, std::abs(w[o * module.in_features + i] - (w0[o * module.in_features + i] + kScaling * delta)));
      }
    CHECK(worst < 1e-6);
  }
  CHECK(merged.at("position_ids").to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  SafetensorsFile file = SafetensorsFile::open(in.folder / "merged.safetensors");
  CHECK(file.metadata().at("linfuse.merge.space") == "weight");
  CHECK(file.metadata().at("linfuse.merge.delta_form") == "product");
}

TEST_CASE("Weight-space merges equal merge_lora_weight_space bit for bit (TIES, DARE, averages)", "[merge_tool][peft]") {
  LoraInputs in;
  std::vector<StateDict> adapters = in.adapters();
  StateDict initial = in.initial(), base = in.base();
  json config = {{"models", {"lora_a", "lora_b"}}, {"space", "weight"}, {"base", "lora_base.safetensors"},
                 {"output", "merged.safetensors"}};
  auto check = [&](const std::string& method, const json& hyper, const TaskVectorMerge& merge) {
    INFO(method << " " << hyper.dump());
    config["method"] = method;
    config["hyperparameters"] = hyper;
    run_tool(config, in.folder.path(), 7);
    LoraMergeResult expected = merge_lora_weight_space(adapters, initial, merge, kScaling);
    std::string difference;
    CHECK(same_values(load_safetensors(in.folder / "merged.safetensors"), apply(base, expected.weight_delta), &difference));
    INFO(difference);
  };
  check("ties", {{"keep", 0.3}}, ties_merge(0.3));
  check("simple_average", json::object(), [](const std::vector<TaskVector>& tvs) { return simple_average(tvs); });
  check("dare", {{"drop", 0.5}, {"seed", 3}, {"combine", "ties"}, {"keep", 0.3}}, [](const std::vector<TaskVector>& tvs) {
    TiesOptions o;
    o.keep_fraction = 0.3;
    return ties_merging(dare(tvs, {.drop_probability = 0.5}, 3), o);
  });
  // Layer-level L-LoRA adapters: the linearized delta s ((B - B0) A0 + B0 (A - A0)).
  config["delta_form"] = "linearized";
  config["method"] = "task_arithmetic";
  config["hyperparameters"] = {{"lambda", 0.5}};
  run_tool(config, in.folder.path());
  WeightSpaceOptions linearized;
  linearized.delta_form = LoraDeltaForm::linearized;
  LoraMergeResult expected = merge_lora_weight_space(
      adapters, initial, [](const std::vector<TaskVector>& tvs) { return task_arithmetic(tvs, 0.5); }, kScaling, linearized);
  CHECK(same_values(load_safetensors(in.folder / "merged.safetensors"), apply(base, expected.weight_delta)));
}

TEST_CASE("Weight space re-factorized to rank r writes the PEFT adapter merge_lora_weight_space re-factorizes",
          "[merge_tool][peft]") {
  LoraInputs in;
  std::vector<StateDict> adapters = in.adapters();
  StateDict initial = in.initial();
  for (int64_t rank : {0, 1, 3}) {
    INFO("rank " << rank);
    json config = {{"method", "task_arithmetic"}, {"models", {"lora_a", "lora_b"}}, {"space", "weight"},
                   {"refactorize_rank", rank}, {"hyperparameters", {{"lambda", 0.5}}}, {"output", "merged_lora"}};
    MergeReport report = run_tool(config, in.folder.path());
    CHECK(report.output_kind == "PEFT adapter folder");
    WeightSpaceOptions options;
    options.refactorize_rank = rank;
    LoraMergeResult expected = merge_lora_weight_space(
        adapters, initial, [](const std::vector<TaskVector>& tvs) { return task_arithmetic(tvs, 0.5); }, kScaling, options);
    StateDict written = load_safetensors(in.folder / "merged_lora/adapter_model.safetensors");
    CHECK(same_values(written, with_prefix(expected.adapter)));
    std::ifstream config_file(in.folder / "merged_lora/adapter_config.json");
    json adapter_config = json::parse(config_file);
    int64_t r = rank == 0 ? 2 : rank;
    CHECK(adapter_config["r"] == r);
    // s is kept: lora_alpha / r = 2.
    CHECK(adapter_config["lora_alpha"].get<double>() / double(r) == kScaling);
    CHECK_FALSE(fs::exists(in.folder / "merged_lora/adapter_initial.safetensors"));
  }
  // One adapter at its own rank: the factorization is exact, s B' A' = s B A (B0 = 0 in the fixture).
  json config = {{"method", "task_arithmetic"}, {"models", {"lora_a"}}, {"space", "weight"}, {"refactorize_rank", 0},
                 {"hyperparameters", {{"lambda", 1.0}}}, {"output", "single"}};
  MergeReport report = run_tool(config, in.folder.path());
  CHECK(report.max_refactorization_residual < 1e-6);
  StateDict single;
  for (const auto& [key, t] : load_safetensors(in.folder / "single/adapter_model.safetensors")) single.insert(key.substr(kPrefix.size()), t);
  StateDict zero_initial;
  for (const auto& [name, t] : initial) zero_initial.insert(name, Tensor::zeros(t.shape()));
  TaskVector refactored = lora_weight_delta(single, zero_initial, kScaling);
  TaskVector original = lora_weight_delta(adapters[0], zero_initial, kScaling);
  CHECK(linfuse::testing::max_abs_diff(refactored, original) < 1e-5);
}

TEST_CASE("Adapter-parameter space equals merge_lora_adapter_space, keeps phi0 and the config, records the space",
          "[merge_tool][peft]") {
  LoraInputs in;
  std::vector<StateDict> adapters = in.adapters();
  StateDict initial = in.initial();
  json config = {{"method", "ties"}, {"models", {"lora_a", "lora_b"}}, {"hyperparameters", {{"keep", 0.4}}},
                 {"output", "merged_lora"}};
  MergeReport report = run_tool(config, in.folder.path(), 3);
  CHECK(report.space == "adapter-parameter");
  LoraMergeResult expected = merge_lora_adapter_space(adapters, initial, ties_merge(0.4), kScaling);
  std::string folder = in.folder / "merged_lora";
  CHECK(same_values(load_safetensors(folder + "/adapter_model.safetensors"), with_prefix(expected.adapter)));
  CHECK(same_values(load_safetensors(folder + "/adapter_initial.safetensors"), with_prefix(initial)));
  std::ifstream written(folder + "/adapter_config.json"), original(in.folder / "lora_a/adapter_config.json");
  CHECK(json::parse(written) == json::parse(original));
  SafetensorsFile file = SafetensorsFile::open(folder + "/adapter_model.safetensors");
  CHECK(file.metadata().at("linfuse.merge.space") == "adapter-parameter");
  // Writing again replaces the folder as a whole, and leaves nothing else next to it.
  run_tool(config, in.folder.path());
  for (const auto& name : in.folder.listing()) CHECK(name.find(".tmp") == std::string::npos);
}

TEST_CASE("Adapters without adapter_initial merge against zero, with a warning that task vectors need phi0",
          "[merge_tool][peft]") {
  LoraInputs in;
  std::vector<StateDict> adapters = in.adapters();
  for (const char* name : {"lora_a", "lora_b"}) fs::remove(in.folder / std::string(name) + "/adapter_initial.safetensors");
  json config = {{"method", "task_arithmetic"}, {"models", {"lora_a", "lora_b"}}, {"hyperparameters", {{"lambda", 0.5}}},
                 {"output", "merged_lora"}};
  MergeReport report = run_tool(config, in.folder.path());
  REQUIRE(report.warnings.size() == 1);
  CHECK(report.warnings[0].find("phi0") != std::string::npos);
  StateDict zero;
  for (const auto& [name, t] : adapters[0]) zero.insert(name, Tensor::zeros(t.shape()));
  LoraMergeResult expected = merge_lora_adapter_space(
      adapters, zero, [](const std::vector<TaskVector>& tvs) { return task_arithmetic(tvs, 0.5); }, kScaling);
  CHECK(same_values(load_safetensors(in.folder / "merged_lora/adapter_model.safetensors"), with_prefix(expected.adapter)));
  SafetensorsFile file = SafetensorsFile::open(in.folder / "merged_lora/adapter_model.safetensors");
  CHECK(file.metadata().at("linfuse.merge.initial_adapter").find("none") == 0);

  config["space"] = "weight";
  config["base"] = "lora_base.safetensors";
  config["output"] = "merged.safetensors";
  MergeReport weight = run_tool(config, in.folder.path());
  REQUIRE(weight.warnings.size() == 1);
  CHECK(weight.warnings[0].find("B0 A0 = 0") != std::string::npos);
}

TEST_CASE("Adapters that do not match are rejected with every difference listed, and nothing is written",
          "[merge_tool][peft]") {
  LoraInputs in;
  json config = {{"method", "task_arithmetic"}, {"models", {"lora_a", "lora_b"}}, {"output", "merged_lora"}};
  // Another lora_alpha, another phi0, a missing module.
  std::string config_path = in.folder / "lora_b/adapter_config.json";
  json b_config = json::parse(std::ifstream(config_path));
  b_config["lora_alpha"] = 8;
  std::ofstream(config_path) << b_config.dump();
  StateDict initial_b = load_safetensors(in.folder / "lora_b/adapter_initial.safetensors");
  initial_b.at(kPrefix + "layers.0.q_proj.lora_A.weight") = Tensor::zeros({2, 6});
  save_safetensors(in.folder / "lora_b/adapter_initial.safetensors", initial_b);
  StateDict weights_b = load_safetensors(in.folder / "lora_b/adapter_model.safetensors");
  weights_b.erase(kPrefix + "layers.0.fc1.lora_A.weight");
  weights_b.erase(kPrefix + "layers.0.fc1.lora_B.weight");
  save_safetensors(in.folder / "lora_b/adapter_model.safetensors", weights_b);
  std::vector<std::string> before = in.folder.listing();
  std::string error = error_of([&] { run_tool(config, in.folder.path()); });
  CHECK(error.find("lora_alpha 4 ") != std::string::npos);
  CHECK(error.find("different phi0") != std::string::npos);
  CHECK(error.find("layers.0.fc1.lora_A.weight, base_model.model.layers.0.fc1.lora_B.weight") != std::string::npos);
  CHECK(error.find("nothing was written") != std::string::npos);
  CHECK(in.folder.listing() == before);

  // Checkpoints and adapters cannot be mixed; --base has no place in adapter-parameter space.
  config["models"] = {"lora_a", "lora_base.safetensors"};
  CHECK(error_of([&] { run_tool(config, in.folder.path()); }).find("mix PEFT adapter folders and checkpoints") != std::string::npos);
  config["models"] = {"lora_a"};
  config["base"] = "lora_base.safetensors";
  CHECK(error_of([&] { run_tool(config, in.folder.path()); }).find("--base is not used in adapter-parameter space") !=
        std::string::npos);
  CHECK(in.folder.listing() == before);
}

// Regression (issue 18, finding 1): the output was compared with the adapter folders only, so a file output inside an
// input adapter (its adapter_model.safetensors) was written over it. The shared check (nn/file_checks.h) also follows
// hard links.
TEST_CASE("An output that is a file of an input adapter, or a hard link to an input, is refused", "[merge_tool][peft]") {
  LoraInputs in;
  const std::string adapter_file = in.folder / "lora_a/adapter_model.safetensors";
  auto bytes_of = [](const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), {});
  };
  const std::string before = bytes_of(adapter_file);
  json config = {{"method", "task_arithmetic"}, {"space", "weight"},          {"base", "lora_base.safetensors"},
                 {"models", {"lora_a", "lora_b"}}, {"output", adapter_file}};
  std::string error = error_of([&] { run_tool(config, in.folder.path()); });
  CHECK(error.find("is the input " + in.folder / "lora_a/adapter_model.safetensors") != std::string::npos);
  CHECK(error.find("write the merge elsewhere") != std::string::npos);
  CHECK(bytes_of(adapter_file) == before);

  fs::create_hard_link(in.folder / "lora_base.safetensors", in.folder / "base_link.safetensors");
  config["output"] = in.folder / "base_link.safetensors";
  CHECK(error_of([&] { run_tool(config, in.folder.path()); }).find("is the input " + in.folder / "lora_base.safetensors") !=
        std::string::npos);
}

// Regression (issue 18, finding 14): adapters with different r or lora_alpha were refused, different target_modules
// merged silently. The order of the list does not matter.
TEST_CASE("Adapters with different target_modules are refused, naming both lists", "[merge_tool][peft]") {
  LoraInputs in;
  json config = {{"method", "task_arithmetic"}, {"models", {"lora_a", "lora_b"}}, {"output", "merged_lora"}};
  const std::string config_path = in.folder / "lora_b/adapter_config.json";
  json b_config = json::parse(std::ifstream(config_path));
  b_config["target_modules"] = {"layers.0.fc1", "layers.0.q_proj", "layers.0.v_proj"};   // the same, reordered
  std::ofstream(config_path) << b_config.dump();
  CHECK(error_of([&] { run_tool(config, in.folder.path()); }).empty());
  fs::remove_all(in.folder / "merged_lora");
  b_config["target_modules"] = {"layers.0.q_proj", "layers.0.k_proj", "layers.0.fc1"};
  std::ofstream(config_path) << b_config.dump();
  std::vector<std::string> before = in.folder.listing();
  std::string error = error_of([&] { run_tool(config, in.folder.path()); });
  INFO(error);
  CHECK(error.find("target_modules [\"layers.0.fc1\",\"layers.0.q_proj\",\"layers.0.v_proj\"] (" + in.folder / "lora_a" +
                   ") vs [\"layers.0.fc1\",\"layers.0.k_proj\",\"layers.0.q_proj\"] (" + in.folder / "lora_b" + ")") !=
        std::string::npos);
  CHECK(in.folder.listing() == before);
}
