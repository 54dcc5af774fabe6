// linfuse merge's failures (every mismatch listed, nothing written) and the command line (the built binary).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "merge_tool_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::error_of;
using linfuse::testing::run_tool;
using linfuse::testing::TempFolder;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

StateDict layout(std::initializer_list<std::pair<std::string, Shape>> entries, DType dtype = DType::F32) {
  StateDict out;
  Generator generator(0);
  for (const auto& [name, shape] : entries) out.insert(name, generator.normal(shape, 0.0, 1.0, dtype));
  return out;
}

std::string invalid_config(const json& config) {
  return error_of([&] { parse_merge_spec(config); });
}

}  // namespace

TEST_CASE("Mismatched checkpoints fail with one message listing every mismatch of every input, and nothing is written",
          "[merge_tool]") {
  TempFolder folder;
  StateDict base = layout({{"x", {4}}, {"y", {2}}, {"w", {2, 3}}, {"v", {3}}});
  save_safetensors(folder / "base.safetensors", base);
  save_safetensors(folder / "a.safetensors", base);
  save_safetensors(folder / "b.safetensors", layout({{"w", {3, 2}}, {"v", {3}}}));   // no x, y; w transposed
  StateDict c = layout({{"x", {4}}, {"y", {2}}, {"w", {2, 3}}, {"z", {1}}});
  c.insert("v", Tensor::zeros({3}, DType::F64));   // v in float64
  save_safetensors(folder / "c.safetensors", c);
  std::vector<std::string> before = folder.listing();
  json config = {{"method", "task_arithmetic"}, {"base", "base.safetensors"},
                 {"models", {"a.safetensors", "b.safetensors", "c.safetensors"}}, {"output", "merged.safetensors"}};
  std::string error = error_of([&] { run_tool(config, folder.path()); });
  INFO(error);
  std::string b = folder / "b.safetensors", c_path = folder / "c.safetensors", base_path = folder / "base.safetensors";
  CHECK(contains(error, "missing in " + b + ": x, y"));
  CHECK(contains(error, "w (2,3) vs (3,2)"));
  CHECK(contains(error, "missing in " + base_path + ": z"));
  CHECK(contains(error, "v F32 vs F64"));
  CHECK(contains(error, "nothing was written"));
  CHECK(folder.listing() == before);   // no output, no temporary file
}

TEST_CASE("Unreadable inputs, a missing base and integer tensors that differ are all reported, and nothing is written",
          "[merge_tool]") {
  TempFolder folder;
  StateDict base = layout({{"w", {2, 3}}});
  save_safetensors(folder / "a.safetensors", base);
  std::ofstream(folder / "garbage.safetensors") << "this is not a safetensors file";
  std::vector<std::string> before = folder.listing();
  json config = {{"method", "ties"}, {"models", {"a.safetensors", "missing.safetensors", "garbage.safetensors"}},
                 {"output", "merged.safetensors"}};
  std::string error = error_of([&] { run_tool(config, folder.path()); });
  INFO(error);
  CHECK(contains(error, "ties merges task vectors"));   // no base
  CHECK(contains(error, "--base"));
  CHECK(contains(error, "missing.safetensors: cannot open"));
  CHECK(contains(error, "garbage.safetensors"));
  CHECK(folder.listing() == before);

  StateDict with_ids = base;
  with_ids.insert("ids", Tensor::arange(3, DType::I64));
  save_safetensors(folder / "b.safetensors", with_ids);
  with_ids.at("ids") = Tensor::zeros({3}, DType::I64);
  save_safetensors(folder / "c.safetensors", with_ids);
  json average = {{"method", "simple_average"}, {"models", {"b.safetensors", "c.safetensors"}}, {"output", "m.safetensors"}};
  CHECK(contains(error_of([&] { run_tool(average, folder.path()); }), "integer tensors cannot be merged"));
  CHECK_FALSE(fs::exists(folder / "m.safetensors"));
}

