// linfuse merge: merges safetensors checkpoints or PEFT adapters (merge/streaming_merge.h), from flags or a JSON config.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "merge/merge_spec.h"
#include "merge/streaming_merge.h"
#include "tensor/build_info.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Options that take several values ("--models a.safetensors b.safetensors"). cxxopts takes one value per flag and
// splits vector values at commas, which would break paths with commas; these are collected here instead: every
// argument after the flag up to the next "--option".
const std::set<std::string> kListOptions = {"models", "weights", "fishers", "grams"};

struct ListArguments {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> rest;           // everything else, for cxxopts (argv[0] first)
  std::vector<std::string> without_value;  // list options given no value ("--models" last, or before another option)
};

ListArguments split_list_options(int argc, char** argv) {
  ListArguments out;
  out.rest.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos
                                                                                                   : arg.find('=') - 2)
                                               : "";
    if (!kListOptions.count(name)) {
      out.rest.push_back(arg);
      continue;
    }
    auto& list = out.values[name];
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      list.push_back(arg.substr(eq + 1));
      continue;
    }
    size_t before = list.size();
    while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0 && std::string(argv[i + 1]) != "-h") list.push_back(argv[++i]);
    if (list.size() == before) out.without_value.push_back(name);
  }
  return out;
}

// Numbers may also be given comma-separated ("--weights 0.5,0.3,0.2").
std::vector<double> parse_numbers(const std::vector<std::string>& items, const std::string& flag) {
  std::vector<double> out;
  for (const auto& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t comma = item.find(',', start);
      std::string text = item.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      char* end = nullptr;
      double value = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') throw std::invalid_argument("--" + flag + " takes numbers, got '" + text + "'");
      out.push_back(value);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

// An engine error for the terminal: without the "[linfuse merge] " tag (the line starts with "linfuse merge:"), one
// listed problem per line (the engine joins them with " | ").
std::string format_error(const std::exception& e) {
  std::string text = e.what();
  const std::string tag = "[linfuse merge] ";
  if (text.rfind(tag, 0) == 0) text.erase(0, tag.size());
  std::string out;
  size_t start = 0;
  for (size_t bar; (bar = text.find(" | ", start)) != std::string::npos; start = bar + 3) out += text.substr(start, bar - start) + "\n  ";
  out += text.substr(start);
  size_t colon = out.find("; nothing was written: ");
  if (colon != std::string::npos && out.find('\n') != std::string::npos) out.replace(colon, 23, "; nothing was written:\n  ");
  return out;
}

// Peak resident set of this process: VmHWM of /proc/self/status, the high-water mark of this program's own address
// space. (getrusage's ru_maxrss is not used: Linux carries it over exec, so a merge started from a large process --
// a benchmark that has just written its inputs -- would report that process's peak.)
double peak_rss_megabytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;   // "VmHWM:  1234 kB"
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;   // kilobytes on Linux
}

}  // namespace

