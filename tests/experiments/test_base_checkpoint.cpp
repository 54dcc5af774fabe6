// Base checkpoints (experiments/base_checkpoint.h): SHA-256 against FIPS 180-4's examples, a folder written and
// checked, the refusals (another config, a changed file, another suite), and the text suite's: its pretraining
// reproduces recorded file hashes, and a study that loads the checkpoint gets the results of one that pretrains.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "experiments/base_checkpoint.h"
#include "experiments/experiment.h"
#include "experiments/sha256.h"

using namespace linfuse;
using namespace linfuse::experiments;
namespace fs = std::filesystem;

namespace {

fs::path temp_folder(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("linfuse_base_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("SHA-256 gives FIPS 180-4's digests, for bytes and files alike", "[base_checkpoint]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');   // crosses the file reader's 64 KiB chunks
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  fs::path dir = temp_folder("sha");
  write_text(dir / "a.bin", million);
  CHECK(sha256_file(dir / "a.bin") == sha256_hex(million));
  CHECK_THROWS_WITH(sha256_file(dir / "missing"), Catch::Contains("missing"));
  fs::remove_all(dir);
}

TEST_CASE("a base checkpoint opens only for its suite and config, with every file as written", "[base_checkpoint]") {
  fs::path dir = temp_folder("folder");
  write_text(dir / "weights.src", "weights");
  write_text(dir / "config.src", "{}");
  BaseCheckpointManifest manifest;
  manifest.suite = "text";
  manifest.command = "linfuse experiment --suite text --write-base out";
  manifest.seed = 3;
  manifest.config = {{"pretrain", {{"steps", 600}, {"batch_size", 32}}}, {"seed", 3}};
  manifest.metrics = {{"pretrain", {{"final_loss", 2.5}}}};
  fs::path folder = dir / "checkpoint";
  fs::create_directories(folder);
  write_text(folder / "stale.bin", "from an older checkpoint");
  write_base_checkpoint(folder, {{"model.safetensors", dir / "weights.src"}, {"config.json", dir / "config.src"}}, manifest);
  CHECK_FALSE(fs::exists(folder / "stale.bin"));

  BaseCheckpointManifest opened = open_base_checkpoint(folder, "text", manifest.config, "FIX");
  CHECK(opened.files.at("model.safetensors") == sha256_hex("weights"));
  CHECK(opened.files.at("config.json") == sha256_hex("{}"));
  CHECK(opened.command == manifest.command);
  CHECK(opened.seed == 3);
  CHECK(opened.metrics == manifest.metrics);

  // another configuration: the differing field with both values, and the fix
  nlohmann::json other = manifest.config;
  other["pretrain"]["steps"] = 300;
  std::string message = error_of([&] { open_base_checkpoint(folder, "text", other, "FIX"); });
  CHECK_THAT(message, Catch::Contains("pretrain.steps: 600 (checkpoint) vs 300 (this run)") && Catch::Contains("FIX") &&
                          Catch::Contains(folder.string()));
  CHECK_THAT(error_of([&] { open_base_checkpoint(folder, "vision", manifest.config, "FIX"); }),
             Catch::Contains("of the text suite, not of the vision suite"));
  // a field added after the checkpoint was written, null in this run (its feature off), is no difference
  nlohmann::json newer = manifest.config;
  newer["pretrain"]["added_later"] = nullptr;
  CHECK_NOTHROW(open_base_checkpoint(folder, "text", newer, "FIX"));
  // a file changed after writing
  write_text(folder / "model.safetensors", "weightz");
  CHECK_THAT(error_of([&] { open_base_checkpoint(folder, "text", manifest.config, "FIX"); }),
             Catch::Contains("model.safetensors has SHA-256") && Catch::Contains("FIX"));
  fs::remove(folder / "model.safetensors");
  CHECK_THAT(error_of([&] { open_base_checkpoint(folder, "text", manifest.config, "FIX"); }), Catch::Contains("model.safetensors is missing"));
  CHECK_THAT(error_of([&] { open_base_checkpoint(dir / "nowhere", "text", manifest.config, "FIX"); }), Catch::Contains("no manifest.json"));
  fs::remove_all(dir);
}

TEST_CASE("config differences name each differing field, absent ones included, and stop at the limit", "[base_checkpoint]") {
  nlohmann::json a = {{"x", 1}, {"y", {{"z", "a"}}}}, b = {{"x", 2}, {"y", {{"z", "a"}, {"w", true}}}};
  std::vector<std::string> diff = config_differences(a, b);
  REQUIRE(diff.size() == 2);
  CHECK(diff[0] == "x: 1 (checkpoint) vs 2 (this run)");
  CHECK(diff[1] == "y.w: absent (checkpoint) vs true (this run)");
  CHECK(config_differences(a, a).empty());
  CHECK(config_differences(a, b, 1).back() == "and 1 more");
  const char* argv[] = {"experiment", "--set", "text.modes=[\"full\", \"lora\"]", "--seed", "1"};
  CHECK(shell_command(5, argv) == "experiment --set 'text.modes=[\"full\", \"lora\"]' --seed 1");
}

// The options that write a smoke-size base checkpoint of `suite` to root/<suite>-smoke (stages cached in
// root/cache_write), as `linfuse experiment --suite <suite> --preset smoke --write-base <suite>-smoke` would.
static ExperimentOptions write_base_options(const fs::path& root, const std::string& suite, const nlohmann::json& overrides) {
  ExperimentOptions write;
  write.preset = "smoke";
  write.suites = {suite};
  write.threads = 2;
  write.quiet = true;
  write.overrides = overrides;
  write.cache_dir = (root / "cache_write").string();
  write.write_base = (root / (suite + "-smoke")).string();
  write.command = "linfuse experiment --suite " + suite + " --preset smoke --write-base " + suite + "-smoke";
  return write;
}

// Runs the study of `write` (the options that wrote the checkpoint folder root/<folder>) twice, loading the
// checkpoint and pretraining from scratch, and checks that only the pretrain stage was skipped and that both give
// the same results.json (but for the record of the checkpoint). Returns the options of the loading run.
static ExperimentOptions check_loading_equals_pretraining(const fs::path& root, const ExperimentOptions& write, const std::string& suite,
                                                          const std::string& folder, const BaseCheckpointManifest& manifest) {
  ExperimentOptions loaded = write;
  loaded.write_base.clear();
  loaded.report = false;
  loaded.cache_dir = (root / "cache_loaded").string();
  loaded.out_dir = (root / "loaded").string();
  loaded.overrides[suite]["base_checkpoint"] = (root / folder).string();
  run_experiment(loaded);
  CHECK_FALSE(fs::exists(root / "cache_loaded" / suite / "pretrain"));
  ExperimentOptions scratch = loaded;
  scratch.cache_dir = (root / "cache_scratch").string();
  scratch.out_dir = (root / "scratch").string();
  scratch.overrides[suite]["base_checkpoint"] = nullptr;
  run_experiment(scratch);
  nlohmann::json a = nlohmann::json::parse(slurp(root / "loaded" / "results.json"));
  nlohmann::json b = nlohmann::json::parse(slurp(root / "scratch" / "results.json"));
  CHECK(a["suites"][suite]["base_checkpoint"]["files"] == manifest.to_json()["files"]);
  for (nlohmann::json* r : {&a, &b}) {
    (*r)["suites"][suite].erase("base_checkpoint");
    (*r)["manifest"].erase("config");   // the base_checkpoint field itself
  }
  CHECK(a == b);
  return loaded;
}

TEST_CASE("the text suite's base checkpoint is reproducible, and loading it gives the results of pretraining", "[base_checkpoint][text_suite][smoke]") {
  fs::path root = temp_folder("text");
  // A smoke-size text study: the smoke preset with two tasks and a few steps.
  const nlohmann::json overrides = {
      {"text",
       {{"tasks", {"sst2", "rte"}},
        {"modes", {"lora", "l-lora"}},
        {"data", {{"train", 64}, {"validation", 16}, {"test", 16}, {"instruct", 32}}},
        {"pretrain", {{"steps", 8}, {"pair_fraction", 0.5}}},
        {"instruct", {{"steps", 4}}},
        {"finetune", {{"steps", 4}}},
        {"evaluation", {{"validation_examples", 16}, {"test_examples", 16}, {"batch_size", 16}}},
        {"merge", {{"methods", {"task_arithmetic"}}}},
        {"sweep", {{"methods", nlohmann::json::array()}}},
        {"disentanglement", {{"pairs", nlohmann::json::array()}}}}}};
  ExperimentOptions write = write_base_options(root, "text", overrides);
  run_experiment(write);
  BaseCheckpointManifest manifest = BaseCheckpointManifest::from_json(nlohmann::json::parse(slurp(root / "text-smoke" / "manifest.json")));
  CHECK(manifest.suite == "text");
  CHECK(manifest.preset == "smoke");
  CHECK(manifest.command == write.command);
  CHECK(manifest.config["pretrain"]["pretrain"]["steps"] == 8);
  CHECK(manifest.metrics["instruct"]["source"] == "instruct");
  // The pretraining is deterministic: the same files as recorded when this test was written (a change of the
  // pretraining's numbers, data or tokenizer shows up here first).
  CHECK(manifest.files.at("spiece.model") == "d1e2ea1d0a2d6c93f9f7d5b8fa9b3eab160569be145fe8e98d5e59bd71e17d8f");
  CHECK(manifest.files.at("config.json") == "a2aa4eb97a45d347d8f41cd31278de4c65ca75f079583bf15df7b5c52d4d25e1");
  // (Changed when T5's attention became the fused primitive, its position bias's gradient included.)
  CHECK(manifest.files.at("model.safetensors") == "baaa1bc7db7487eebeb29b9d5ff9abfb670fe0fd8731525e203e1fae33ea98e5");

  // The study with the checkpoint (and no pretraining stage in its cache) against the study that pretrains.
  ExperimentOptions loaded = check_loading_equals_pretraining(root, write, "text", "text-smoke", manifest);

  // Another configuration refuses the folder and says how to regenerate it or pretrain instead.
  ExperimentOptions changed = loaded;
  changed.overrides["text"]["pretrain"]["steps"] = 9;
  CHECK_THAT(error_of([&] { run_experiment(changed); }),
             Catch::Contains("pretrain.pretrain.steps: 8 (checkpoint) vs 9 (this run)") && Catch::Contains("--write-base") &&
                 Catch::Contains("text.base_checkpoint=null"));
  fs::remove_all(root);
}

TEST_CASE("the vision suite's base checkpoint is reproducible, and loading it gives the results of pretraining", "[base_checkpoint][vision_suite][smoke]") {
  fs::path root = temp_folder("vision");
  // A smoke-size vision study in the styled look (three channels): two tasks, a few steps.
  const nlohmann::json overrides = {
      {"vision",
       {{"tasks", {"mnist", "shapes"}},
        {"modes", {"lora"}},
        {"data", {{"train", 64}, {"validation", 16}, {"test", 16}, {"pretrain", 64}, {"style_strength", 1.0}, {"pretrain_style_strength", 0.5}}},
        {"pretrain", {{"steps", 4}, {"batch_size", 16}}},
        {"finetune", {{"steps", 4}}},
        {"evaluation", {{"validation_examples", 16}, {"test_examples", 16}, {"batch_size", 16}}},
        {"merge", {{"methods", {"task_arithmetic"}}}},
        {"sweep", {{"methods", nlohmann::json::array()}}},
        {"disentanglement", {{"pairs", nlohmann::json::array()}}}}}};
  ExperimentOptions write = write_base_options(root, "vision", overrides);
  run_experiment(write);
  BaseCheckpointManifest manifest =
      BaseCheckpointManifest::from_json(nlohmann::json::parse(slurp(root / "vision-smoke" / "manifest.json")));
  CHECK(manifest.suite == "vision");
  CHECK(manifest.command == write.command);
  CHECK(manifest.config["pretrain"]["steps"] == 4);
  CHECK(manifest.metrics["pretrain"]["steps"] == 4);
  CHECK(manifest.files.size() == 3);
  // The pretraining is deterministic: the same files as recorded when this test was written (a change of the
  // pretraining's numbers, data, styles or tokenizer shows up here first).
  CHECK(manifest.files.at("spiece.model") == "309ce7f17b0548e1b1d39fdfba97c1a77ac8655245736241fd95c502fdc35f8f");
  CHECK(manifest.files.at("config.json") == "b9e4dbb6a5fa1ecf3c851d3d172df7af3a3c5b352d7cb601c6c93ab510383b87");
  // (Changed when the image features began computing the last layer for the class token alone, pooled_output.)
  CHECK(manifest.files.at("model.safetensors") == "d54522f239dd96fe32f81c922bb2c4b3c0b21ae09e839c519b2a28614041afde");

  // Writing again from an empty cache gives the same files, bit for bit.
  ExperimentOptions again = write;
  again.cache_dir = (root / "cache_again").string();
  again.write_base = (root / "vision-smoke-again").string();
  run_experiment(again);
  CHECK(BaseCheckpointManifest::from_json(nlohmann::json::parse(slurp(root / "vision-smoke-again" / "manifest.json"))).files ==
        manifest.files);

  // The study with the checkpoint (and no pretraining stage in its cache) against the study that pretrains.
  ExperimentOptions loaded = check_loading_equals_pretraining(root, write, "vision", "vision-smoke", manifest);

  // Another pretraining configuration refuses the folder, naming the field and both fixes.
  ExperimentOptions changed = loaded;
  changed.overrides["vision"]["data"]["pretrain_style_strength"] = 0.7;
  CHECK_THAT(error_of([&] { run_experiment(changed); }),
             Catch::Contains("data.pretrain_style_strength: 0.5 (checkpoint) vs 0.7 (this run)") &&
                 Catch::Contains("--write-base") && Catch::Contains("vision.base_checkpoint=null"));
  fs::remove_all(root);
}