TEST_CASE("Bad configs list every problem: unknown method or key, out-of-range or misplaced hyperparameters",
          "[merge_tool]") {
  CHECK(contains(invalid_config({{"method", "tiez"}, {"models", {"a"}}, {"output", "o"}}), "unknown method 'tiez'"));
  std::string error = invalid_config({{"method", "dare"},
                                      {"models", {"a"}},
                                      {"output", "o"},
                                      {"lamda", 1},
                                      {"hyperparameters", {{"keep", 1.5}, {"drop", 1.0}, {"combine", "ties"}, {"sign", "max"}}}});
  INFO(error);
  CHECK(contains(error, "unknown key 'lamda'"));
  CHECK(contains(error, "keep must be a fraction in [0, 1]"));
  CHECK(contains(error, "drop must be in [0, 1)"));
  CHECK(contains(error, "sign must be one of mass, count"));
  CHECK(contains(invalid_config({{"method", "task_arithmetic"}, {"models", {"a"}}, {"output", "o"},
                                 {"hyperparameters", {{"keep", 0.2}}}}),
                 "'keep' does not apply to task_arithmetic"));
  CHECK(contains(invalid_config({{"method", "task_arithmetic"}, {"models", {{{"path", "a"}, {"weight", 0.5}}}}, {"output", "o"}}),
                 "takes no per-model weights"));
  CHECK(contains(invalid_config({{"method", "weighted_average"}, {"models", {"a", "b"}}, {"output", "o"}}),
                 "needs a weight for every model"));
  CHECK(contains(invalid_config({{"method", "ties"}, {"output", "o"}}), "no models"));
  CHECK(contains(invalid_config({{"method", "ties"}, {"models", {"a"}}}), "no output"));
  CHECK(contains(invalid_config({{"method", "fisher"}, {"models", {"a"}}, {"output", "o"}}), "needs \"fisher\""));
  CHECK(contains(invalid_config({{"method", "ties"}, {"models", {"a"}}, {"output", "o"}, {"refactorize_rank", 4}}),
                 "needs \"space\": \"weight\""));
  CHECK(contains(invalid_config(json::array()), "must be a JSON object"));
}

TEST_CASE("A failure in the middle of writing leaves no file behind and an existing output untouched", "[merge_tool]") {
  TempFolder folder;
  StateDict base = layout({{"w", {50}}, {"v", {50}}});
  StateDict broken = base;
  std::vector<double> values = base.at("v").to_vector<double>();
  values[7] = NAN;   // found while reading the input, in the write pass (keep = 1 needs no selection pass)
  broken.at("v") = kernels::cast(Tensor::from_vector(values, {50}), DType::F32);
  save_safetensors(folder / "base.safetensors", base);
  save_safetensors(folder / "a.safetensors", broken);
  std::ofstream(folder / "merged.safetensors") << "old content";
  std::vector<std::string> before = folder.listing();
  json config = {{"method", "ties"}, {"base", "base.safetensors"}, {"models", {"a.safetensors"}},
                 {"hyperparameters", {{"keep", 1.0}}}, {"output", "merged.safetensors"}};
  std::string error = error_of([&] { run_tool(config, folder.path(), 10); });
  CHECK(contains(error, "non-finite"));
  CHECK(contains(error, "'v'"));
  CHECK(folder.listing() == before);
  std::ifstream old(folder / "merged.safetensors");
  std::string content((std::istreambuf_iterator<char>(old)), std::istreambuf_iterator<char>());
  CHECK(content == "old content");
}

