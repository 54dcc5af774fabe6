// The merge tool on LoRA adapters in the HF PEFT layout (peft/peft_io.h):
//   <dir>/adapter_config.json, <dir>/adapter_model.safetensors ("base_model.model.<module>.lora_A.weight", ...),
//   <dir>/adapter_initial.safetensors (phi0, optional).
// Adapter-parameter space: A and B merged as ordinary task vectors phi_t - phi0 (merge_lora_adapter_space), output a
// PEFT folder. Weight space: Delta W_t = s B_t A_t - s B0 A0 merged exactly (merge_lora_weight_space), output the full
// merged weights (base + Delta W) or a PEFT folder re-factorized to rank r.
// The adapter configs are read here directly (not through peft/, which merge/ does not depend on).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "merge/merge_plan.h"
#include "merge/named_tensors.h"
#include "nn/atomic_file.h"
#include "nn/file_checks.h"

namespace linfuse::merge::tool {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;
const std::string kPeftPrefix = "base_model.model.";

struct Adapter {
  std::string dir;
  ordered_json config;
  int64_t rank = 0;
  double alpha = 0.0;
  bool rslora = false, fan_in_fan_out = false;
  std::string mode = "standard";   // linfuse's layer mode: "local-linear" adapters are layer-level L-LoRA
  std::optional<SafetensorsFile> weights;
  std::string initial_path;        // "" when the folder has no adapter_initial.safetensors
};

void read_adapter(Adapter& adapter, Problems& problems) {
  std::string config_path = adapter.dir + "/adapter_config.json";
  // Read only regular files: a FIFO would block the reader (the .safetensors files are checked by their reader).
  for (const std::string& file : {config_path, adapter.dir + "/adapter_initial.safetensors"})
    if (std::string kind = non_regular_kind(file); !kind.empty()) {
      problems.add(file + " is " + kind + ", not a regular file; an adapter folder holds regular files");
      return;
    }
  std::ifstream in(config_path);
  if (!in) {
    problems.add(adapter.dir + " is a folder without adapter_config.json: not a PEFT adapter folder");
    return;
  }
  try {
    adapter.config = ordered_json::parse(in);
    const auto& c = adapter.config;
    if (c.value("peft_type", std::string()) != "LORA")
      throw std::runtime_error("peft_type is '" + c.value("peft_type", std::string()) + "', only LORA adapters merge");
    adapter.rank = c.at("r").get<int64_t>();
    if (adapter.rank < 1) throw std::runtime_error("r must be >= 1");
    adapter.alpha = c.at("lora_alpha").get<double>();
    adapter.rslora = c.value("use_rslora", false);
    adapter.fan_in_fan_out = c.value("fan_in_fan_out", false);
    if (c.contains("linfuse") && c["linfuse"].is_object()) adapter.mode = c["linfuse"].value("mode", std::string("standard"));
  } catch (const std::exception& e) {
    problems.add(config_path + ": " + e.what());
    return;
  }
  adapter.weights = open_input(adapter.dir + "/adapter_model.safetensors", "adapter weights", problems);
  std::string initial = adapter.dir + "/adapter_initial.safetensors";
  if (fs::exists(initial)) adapter.initial_path = initial;
}

// PEFT's target_modules as comparable text: a list in sorted order (the order means nothing), a regex string as it is.
std::string target_modules(const ordered_json& config) {
  if (!config.contains("target_modules")) return "(absent)";
  ordered_json modules = config["target_modules"];
  if (modules.is_array()) {
    std::vector<std::string> names;
    for (const auto& m : modules) names.push_back(m.is_string() ? m.get<std::string>() : m.dump());
    std::sort(names.begin(), names.end());
    modules = names;
  }
  return modules.dump();
}

// "lora_alpha 16 (a) vs 32 (b)" for every config field that differs from the first adapter's.
void compare_configs(const std::vector<Adapter>& adapters, Problems& problems) {
  const Adapter& first = adapters[0];
  for (size_t t = 1; t < adapters.size(); ++t) {
    const Adapter& a = adapters[t];
    std::vector<std::string> differ;
    auto field = [&](const std::string& name, const std::string& x, const std::string& y) {
      if (x != y) differ.push_back(name + " " + x + " (" + first.dir + ") vs " + y + " (" + a.dir + ")");
    };
    field("r", std::to_string(first.rank), std::to_string(a.rank));
    auto number = [](double x) {
      char text[32];
      std::snprintf(text, sizeof text, "%.17g", x);
      return std::string(text);
    };
    field("lora_alpha", number(first.alpha), number(a.alpha));
    field("use_rslora", first.rslora ? "true" : "false", a.rslora ? "true" : "false");
    field("fan_in_fan_out", first.fan_in_fan_out ? "true" : "false", a.fan_in_fan_out ? "true" : "false");
    field("linfuse mode", first.mode, a.mode);
    // The modules the adapters adapt: different lists give different tensors (reported by name below) or, when the
    // names happen to agree, adapters of different layers merged as if they were one.
    field("target_modules", target_modules(first.config), target_modules(a.config));
    if (!differ.empty()) problems.add("adapter configs differ: " + join_names(differ, SIZE_MAX));
  }
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The adapter's tensors without PEFT's prefix (zero-copy views of the mapping).
StateDict unprefixed(const SafetensorsFile& file, Problems& problems) {
  StateDict out;
  for (const SafetensorsEntry& e : file.entries()) {
    if (!e.name.starts_with(kPeftPrefix)) {
      problems.add(file.path() + ": key '" + e.name + "' lacks PEFT's prefix '" + kPeftPrefix + "'");
      continue;
    }
    if (!is_floating_dtype(e.dtype)) {
      problems.add(file.path() + ": " + e.name + " is " + safetensors_dtype_name(e.dtype) + ", adapters hold floating tensors");
      continue;
    }
    Tensor tensor = file.tensor_copy(e.name);
    require_finite_input(file.path(), e.name, tensor);
    out.insert(e.name.substr(kPeftPrefix.size()), tensor);
  }
  return out;
}

SafetensorsMetadata adapter_metadata(const Adapter& first, const std::string& initial_path, double scaling,
                                     std::optional<LoraDeltaForm> form) {
  SafetensorsMetadata extra = {
      {"linfuse.merge.initial_adapter", initial_path.empty() ? "none (task vectors against zero)" : initial_path},
      {"linfuse.merge.lora", ordered_json({{"r", first.rank}, {"lora_alpha", first.alpha}, {"use_rslora", first.rslora},
                                            {"scaling", scaling}}).dump()}};
  if (form) extra["linfuse.merge.delta_form"] = lora_delta_form_name(*form);
  return extra;
}

void write_config(const std::string& path, const ordered_json& config) { write_file_atomic(path, config.dump(2) + "\n"); }

}  // namespace

bool is_adapter_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);   // a folder is taken for an adapter; read_adapter says when it is not one
}

