// --set overrides: a value must keep the kind of the preset's (checked before any stage runs).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "experiments/experiment.h"

using namespace linfuse::experiments;
using nlohmann::json;

namespace {
std::string override_error(json config, const json& overrides) {
  try {
    apply_overrides(config, overrides);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("config overrides keep the preset's kinds and name the field they refuse", "[experiments][config]") {
  json preset = preset_config("smoke");
  json good = preset;
  apply_overrides(good, {{"vision", {{"finetune", {{"steps", 7}, {"weight_decay", 0}}}, {"modes", {"lora"}}}}});
  CHECK(good["vision"]["finetune"]["steps"] == 7);
  CHECK(good["vision"]["finetune"]["weight_decay"] == 0);   // an integer where a real number is expected is fine
  CHECK(good["vision"]["modes"] == json::array({"lora"}));
  CHECK(good["vision"]["finetune"]["batch_size"] == preset["vision"]["finetune"]["batch_size"]);   // untouched

  // "abc" for an integer: refused at once, naming the field and the preset's value
  std::string e = override_error(preset, {{"vision", {{"finetune", {{"steps", "abc"}}}}}});
  CHECK_THAT(e, Catch::Contains("vision.finetune.steps must be an integer"));
  CHECK_THAT(e, Catch::Contains("\"abc\""));
  // a real number for an integer would be truncated silently
  CHECK_THAT(override_error(preset, {{"text", {{"finetune", {{"steps", 1.5}}}}}}),
             Catch::Contains("text.finetune.steps must be an integer"));
  // a string where the preset has an array
  CHECK_THAT(override_error(preset, {{"vision", {{"modes", "lora"}}}}), Catch::Contains("vision.modes must be a JSON array"));
  // a field the preset does not have is refused, naming the closest one (it used to be accepted and ignored)
  CHECK_THAT(override_error(preset, {{"vision", {{"evaluation", {{"some_new_field", "x"}}}}}}),
             Catch::Contains("unknown field vision.evaluation.some_new_field"));
  // the few optional fields the presets leave out on purpose are accepted, with their kind
  json optional = preset;
  apply_overrides(optional, {{"text", {{"fortunes_dir", "/elsewhere"}, {"finetune", {{"lora", {{"use_rslora", true}}}}}}}});
  CHECK(optional["text"]["fortunes_dir"] == "/elsewhere");
  CHECK(optional["text"]["finetune"]["lora"]["use_rslora"] == true);
  CHECK_THAT(override_error(preset, {{"text", {{"words_file", 3}}}}), Catch::Contains("text.words_file must be a string"));
}

TEST_CASE("every preset passes the config checks", "[experiments][config]") {
  for (const std::string& preset : preset_names())
    CHECK_NOTHROW(validate_config(preset_config(preset), {"vision", "text"}, 0));
}

TEST_CASE("an out-of-range fine-tuning setting stops the experiment before its first stage", "[experiments][config]") {
  ExperimentOptions o;
  o.preset = "smoke";
  o.suites = {"vision"};
  o.out_dir = "test_experiment_config_out";
  o.cache_dir = "test_experiment_config_cache";
  o.quiet = true;
  o.overrides = {{"vision", {{"finetune", {{"steps", -5}}}}}};
  try {
    run_experiment(o);
    FAIL("run_experiment accepted steps = -5");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("vision.finetune.steps must be an integer >= 1, got -5"));
  }
  CHECK_FALSE(std::filesystem::exists(o.out_dir));   // nothing written
  o.overrides = {{"vision", {{"modes", {"no-such-mode"}}}}};
  CHECK_THROWS_AS(run_experiment(o), std::invalid_argument);
  o.overrides = {{"vision", {{"finetune", {{"batch_size", 0}}}}}};
  try {
    run_experiment(o);
    FAIL("run_experiment accepted a batch of 0");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("vision.finetune.batch_size must be an integer >= 1, got 0"));
  }
  // sizes, task and mode lists that used to crash (a split of 0: division by zero) or report nothing
  const std::pair<json, const char*> refused[] = {
      {{{"vision", {{"data", {{"train", 0}}}}}}, "vision.data.train must be an integer >= 1, got 0"},
      {{{"vision", {{"evaluation", {{"test_examples", 0}}}}}}, "vision.evaluation.test_examples must be an integer >= 1"},
      {{{"vision", {{"tasks", json::array({"mnist"})}}}}, "vision.tasks must list at least 2 tasks"},
      {{{"vision", {{"modes", json::array()}}}}, "vision.modes must list at least one fine-tuning mode"},
      {{{"vision", {{"diagnostics", {{"leakage_examples", -1}}}}}}, "vision.diagnostics.leakage_examples must be an integer >= 0"},
      {{{"vision", {{"diagnostics", {{"scaling_lambdas", json::array({0.3, "half"})}}}}}},
       "vision.diagnostics.scaling_lambdas must be a list of finite numbers"},
      {{{"vision", {{"data", {{"pretrain_style_strength_per_task", {{"mnst", 0.7}}}}}}}},
       "vision.data.pretrain_style_strength_per_task: unknown task 'mnst' (the closest is 'mnist'"},
      {{{"vision", {{"data", {{"pretrain_style_strength_per_task", {{"mnist", 1.5}}}}}}}},
       "vision.data.pretrain_style_strength_per_task.mnist must be a style strength in [0, 1], got 1.5"},
      {{{"vision", {{"diagnostics", {{"linear_probe", {{"l2_grid", json::array()}}}}}}}},
       "diagnostics.linear_probe.l2_grid must list at least one L2 penalty"},
  };
  for (const auto& [overrides, message] : refused) {
    json config = preset_config("smoke");
    apply_overrides(config, overrides);
    try {
      validate_config(config, {"vision"}, 0);
      FAIL("accepted " << overrides.dump());
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains(message));
    }
  }
  // the text suite's instruction mixture: a known source and a split size >= 0
  const std::pair<json, const char*> text_refused[] = {
      {{{"text", {{"instruct", {{"source", "validation"}}}}}}, "text.instruct.source must be \"instruct\""},
      {{{"text", {{"data", {{"instruct", -1}}}}}}, "text.data.instruct must be an integer >= 0, got -1"},
      {{{"text", {{"finetune", {{"objective", "labels"}}}}}}, "text.finetune.objective must be \"sequence\""},
      {{{"text", {{"evaluation", {{"calibration", "content_free"}}}}}}, "text.evaluation.calibration must be \"none\""},
  };
  for (const auto& [overrides, message] : text_refused) {
    json config = preset_config("smoke");
    apply_overrides(config, overrides);
    try {
      validate_config(config, {"text"}, 0);
      FAIL("accepted " << overrides.dump());
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains(message));
    }
  }
  // the optional fine-tuning objective is a field --set knows
  json with_answers = preset_config("smoke");
  apply_setting(with_answers, "text.finetune.objective=answers");
  apply_setting(with_answers, "text.evaluation.calibration=validation_mean");
  CHECK(with_answers["text"]["finetune"]["objective"] == "answers");
  CHECK_NOTHROW(validate_config(with_answers, {"text"}, 0));
  CHECK_FALSE(std::filesystem::exists(o.out_dir));
}