// Regression (issue 18, finding 8): NaN/Inf inputs passed through task arithmetic and DARE (TIES refused them, and
// blamed a model for a NaN in the base: finding 14); --lambda 1e39 and float16 overflow wrote infinities, exit 0.
TEST_CASE("Non-finite inputs and outputs are refused by every method, naming the file or the tensor; nothing is written",
          "[merge_tool]") {
  TempFolder folder;
  StateDict base = layout({{"w", {6}}, {"v", {5}}});
  save_safetensors(folder / "base.safetensors", base);
  Generator generator(1);
  save_safetensors(folder / "a.safetensors", linfuse::testing::perturbed(base, generator, 0.1));
  auto with_value = [&](const std::string& name, size_t index, double value) {
    StateDict edited = linfuse::testing::perturbed(base, generator, 0.1);
    std::vector<double> values = edited.at(name).to_vector<double>();
    values[index] = value;
    edited.at(name) = kernels::cast(Tensor::from_vector(values, edited.at(name).shape()), DType::F32);
    return edited;
  };
  save_safetensors(folder / "nan.safetensors", with_value("v", 3, NAN));
  save_safetensors(folder / "inf.safetensors", with_value("w", 0, -INFINITY));
  save_safetensors(folder / "inf_base.safetensors", with_value("v", 1, INFINITY));
  std::vector<std::string> before = folder.listing();
  auto error = [&](json config) {
    config["output"] = "merged.safetensors";
    return error_of([&] { run_tool(config, folder.path()); });
  };
  const std::string nan_model = folder / "nan.safetensors", inf_model = folder / "inf.safetensors";
  const std::vector<json> methods = {
      {{"method", "task_arithmetic"}, {"base", "base.safetensors"}},
      {{"method", "dare"}, {"base", "base.safetensors"}, {"hyperparameters", {{"drop", 0.5}}}},
      {{"method", "ties"}, {"base", "base.safetensors"}},
      {{"method", "simple_average"}},
  };
  for (json config : methods) {
    INFO(config.dump());
    config["models"] = {"a.safetensors", "nan.safetensors"};
    std::string e = error(config);
    CHECK(contains(e, nan_model + ": tensor 'v' holds a non-finite value (nan at element 3)"));
    config["models"] = {"inf.safetensors", "a.safetensors"};
    CHECK(contains(error(config), inf_model + ": tensor 'w' holds a non-finite value (-inf at element 0)"));
  }
  // a NaN in the base is the base's, not a model's
  std::string e = error({{"method", "ties"}, {"base", "inf_base.safetensors"}, {"models", {"a.safetensors"}}});
  CHECK(contains(e, folder / "inf_base.safetensors" + ": tensor 'v' holds a non-finite value (inf at element 1)"));
  // finite inputs, infinite output: tau = 1 everywhere, lambda 1e39 beyond float32's 3.4e38
  StateDict shifted;
  for (const auto& [name, tensor] : base) {
    std::vector<double> values = tensor.to_vector<double>();
    for (double& v : values) v += 1.0;
    shifted.insert(name, kernels::cast(Tensor::from_vector(values, tensor.shape()), DType::F32));
  }
  save_safetensors(folder / "shifted.safetensors", shifted);
  before = folder.listing();
  e = error({{"method", "task_arithmetic"}, {"base", "base.safetensors"}, {"models", {"shifted.safetensors"}},
             {"hyperparameters", {{"lambda", 1e39}}}});
  CHECK(contains(e, "the merged tensor 'w' is not finite (inf at element 0)"));
  CHECK(contains(e, "--lambda"));
  CHECK(folder.listing() == before);

  // float16 output that overflows: 2 x 40000 > 65504
  StateDict large;
  large.insert("w", Tensor::full({3}, 40000.0));
  save_safetensors(folder / "large.safetensors", large);
  e = error({{"method", "weighted_average"}, {"models", {{{"path", "large.safetensors"}, {"weight", 1.0}},
                                                          {{"path", "large.safetensors"}, {"weight", 1.0}}}},
             {"dtype", "float16"}});
  CHECK(contains(e, "the merged tensor 'w' holds 80000.000000 at element 0, beyond the range of F16"));
  CHECK(contains(e, "--dtype float32"));
  CHECK_FALSE(fs::exists(folder / "merged.safetensors"));
}