int merge_main(int argc, char** argv) {
  cxxopts::Options options(
      "linfuse merge",
      "Merges fine-tuned safetensors checkpoints, or LoRA adapters in the Hugging Face PEFT layout, into one.\n\n"
      "  linfuse merge --method task_arithmetic --base base.safetensors --models a.safetensors b.safetensors \\\n"
      "                --lambda 0.3 --out merged.safetensors\n"
      "  linfuse merge --config merge.json [--lambda 0.5 ...]   (flags override the config's fields)\n"
      "  linfuse merge --method ties --models lora_a/ lora_b/ --space weight --base model.safetensors --out m.safetensors\n"
      "  linfuse merge --method dare --combine ties --drop 0.9 --models lora_a/ lora_b/ --out merged_lora/\n\n"
      "Data-free methods stream tensor by tensor from the memory-mapped inputs: peak memory is about one output tensor\n"
      "plus a small buffer per input, whatever the file sizes. The output is written atomically: nothing is left on\n"
      "failure or on SIGINT / SIGTERM / SIGHUP (a temporary left by a killed merge is removed by the next one), and an\n"
      "--out that is one of the inputs (also through a link) is refused. Its metadata records the method, every\n"
      "hyperparameter, the inputs, the space and the commit.\n"
      "Inputs must be regular files (a FIFO or a device is refused before it is opened); an input truncated or\n"
      "rewritten while the merge reads it stops the merge with a message naming it.\n"
      "Inputs must hold the same tensor names, shapes and dtypes; every mismatch is listed and nothing is written.\n"
      "A NaN or infinity in an input, or a merged value that is not finite in the output dtype (a --lambda too large,\n"
      "a float16 overflow), stops the merge naming the file or the tensor; nothing is written. (--dry-run reads the\n"
      "headers only: names, shapes and dtypes, not values.)\n\n"
      "PEFT adapters (folders with adapter_config.json, adapter_model.safetensors and, when saved by linfuse,\n"
      "adapter_initial.safetensors = phi0) merge in\n"
      "  --space parameter  A and B separately as task vectors phi_t - phi0 (against zero, with a warning, when no\n"
      "                     input has phi0); output: a PEFT adapter folder (with phi0 copied)\n"
      "  --space weight     Delta W = s (B A - B0 A0) per module, merged exactly; output: --base + merged Delta W as a\n"
      "                     full checkpoint, or with --refactorize-rank R a PEFT folder re-factorized to rank R by SVD\n");
  options.add_options()("config", "JSON config (format below)", cxxopts::value<std::string>())(
      "method", "simple_average, weighted_average, task_arithmetic, ties, dare (dare_ties, ...), fisher, regmean",
      cxxopts::value<std::string>())("base", "pretrained checkpoint theta0 (weight space: the full model)",
                                     cxxopts::value<std::string>())(
      "models", "fine-tuned checkpoints or PEFT adapter folders (several values after one flag)",
      cxxopts::value<std::string>())("weights", "one weight per model: weighted_average; fisher/regmean coefficients",
                                     cxxopts::value<std::string>())(
      "lambda", "scaling: task_arithmetic [0.3], ties [1.0], dare with those (negative: --lambda=-0.5)",
      cxxopts::value<double>())("keep", "TIES: fraction of each task vector kept [0.2]", cxxopts::value<double>())(
      "sign", "TIES sign election: mass [default] | count", cxxopts::value<std::string>())(
      "trim", "TIES trimming scope: global [default] | per-tensor", cxxopts::value<std::string>())(
      "aggregation", "TIES disjoint merge: mean [default] | sum", cxxopts::value<std::string>())(
      "drop", "DARE drop probability p in [0, 1) [0.5]", cxxopts::value<double>())(
      "seed", "DARE mask seed [0]", cxxopts::value<uint64_t>())(
      "combine", "DARE then: task_arithmetic [default] | average | ties", cxxopts::value<std::string>())(
      "no-rescale", "DARE: do not rescale survivors by 1/(1-p)")(
      "fishers", "fisher: one diagonal-Fisher safetensors per model", cxxopts::value<std::string>())(
      "fisher-floor", "fisher: Fishers below this are raised to it [1e-6]", cxxopts::value<double>())(
      "normalize-fishers", "fisher: divide each model's coefficient by the norm of its Fisher")(
      "grams", "regmean: one Gram safetensors per model (module name -> X^T X)", cxxopts::value<std::string>())(
      "alpha", "regmean: off-diagonal scale of the Grams [0.9]", cxxopts::value<double>())(
      "ridge", "regmean: relative ridge for singular Gram sums [1e-6]", cxxopts::value<double>())(
      "space", "adapters: parameter [default] | weight", cxxopts::value<std::string>())(
      "delta-form", "weight space: auto [default] | product | linearized (L-LoRA)", cxxopts::value<std::string>())(
      "refactorize-rank", "weight space: write a PEFT adapter of this rank (0: the adapters' rank)",
      cxxopts::value<int64_t>())("dtype", "output dtype: input [default] | float32 | float16 | bfloat16 | float64",
                                 cxxopts::value<std::string>())(
      "out", "output .safetensors file, or folder for an adapter", cxxopts::value<std::string>())(
      "dry-run", "check the inputs and print what would be merged; write nothing")("h,help", "show this help");

  ListArguments lists = split_list_options(argc, argv);
  std::vector<char*> rest;
  for (auto& arg : lists.rest) rest.push_back(arg.data());
  if (!lists.without_value.empty()) {
    const std::string& flag = lists.without_value.front();
    std::fprintf(stderr, "linfuse merge: --%s needs a value: give %s after it (--%s a b c) (see 'linfuse merge --help')\n",
                 flag.c_str(), flag == "weights" ? "one number per model" : "one path per model", flag.c_str());
    return 2;
  }
  const linfuse::cli::CommandLine line = linfuse::cli::parse_command_line(
      options, int(rest.size()), rest.data(), "linfuse merge", options.help() + "\n" + linfuse::merge::merge_config_help());
  if (line.exit_code) return *line.exit_code;
  const cxxopts::ParseResult& args = line.args;

  linfuse::merge::MergeSpec spec;
  try {
    // The config file (paths relative to its folder), then the flags on top (paths relative to the working folder).
    json config = json::object();
    if (args.count("config")) {
      std::string path = args["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw std::invalid_argument("cannot open the config " + path);
      try {
        config = json::parse(in);
      } catch (const json::exception& e) {
        throw std::invalid_argument("the config " + path + " is not valid JSON: " + e.what());
      }
      config = linfuse::merge::resolve_config_paths(config, fs::path(path).parent_path().string());
    }
    if (!config.is_object()) throw std::invalid_argument("the config must be a JSON object");
    auto set = [&](const char* flag, const char* key) {
      if (args.count(flag)) config[key] = args[flag].as<std::string>();
    };
    set("method", "method");
    set("base", "base");
    set("out", "output");
    set("space", "space");
    set("delta-form", "delta_form");
    set("dtype", "dtype");
    if (args.count("refactorize-rank")) config["refactorize_rank"] = args["refactorize-rank"].as<int64_t>();
    if (args.count("dry-run")) config["dry_run"] = true;
    json& hyper = config["hyperparameters"];
    if (hyper.is_null()) hyper = json::object();
    for (const char* key : {"lambda", "keep", "drop", "alpha", "ridge"})
      if (args.count(key)) hyper[key] = args[key].as<double>();
    if (args.count("fisher-floor")) hyper["fisher_floor"] = args["fisher-floor"].as<double>();
    for (const char* key : {"sign", "trim", "aggregation", "combine"})
      if (args.count(key)) hyper[key] = args[key].as<std::string>();
    if (args.count("seed")) hyper["seed"] = args["seed"].as<uint64_t>();
    if (args.count("no-rescale")) hyper["rescale"] = false;
    if (args.count("normalize-fishers")) hyper["normalize_fishers"] = true;
    if (hyper.empty()) config.erase("hyperparameters");

    // --models replaces the config's list; --weights/--fishers/--grams apply to the models in order.
    if (lists.values.count("models")) {
      config["models"] = json::array();
      for (const auto& path : lists.values["models"]) config["models"].push_back({{"path", path}});
    }
    auto per_model = [&](const std::string& flag, const std::string& key, const json& values) {
      if (!config.contains("models") || !config["models"].is_array() || config["models"].size() != values.size())
        throw std::invalid_argument("--" + flag + " gives " + std::to_string(values.size()) + " values for " +
                                    std::to_string(config.contains("models") ? config["models"].size() : 0) +
                                    " models; give one per model");
      for (size_t i = 0; i < values.size(); ++i) {
        json& model = config["models"][i];
        if (model.is_string()) model = json{{"path", model}};
        model[key] = values[i];
      }
    };
    if (lists.values.count("weights")) per_model("weights", "weight", parse_numbers(lists.values["weights"], "weights"));
    if (lists.values.count("fishers")) per_model("fishers", "fisher", lists.values["fishers"]);
    if (lists.values.count("grams")) per_model("grams", "gram", lists.values["grams"]);
    spec = linfuse::merge::parse_merge_spec(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse merge: %s\nRun 'linfuse merge --help' for the options and the config format.\n",
                 format_error(e).c_str());
    return 2;
  }

  linfuse::merge::MergeRunOptions run_options;
  run_options.provenance = {{"linfuse.tool", "linfuse merge"}, {"linfuse.commit", linfuse::build_commit_label()}};
  run_options.warn = [](const std::string& message) { std::fprintf(stderr, "linfuse merge: warning: %s\n", message.c_str()); };
  auto start = std::chrono::steady_clock::now();
  linfuse::merge::MergeReport report;
  try {
    report = linfuse::merge::run_merge(spec, run_options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse merge: %s\n", format_error(e).c_str());
    return 1;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string method = report.metadata.count("linfuse.merge.method") ? report.metadata["linfuse.merge.method"] : "";
  std::printf("%s %s of %zu %s in %s space %s %s (%s)\n", report.written ? "merged:" : "dry run, would merge:",
              method.c_str(), spec.models.size(), report.input_kind.c_str(), report.space.c_str(),
              report.written ? "->" : "into", report.output.c_str(), report.output_kind.c_str());
  std::printf("  hyperparameters %s\n", report.metadata["linfuse.merge.hyperparameters"].c_str());
  std::printf("  %lld tensors merged (%lld elements), %lld copied", (long long)report.merged_tensors,
              (long long)report.merged_elements, (long long)report.copied_tensors);
  if (report.written)
    std::printf("; %d pass%s over the inputs%s; %.2f s; peak RSS %.0f MB", report.input_reads,
                report.input_reads == 1 ? "" : "es", report.majority_pass ? " (one for TIES's sign majority)" : "",
                seconds, peak_rss_megabytes());
  std::printf("\n");
  if (report.max_refactorization_residual > 0)
    std::printf("  re-factorization: largest relative Frobenius residual %.3g\n", report.max_refactorization_residual);
  return 0;
}
