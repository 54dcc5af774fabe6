// End-to-end step benchmark of the reference workload (DESIGN.md) in every fine-tuning mode, side by side with
// PyTorch (../shared/bench/torch_ref.py, run in the same invocation) and a plain OpenBLAS sgemm (the machine's
// limit). Prints step time, the ratio to PyTorch, achieved GFLOP/s as a fraction of the sgemm rate, and peak
// resident memory.
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <map>
#include <string>
#include <vector>

#include "autodiff/functional.h"
#include "nn/optim.h"
#include "peft/linearized_model.h"
#include "peft/lora.h"
#include "reference_vit.h"
#include "tensor/kernels.h"
#include "tensor/threading.h"

using namespace linfuse;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kBatch = 64;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Exact multiply-add count of one forward pass of the reference ViT (GEMMs only; elementwise work is
// negligible): patch embedding, per layer q,k,v,o, scores and weighted sum, fc1, fc2, and the head.
double forward_flops() {
  double b = kBatch, t = 50, d = bench::kWidth, n = 49;
  double macs = b * n * 16 * d;                        // patch embedding
  double per_layer = b * t * (4 * d * d + 2 * 4 * d * d)   // q, k, v, o; fc1, fc2
                     + 2 * b * t * t * d;                   // q k^T and attention-weighted values
  macs += bench::kLayers * per_layer + b * d * bench::kClasses;
  return 2 * macs;
}

struct StepResult {
  double seconds;
  long peak_rss_kb;
};

// Runs `steps` training steps of `mode` in this process; returns the median step time (first two dropped).
StepResult train_steps(const std::string& mode, int steps) {
    bench::ReferenceViT model(0);
    Generator g(1);
    Tensor images = g.normal({kBatch, bench::kImage, bench::kImage});
    Tensor labels = g.randint({kBatch}, 0, bench::kClasses);
    std::unique_ptr<peft::LinearizedModel> lin;
    std::vector<Tensor> params;
    if (mode == "lora" || mode == "l-lora" || mode == "l-lora-local") {
      peft::LoraConfig config;
      config.rank = 8;
      config.alpha = 16;
      config.target_modules = {"*.q", "*.k", "*.v", "*.o", "*.fc1", "*.fc2"};
      if (mode == "l-lora-local") config.mode = peft::LoraMode::LocalLinear;
      peft::apply_lora(model, config);
    }
    if (mode == "l-lora") lin = std::make_unique<peft::LinearizedModel>(model, std::vector<std::string>{"*.lora_A.weight", "*.lora_B.weight"});
    if (mode == "linear-full") lin = std::make_unique<peft::LinearizedModel>(model, std::vector<std::string>{"*"});
    if (lin) params = lin->parameters();
    else
      for (auto& e : model.trainable_parameters()) params.push_back(*e.tensor);
    nn::AdamW opt(params, 1e-3, 0.0);
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
      auto t0 = Clock::now();
      Tensor logits = lin ? (*lin)([&] { return model.forward(images); }) : model.forward(images);
      Tensor loss = cross_entropy(logits, labels);
      opt.zero_grad();
      backward(loss);
      opt.step();
      times.push_back(seconds_since(t0));
    }
    times.erase(times.begin(), times.begin() + 2);   // warm-up (allocator cache, page faults)
    double m = median(times);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return StepResult{m, usage.ru_maxrss};
}

// Runs the steps in a child process, so that peak RSS is per mode.
StepResult run_mode(const std::string& mode, int steps) {
  int pipefd[2];
  if (pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    StepResult r = train_steps(mode, steps);
    if (write(pipefd[1], &r, sizeof r) != sizeof r) _exit(1);
    _exit(0);
  }
  close(pipefd[1]);
  StepResult r{};
  ssize_t got = read(pipefd[0], &r, sizeof r);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("benchmark child for mode " + mode + " failed");
  return r;
}