TEST_CASE("linfuse merge on the command line: --help, flags, --config, and errors that write nothing", "[merge_tool][cli]") {
  std::string binary = linfuse::testing::linfuse_binary();
  if (!fs::exists(binary)) FAIL("the linfuse binary is not built next to the tests (" << binary << "): build the linfuse target");
  std::string fixture = linfuse::testing::source_path("tests/fixtures/merge_tool");

  auto help = linfuse::testing::run_command(binary + " merge --help");
  CHECK(help.exit_code == 0);
  for (const char* option : {"--config", "--method", "--base", "--models", "--weights", "--lambda", "--keep", "--sign",
                             "--trim", "--aggregation", "--drop", "--seed", "--combine", "--no-rescale", "--fishers",
                             "--grams", "--space", "--delta-form", "--refactorize-rank", "--dtype", "--out", "--dry-run",
                             "\"hyperparameters\"", "\"models\"", "ties", "dare", "simple_average", "weighted_average"})
    CHECK(contains(help.output, option));

  // Flags: the fixture's task arithmetic.
  TempFolder out;
  std::ifstream in(fixture + "/expected.json");
  json expected = json::parse(in)["cases"]["task_arithmetic"]["expected"];
  auto check_output = [&](const std::string& path) {
    StateDict merged = load_safetensors(path);
    for (const auto& [name, values] : expected.items()) {
      std::vector<double> got = merged.at(name).to_vector<double>(), want = values.get<std::vector<double>>();
      for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-6);
    }
  };
  std::string models = fixture + "/a.safetensors " + fixture + "/b.safetensors " + fixture + "/c.safetensors";
  auto flags = linfuse::testing::run_command(binary + " merge --method task_arithmetic --base " + fixture +
                                             "/base.safetensors --models " + models + " --lambda 0.3 --out " + (out / "flags.safetensors"));
  INFO(flags.output);
  CHECK(flags.exit_code == 0);
  CHECK(contains(flags.output, "peak RSS"));
  check_output(out / "flags.safetensors");
  SafetensorsFile written = SafetensorsFile::open(out / "flags.safetensors");
  CHECK(written.metadata().count("linfuse.commit"));

  // --config with paths relative to the config's folder; a flag overrides it.
  json config = {{"method", "task_arithmetic"}, {"base", "base.safetensors"},
                 {"models", {"a.safetensors", "b.safetensors", "c.safetensors"}},
                 {"hyperparameters", {{"lambda", 0.9}}}, {"output", out / "config.safetensors"}};
  for (const char* name : {"base", "a", "b", "c"})
    fs::copy(fixture + "/" + name + ".safetensors", out / (std::string(name) + ".safetensors"));
  std::ofstream(out / "merge.json") << config.dump(2);
  auto from_config = linfuse::testing::run_command("cd / && " + binary + " merge --config " + (out / "merge.json") + " --lambda 0.3");
  INFO(from_config.output);
  CHECK(from_config.exit_code == 0);
  check_output(out / "config.safetensors");

  // Errors: exit status, message on stderr, nothing written.
  std::vector<std::string> before = out.listing();
  auto mismatch = linfuse::testing::run_command(binary + " merge --method task_arithmetic --base " + fixture +
                                                "/base.safetensors --models " + fixture + "/a.safetensors " + fixture +
                                                "/lora_base.safetensors --out " + (out / "bad.safetensors"));
  CHECK(mismatch.exit_code == 1);
  CHECK(contains(mismatch.output, "missing in"));
  std::ofstream(out / "broken.json") << "{\"method\": ";
  auto bad_json = linfuse::testing::run_command(binary + " merge --config " + (out / "broken.json"));
  CHECK(bad_json.exit_code == 2);
  CHECK(contains(bad_json.output, "not valid JSON"));
  auto unknown = linfuse::testing::run_command(binary + " merge --method nope --models x --out " + (out / "x.safetensors"));
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.output, "unknown method 'nope'"));
  std::vector<std::string> after = out.listing();
  after.erase(std::remove(after.begin(), after.end(), "broken.json"), after.end());
  CHECK(after == before);
}

// Regression (issue 18, finding 14): "--models" with no value said "cannot read the model : cannot open".
TEST_CASE("linfuse merge says that a list option given no value needs one", "[merge_tool][cli]") {
  std::string binary = linfuse::testing::linfuse_binary();
  TempFolder out;
  for (const std::string& arguments : {std::string("--method ties --base b.safetensors --out ") + (out / "m.safetensors") + " --models",
                                       std::string("--method ties --models --base b.safetensors --out ") + (out / "m.safetensors"),
                                       std::string("--method weighted_average --models a b --weights --out ") + (out / "m.safetensors")}) {
    auto run = linfuse::testing::run_command(binary + " merge " + arguments);
    INFO(arguments << "\n" << run.output);
    CHECK(run.exit_code == 2);
    CHECK(contains(run.output, "needs a value: give one"));
    CHECK_FALSE(contains(run.output, "cannot open"));
  }
  CHECK(out.listing().empty());
}
