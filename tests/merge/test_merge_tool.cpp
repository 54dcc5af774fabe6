// linfuse merge's engine against PyTorch references (tools/make_merge_fixture.py) and against the in-memory merge::*.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "merge/methods.h"
#include "merge/streaming_passes.h"
#include "merge_tool_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::run_tool;
using linfuse::testing::same_values;
using linfuse::testing::TempFolder;
using json = nlohmann::json;

namespace {

// Random checkpoints: base, and three fine-tuned models (base + noise). `quantized`: deltas are small multiples of
// 1/8, so task vectors have many equal magnitudes (and zeros) -- the hard case of TIES's trim.
struct Checkpoints {
  TempFolder folder;
  StateDict base;
  std::vector<StateDict> models;
  std::vector<std::string> names = {"m0.safetensors", "m1.safetensors", "m2.safetensors"};
};

void make_checkpoints(Checkpoints& c, DType dtype, uint64_t seed, bool quantized) {
  Generator generator(seed);
  const std::vector<std::pair<std::string, Shape>> layout = {
      {"layer.weight", {13, 11}}, {"layer.bias", {13}}, {"proj.weight", {5, 7}}, {"logit_scale", {}}, {"big", {300}}};
  for (const auto& [name, shape] : layout) c.base.insert(name, generator.normal(shape, 0.0, 1.0, dtype));
  for (int t = 0; t < 3; ++t) {
    StateDict model;
    for (const auto& [name, tensor] : c.base) {
      std::vector<double> values = tensor.to_vector<double>();
      std::vector<double> noise = generator.normal({tensor.numel()}, 0.0, 1.0, DType::F64).to_vector<double>();
      for (size_t i = 0; i < values.size(); ++i)
        values[i] += quantized ? std::round(std::clamp(noise[i] * 2.0, -3.0, 3.0)) * 0.125 : 0.1 * noise[i];
      Tensor t = Tensor::from_vector(values, tensor.shape());
      model.insert(name, dtype == DType::F64 ? t : kernels::cast(t, dtype));
    }
    c.models.push_back(model);
  }
  save_safetensors(c.folder / "base.safetensors", c.base);
  for (int t = 0; t < 3; ++t) save_safetensors(c.folder / c.names[t], c.models[t]);
}

std::vector<TaskVector> task_vectors_of(const Checkpoints& c) {
  std::vector<TaskVector> out;
  for (const auto& model : c.models) out.push_back(TaskVector::between(model, c.base));
  return out;
}

json config_of(const std::string& method, const Checkpoints& c, bool with_base, json hyper) {
  json config = {{"method", method}, {"models", c.names}, {"output", "merged.safetensors"}};
  if (with_base) config["base"] = "base.safetensors";
  if (!hyper.empty()) config["hyperparameters"] = hyper;
  return config;
}

// Runs the tool with two chunk sizes (7 elements: chunks cut through tensors; the default: one chunk per tensor) and
// checks both outputs equal `expected` bit for bit.
void check_tool_equals(const Checkpoints& c, const json& config, const StateDict& expected) {
  for (int64_t chunk : {int64_t(7), int64_t(1) << 18}) {
    INFO("config " << config.dump() << ", chunk " << chunk);
    run_tool(config, c.folder.path(), chunk);
    StateDict merged = load_safetensors(c.folder / "merged.safetensors");
    std::string difference;
    CHECK(same_values(merged, expected, &difference));
    INFO(difference);
  }
}

TiesOptions ties_options(double keep, TrimScope scope, SignElection sign, DisjointAggregation aggregation, double lambda) {
  TiesOptions o;
  o.keep_fraction = keep;
  o.trim_scope = scope;
  o.sign_election = sign;
  o.aggregation = aggregation;
  o.scaling = lambda;
  return o;
}

json ties_hyper(const TiesOptions& o) {
  return {{"keep", o.keep_fraction},
          {"trim", o.trim_scope == TrimScope::global ? "global" : "per-tensor"},
          {"sign", o.sign_election == SignElection::mass ? "mass" : "count"},
          {"aggregation", o.aggregation == DisjointAggregation::mean ? "mean" : "sum"},
          {"lambda", o.scaling}};
}

// An in-memory DeltaSource over given task-vector values (one vector per task, split into tensors of `sizes`).
class VectorDeltaSource : public DeltaSource {
 public:
  VectorDeltaSource(std::vector<std::vector<double>> tasks, const std::vector<int64_t>& sizes) : tasks_(std::move(tasks)) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      MergedEntry e;
      e.name = "t" + std::to_string(i);
      e.shape = {sizes[i]};
      e.numel = sizes[i];
      entries_.push_back(e);
    }
    assign_flat_offsets(entries_);
  }
  size_t task_count() const override { return tasks_.size(); }
  const std::vector<MergedEntry>& entries() const override { return entries_; }
  void task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) override {
    for (int64_t i = 0; i < count; ++i) out[i] = tasks_[task][entries_[entry].flat_offset + uint64_t(begin + i)];
  }
  void base_values(size_t, int64_t, int64_t count, double* out) override { std::fill(out, out + count, 0.0); }
  std::string task_label(size_t task) const override { return "task " + std::to_string(task); }

 private:
  std::vector<std::vector<double>> tasks_;
  std::vector<MergedEntry> entries_;
};

}  // namespace

