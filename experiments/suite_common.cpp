#include "experiments/suite_common.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>

#include "nn/atomic_file.h"
#include "nn/safetensors.h"
#include "tensor/threading.h"

namespace linfuse::experiments {

StageTimer::StageTimer(SuiteContext& ctx, std::string name)
    : ctx_(ctx), name_(std::move(name)), start_(std::chrono::steady_clock::now()) {}

StageTimer::~StageTimer() {
  ctx_.stage_seconds[name_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void write_json(const std::filesystem::path& path, const nlohmann::json& j) { write_file_atomic(path.string(), j.dump(2) + "\n"); }

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": invalid JSON (" + e.what() + "); delete the stage folder to recompute it");
  }
}

peft::FinetuneConfig finetune_config(const nlohmann::json& s, peft::FinetuneMode mode, uint64_t seed) {
  peft::FinetuneConfig c;
  c.mode = mode;
  c.seed = seed;
  c.steps = s.value("steps", c.steps);
  c.weight_decay = s.value("weight_decay", c.weight_decay);
  c.warmup_fraction = s.value("warmup_fraction", c.warmup_fraction);
  c.max_grad_norm = s.value("max_grad_norm", c.max_grad_norm);
  c.optimizer = s.value("optimizer", c.optimizer);
  std::string name = peft::mode_name(mode);
  if (!s.contains("learning_rates") || !s["learning_rates"].contains(name))
    throw std::invalid_argument("[finetune config] no learning rate for mode '" + name + "' in learning_rates");
  c.learning_rate = s["learning_rates"][name].get<double>();
  if (s.contains("lora")) {
    const auto& l = s["lora"];
    c.lora.rank = l.value("rank", c.lora.rank);
    c.lora.alpha = l.value("alpha", c.lora.alpha);
    c.lora.dropout = l.value("dropout", c.lora.dropout);
    c.lora.use_rslora = l.value("use_rslora", false);
    if (l.contains("targets")) c.lora.target_modules = l["targets"].get<std::vector<std::string>>();
    c.lora.init = peft::lora_init_from_name(l.value("init", std::string("peft")));
    c.lora.init_seed = l.value("init_seed", uint64_t(1));
  }
  c.validate();
  return c;
}

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  std::vector<float> v = logits.to_vector<float>();
  int64_t n = logits.size(0), c = logits.size(1);
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (v[i * c + j] > v[i * c + best]) best = j;
    out[i] = best;
  }
  return out;
}

double learned_threshold(int64_t classes, int64_t test_examples, double margin_se) {
  const double n = double(std::max<int64_t>(test_examples, 2));
  if (classes <= 0) return margin_se / std::sqrt(n - 1);
  const double p = 1.0 / double(classes);
  return p + margin_se * std::sqrt(p * (1 - p) / n);
}

double final_loss_of(const std::vector<double>& losses) {
  if (losses.empty()) return 0;
  const size_t window = std::max<size_t>(1, losses.size() / 10);
  double sum = 0;
  for (size_t i = losses.size() - window; i < losses.size(); ++i) sum += losses[i];
  return sum / double(window);
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  std::vector<int64_t> pred = argmax_rows(logits), y = labels.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < y.size(); ++i) correct += pred[i] == y[i];
  return correct;
}

std::vector<int64_t> EpochOrder::batch_rows(int64_t step, int64_t batch) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t pos = (step * batch + b) % n_;
    if (pos == 0 || order_.empty()) order_ = generator_.permutation(n_);
    rows.push_back(order_[size_t(pos)]);
  }
  return rows;
}

void save_finetuned_run(const std::filesystem::path& dir, const peft::PreparedModel& prepared,
                        const peft::FinetuneResult& result, const std::string& mode_name, const std::string& task_name,
                        double validation, double test) {
  save_safetensors((dir / "trainable.safetensors").string(), prepared.trainable_state(), {{"mode", mode_name}, {"task", task_name}});
  write_json(dir / "metrics.json", {{"validation", validation}, {"test", test}, {"seconds", result.seconds},
                                     {"trainable_parameters", result.trainable_parameters},
                                     {"first_loss", result.losses.front()}, {"last_loss", result.losses.back()}});
}

void finetune_tasks(SuiteContext& ctx, const std::string& suite, const std::string& mode_name,
                    const std::vector<std::string>& task_names, const std::function<nlohmann::json(size_t)>& key_of,
                    const FinetuneTask& train, std::vector<StateDict>& states, std::vector<double>& scores,
                    nlohmann::json& results) {
  // The cache folders on this thread (they share parents), then the missing runs side by side.
  std::vector<std::filesystem::path> dirs;
  std::vector<nlohmann::json> keys;
  std::vector<size_t> to_run;
  auto stage_of = [&](size_t t) { return suite + "/finetune/" + mode_name + "/" + task_names[t]; };
  for (size_t t = 0; t < task_names.size(); ++t) {
    keys.push_back(key_of(t));
    dirs.push_back(ctx.cache.folder(stage_of(t), keys[t]));
    if (!ctx.cache.done(stage_of(t), keys[t])) to_run.push_back(t);
  }
  const bool show_progress = num_threads() == 1 || to_run.size() == 1;
  std::mutex log_mutex;
  run_concurrently(int64_t(to_run.size()), [&](int64_t job) {
    const size_t t = to_run[size_t(job)];
    std::string line = train(t, dirs[t], show_progress);
    ctx.cache.mark_done(stage_of(t), keys[t]);
    std::lock_guard<std::mutex> lock(log_mutex);
    ctx.log(line);
  });
  for (size_t t = 0; t < task_names.size(); ++t) load_finetuned_run(dirs[t], mode_name, task_names[t], states, scores, results);
}

void load_finetuned_run(const std::filesystem::path& dir, const std::string& mode_name, const std::string& task_name,
                        std::vector<StateDict>& states, std::vector<double>& scores, nlohmann::json& results) {
  nlohmann::json m = read_json(dir / "metrics.json");
  states.push_back(load_safetensors((dir / "trainable.safetensors").string()));
  scores.push_back(m["test"].get<double>());
  results["single_task"][mode_name][task_name] = m["test"];
  results["finetune_seconds"][mode_name][task_name] = m["seconds"];
  results["trainable_parameters"][mode_name] = m["trainable_parameters"];
}

}  // namespace linfuse::experiments