namespace {

std::string setting_error(const std::string& assignment, const std::string& preset = "smoke") {
  json config = preset_config(preset);
  try {
    apply_setting(config, assignment);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

std::string validation_error(const std::vector<std::string>& settings) {
  ExperimentOptions o;
  o.preset = "smoke";
  o.settings = settings;
  try {
    validate_config(experiment_config(o), {"vision", "text"}, 0);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("--set assigns fields and list entries by dotted path, values in JSON or as bare words", "[experiments][config]") {
  json config = preset_config("smoke");
  apply_setting(config, "vision.finetune.steps=7");
  apply_setting(config, "vision.tasks.1=position");
  apply_setting(config, "text.finetune.lora.init=gaussian");
  apply_setting(config, "vision.finetune={\"batch_size\": 4}");   // an object merges field by field
  CHECK(config["vision"]["finetune"]["steps"] == 7);
  CHECK(config["vision"]["finetune"]["batch_size"] == 4);
  CHECK(config["vision"]["tasks"] == json::array({"mnist", "position", "position"}));
  CHECK(config["text"]["finetune"]["lora"]["init"] == "gaussian");
}

// Regression (issue 18, finding 2): these paths became JSON pointers that threw an uncaught exception (exit 134).
TEST_CASE("--set refuses malformed paths with a message saying what to write", "[experiments][config]") {
  CHECK_THAT(setting_error("=5"), Catch::Contains("the path '' is empty"));
  CHECK_THAT(setting_error("vision..steps=5"), Catch::Contains("the path 'vision..steps' has an empty field name"));
  CHECK_THAT(setting_error(".vision=5"), Catch::Contains("has an empty field name"));
  CHECK_THAT(setting_error("vision.finetune.steps~=1"),
             Catch::Contains("unknown field vision.finetune.steps~ (the closest is vision.finetune.steps)"));
  CHECK_THAT(setting_error("vision.finetune.steps"), Catch::Contains("--set needs path=value"));
  for (const char* assignment : {"=5", "vision..steps=5", ".vision=5"}) CHECK_THAT(setting_error(assignment), Catch::Contains("e.g. --set vision.finetune.steps=300"));
}

// Regression (issue 18, finding 4): unknown paths were accepted and changed nothing, so a typo ran the study with the
// preset's value. The valid paths are the preset's own fields.
TEST_CASE("--set refuses a field the preset does not have, naming the closest one", "[experiments][config]") {
  CHECK_THAT(setting_error("vision.finetune.stepz=1"),
             Catch::Contains("unknown field vision.finetune.stepz (the closest is vision.finetune.steps)"));
  CHECK_THAT(setting_error("unknown.path=1"), Catch::Contains("unknown field unknown.path"));
  CHECK_THAT(setting_error("vision.finetune.steps.deeper=1"), Catch::Contains("unknown field vision.finetune.steps.deeper"));
  CHECK_THAT(setting_error("text.merge.dare_sed=1"), Catch::Contains("the closest is text.merge.dare_seed"));
  // every field the study reads with a default is in the presets, or one of the few optional ones
  CHECK(setting_error("vision.merge.methods=[\"ties\"]") == "no error");
  CHECK(setting_error("text.sweep.seed=3") == "no error");
  CHECK(setting_error("vision.finetune.lora.use_rslora=true") == "no error");
}

// Regression (issue 18, finding 4): unknown names gave an empty section (disentanglement modes) or failed late, and
// duplicates repeated work.
TEST_CASE("lists that name things take known names only, each once, naming the closest", "[experiments][config]") {
  CHECK_THAT(validation_error({"vision.disentanglement.modes=[\"bogus\"]"}),
             Catch::Contains("vision.disentanglement.modes: unknown mode 'bogus'"));
  CHECK_THAT(validation_error({"text.sweep.methods=[\"bogus\"]"}), Catch::Contains("text.sweep.methods: unknown method 'bogus'"));
  CHECK_THAT(validation_error({"text.sweep.methods=[\"tie\"]"}), Catch::Contains("the closest is 'ties'"));
  CHECK_THAT(validation_error({"vision.tasks=[\"mnist\", \"shapez\"]"}),
             Catch::Contains("vision.tasks: unknown task 'shapez' (the closest is 'shapes'"));
  CHECK_THAT(validation_error({"vision.merge.methods=[\"task_arithmetc\"]"}),
             Catch::Contains("unknown method 'task_arithmetc' (the closest is 'task_arithmetic'"));
  CHECK_THAT(validation_error({"vision.modes=[\"lora\", \"lora\"]"}), Catch::Contains("vision.modes lists the mode 'lora' twice"));
  CHECK_THAT(validation_error({"text.tasks=[\"sst2\", \"rte\", \"sst2\"]"}), Catch::Contains("lists the task 'sst2' twice"));
  CHECK_THAT(validation_error({"vision.merge.methods=[\"ties\", \"ties\"]"}), Catch::Contains("lists the method 'ties' twice"));
  // a disentanglement pair names two of the suite's tasks
  CHECK_THAT(validation_error({"vision.tasks=[\"mnist\", \"position\"]"}),
             Catch::Contains("unknown task 'shapes'"));
  CHECK(validation_error({"vision.modes=[\"lora\"]", "vision.merge.methods=[\"ties\"]"}) == "no error");
}

// Regression (issue 18, finding 14): an index past the end showed the JSON library's message; --set preset=paper was
// accepted, so the config said paper while the manifest said smoke.
TEST_CASE("--set refuses a list index out of range and a change of preset", "[experiments][config]") {
  CHECK_THAT(setting_error("vision.tasks.99=mnist"),
             Catch::Contains("index 99 is out of range: vision.tasks has 3 entries (indexes 0 to 2)"));
  CHECK_THAT(setting_error("vision.tasks.first=mnist"), Catch::Contains("vision.tasks is a list: address an entry by its index"));
  CHECK_THAT(setting_error("preset=\"paper\""), Catch::Contains("preset cannot be changed with --set"));
  CHECK_THAT(setting_error("preset=\"paper\""), Catch::Contains("--preset"));
  CHECK_THAT(override_error(preset_config("smoke"), {{"preset", "paper"}}), Catch::Contains("preset cannot be changed"));
}

TEST_CASE("linfuse experiment --print-config refuses bad --set paths with exit status 2 and a message", "[experiments][config][cli]") {
  std::string binary = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "linfuse").string();
  REQUIRE(std::filesystem::exists(binary));
  for (const char* assignment : {"=5", "vision..steps=5", ".vision=5", "vision.finetune.steps~=1", "vision.finetune.stepz=1",
                                 "vision.tasks.99=mnist", "preset=paper"}) {
    INFO(assignment);
    std::string output;
    FILE* pipe = popen((binary + " experiment --preset smoke --print-config --set '" + assignment + "' 2>&1").c_str(), "r");
    REQUIRE(pipe);
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
    int status = pclose(pipe);
    INFO(output);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK_THAT(output, Catch::StartsWith("linfuse experiment: [config] "));
  }
}