TEST_CASE("linfuse merge reproduces the PyTorch merges of the fixture (averages, task arithmetic, TIES, DARE, float16, LoRA)",
          "[merge_tool]") {
  std::string fixture = linfuse::testing::source_path("tests/fixtures/merge_tool");
  std::ifstream in(fixture + "/expected.json");
  REQUIRE(in);
  json expected = json::parse(in);
  TempFolder out;
  REQUIRE(expected["cases"].size() >= 9);
  for (const auto& [key, item] : expected["cases"].items()) {
    INFO("case " << key);
    json config = resolve_config_paths(item["config"], fixture);
    bool folder_output = config["output"].get<std::string>().find(".safetensors") == std::string::npos;
    config["output"] = out / key;
    MergeRunOptions options;
    options.chunk_elements = 16;   // chunks cut through tensors
    MergeReport report = run_merge(parse_merge_spec(config), options);
    CHECK(report.written);
    SafetensorsFile merged = SafetensorsFile::open(folder_output ? out / key + "/adapter_model.safetensors" : out / key);
    for (const auto& [name, values] : item["expected"].items()) {
      INFO("tensor " << name);
      REQUIRE(merged.contains(name));
      if (merged.entry(name).dtype != SafetensorsDType::I64)
        CHECK(safetensors_dtype_name(merged.entry(name).dtype) == item["dtype"].get<std::string>());
      std::vector<double> got = merged.tensor(name).to_vector<double>();
      std::vector<double> want = values.get<std::vector<double>>();
      REQUIRE(got.size() == want.size());
      double worst = 0.0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
      CHECK(worst <= 1e-6);
    }
    if (merged.contains("position_ids"))   // integer tensors are copied unchanged
      CHECK(merged.tensor("position_ids").to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
    CHECK(merged.metadata().at("linfuse.merge.method").size() > 0);
    CHECK(merged.metadata().at("linfuse.merge.space") == report.space);
  }
}

TEST_CASE("The streaming merge equals the in-memory merge::* bit for bit for every method", "[merge_tool]") {
  for (DType dtype : {DType::F32, DType::F64}) {
    INFO("dtype " << dtype_name(dtype));
    Checkpoints c;
    make_checkpoints(c, dtype, 3, false);
    std::vector<TaskVector> tvs = task_vectors_of(c);
    std::vector<TaskVector> models;
    for (const auto& m : c.models) models.emplace_back(m);

    check_tool_equals(c, config_of("simple_average", c, false, {}), simple_average(models).tensors());
    check_tool_equals(c, config_of("simple_average", c, true, {}), apply(c.base, simple_average(tvs)));
    check_tool_equals(c, config_of("task_arithmetic", c, true, {{"lambda", 0.35}}),
                      apply(c.base, task_arithmetic(tvs, 0.35)));
    check_tool_equals(c, config_of("task_arithmetic", c, true, {}), apply(c.base, task_arithmetic(tvs)));   // 0.3
    json weighted = config_of("weighted_average", c, true, {});
    weighted["models"] = {{{"path", c.names[0]}, {"weight", 0.5}}, {{"path", c.names[1]}, {"weight", -0.25}},
                          {{"path", c.names[2]}, {"weight", 1.5}}};
    check_tool_equals(c, weighted, apply(c.base, weighted_average(tvs, {0.5, -0.25, 1.5})));
    weighted.erase("base");
    check_tool_equals(c, weighted, weighted_average(models, {0.5, -0.25, 1.5}).tensors());

    for (TrimScope scope : {TrimScope::global, TrimScope::per_tensor})
      for (SignElection sign : {SignElection::mass, SignElection::count})
        for (DisjointAggregation aggregation : {DisjointAggregation::mean, DisjointAggregation::sum}) {
          TiesOptions o = ties_options(0.3, scope, sign, aggregation, 0.9);
          check_tool_equals(c, config_of("ties", c, true, ties_hyper(o)), apply(c.base, ties_merging(tvs, o)));
        }
    check_tool_equals(c, config_of("ties", c, true, {}), apply(c.base, ties_merging(tvs)));   // the defaults

    DareOptions dare_options{.drop_probability = 0.4, .rescale = true};
    std::vector<TaskVector> dared = dare(tvs, dare_options, 11);
    json dare_hyper = {{"drop", 0.4}, {"seed", 11}};
    check_tool_equals(c, config_of("dare", c, true, dare_hyper), apply(c.base, task_arithmetic(dared)));
    dare_hyper["combine"] = "average";
    check_tool_equals(c, config_of("dare", c, true, dare_hyper), apply(c.base, simple_average(dared)));
    TiesOptions o = ties_options(0.2, TrimScope::global, SignElection::mass, DisjointAggregation::mean, 1.0);
    check_tool_equals(c, config_of("dare_ties", c, true, {{"drop", 0.4}, {"seed", 11}, {"keep", 0.2}}),
                      apply(c.base, ties_merging(dared, o)));
    DareOptions plain{.drop_probability = 0.4, .rescale = false};
    check_tool_equals(c, config_of("dare", c, true, {{"drop", 0.4}, {"seed", 5}, {"rescale", false}, {"lambda", 1.0}}),
                      apply(c.base, task_arithmetic(dare(tvs, plain, 5), 1.0)));
  }
}

TEST_CASE("Streaming TIES equals the in-memory TIES when many magnitudes tie at the threshold", "[merge_tool]") {
  for (DType dtype : {DType::F32, DType::F64}) {
    Checkpoints c;
    make_checkpoints(c, dtype, 9, true);
    std::vector<TaskVector> tvs = task_vectors_of(c);
    for (double keep : {0.0, 0.1, 0.25, 0.5, 0.77, 1.0})
      for (TrimScope scope : {TrimScope::global, TrimScope::per_tensor})
        for (SignElection sign : {SignElection::mass, SignElection::count}) {
          TiesOptions o = ties_options(keep, scope, sign, DisjointAggregation::mean, 1.0);
          check_tool_equals(c, config_of("ties", c, true, ties_hyper(o)), apply(c.base, ties_merging(tvs, o)));
        }
  }
}

TEST_CASE("The streaming trim keeps exactly floor(k n) entries, ties going to the earlier position", "[merge_tool]") {
  // Magnitudes from a handful of values: most entries tie with the threshold.
  Generator generator(4);
  std::vector<int64_t> sizes = {37, 1, 64, 0, 19};
  int64_t n = 0;
  for (int64_t s : sizes) n += s;
  std::vector<std::vector<double>> tasks;
  for (int t = 0; t < 2; ++t) {
    std::vector<double> u = generator.uniform({n}, 0.0, 1.0, DType::F64).to_vector<double>();
    std::vector<double> values(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) values[size_t(i)] = (u[size_t(i)] < 0.5 ? -1.0 : 1.0) * double(int(u[size_t(i)] * 8) % 3);
    tasks.push_back(values);
  }
  VectorDeltaSource source(tasks, sizes);
  for (double keep : {0.0, 0.05, 0.3, 0.5, 0.9, 1.0}) {
    INFO("keep " << keep);
    std::vector<size_t> all;
    for (size_t e = 0; e < sizes.size(); ++e) all.push_back(e);
    PassStats stats;
    PassOptions options;
    options.chunk_elements = 5;
    std::vector<TrimRule> rules = select_trim_rules(source, all, keep, stats, options);
    for (size_t t = 0; t < tasks.size(); ++t) {
      // Apply the rule as documented: bits > threshold, or == threshold among the first ties_to_keep.
      std::vector<double> kept = tasks[t];
      int64_t ties = 0, count = 0;
      for (double& v : kept) {
        uint64_t bits = std::bit_cast<uint32_t>(float(v)) & 0x7fffffffu;
        bool keep_it = bits > rules[t].threshold_bits || (bits == rules[t].threshold_bits && ties++ < rules[t].ties_to_keep);
        if (!keep_it) v = 0.0;
        count += keep_it;
      }
      int64_t k = int64_t(std::floor(keep * double(n) + 1e-9));
      CHECK(count == k);
      // The same entries as merge::ties_trim (in-memory nth_element with the earlier position winning ties).
      StateDict flat;
      int64_t offset = 0;
      for (size_t e = 0; e < sizes.size(); ++e) {
        std::vector<double> part(tasks[t].begin() + offset, tasks[t].begin() + offset + sizes[e]);
        std::string name = "t";   // appended, not "t" + std::string&&: GCC 12 warns falsely (-Wrestrict) on that
        name += std::to_string(e);
        flat.insert(name, Tensor::from_vector(part, {sizes[e]}));
        offset += sizes[e];
      }
      TaskVector trimmed = ties_trim(TaskVector(flat), keep);
      std::vector<double> expected;
      for (const auto& entry : trimmed) {
        auto v = entry.second.to_vector<double>();
        expected.insert(expected.end(), v.begin(), v.end());
      }
      CHECK(kept == expected);
    }
  }
}

TEST_CASE("Streaming DARE drops about p of the entries, rescales the survivors and depends only on the seed",
          "[merge_tool]") {
  TempFolder folder;
  Generator generator(1);
  StateDict base, model;
  base.insert("w", generator.normal({100, 200}, 0.0, 1.0));
  model = linfuse::testing::perturbed(base, generator, 0.1);
  save_safetensors(folder / "base.safetensors", base);
  save_safetensors(folder / "model.safetensors", model);
  json config = {{"method", "dare"}, {"base", "base.safetensors"}, {"models", {"model.safetensors"}},
                 {"hyperparameters", {{"drop", 0.3}, {"seed", 42}, {"lambda", 1.0}}}, {"output", "merged.safetensors"}};
  run_tool(config, folder.path(), 1000);
  StateDict merged = load_safetensors(folder / "merged.safetensors");
  auto b = base.at("w").to_vector<double>(), m = model.at("w").to_vector<double>(), out = merged.at("w").to_vector<double>();
  int64_t dropped = 0, wrong = 0;
  double survivor_scale = 1.0 / (1.0 - 0.3);
  for (size_t i = 0; i < b.size(); ++i) {
    double tau = double(float(m[i] - b[i]));
    double survivor = double(float(tau * survivor_scale));   // merge::dare's rounding to the work precision
    if (out[i] == b[i]) ++dropped;
    else wrong += out[i] != double(float(b[i] + survivor));
  }
  CHECK(wrong == 0);
  CHECK(double(dropped) / double(b.size()) == Approx(0.3).margin(0.02));
  run_tool(config, folder.path());   // another chunking, the same masks
  CHECK(same_values(load_safetensors(folder / "merged.safetensors"), merged));
  config["hyperparameters"]["seed"] = 43;
  run_tool(config, folder.path());
  CHECK_FALSE(same_values(load_safetensors(folder / "merged.safetensors"), merged));
}

TEST_CASE("The merged file records method, hyperparameters, inputs, space and provenance; dtype follows the inputs",
          "[merge_tool]") {
  Checkpoints c;
  make_checkpoints(c, DType::F32, 5, false);
  json config = config_of("ties", c, true, {{"keep", 0.25}});
  MergeReport report = run_tool(config, c.folder.path());
  SafetensorsFile merged = SafetensorsFile::open(c.folder / "merged.safetensors");
  const auto& metadata = merged.metadata();
  CHECK(metadata.at("linfuse.merge.method") == "ties");
  json hyper = json::parse(metadata.at("linfuse.merge.hyperparameters"));
  CHECK(hyper == json({{"lambda", 1.0}, {"keep", 0.25}, {"sign", "mass"}, {"trim", "global"}, {"aggregation", "mean"}}));
  CHECK(metadata.at("linfuse.merge.space") == "parameter");
  CHECK(json::parse(metadata.at("linfuse.merge.models")).size() == 3);
  CHECK(metadata.at("linfuse.merge.base").ends_with("base.safetensors"));
  CHECK(metadata.at("linfuse.commit") == "test");
  // The recorded config reproduces the merge.
  MergeSpec again = parse_merge_spec(json::parse(metadata.at("linfuse.merge.config")));
  CHECK(again.to_json() == parse_merge_spec(resolve_config_paths(config, c.folder.path())).to_json());
  for (const auto& e : merged.entries()) CHECK(e.dtype == SafetensorsDType::F32);
  CHECK(report.input_reads >= 3);   // two selection digits and the write pass

  // --dtype: stored as asked, computed as before.
  config["dtype"] = "bfloat16";
  config["output"] = "merged_bf16.safetensors";
  run_tool(config, c.folder.path());
  SafetensorsFile bf16 = SafetensorsFile::open(c.folder / "merged_bf16.safetensors");
  for (const auto& e : bf16.entries()) CHECK(e.dtype == SafetensorsDType::BF16);
  StateDict f32 = load_safetensors(c.folder / "merged.safetensors");
  for (const auto& [name, t] : f32) CHECK(linfuse::testing::max_abs_diff(t, bf16.tensor(name)) < 0.05);

  // A dry run checks and describes, and writes nothing.
  config["output"] = "dry.safetensors";
  config["dry_run"] = true;
  MergeReport dry = run_tool(config, c.folder.path());
  CHECK_FALSE(dry.written);
  CHECK(dry.merged_tensors == 5);
  CHECK_FALSE(std::filesystem::exists(c.folder / "dry.safetensors"));
}
