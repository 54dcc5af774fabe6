// --set overrides: a value must keep the kind of the preset's (checked before any stage runs).
#include <catch2/catch.hpp>

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
  // new fields (optional settings with defaults) are accepted as given
  json extended = preset;
  apply_overrides(extended, {{"vision", {{"evaluation", {{"some_new_field", "x"}}}}}});
  CHECK(extended["vision"]["evaluation"]["some_new_field"] == "x");
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
  CHECK_FALSE(std::filesystem::exists(o.out_dir));
}
