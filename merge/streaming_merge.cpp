// The merge tool on safetensors checkpoints (adapters: adapter_merge.cpp), and the helpers both share.
#include "merge/streaming_merge.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "merge/fisher.h"
#include "merge/merge_plan.h"
#include "merge/named_tensors.h"
#include "merge/regmean.h"
#include "nn/file_checks.h"
#include "tensor/kernels.h"

namespace linfuse::merge {
namespace tool {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

void Problems::throw_if_any(const std::string& headline) const {
  if (items.empty()) return;
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : " | ") + item;
  throw std::invalid_argument("[linfuse merge] " + headline + "; nothing was written: " + text);
}

std::optional<SafetensorsFile> open_input(const std::string& path, const std::string& role, Problems& problems) {
  try {
    return SafetensorsFile::open(path);
  } catch (const std::exception& e) {
    problems.add("cannot read the " + role + " " + e.what());   // the reader's message starts with the path
    return std::nullopt;
  }
}

std::string header_mismatch(const SafetensorsFile& reference, const std::string& reference_label,
                            const SafetensorsFile& other, const std::string& other_label) {
  std::vector<std::string> missing_in_other, missing_in_reference, shape_differs, dtype_differs;
  for (const SafetensorsEntry& e : reference.entries()) {
    if (!other.contains(e.name)) {
      missing_in_other.push_back(e.name);
      continue;
    }
    const SafetensorsEntry& o = other.entry(e.name);
    if (o.shape != e.shape) shape_differs.push_back(e.name + " " + shape_str(e.shape) + " vs " + shape_str(o.shape));
    if (o.dtype != e.dtype)
      dtype_differs.push_back(e.name + " " + safetensors_dtype_name(e.dtype) + " vs " + safetensors_dtype_name(o.dtype));
  }
  for (const SafetensorsEntry& o : other.entries())
    if (!reference.contains(o.name)) missing_in_reference.push_back(o.name);
  std::string out;
  auto section = [&](const std::string& title, const std::vector<std::string>& names) {
    if (!names.empty()) out += (out.empty() ? "" : "; ") + title + ": " + join_names(names, SIZE_MAX);
  };
  section("missing in " + other_label, missing_in_other);
  section("missing in " + reference_label, missing_in_reference);
  section("shape differs (" + reference_label + " vs " + other_label + ")", shape_differs);
  section("dtype differs (" + reference_label + " vs " + other_label + ")", dtype_differs);
  return out;
}

SafetensorsDType stored_dtype(OutputDType choice, SafetensorsDType input) {
  switch (choice) {
    case OutputDType::float32: return SafetensorsDType::F32;
    case OutputDType::float16: return SafetensorsDType::F16;
    case OutputDType::bfloat16: return SafetensorsDType::BF16;
    case OutputDType::float64: return SafetensorsDType::F64;
    case OutputDType::input: break;
  }
  switch (input) {
    case SafetensorsDType::F64:
    case SafetensorsDType::F16:
    case SafetensorsDType::BF16: return input;
    default: return SafetensorsDType::F32;   // F32, and the float8 formats (the writer has no float8)
  }
}

bool needs_task_vectors(const MergeSpec& spec) {
  return spec.method == ToolMethod::task_arithmetic || spec.method == ToolMethod::ties || spec.method == ToolMethod::dare;
}

std::unique_ptr<DeltaSource> with_dare(const MergeSpec& spec, std::unique_ptr<DeltaSource> source) {
  if (spec.method != ToolMethod::dare) return source;
  return std::make_unique<DareDeltaSource>(std::move(source), spec.drop, spec.rescale, spec.seed);
}

void run_data_free(const MergeSpec& spec, DeltaSource& source, MergeSink& sink, PassStats& stats,
                   const MergeRunOptions& options) {
  PassOptions pass_options;
  pass_options.chunk_elements = options.chunk_elements;
  size_t tasks = source.task_count();
  auto linear = [&](std::vector<double> coefficients) { run_linear_merge(source, coefficients, sink, stats, pass_options); };
  TiesOptions ties = spec.ties;
  ties.scaling = spec.lambda;
  switch (spec.method) {
    case ToolMethod::simple_average: return linear(std::vector<double>(tasks, 1.0 / double(tasks)));
    case ToolMethod::weighted_average: {
      std::vector<double> weights;
      for (const auto& model : spec.models) weights.push_back(*model.weight);
      return linear(weights);
    }
    case ToolMethod::task_arithmetic: return linear(std::vector<double>(tasks, spec.lambda));
    case ToolMethod::ties: return run_ties_merge(source, ties, sink, stats, pass_options);
    case ToolMethod::dare:
      switch (spec.combine) {
        case DareCombine::average: return linear(std::vector<double>(tasks, 1.0 / double(tasks)));
        case DareCombine::task_arithmetic: return linear(std::vector<double>(tasks, spec.lambda));
        case DareCombine::ties: return run_ties_merge(source, ties, sink, stats, pass_options);
      }
      break;
    default: break;
  }
  throw std::logic_error(std::string("[linfuse merge] ") + tool_method_name(spec.method) + " is not a data-free method");
}

SafetensorsMetadata merge_metadata(const MergeSpec& spec, const std::string& space, const SafetensorsMetadata& extra,
                                   const MergeRunOptions& options) {
  ordered_json models = ordered_json::array();
  for (const auto& model : spec.models) models.push_back(model.path);
  SafetensorsMetadata metadata = {
      {"format", "pt"},
      {"linfuse.merge.method", spec.method == ToolMethod::dare
                                   ? std::string("dare+") + dare_combine_name(spec.combine)
                                   : std::string(tool_method_name(spec.method))},
      {"linfuse.merge.hyperparameters", spec.hyperparameters().dump()},
      {"linfuse.merge.space", space},
      {"linfuse.merge.base", spec.base},
      {"linfuse.merge.models", models.dump()},
      {"linfuse.merge.config", spec.to_json().dump()},
  };
  for (const auto& [key, value] : extra) metadata[key] = value;
  for (const auto& [key, value] : options.provenance) metadata[key] = value;
  return metadata;
}

void check_output(const MergeSpec& spec, bool folder_output, Problems& problems) {
  std::error_code ec;
  std::vector<std::string> inputs;
  if (!spec.base.empty()) inputs.push_back(spec.base);
  for (const auto& model : spec.models) {
    inputs.push_back(model.path);
    if (!model.fisher.empty()) inputs.push_back(model.fisher);
    if (!model.gram.empty()) inputs.push_back(model.gram);
    if (is_adapter_folder(model.path))   // an adapter's files, one of which a file output could name
      for (const char* file : {"adapter_config.json", "adapter_model.safetensors", "adapter_initial.safetensors"})
        inputs.push_back(model.path + "/" + file);
  }
  if (std::string input = input_named_by(spec.output, inputs); !input.empty())
    problems.add("the output " + spec.output + " is the input " + input +
                 " (the same file, also through a link): writing it would replace that input; write the merge elsewhere");
  if (!folder_output && fs::is_directory(spec.output, ec))
    problems.add("the output " + spec.output + " is a folder; give a .safetensors file path");
}

void check_inputs_unchanged(const std::vector<const SafetensorsFile*>& inputs) {
  for (const SafetensorsFile* input : inputs)
    if (input) input->check_unchanged();
}

void test_pause_point() {
  const char* path = std::getenv("LINFUSE_TEST_PAUSE_MERGE");
  if (!path || !*path) return;
  const std::string base = path;
  { std::ofstream(base + ".paused") << ::getpid() << "\n"; }
  for (int waited_ms = 0; waited_ms < 60000 && !fs::exists(base + ".resume"); waited_ms += 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

void warn(MergeReport& report, const MergeRunOptions& options, const std::string& message) {
  report.warnings.push_back(message);
  if (options.warn) options.warn(message);
}

}  // namespace tool

namespace {

using namespace tool;

// fisher and regmean: one tensor at a time through the library (merge::fisher_merging / regmean_merging on that one
// tensor give the bits of the whole-model call: every entry is merged on its own).
// With sink == nullptr (a dry run) only the statistics are checked.
void run_statistics_merge(const MergeSpec& spec, const std::vector<const SafetensorsFile*>& models,
                          const std::vector<std::string>& labels, const std::vector<MergedEntry>& entries,
                          MergeSink* sink, MergeReport& report) {
  bool fisher = spec.method == ToolMethod::fisher;
  Problems problems;
  std::vector<std::optional<SafetensorsFile>> stats;
  for (const auto& model : spec.models)
    stats.push_back(open_input(fisher ? model.fisher : model.gram, fisher ? "Fisher file" : "Gram file", problems));
  problems.throw_if_any("cannot read the statistics");
  const SafetensorsFile& first = *models[0];
  for (size_t t = 0; t < stats.size(); ++t) {
    std::string label = fisher ? spec.models[t].fisher : spec.models[t].gram;
    if (t > 0) {   // the same names in every model (shapes are checked against the parameters below)
      std::vector<std::string> differ;
      for (const auto& e : stats[0]->entries())
        if (!stats[t]->contains(e.name)) differ.push_back(e.name + " (missing in " + label + ")");
      for (const auto& e : stats[t]->entries())
        if (!stats[0]->contains(e.name)) differ.push_back(e.name + " (missing in " + spec.models[0].path + "'s statistics)");
      if (!differ.empty()) problems.add("statistics must cover the same tensors in every model: " + join_names(differ, SIZE_MAX));
    }
    for (const auto& e : stats[t]->entries()) {
      if (!is_floating_dtype(e.dtype)) {
        problems.add(label + ": " + e.name + " is " + safetensors_dtype_name(e.dtype) + ", statistics are floating");
        continue;
      }
      if (fisher) {
        if (!first.contains(e.name)) problems.add(label + ": " + e.name + " is not a parameter of the models");
        else if (first.entry(e.name).shape != e.shape)
          problems.add(label + ": " + e.name + " " + shape_str(e.shape) + " vs parameter " + shape_str(first.entry(e.name).shape));
        continue;
      }
      std::string weight = e.name + ".weight";
      if (!first.contains(weight) || first.entry(weight).shape.size() != 2) {
        problems.add(label + ": Gram " + e.name + " has no Linear weight " + weight + " (out, in) in the models");
        continue;
      }
      int64_t in = first.entry(weight).shape[1];
      if (e.shape != Shape{in, in})
        problems.add(label + ": Gram " + e.name + " " + shape_str(e.shape) + ", expected (in, in) = " + shape_str({in, in}));
    }
  }
  problems.throw_if_any("the statistics do not fit the models");
  if (!sink) return;

  // Model coefficients: the weights (default 1/T); normalized Fishers divide c_t by |F_t| as fisher_merging does.
  size_t count = models.size();
  std::vector<double> coefficients;
  for (const auto& model : spec.models)
    if (model.weight) coefficients.push_back(*model.weight);
  if (fisher && spec.normalize_fishers) {
    if (coefficients.empty()) coefficients.assign(count, 1.0 / double(count));
    for (size_t t = 0; t < count; ++t) {
      double squared = 0.0;
      for (const auto& e : stats[t]->entries()) {
        std::vector<double> values(size_t(shape_numel(e.shape)));
        read_as_float64(*stats[t], e, 0, int64_t(values.size()), values.data());
        for (double f : values) squared += f * f;
      }
      if (squared == 0.0)
        throw std::invalid_argument("[linfuse merge] cannot normalize: the Fisher of " + labels[t] + " is zero everywhere");
      coefficients[t] /= std::sqrt(squared);
    }
  }

  for (size_t e = 0; e < entries.size(); ++e) {
    const MergedEntry& entry = entries[e];
    std::vector<TaskVector> params;
    std::vector<StateDict> statistics(count);
    std::string module = entry.name.ends_with(".weight") ? entry.name.substr(0, entry.name.size() - 7) : "";
    for (size_t t = 0; t < count; ++t) {
      StateDict one;
      one.insert(entry.name, models[t]->tensor_copy(entry.name));
      require_finite_input(labels[t], entry.name, one.at(entry.name));
      params.emplace_back(std::move(one));
      const std::string statistic = fisher ? entry.name : module;
      if ((fisher || !module.empty()) && stats[t]->contains(statistic)) {
        statistics[t].insert(statistic, stats[t]->tensor_copy(statistic));
        require_finite_input(stats[t]->path(), statistic, statistics[t].at(statistic));
      }
    }
    Tensor merged;
    if (fisher) {
      FisherMergeOptions o;
      o.fisher_floor = spec.fisher_floor;
      o.model_coefficients = coefficients;
      merged = fisher_merging(params, statistics, o).at(entry.name);
    } else {
      RegMeanOptions o;
      o.non_diagonal_scale = spec.regmean_alpha;
      o.model_coefficients = coefficients;
      o.ridge = spec.regmean_ridge;
      RegMeanResult result = regmean_merging(params, statistics, o);
      for (const auto& name : result.ridge_parameters)
        report.warnings.push_back("regmean: the Gram sum of " + name + " is singular; solved with a ridge toward the average");
      merged = result.merged.at(entry.name);
    }
    sink->put(e, sink->wants_f64(e) ? kernels::cast(merged, DType::F64) : kernels::cast(merged, DType::F32));
    for (size_t t = 0; t < count; ++t) {
      release_pages(*models[t], entry.name);
      if (fisher && stats[t]->contains(entry.name)) release_pages(*stats[t], entry.name);
      if (!fisher && !module.empty() && stats[t]->contains(module)) release_pages(*stats[t], module);
    }
  }
  std::vector<const SafetensorsFile*> statistics_files;
  for (const auto& file : stats) statistics_files.push_back(&*file);
  check_inputs_unchanged(statistics_files);
  report.input_reads = 1;
}

MergeReport run_checkpoint_merge(const MergeSpec& spec, const MergeRunOptions& options) {
  MergeReport report;
  report.input_kind = "checkpoints";
  report.space = "parameter";
  report.output = spec.output;
  report.output_kind = "safetensors file";
  bool statistics = spec.method == ToolMethod::fisher || spec.method == ToolMethod::regmean;

  Problems problems;
  if (needs_task_vectors(spec) && spec.base.empty())
    problems.add(std::string(tool_method_name(spec.method)) +
                 " merges task vectors tau_t = theta_t - theta0: give the pretrained checkpoint theta0 with --base");
  if (statistics && !spec.base.empty())
    problems.add(std::string(tool_method_name(spec.method)) + " merges the models' parameters directly; drop --base");
  if (spec.space == AdapterSpace::weight || spec.delta_form)
    problems.add("--space weight and --delta-form apply to PEFT adapter folders; checkpoints are merged in parameter space");
  check_output(spec, false, problems);
  std::optional<SafetensorsFile> base;
  if (!spec.base.empty()) base = open_input(spec.base, "base", problems);
  std::vector<std::optional<SafetensorsFile>> opened;
  for (const auto& model : spec.models) opened.push_back(open_input(model.path, "model", problems));
  problems.throw_if_any("cannot merge");

  // Every input against the reference (the base, else the first model): one listing of every difference.
  std::vector<const SafetensorsFile*> models;
  std::vector<std::string> labels;
  for (size_t t = 0; t < opened.size(); ++t) models.push_back(&*opened[t]), labels.push_back(spec.models[t].path);
  const SafetensorsFile& reference = base ? *base : *models[0];
  const std::string& reference_label = base ? spec.base : labels[0];
  for (size_t t = base ? 0 : 1; t < models.size(); ++t) {
    std::string mismatch = header_mismatch(reference, reference_label, *models[t], labels[t]);
    if (!mismatch.empty()) problems.add(mismatch);
  }
  problems.throw_if_any("the inputs do not match");

  // Floating tensors are merged (in the first model's order); integer ones are copied and must agree everywhere.
  std::vector<std::string> merged_names, differing;
  for (const SafetensorsEntry& e : models[0]->entries()) {
    if (is_floating_dtype(e.dtype)) {
      merged_names.push_back(e.name);
      continue;
    }
    auto stored = [&](const SafetensorsFile& file) {
      const SafetensorsEntry& entry = file.entry(e.name);
      std::vector<std::byte> bytes(size_t(entry.bytes()));
      file.read_bytes(entry, 0, bytes.size(), bytes.data());
      return bytes;
    };
    const std::vector<std::byte> bytes = stored(reference);
    for (size_t t = 0; t < models.size(); ++t)
      if (stored(*models[t]) != bytes) differing.push_back(e.name + " (" + labels[t] + ")");
  }
  if (!differing.empty())
    problems.add("integer tensors cannot be merged and must be equal in every input; they differ: " +
                 join_names(differing, SIZE_MAX));
  if (merged_names.empty()) problems.add("the inputs hold no floating tensor to merge");
  problems.throw_if_any("cannot merge");

  auto checkpoint_source = std::make_unique<CheckpointDeltaSource>(statistics ? nullptr : (base ? &*base : nullptr),
                                                                   models, labels, merged_names);
  std::vector<MergedEntry> entries = checkpoint_source->entries();
  std::vector<OutputTensor> declared;
  std::vector<std::string> entry_names;
  std::vector<std::string> copied;
  std::unordered_map<std::string, size_t> entry_of;
  for (size_t e = 0; e < entries.size(); ++e) entry_of[entries[e].name] = e, entry_names.push_back(entries[e].name);
  for (const SafetensorsEntry& e : reference.entries()) {
    if (entry_of.count(e.name)) {
      SafetensorsDType dtype = stored_dtype(spec.dtype, e.dtype);
      declared.push_back({e.name, dtype, e.shape});
      report.merged_elements += shape_numel(e.shape);
    } else {
      declared.push_back({e.name, SafetensorsDType::I64, e.shape});   // the writer stores integers as I64
      copied.push_back(e.name);
    }
  }
  report.merged_tensors = int64_t(entries.size());
  report.copied_tensors = int64_t(copied.size());
  report.metadata = merge_metadata(spec, report.space, {}, options);
  if (statistics) {
    if (spec.dry_run) {   // checks the statistics too
      run_statistics_merge(spec, models, labels, entries, nullptr, report);
      return report;
    }
    SafetensorsSink sink(spec.output, report.metadata, declared, entry_names);
    run_statistics_merge(spec, models, labels, entries, &sink, report);
    for (const auto& name : copied) sink.copy(name, reference);
    check_inputs_unchanged(models);
    sink.finish();
    report.written = true;
    return report;
  }
  if (spec.dry_run) return report;

  std::unique_ptr<DeltaSource> source = with_dare(spec, std::move(checkpoint_source));
  SafetensorsSink sink(spec.output, report.metadata, declared, entry_names);
  test_pause_point();
  PassStats stats;
  run_data_free(spec, *source, sink, stats, options);
  for (const auto& name : copied) sink.copy(name, reference);
  std::vector<const SafetensorsFile*> inputs = models;
  inputs.push_back(base ? &*base : nullptr);
  check_inputs_unchanged(inputs);
  sink.finish();
  report.input_reads = stats.input_reads;
  report.majority_pass = stats.majority_pass;
  report.written = true;
  return report;
}

}  // namespace

MergeReport run_merge(const MergeSpec& spec, const MergeRunOptions& options) {
  // Checkpoints or adapters: every model must be of one kind.
  size_t adapters = 0;
  for (const auto& model : spec.models) adapters += tool::is_adapter_folder(model.path);
  if (adapters != 0 && adapters != spec.models.size()) {
    std::vector<std::string> kinds;
    for (const auto& model : spec.models)
      kinds.push_back(model.path + (tool::is_adapter_folder(model.path) ? " (adapter)" : " (checkpoint)"));
    throw std::invalid_argument("[linfuse merge] the models mix PEFT adapter folders and checkpoints (" +
                                join_names(kinds, SIZE_MAX) + "); nothing was written: merge one kind at a time");
  }
  if (spec.models.empty()) throw std::invalid_argument("[linfuse merge] no models to merge; nothing was written");
  return adapters ? tool::run_adapter_merge(spec, options) : run_checkpoint_merge(spec, options);
}

}  // namespace linfuse::merge