MergeReport run_adapter_merge(const MergeSpec& spec, const MergeRunOptions& options) {
  MergeReport report;
  report.input_kind = "PEFT adapters";
  report.output = spec.output;
  bool weight_space = spec.space == AdapterSpace::weight;
  bool refactorize = weight_space && spec.refactorize_rank >= 0;
  bool folder_output = !weight_space || refactorize;
  report.space = weight_space ? "weight" : "adapter-parameter";
  report.output_kind = folder_output ? "PEFT adapter folder" : "safetensors file";

  Problems problems;
  if (spec.method == ToolMethod::fisher || spec.method == ToolMethod::regmean)
    problems.add(std::string(tool_method_name(spec.method)) + " merges checkpoints; for adapters use a data-free method");
  if (!weight_space && !spec.base.empty())
    problems.add("--base is not used in adapter-parameter space (the adapters' task vectors are taken against their "
                 "initial adapter, adapter_initial.safetensors); for merged full weights use --space weight --base MODEL");
  if (!weight_space && spec.delta_form)
    problems.add("--delta-form applies to weight space (--space weight)");
  if (weight_space && !refactorize && spec.base.empty())
    problems.add("weight space writes base + merged Delta W: give the full model with --base, or "
                 "--refactorize-rank R to write a PEFT adapter instead");
  if (refactorize && !spec.base.empty())
    problems.add("--refactorize-rank writes an adapter, which does not include the base model: drop --base");
  if (!spec.base.empty() && is_adapter_folder(spec.base))
    problems.add("--base " + spec.base + " is a folder; in weight space the base is the full model's .safetensors file");
  check_output(spec, folder_output, problems);
  if (folder_output) {
    try {
      StagedDirectory::check_target(spec.output);
    } catch (const std::exception& e) {
      problems.add(std::string(e.what()).substr(std::string("[linfuse merge] ").size()));
    }
  }
  std::vector<Adapter> adapters(spec.models.size());
  for (size_t t = 0; t < adapters.size(); ++t) adapters[t].dir = spec.models[t].path, read_adapter(adapters[t], problems);
  problems.throw_if_any("cannot merge");

  // The adapters must match each other: config, tensors, and their initial adapter phi0.
  compare_configs(adapters, problems);
  for (size_t t = 1; t < adapters.size(); ++t) {
    std::string mismatch = header_mismatch(*adapters[0].weights, adapters[0].weights->path(), *adapters[t].weights,
                                           adapters[t].weights->path());
    if (!mismatch.empty()) problems.add(mismatch);
  }
  std::string initial_path;
  for (const Adapter& a : adapters)
    if (!a.initial_path.empty()) {
      if (initial_path.empty()) initial_path = a.initial_path;
      else if (file_bytes(initial_path) != file_bytes(a.initial_path))
        problems.add(a.initial_path + " differs from " + initial_path +
                     ": the adapters start from different phi0, so their task vectors are not comparable");
    }
  std::optional<SafetensorsFile> initial;
  if (!initial_path.empty()) {
    initial = open_input(initial_path, "initial adapter", problems);
    if (initial) {
      std::string mismatch = header_mismatch(*adapters[0].weights, adapters[0].weights->path(), *initial, initial_path);
      if (!mismatch.empty()) problems.add(mismatch);
    }
  }
  if (adapters[0].fan_in_fan_out && weight_space)
    problems.add("fan_in_fan_out adapters (GPT-2 Conv1D layers store W transposed) are not supported in weight space");
  problems.throw_if_any("the adapters do not match");

  std::vector<const SafetensorsFile*> files;
  std::vector<std::string> labels;
  for (const Adapter& a : adapters) files.push_back(&*a.weights), labels.push_back(a.dir);
  double scaling = lora_scaling(adapters[0].alpha, adapters[0].rank, adapters[0].rslora);

  if (!weight_space) {
    // ---- adapter-parameter space ----
    if (!initial && needs_task_vectors(spec))
      warn(report, options,
           "no adapter_initial.safetensors in any input adapter: task vectors are taken against zero (phi0 = 0), i.e. "
           "tau = phi. Task vectors need the adapters' common initial value phi0 (PEFT's default init draws A0 at "
           "random), so this merges A's that are not task vectors; save phi0 with the adapters (linfuse writes "
           "adapter_initial.safetensors) or merge with simple_average.");
    std::vector<std::string> names;
    for (const SafetensorsEntry& e : files[0]->entries()) {
      if (!is_floating_dtype(e.dtype)) problems.add(files[0]->path() + ": " + e.name + " is not a floating tensor");
      names.push_back(e.name);
    }
    problems.throw_if_any("cannot merge");
    std::unique_ptr<DeltaSource> source =
        std::make_unique<CheckpointDeltaSource>(initial ? &*initial : nullptr, files, labels, names);
    std::vector<OutputTensor> declared;
    for (const SafetensorsEntry& e : (initial ? *initial : *files[0]).entries()) {
      declared.push_back({e.name, stored_dtype(spec.dtype, e.dtype), e.shape});
      report.merged_elements += shape_numel(e.shape);
    }
    report.merged_tensors = int64_t(names.size());
    report.metadata = merge_metadata(spec, report.space, adapter_metadata(adapters[0], initial_path, scaling, std::nullopt),
                                     options);
    if (spec.dry_run) return report;
    source = with_dare(spec, std::move(source));
    StagedDirectory folder(spec.output);
    PassStats stats;
    {
      SafetensorsSink sink(folder.file("adapter_model.safetensors"), report.metadata, declared, names);
      run_data_free(spec, *source, sink, stats, options);
      std::vector<const SafetensorsFile*> inputs = files;
      inputs.push_back(initial ? &*initial : nullptr);
      check_inputs_unchanged(inputs);
      sink.finish();
    }
    write_config(folder.file("adapter_config.json"), adapters[0].config);
    // The merged adapter starts from the same phi0: keep it, so that it can be merged or compared again.
    if (initial) copy_file_atomic(initial_path, folder.file("adapter_initial.safetensors"));
    folder.commit();
    report.input_reads = stats.input_reads;
    report.majority_pass = stats.majority_pass;
    report.written = true;
    return report;
  }

  // ---- weight space ----
  std::vector<StateDict> adapter_dicts;
  for (const Adapter& a : adapters) adapter_dicts.push_back(unprefixed(*a.weights, problems));
  StateDict initial_dict;
  if (initial) initial_dict = unprefixed(*initial, problems);
  else
    for (const auto& [name, tensor] : adapter_dicts[0]) initial_dict.insert(name, Tensor::zeros(tensor.shape(), tensor.dtype()));
  std::vector<LoraModule> modules;
  try {
    modules = find_lora_modules(adapter_dicts[0]);
  } catch (const std::exception& e) {
    problems.add(e.what());
  }
  LoraDeltaForm form = spec.delta_form.value_or(adapters[0].mode == "local-linear" ? LoraDeltaForm::linearized
                                                                                   : LoraDeltaForm::product);
  std::optional<SafetensorsFile> base;
  if (!refactorize) base = open_input(spec.base, "base", problems);
  problems.throw_if_any("cannot merge");
  if (!initial)
    warn(report, options,
         "no adapter_initial.safetensors in any input adapter: Delta W = s B A assumes B0 A0 = 0, which holds for "
         "PEFT's default init (B0 = 0) but not for adapters initialized with B0 != 0; save phi0 with the adapters.");

  auto weight_source = std::make_unique<WeightSpaceDeltaSource>(
      adapter_dicts, initial_dict, labels, scaling, form, refactorize ? WeightBase::initial : WeightBase::full_model,
      base ? &*base : nullptr);
  const std::vector<MergedEntry>& entries = weight_source->entries();
  std::vector<std::string> entry_names;
  for (const auto& e : entries) entry_names.push_back(e.name), report.merged_elements += e.numel;
  report.merged_tensors = int64_t(entries.size());
  SafetensorsMetadata extra = adapter_metadata(adapters[0], initial_path, scaling, form);

  if (!refactorize) {
    // Full weights: every tensor of the base, those with a delta merged, the others copied.
    std::unordered_map<std::string, size_t> entry_of;
    for (size_t e = 0; e < entries.size(); ++e) entry_of[entries[e].name] = e;
    for (const auto& e : entries) {
      if (!base->contains(e.name)) {
        problems.add(spec.base + " has no tensor " + e.name + " for the adapter's delta " + shape_str(e.shape));
        continue;
      }
      const SafetensorsEntry& b = base->entry(e.name);
      if (b.shape != e.shape || !is_floating_dtype(b.dtype))
        problems.add(spec.base + ": " + e.name + " is " + safetensors_dtype_name(b.dtype) + shape_str(b.shape) +
                     ", the adapter's delta is a floating " + shape_str(e.shape));
    }
    problems.throw_if_any("the adapters do not fit the base model");
    std::vector<OutputTensor> declared;
    std::vector<std::string> copied;
    for (const SafetensorsEntry& b : base->entries()) {
      bool floating = is_floating_dtype(b.dtype);
      declared.push_back({b.name, floating ? stored_dtype(spec.dtype, b.dtype) : SafetensorsDType::I64, b.shape});
      if (!entry_of.count(b.name)) copied.push_back(b.name);
    }
    report.copied_tensors = int64_t(copied.size());
    report.metadata = merge_metadata(spec, report.space, extra, options);
    if (spec.dry_run) return report;
    std::unique_ptr<DeltaSource> source = with_dare(spec, std::move(weight_source));
    SafetensorsSink sink(spec.output, report.metadata, declared, entry_names);
    PassStats stats;
    run_data_free(spec, *source, sink, stats, options);
    for (const auto& name : copied) sink.copy(name, *base);
    std::vector<const SafetensorsFile*> inputs = files;
    inputs.push_back(initial ? &*initial : nullptr);
    inputs.push_back(&*base);
    check_inputs_unchanged(inputs);
    sink.finish();
    report.input_reads = stats.input_reads;
    report.majority_pass = stats.majority_pass;
    report.written = true;
    return report;
  }

  // Re-factorized adapter: A (r, in), B (out, r) per module, the other entries as merged; the initial adapter's order.
  int64_t rank = spec.refactorize_rank == 0 ? adapters[0].rank : spec.refactorize_rank;
  std::unordered_map<std::string, const LoraModule*> module_of_factor;
  for (const LoraModule& m : modules) module_of_factor[m.a_name()] = &m, module_of_factor[m.b_name()] = &m;
  std::vector<OutputTensor> declared;
  for (const auto& [name, tensor] : initial_dict) {
    Shape shape = tensor.shape();
    if (auto it = module_of_factor.find(name); it != module_of_factor.end())
      shape = name == it->second->a_name() ? Shape{rank, it->second->in_features} : Shape{it->second->out_features, rank};
    SafetensorsDType input = tensor.dtype() == DType::F64 ? SafetensorsDType::F64 : files[0]->entry(kPeftPrefix + name).dtype;
    declared.push_back({kPeftPrefix + name, stored_dtype(spec.dtype, input), shape});
  }
  extra["linfuse.merge.refactorize_rank"] = std::to_string(rank);
  report.metadata = merge_metadata(spec, report.space, extra, options);
  if (spec.dry_run) return report;

  // The same s for the new rank: lora_alpha = s r (s sqrt(r) for rsLoRA), so W0 + s B A reads as merged.
  ordered_json config = adapters[0].config;
  double alpha = adapters[0].rslora ? scaling * std::sqrt(double(rank)) : scaling * double(rank);
  config["r"] = rank;
  config["lora_alpha"] = alpha == std::round(alpha) ? ordered_json(int64_t(std::round(alpha))) : ordered_json(alpha);
  if (config.contains("linfuse") && config["linfuse"].is_object()) config["linfuse"]["mode"] = "standard";

  WeightSpaceDeltaSource& weights = *weight_source;
  std::unique_ptr<DeltaSource> source = with_dare(spec, std::move(weight_source));
  StagedDirectory folder(spec.output);
  PassStats stats;
  {
    SafetensorsSink out(folder.file("adapter_model.safetensors"), report.metadata, declared, {});
    RefactorizedAdapterSink sink(out, weights, rank, scaling);
    run_data_free(spec, *source, sink, stats, options);
    std::vector<const SafetensorsFile*> inputs = files;
    inputs.push_back(initial ? &*initial : nullptr);
    check_inputs_unchanged(inputs);
    out.finish();
    report.max_refactorization_residual = sink.max_residual();
  }
  write_config(folder.file("adapter_config.json"), config);
  folder.commit();
  report.input_reads = stats.input_reads;
  report.majority_pass = stats.majority_pass;
  report.written = true;
  return report;
}

}  // namespace linfuse::merge::tool