// GFLOP/s of a large single-threaded-BLAS sgemm tiled the way linfuse tiles (the machine's limit at this
// thread count).
double sgemm_rate(int threads) {
  set_num_threads(threads);
  int64_t n = 1024;
  Generator g(0);
  Tensor a = g.normal({n, n}), b = g.normal({n, n});
  kernels::matmul(a, b);
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    kernels::matmul(a, b);
    t.push_back(seconds_since(t0));
  }
  return 2.0 * n * n * n / median(t) / 1e9;
}

// Runs torch_ref.py for the given modes and thread count; returns mode -> seconds.
std::map<std::string, double> torch_times(const std::string& script, int threads) {
  std::map<std::string, double> out;
  std::string cmd = "/usr/bin/python3 " + script + " " + std::to_string(threads) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char line[256];
  while (fgets(line, sizeof line, p)) {
    char mode[32];
    int th;
    double s;
    if (sscanf(line, "%31s threads=%d step_s=%lf", mode, &th, &s) == 3) out[mode] = s;
  }
  pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("train_step_bench", "One training step of the reference workload per fine-tuning mode, vs PyTorch.");
  options.add_options()("threads", "thread counts", cxxopts::value<std::vector<int>>()->default_value("1,2"))(
      "steps", "steps per mode (2 warm-up steps are dropped)", cxxopts::value<int>()->default_value("12"))(
      "modes", "modes", cxxopts::value<std::vector<std::string>>()->default_value("full,lora,l-lora,l-lora-local,linear-full"))(
      "torch", "path of torch_ref.py (empty: skip PyTorch)", cxxopts::value<std::string>()->default_value(""))(
      "profile", "run one mode in this process only (for perf/callgrind)", cxxopts::value<std::string>()->default_value(""))(
      "h,help", "help");
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  if (!args["profile"].as<std::string>().empty()) {
    set_num_threads(args["threads"].as<std::vector<int>>()[0]);
    StepResult r = train_steps(args["profile"].as<std::string>(), args["steps"].as<int>());
    std::printf("%s: %.4f s/step\n", args["profile"].as<std::string>().c_str(), r.seconds);
    return 0;
  }
  std::map<std::string, std::string> torch_name{{"full", "fft"}, {"lora", "lora"}, {"l-lora", "llora"}, {"linear-full", "lfft"}};
  double flops = 3 * forward_flops();   // forward + backward (two GEMMs per forward GEMM)
  std::printf("reference workload: ViT 28x28/4, width 128, 4 layers, 4 heads, MLP 512, batch 64, AdamW; "
              "step = %.2f GFLOP (forward+backward GEMMs)\n",
              flops / 1e9);
  for (int threads : args["threads"].as<std::vector<int>>()) {
    double peak = sgemm_rate(threads);
    auto torch = args["torch"].as<std::string>().empty() ? std::map<std::string, double>{}
                                                          : torch_times(args["torch"].as<std::string>(), threads);
    std::printf("\nthreads %d   sgemm 1024^3: %.1f GFLOP/s\n", threads, peak);
    std::printf("%-14s %10s %10s %10s %10s %12s\n", "mode", "step s", "torch s", "ratio", "GFLOP/s", "peak RSS MB");
    set_num_threads(threads);
    for (const auto& mode : args["modes"].as<std::vector<std::string>>()) {
      StepResult r = run_mode(mode, args["steps"].as<int>());
      double torch_s = torch.count(torch_name[mode]) ? torch[torch_name[mode]] : 0;
      std::printf("%-14s %10.4f %10s %10s %6.1f (%2.0f%%) %10.0f\n", mode.c_str(), r.seconds,
                  torch_s ? std::to_string(torch_s).substr(0, 6).c_str() : "-",
                  torch_s ? std::to_string(r.seconds / torch_s).substr(0, 5).c_str() : "-", flops / r.seconds / 1e9,
                  100 * flops / r.seconds / 1e9 / peak, r.peak_rss_kb / 1024.0);
      std::fflush(stdout);
    }
  }
}
