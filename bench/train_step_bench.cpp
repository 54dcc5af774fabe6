// End-to-end benchmark of the reference workload (DESIGN.md: ViT on 28x28 images, patch 4, width 128,
// 4 layers, 4 heads, MLP 512, batch 64, LoRA r=8 alpha=16 on q,k,v,o,fc1,fc2, AdamW): one training step in
// each fine-tuning mode and evaluation (forward only; forward of the network-level linearized LoRA model),
// at each thread count, side by side in the same run with PyTorch (../shared/bench/torch_ref.py, and
// bench/torch_eval.py for evaluation) and a plain OpenBLAS sgemm of a large square matrix (the machine's
// limit at that thread count).
//
// Every measurement runs in its own process (this binary re-executed with --child, python3 for PyTorch), so
// the peak resident memory (VmHWM, read by the process itself at its end) is that of one mode alone. The
// FLOP count is exact: the matmul kernel counts 2 m n k for every product it computes, forward and backward
// (kernels::matmul_flops), and the child reports the count of one step. Step time is the median over the
// steps after two warm-up steps, as torch_ref.py does. Where PyTorch has the mode, the linfuse child runs it in
// lockstep with PyTorch's own step loop in a peer process (bench/torch_lockstep.py): one linfuse step, one PyTorch
// step, who goes first alternating, and the ratio of each adjacent pair; the peer's BLAS is held to the same
// thread count (OPENBLAS_NUM_THREADS), which torch.set_num_threads alone does not do; an sgemm timed after each pair
// gives the FLOP-rate fraction and the floors. The targets that compare linfuse with itself (l-lora / lora, 1 -> 2
// threads) come from steps alternating in one process. With --rounds R each runs R times; the table shows medians
// over the rounds, so one slow minute of a shared machine does not decide a verdict.
//
//   train_step_bench [--threads 1,2] [--steps 12] [--rounds 3] [--torch PATH] [--markdown FILE]   the table
//   train_step_bench --profile MODE [--threads 1] [--steps 12]                       one mode in-process
//   train_step_bench --profile MODE --interleave residual|mode:M|threads:N|isa:P|zero-b|class-token [--steps 40]   A/B
//   train_step_bench --last-block class-token --torch bench/torch_ref_class_token.py [...]   the table, both programs
//                    computing the last block for the class token only (what linfuse's CLIP image tower does)
// --attention composed runs either with the composed attention ops the fused primitive replaced (the step before
// it), --attention none with none (context = q + k + v), to isolate attention's share of the step.
// A --profile or --child run prints the step's median wall time (step_s) and median process CPU time (cpu_s);
// on cores shared with other jobs the CPU time is the steadier of the two for A/B comparisons at 1 thread.
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cblas.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cxxopts.hpp>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "autodiff/functional.h"
#include "autodiff/tape.h"
#include "nn/atomic_file.h"
#include "nn/optim.h"
#include "peft/linearized_model.h"
#include "peft/lora.h"
#include "reference_vit.h"
#include "tensor/blas_kernel.h"
#include "tensor/build_info.h"
#include "tensor/kernel_isa.h"
#include "tensor/kernels.h"
#include "tensor/threading.h"

using namespace linfuse;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kBatch = 64;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long status_kb(const std::string& field) {   // a field of /proc/self/status in kB (this process's address space only)
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return 0;
}
long vm_hwm_kb() { return status_kb("VmHWM"); }   // peak resident set
long vm_rss_kb() { return status_kb("VmRSS"); }   // resident set now

// Sets the peak resident set to the current one (Linux >= 4.0), so that what comes after is measured alone.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

bool is_eval(const std::string& mode) { return mode.rfind("eval", 0) == 0; }

struct StepResult {
  double seconds = 0;
  double flops = 0;   // per step, exact (matmul kernel counter)
  long peak_kb = 0;
  double cpu_seconds = 0;   // CPU time of the process per step (median): less sensitive to other jobs on the cores
};

// One mode of the reference workload, ready to run steps: its model, trainable parameters and optimizer.
// Modes: full, lora, l-lora, l-lora-local, linear-full (training steps); eval (forward of the base model, no
// tape), eval-l-lora (forward of the network-level linearized LoRA model, no tape).
class ModeRunner {
 public:
  explicit ModeRunner(const std::string& mode) : mode_(mode), model_(0) {
    static const std::vector<std::string> known{"full", "lora", "l-lora", "l-lora-local", "linear-full", "eval", "eval-l-lora"};
    if (std::find(known.begin(), known.end(), mode) == known.end()) throw std::invalid_argument("unknown mode '" + mode + "'");
    Generator g(1);
    images_ = g.normal({kBatch, bench::kImage, bench::kImage});
    labels_ = g.randint({kBatch}, 0, bench::kClasses);
    if (mode == "lora" || mode == "l-lora" || mode == "l-lora-local" || mode == "eval-l-lora") {
      peft::LoraConfig config;
      config.rank = 8;
      config.alpha = 16;
      config.target_modules = {"*.q", "*.k", "*.v", "*.o", "*.fc1", "*.fc2"};
      if (mode == "l-lora-local") config.mode = peft::LoraMode::LocalLinear;
      peft::apply_lora(model_, config);
    }
    if (mode == "l-lora" || mode == "eval-l-lora")
      lin_ = std::make_unique<peft::LinearizedModel>(model_, std::vector<std::string>{"*.lora_A.weight", "*.lora_B.weight"});
    if (mode == "linear-full") lin_ = std::make_unique<peft::LinearizedModel>(model_, std::vector<std::string>{"*"});
    std::vector<Tensor> params;
    if (lin_) params = lin_->parameters();
    else
      for (auto& e : model_.trainable_parameters()) params.push_back(*e.tensor);
    opt_ = std::make_unique<nn::AdamW>(params, 1e-3, 0.0);
  }
  // One step; returns its wall and process CPU seconds.
  std::pair<double, double> step() {
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    if (is_eval(mode_)) {
      NoGradGuard no_grad;
      Tensor logits = lin_ ? (*lin_)([&] { return model_.forward(images_); }) : model_.forward(images_);
      (void)logits;
    } else {
      Tensor logits = lin_ ? (*lin_)([&] { return model_.forward(images_); }) : model_.forward(images_);
      Tensor loss = cross_entropy(logits, labels_);
      opt_->zero_grad();
      backward(loss);
      opt_->step();
    }
    return {seconds_since(t0), process_cpu_seconds() - cpu0};
  }

 private:
  std::string mode_;
  bench::ReferenceViT model_;
  Tensor images_, labels_;
  std::unique_ptr<peft::LinearizedModel> lin_;
  std::unique_ptr<nn::AdamW> opt_;
};

std::vector<double> after_warm_up(std::vector<double> v) {
  v.erase(v.begin(), v.begin() + std::min<size_t>(2, v.size() - 1));
  return v;
}

// Runs `steps` steps of `mode` in this process; returns the median time of the steps after two warm-ups.
StepResult run_steps(const std::string& mode, int steps) {
  ModeRunner runner(mode);
  std::vector<double> times, cpu_times;
  uint64_t flops0 = kernels::matmul_flops();
  for (int i = 0; i < steps; ++i) {
    auto [wall, cpu] = runner.step();
    times.push_back(wall);
    cpu_times.push_back(cpu);
  }
  StepResult r;
  r.flops = double(kernels::matmul_flops() - flops0) / steps;
  r.seconds = median(after_warm_up(times));
  r.cpu_seconds = median(after_warm_up(cpu_times));
  r.peak_kb = vm_hwm_kb();
  return r;
}

// Steps of two programs A and B alternating one by one, who goes first alternating too, so that a slow stretch of a
// shared machine hits both alike; each function runs one step and returns its seconds. The medians of each (after two
// warm-up steps), and the median and quartiles of the ratios A / B of adjacent steps.
struct Alternation {
  double a = 0, b = 0, ratio = 0, ratio_q1 = 0, ratio_q3 = 0;
  long a_faster = 0;
  size_t pairs = 0;
};
Alternation alternate(int steps, const std::function<double()>& step_a, const std::function<double()>& step_b) {
  std::vector<double> a, b, ratios;
  for (int i = 0; i < steps; ++i) {
    double ta = 0, tb = 0;
    for (bool turn_of_a : {i % 2 == 0, i % 2 != 0}) (turn_of_a ? ta : tb) = turn_of_a ? step_a() : step_b();
    a.push_back(ta);
    b.push_back(tb);
    ratios.push_back(ta / tb);
  }
  Alternation r;
  r.a = median(after_warm_up(a));
  r.b = median(after_warm_up(b));
  ratios = after_warm_up(ratios);
  r.pairs = ratios.size();
  r.a_faster = long(std::count_if(ratios.begin(), ratios.end(), [](double x) { return x < 1; }));
  std::sort(ratios.begin(), ratios.end());
  r.ratio = ratios[ratios.size() / 2];
  r.ratio_q1 = ratios[ratios.size() / 4];
  r.ratio_q3 = ratios[ratios.size() * 3 / 4];
  return r;
}

std::string last_block_option = "full";   // --last-block, handed to every child

// --interleave: two variants of the workload in this process, their steps alternating. `what` is
//   residual       MODE with the residual adds fused into o's and fc2's products (A) and without (B): the same bits
//   mode:OTHER     MODE (A) and OTHER (B), e.g. l-lora against lora
//   threads:N      MODE at `threads` (A) and at N threads (B)
//   isa:PATH       MODE on the default kernel paths (A) and with every kernel forced to PATH (B): the same bits
//   zero-b         MODE with LoRA's terms through a zero B left out (A, the default) and computed (B): the same values
//   class-token    MODE with the last block for the class token only (A) and for every token (B): the same loss up to
//                  rounding, less work
Alternation interleave(const std::string& mode, int threads, int steps, const std::string& what) {
  ModeRunner a(mode);
  std::function<double()> step_a = [&] { return a.step().first; }, step_b;
  std::unique_ptr<ModeRunner> b;
  if (what == "residual") {
    b = std::make_unique<ModeRunner>(mode);
    step_a = [&] { bench::fused_residual = true; return a.step().first; };
    step_b = [&] { bench::fused_residual = false; return b->step().first; };
  } else if (what.rfind("mode:", 0) == 0) {
    b = std::make_unique<ModeRunner>(what.substr(5));
    step_b = [&] { return b->step().first; };
  } else if (what.rfind("threads:", 0) == 0) {
    const int other = std::stoi(what.substr(8));
    b = std::make_unique<ModeRunner>(mode);
    step_a = [&] { set_num_threads(threads); return a.step().first; };
    step_b = [&] { set_num_threads(other); return b->step().first; };
  } else if (what.rfind("isa:", 0) == 0) {
    const std::string path = what.substr(4);
    if (path != "avx2" && path != "avx512") throw std::invalid_argument("--interleave isa: takes avx2 or avx512, got '" + path + "'");
    b = std::make_unique<ModeRunner>(mode);
    step_a = [&] { kernels::reset_kernel_isa(); return a.step().first; };
    step_b = [&, path] {
      kernels::set_kernel_isa(path == "avx512" ? kernels::KernelIsa::avx512 : kernels::KernelIsa::avx2);
      return b->step().first;
    };
  } else if (what == "zero-b") {
    b = std::make_unique<ModeRunner>(mode);
    step_a = [&] { set_lora_skip_zero_b(true); return a.step().first; };
    step_b = [&] { set_lora_skip_zero_b(false); return b->step().first; };
  } else if (what == "class-token") {   // same work as the option --last-block class-token, against full
    b = std::make_unique<ModeRunner>(mode);
    step_a = [&] { bench::class_token_last_block = true; return a.step().first; };
    step_b = [&] { bench::class_token_last_block = false; return b->step().first; };
  } else {
    throw std::invalid_argument("--interleave takes residual, mode:MODE, threads:N, isa:avx2|avx512, zero-b or class-token, got '" +
                                what + "'");
  }
  Alternation r = alternate(steps, step_a, step_b);
  bench::fused_residual = true;
  bench::class_token_last_block = last_block_option == "class-token";
  set_lora_skip_zero_b(true);
  set_num_threads(threads);
  kernels::reset_kernel_isa();
  return r;
}

// A plain OpenBLAS sgemm of an n x n matrix on OpenBLAS's own `threads` threads: the machine's limit. One probe
// keeps its operands (3 n^2 floats) so that it can be timed again and again, between a lockstep's steps.
class SgemmProbe {
 public:
  explicit SgemmProbe(int n) : n_(n), a_(size_t(n) * n), b_(size_t(n) * n), c_(size_t(n) * n) {
    Tensor r = Generator(0).normal({int64_t(n), int64_t(n)});
    std::copy(r.data<float>(), r.data<float>() + a_.size(), a_.begin());
    std::copy(r.data<float>(), r.data<float>() + b_.size(), b_.begin());
  }
  double flops() const { return 2.0 * n_ * n_ * n_; }
  // One product's seconds. OpenBLAS goes back to one thread after it: linfuse's own products call it inside TBB's
  // tasks (tensor/threading.cpp).
  double seconds(int threads) {
    openblas_set_num_threads(threads);
    auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_, n_, n_, 1.0f, a_.data(), n_, b_.data(), n_, 0.0f, c_.data(), n_);
    const double t = seconds_since(t0);
    openblas_set_num_threads(1);
    return t;
  }

 private:
  int n_;
  std::vector<float> a_, b_, c_;
};

double sgemm_gflops(int threads, int n) {
  SgemmProbe probe(n);
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) t.push_back(probe.seconds(threads));
  t.erase(t.begin());
  return probe.flops() / median(t) / 1e9;
}

// Runs argv (argv[0] a path) and returns its standard output; empty when it fails.
// In a forked child: replaces it with the program args[0] (a path) run on args; exits 127 when that fails.
[[noreturn]] void exec_child(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

std::string run_capture(const std::vector<std::string>& args) {
  int fd[2];
  if (pipe(fd) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 1);
    close(fd[1]);
    exec_child(args);
  }
  close(fd[1]);
  std::string out;
  char buf[4096];
  ssize_t got;
  while ((got = read(fd[0], buf, sizeof buf)) > 0) out.append(buf, size_t(got));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "";
  return out;
}

// "key=value" fields of the last line of `text` that has them.
std::map<std::string, double> fields(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      auto eq = w.find('=');
      if (eq == std::string::npos) continue;
      try {
        out[w.substr(0, eq)] = std::stod(w.substr(eq + 1));
      } catch (...) {
      }
    }
  }
  return out;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, size_t(n));
}

// PyTorch's step loop in a child process that runs one step per line it reads and answers with the step's seconds
// (bench/torch_lockstep.py): the peer of --lockstep.
class LockstepPeer {
 public:
  LockstepPeer(const std::string& torch_ref, const std::string& torch_eval, const std::string& lockstep_py, const std::string& mode,
               int threads, int steps) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(fd);
      // torch.set_num_threads does not reach the OpenBLAS that Debian's torch runs on: without these its GEMMs
      // run on OpenBLAS's own threads, on every core (measured: 1.8 cores busy "at 1 thread"; docs/performance.md)
      for (const char* var : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"})
        setenv(var, std::to_string(threads).c_str(), 1);
      exec_child({"/usr/bin/python3", lockstep_py, torch_ref, torch_eval, std::to_string(threads), mode, std::to_string(steps)});
    }
    close(to_child[0]);
    close(from_child[1]);
    to_ = fdopen(to_child[1], "w");
    from_ = fdopen(from_child[0], "r");
  }
  ~LockstepPeer() {
    std::fclose(to_);   // the peer reads end of file and exits
    std::fclose(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  // One PyTorch step; its seconds, or 0 when the peer failed.
  double step() {
    std::fputs("go\n", to_);
    std::fflush(to_);
    char line[128];
    if (!std::fgets(line, sizeof line, from_)) return 0;
    return std::atof(line);
  }
  // After the last step: the peer's "hwm_kb=... cores=..." line.
  std::map<std::string, double> summary() {
    char line[256];
    if (!std::fgets(line, sizeof line, from_)) return {};
    return fields(line);
  }

 private:
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

struct LockstepResult {
  double ours = 0, torch = 0;                       // median step seconds
  double ours_cpu = 0;                              // median process CPU seconds of linfuse's steps
  double ratio = 0, ratio_q1 = 0, ratio_q3 = 0;     // of adjacent steps: median and quartiles
  double flops = 0;
  double torch_peak_kb = 0, torch_cores = 0;        // the peer's VmHWM, and CPU / wall time of its steps
  // With an sgemm timed after each pair (the same seconds of the machine): linfuse's FLOP rate over the sgemm's, and
  // the floor, the ratio to PyTorch of a step running its FLOPs at the sgemm's rate; medians over the pairs.
  double of_sgemm = 0, floor = 0;
};

// linfuse's steps (in this process) and PyTorch's (in its peer) alternating step by step, who goes first alternating
// too: the ratio of each adjacent pair compares the two under the same seconds of the machine.
// Each step may start after a pause of `settle` seconds: at more than one thread, the threads of the program that
// just stepped spin for a while before they sleep (OpenBLAS's, OpenMP's, TBB's) and take cycles from the other
// program's step. (0.3 s changed nothing measurable on the 2-vCPU machine of docs/performance.md: off by default.)
// With `probe`, an sgemm is timed after each PyTorch step, for the FLOP-rate fractions of LockstepResult.
LockstepResult lockstep(const std::string& mode, const std::string& torch_mode_name, const std::string& torch_ref,
                        const std::string& torch_eval, int threads, int peer_threads, int steps, double settle,
                        SgemmProbe* probe) {
  set_num_threads(threads);
  ModeRunner runner(mode);
  LockstepPeer peer(torch_ref, torch_eval, LINFUSE_BENCH_DIR "/torch_lockstep.py", torch_mode_name, peer_threads, steps);
  auto pause = [settle] {
    if (settle > 0) std::this_thread::sleep_for(std::chrono::duration<double>(settle));
  };
  std::vector<double> ours, ours_cpu, theirs, sgemm;
  uint64_t flops0 = kernels::matmul_flops();
  const Alternation pairs = alternate(
      steps,
      [&] {
        pause();
        auto [wall, cpu] = runner.step();
        ours.push_back(wall);
        ours_cpu.push_back(cpu);
        return wall;
      },
      [&] {
        pause();
        const double seconds = peer.step();
        if (seconds <= 0) throw std::runtime_error("the PyTorch peer of mode " + mode + " stopped (see its error above)");
        theirs.push_back(seconds);
        if (probe) sgemm.push_back(probe->seconds(threads));
        return seconds;
      });
  LockstepResult r;
  r.flops = double(kernels::matmul_flops() - flops0) / steps;
  if (probe) {   // per pair: (flops / ours) / (sgemm flops / sgemm seconds), and (flops at the sgemm's rate) / theirs
    std::vector<double> of_sgemm, floor;
    for (size_t i = 0; i < sgemm.size(); ++i) {
      const double sgemm_rate = probe->flops() / sgemm[i];
      of_sgemm.push_back(r.flops / ours[i] / sgemm_rate);
      floor.push_back(r.flops / sgemm_rate / theirs[i]);
    }
    r.of_sgemm = median(after_warm_up(of_sgemm));
    r.floor = median(after_warm_up(floor));
  }
  r.ours = pairs.a;
  r.ours_cpu = median(after_warm_up(ours_cpu));
  r.torch = pairs.b;
  r.ratio = pairs.ratio;
  r.ratio_q1 = pairs.ratio_q1;
  r.ratio_q3 = pairs.ratio_q3;
  auto summary = peer.summary();
  r.torch_peak_kb = summary["hwm_kb"];
  r.torch_cores = summary["cores"];
  return r;
}

std::string attention_option = "fused";   // --attention, handed to every child
std::string settle_option = "0";          // --settle, handed to every lockstep child
int sgemm_size = 2048;                    // --sgemm-size, likewise

// One mode in its own process (so its VmHWM is that mode's alone); with a PyTorch peer (its mode name, the paths of
// torch_ref.py and torch_eval.py), the two programs' steps in lockstep.
struct ModeResult {
  StepResult ours, torch;
  double ratio = 0, ratio_q1 = 0, ratio_q3 = 0, torch_cores = 0, of_sgemm = 0, floor = 0;   // with a peer
};
ModeResult linfuse_mode(const std::string& mode, int threads, int steps, const std::string& peer_mode,
                        const std::string& torch_ref, const std::string& torch_eval) {
  std::vector<std::string> command{self_exe(), "--child",     mode, "--threads", std::to_string(threads), "--steps",
                                   std::to_string(steps), "--attention", attention_option, "--last-block", last_block_option};
  if (!peer_mode.empty())
    command.insert(command.end(), {"--peer", peer_mode, "--torch", torch_ref, "--torch-eval", torch_eval, "--settle", settle_option,
                                   "--sgemm-size", std::to_string(sgemm_size)});
  auto f = fields(run_capture(command));
  if (!f.count("step_s")) throw std::runtime_error("benchmark child for mode " + mode + " failed");
  ModeResult r;
  r.ours = StepResult{f["step_s"], f["flops"], long(f["hwm_kb"]), f["cpu_s"]};
  if (f.count("torch_s")) {
    r.torch = StepResult{f["torch_s"], 0, long(f["torch_hwm_kb"]), 0};
    r.ratio = f["ratio"];
    r.ratio_q1 = f["ratio_q1"];
    r.ratio_q3 = f["ratio_q3"];
    r.torch_cores = f["torch_cores"];
    r.of_sgemm = f["of_sgemm"];
    r.floor = f["floor"];
  }
  return r;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// One mode at one thread count over the rounds: each field the median of the rounds (peak memory: the
// largest), and `ratio` the median of the rounds' own linfuse / PyTorch ratios, each round's the median ratio of
// its adjacent steps in lockstep (and its quartiles), so a ratio compares the two programs under the same seconds
// of the machine (single runs here move by 15-40% from minute to minute, for both programs alike).
struct Row {
  std::string mode;
  int threads;
  StepResult ours, torch;
  double sgemm;
  double ratio = 0;   // 0: no PyTorch peer
  double ratio_q1 = 0, ratio_q3 = 0, torch_cores = 0;
  double of_sgemm = 0, floor = 0;   // paired with an sgemm after each lockstep pair (LockstepResult); 0: none
  // linfuse's FLOP rate over the sgemm's: paired where measured, else against the rate measured before the rows
  double sgemm_fraction() const { return of_sgemm > 0 ? of_sgemm : sgemm > 0 ? ours.flops / ours.seconds / 1e9 / sgemm : 0; }
};

double median_of(const std::vector<StepResult>& runs, double StepResult::*field) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.*field);
  return median(v);
}

std::string quartiles(const Row& row) { return row.ratio ? fmt("%.2f", row.ratio_q1) + "-" + fmt("%.2f", row.ratio_q3) : "-"; }

StepResult combine(const std::vector<StepResult>& all) {
  std::vector<StepResult> runs;   // a PyTorch run that failed (no step time) leaves its round out
  for (const auto& run : all)
    if (run.seconds > 0) runs.push_back(run);
  StepResult r;
  if (runs.empty()) return r;
  r.seconds = median_of(runs, &StepResult::seconds);
  r.flops = runs.front().flops;   // exact and the same in every round
  r.cpu_seconds = median_of(runs, &StepResult::cpu_seconds);
  for (const auto& run : runs) r.peak_kb = std::max(r.peak_kb, run.peak_kb);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  pin_blas_core(argv);   // OpenBLAS on the kernel linfuse runs on (tensor/blas_kernel.h); PyTorch inherits it
  cxxopts::Options options("train_step_bench",
                           "One training step (and evaluation) of the reference workload per fine-tuning mode, vs PyTorch.");
  options.add_options()("threads", "thread counts", cxxopts::value<std::vector<int>>()->default_value("1,2"))(
      "steps", "steps per mode, PyTorch too (the first 2 are warm-up)", cxxopts::value<int>()->default_value("8"))(
      "rounds", "rounds of each linfuse / PyTorch pair (run back to back, order alternating); the table shows medians",
      cxxopts::value<int>()->default_value("1"))(
      "modes", "modes",
      cxxopts::value<std::vector<std::string>>()->default_value("full,lora,l-lora,l-lora-local,linear-full,eval,eval-l-lora"))(
      "torch", "path of torch_ref.py (empty or missing: skip PyTorch)", cxxopts::value<std::string>()->default_value(""))(
      "torch-eval", "path of bench/torch_eval.py (default: next to this source)",
      cxxopts::value<std::string>()->default_value(LINFUSE_BENCH_DIR "/torch_eval.py"))(
      "sgemm-size", "size of the square sgemm", cxxopts::value<int>()->default_value("2048"))(
      "markdown", "also write the table as Markdown to this file", cxxopts::value<std::string>()->default_value(""))(
      "profile", "run one mode in this process only (for perf/callgrind)", cxxopts::value<std::string>()->default_value(""))(
      "attention", "how the model computes attention: fused (default), composed (the separate ops it replaced) or none "
      "(context = q + k + v, to isolate attention's share of the step)", cxxopts::value<std::string>()->default_value("fused"))(
      "last-block", "what the last block computes: full (every token, as torch_ref.py; the default) or class-token (the "
      "class token's row after k and v: what nn::CLIPVisionTransformer::pooled_output computes; its PyTorch peer is "
      "bench/torch_ref_class_token.py)", cxxopts::value<std::string>()->default_value("full"))(
      "interleave", "with --profile MODE: steps of two variants alternating in this process, A the mode as given: "
      "residual (B without the residual adds fused into o's and fc2's products), mode:OTHER (B another mode), "
      "threads:N (B at N threads), isa:avx2|avx512 (B with every kernel on that path), zero-b (B computing LoRA's terms "
      "through a zero B), class-token (A the last block for the class token only, B every token)", cxxopts::value<std::string>()->default_value(""))(
      "child", "internal: run one mode and print its result", cxxopts::value<std::string>()->default_value(""))(
      "peer", "internal, with --child: PyTorch's name of the mode, run in lockstep", cxxopts::value<std::string>()->default_value(""))(
      "peer-threads", "internal, with --peer: PyTorch's thread count (default: linfuse's)", cxxopts::value<int>()->default_value("0"))(
      "settle", "seconds each program of a lockstep pauses before its step, for the other's idle threads to stop spinning "
      "(at 2 threads 0.3 s changed nothing measurable here)", cxxopts::value<double>()->default_value("0"))(
      "sgemm-child", "internal: time the sgemm and print its rate")("h,help", "help");
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  int steps = std::max(3, args["steps"].as<int>());
  attention_option = args["attention"].as<std::string>();
  settle_option = fmt("%g", args["settle"].as<double>());
  sgemm_size = args["sgemm-size"].as<int>();
  if (attention_option != "fused" && attention_option != "composed" && attention_option != "none")
    throw std::invalid_argument("--attention must be fused, composed or none, got '" + attention_option + "'");
  bench::attention_path = attention_option == "composed" ? bench::AttentionPath::Composed
                          : attention_option == "none"   ? bench::AttentionPath::None
                                                         : bench::AttentionPath::Fused;
  last_block_option = args["last-block"].as<std::string>();
  if (last_block_option != "full" && last_block_option != "class-token")
    throw std::invalid_argument("--last-block must be full or class-token, got '" + last_block_option + "'");
  bench::class_token_last_block = last_block_option == "class-token";
  int rounds = std::max(1, args["rounds"].as<int>());
  auto thread_counts = args["threads"].as<std::vector<int>>();
  for (const char* opt : {"profile", "child"}) {
    std::string mode = args[opt].as<std::string>();
    if (mode.empty()) continue;
    set_num_threads(thread_counts[0]);
    if (const std::string what = args["interleave"].as<std::string>(); !what.empty()) {
      const Alternation r = interleave(mode, thread_counts[0], steps, what);
      std::printf("%s, %s: A %.5f s, B %.5f s (medians); A / B of adjacent steps: median %.4f, quartiles %.4f-%.4f; A faster "
                  "in %ld of %zu\n",
                  mode.c_str(), what.c_str(), r.a, r.b, r.ratio, r.ratio_q1, r.ratio_q3, r.a_faster, r.pairs);
      std::printf("a_s=%.5f b_s=%.5f ratio=%.5f ratio_q1=%.5f ratio_q3=%.5f\n", r.a, r.b, r.ratio, r.ratio_q1, r.ratio_q3);
      return 0;
    }
    if (const std::string peer = args["peer"].as<std::string>(); !peer.empty()) {
      const double settle = args["settle"].as<double>();
      const int peer_threads = args["peer-threads"].as<int>() > 0 ? args["peer-threads"].as<int>() : thread_counts[0];
      // The probe's operands and OpenBLAS's buffers stay resident from before the first step to the end: the peak
      // is measured from there (reset_peak_rss), less what they added, so it is the steps' alone.
      const long rss_before_probe = vm_rss_kb();
      SgemmProbe probe(args["sgemm-size"].as<int>());
      probe.seconds(thread_counts[0]);
      const long probe_kb = vm_rss_kb() - rss_before_probe;
      reset_peak_rss();
      const LockstepResult r = lockstep(mode, peer, args["torch"].as<std::string>(), args["torch-eval"].as<std::string>(),
                                        thread_counts[0], peer_threads, steps, settle, &probe);
      std::printf("%s step_s=%.5f cpu_s=%.5f flops=%.0f hwm_kb=%ld torch_s=%.5f torch_hwm_kb=%.0f torch_cores=%.3f ratio=%.5f "
                  "ratio_q1=%.5f ratio_q3=%.5f of_sgemm=%.5f floor=%.5f\n",
                  mode.c_str(), r.ours, r.ours_cpu, r.flops, vm_hwm_kb() - probe_kb, r.torch, r.torch_peak_kb,
                  r.torch_cores, r.ratio, r.ratio_q1, r.ratio_q3, r.of_sgemm, r.floor);
      return 0;
    }
    StepResult r = run_steps(mode, steps);
    std::printf("%s step_s=%.5f cpu_s=%.5f flops=%.0f hwm_kb=%ld\n", mode.c_str(), r.seconds, r.cpu_seconds, r.flops, r.peak_kb);
    return 0;
  }
  if (args.count("sgemm-child")) {
    std::printf("sgemm_gflops=%.3f\n", sgemm_gflops(thread_counts[0], args["sgemm-size"].as<int>()));
    return 0;
  }

  std::string torch_ref = args["torch"].as<std::string>(), torch_eval = args["torch-eval"].as<std::string>();
  bool have_torch = !torch_ref.empty() && access(torch_ref.c_str(), R_OK) == 0;
  bool have_torch_eval = have_torch && access(torch_eval.c_str(), R_OK) == 0;
  if (!torch_ref.empty() && !have_torch) std::fprintf(stderr, "note: %s not found, PyTorch columns left empty\n", torch_ref.c_str());
  std::map<std::string, std::string> torch_name{{"full", "fft"},         {"lora", "lora"}, {"l-lora", "llora"},
                                                {"linear-full", "lfft"}, {"eval", "eval"}, {"eval-l-lora", "eval-llora"}};
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::string machine = cpu_model() + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores";
  std::string load_start = load_average();
  std::printf("%s\n", build_summary().c_str());
  std::printf("reference workload: ViT 28x28/4, width 128, 4 layers, 4 heads, MLP 512, batch 64, LoRA r=8 on q,k,v,o,fc1,fc2, AdamW; "
              "attention %s\n", attention_option.c_str());
  std::printf("%s; %s; load average at start %s; median of %d steps after 2 warm-up; %d round(s), medians\n", date,
              machine.c_str(), load_start.c_str(), steps - 2, rounds);

  std::vector<Row> rows;
  std::map<int, double> sgemm;
  const char* head = "%-13s %3s %9s %9s %7s %11s %9s %9s %7s %9s %9s %6s\n";
  for (int threads : thread_counts) {
    std::vector<double> rates;
    for (int round = 0; round < rounds; ++round) {
      auto f = fields(run_capture({self_exe(), "--sgemm-child", "--threads", std::to_string(threads), "--sgemm-size",
                                   std::to_string(args["sgemm-size"].as<int>())}));
      rates.push_back(f.count("sgemm_gflops") ? f["sgemm_gflops"] : 0);
    }
    sgemm[threads] = median(rates);
    std::printf("\nthreads %d: OpenBLAS sgemm %d^3 on %d thread(s): %.1f GFLOP/s\n", threads, args["sgemm-size"].as<int>(),
                threads, sgemm[threads]);
    std::printf(head, "mode", "thr", "step s", "torch s", "ratio", "quartiles", "GFLOP", "GFLOP/s", "%sgemm", "RSS MB", "torch MB",
                "cores");
    std::fflush(stdout);
    for (const auto& mode : args["modes"].as<std::vector<std::string>>()) {
      bool torch_here = torch_name.count(mode) && (is_eval(mode) ? have_torch_eval : have_torch);
      std::vector<StepResult> ours, torch;
      std::vector<double> ratios, quartile1, quartile3, torch_cores, of_sgemm, floors;
      for (int round = 0; round < rounds; ++round) {
        // With a peer, each round times the two programs' steps alternating one by one (lockstep, in one child).
        ModeResult m = linfuse_mode(mode, threads, steps, torch_here ? torch_name[mode] : "", torch_ref, torch_eval);
        ours.push_back(m.ours);
        if (!torch_here) continue;
        torch.push_back(m.torch);
        ratios.push_back(m.ratio);
        quartile1.push_back(m.ratio_q1);
        quartile3.push_back(m.ratio_q3);
        torch_cores.push_back(m.torch_cores);
        of_sgemm.push_back(m.of_sgemm);
        floors.push_back(m.floor);
      }
      Row row{mode, threads, combine(ours), combine(torch), sgemm[threads]};
      if (!ratios.empty()) {
        row.ratio = median(ratios);
        row.ratio_q1 = median(quartile1);
        row.ratio_q3 = median(quartile3);
        row.torch_cores = median(torch_cores);
        row.of_sgemm = median(of_sgemm);
        row.floor = median(floors);
      }
      rows.push_back(row);
      const auto& r = row.ours;
      double rate = r.flops / r.seconds / 1e9;
      std::printf(head, mode.c_str(), std::to_string(threads).c_str(), fmt("%.4f", r.seconds).c_str(),
                  row.torch.seconds ? fmt("%.4f", row.torch.seconds).c_str() : "-",
                  row.ratio ? fmt("%.2f", row.ratio).c_str() : "-", quartiles(row).c_str(), fmt("%.2f", r.flops / 1e9).c_str(),
                  fmt("%.1f", rate).c_str(), row.sgemm_fraction() ? fmt("%.0f%%", 100 * row.sgemm_fraction()).c_str() : "-",
                  fmt("%.0f", r.peak_kb / 1024.0).c_str(), row.torch.peak_kb ? fmt("%.0f", row.torch.peak_kb / 1024.0).c_str() : "-",
                  row.torch_cores ? fmt("%.2f", row.torch_cores).c_str() : "-");
      std::fflush(stdout);
    }
  }

  // The targets of the performance issue.
  auto find = [&](const std::string& mode, int threads) -> const Row* {
    for (const auto& r : rows)
      if (r.mode == mode && r.threads == threads) return &r;
    return nullptr;
  };
  struct Target {
    std::string what;
    double value;
    double bound;
    bool at_most;
    bool known;
    // For a ratio against PyTorch: the ratio a step doing this mode's FLOPs at the sgemm rate would have (every
    // product at a large square's speed, every elementwise pass free). A bound below it asks for more than the
    // machine's sgemm rate: only fewer FLOPs than PyTorch's could meet it. 0: not a ratio target.
    double at_sgemm_rate = 0;
  };
  std::vector<Target> targets;
  auto ratio_target = [&](const std::string& what, const std::string& mode, double bound) {
    const Row* r = find(mode, 1);
    bool known = r && r->ratio > 0;
    Target t{what, known ? r->ratio : 0, bound, true, known};
    if (known) t.at_sgemm_rate = r->floor > 0 ? r->floor : r->sgemm > 0 ? r->ours.flops / 1e9 / r->sgemm / r->torch.seconds : 0;
    targets.push_back(t);
  };
  auto verdict_of = [](const Target& t) -> std::string {
    if (!t.known) return "n/a";
    if (t.at_most ? t.value <= t.bound : t.value >= t.bound) return "met";
    return t.at_sgemm_rate > t.bound ? "not met (below the sgemm-rate floor)" : "not met";
  };
  ratio_target("full step / PyTorch fft, 1 thread", "full", 0.9);
  ratio_target("lora step / PyTorch lora, 1 thread", "lora", 0.6);
  ratio_target("l-lora step / PyTorch functorch llora, 1 thread", "l-lora", 0.4);
  // The targets that compare linfuse with itself, or across thread counts, from steps alternating in one process (or
  // in lockstep), as the ratios above: the median over the rounds of the median ratio of adjacent steps.
  auto paired_ratio = [&](const std::vector<std::string>& extra, const std::string& mode, int threads) {
    std::vector<double> ratios;
    for (int round = 0; round < rounds; ++round) {
      std::vector<std::string> command{self_exe(),           "--child",   mode, "--threads", std::to_string(threads), "--steps",
                                       std::to_string(steps), "--attention", attention_option};
      command.insert(command.end(), extra.begin(), extra.end());
      auto f = fields(run_capture(command));
      if (f.count("ratio")) ratios.push_back(f["ratio"]);
    }
    return ratios.empty() ? 0.0 : median(ratios);
  };
  auto has_mode = [&](const std::string& mode) {
    const auto modes = args["modes"].as<std::vector<std::string>>();
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  };
  const bool have_1_and_2 = std::count(thread_counts.begin(), thread_counts.end(), 1) && std::count(thread_counts.begin(), thread_counts.end(), 2);
  {
    const double r = has_mode("lora") && has_mode("l-lora") ? paired_ratio({"--interleave", "mode:lora"}, "l-lora", 1) : 0;
    targets.push_back({"l-lora / lora step, 1 thread (alternating)", r, 1.5, true, r > 0});
  }
  {
    const Row* r = find("full", 1);
    const double fraction = r ? r->sgemm_fraction() : 0;
    targets.push_back({std::string("full step GFLOP/s / sgemm GFLOP/s, 1 thread") + (r && r->of_sgemm > 0 ? " (paired)" : ""), fraction,
                       0.7, false, fraction > 0});
  }
  {
    // The issue's 2-thread target compares with PyTorch at its best thread count (on this machine PyTorch's
    // step is fastest at 1 thread): linfuse at 2 threads in lockstep with PyTorch at that count.
    const Row *ours2 = find("full", 2), *t1 = find("full", 1);
    const Row* best = nullptr;
    for (const Row* r : {t1, ours2})
      if (r && r->torch.seconds > 0 && (!best || r->torch.seconds < best->torch.seconds)) best = r;
    const double r = ours2 && best ? paired_ratio({"--peer", "fft", "--peer-threads", std::to_string(best->threads), "--torch", torch_ref,
                                                   "--torch-eval", torch_eval, "--settle", settle_option},
                                                  "full", 2)
                                   : 0;
    targets.push_back({"full step, 2 threads / PyTorch's best thread count (" + std::to_string(best ? best->threads : 0) + ")", r, 0.6,
                       true, r > 0});
  }
  {
    const double r = have_1_and_2 && has_mode("full") ? paired_ratio({"--interleave", "threads:2"}, "full", 1) : 0;
    targets.push_back({"full step speed-up 1 -> 2 threads (alternating)", r, 1.6, false, r > 0});
  }
  {
    double worst = 0;
    std::string which;
    for (const auto& r : rows)
      if (r.torch.peak_kb > 0 && double(r.ours.peak_kb) / r.torch.peak_kb > worst) {
        worst = double(r.ours.peak_kb) / r.torch.peak_kb;
        which = r.mode + "@" + std::to_string(r.threads);
      }
    targets.push_back({"peak RSS / PyTorch's (worst mode: " + which + ")", worst, 1.0, true, worst > 0});
  }
  std::printf("\ntargets (load average at end %s):\n", load_average().c_str());
  for (const auto& t : targets) {
    const std::string floor = t.at_sgemm_rate > 0 ? fmt("; %.2f at the sgemm rate", t.at_sgemm_rate) : "";
    std::printf("  %-58s %6.2f  (%s %.2f%s)  %s\n", t.what.c_str(), t.value, t.at_most ? "<=" : ">=", t.bound, floor.c_str(),
                verdict_of(t).c_str());
  }

  std::string md_path = args["markdown"].as<std::string>();
  if (!md_path.empty()) {
    std::ostringstream md;
    md << "Measured " << date << " on " << machine << " (load average " << load_start
       << " at start; 2 or more means another job shared the cores); median of " << steps - 2
       << " steps after 2 warm-up; each mode in its own process, its steps alternating one by one with PyTorch's (lockstep: "
       << "bench/torch_lockstep.py, PyTorch on as many cores as linfuse); " << rounds
       << " round(s): times are medians over the rounds, a ratio is the median over the rounds of the median ratio of adjacent "
          "steps (quartiles of those ratios beside it); PyTorch cores: its steps' CPU time / wall time. "
       << "Build: " << build_summary() << "; attention " << attention_option << ".\n\n";
    md << "| mode | threads | linfuse s | PyTorch s | ratio | quartiles | GFLOP/step | GFLOP/s | % of sgemm | peak RSS MB | PyTorch MB | "
          "PyTorch cores |\n";
    md << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& row : rows) {
      const auto& r = row.ours;
      double rate = r.flops / r.seconds / 1e9;
      md << "| " << row.mode << " | " << row.threads << " | " << fmt("%.4f", r.seconds) << " | "
         << (row.torch.seconds ? fmt("%.4f", row.torch.seconds) : "-") << " | "
         << (row.ratio ? fmt("%.2f", row.ratio) : "-") << " | " << quartiles(row) << " | " << fmt("%.2f", r.flops / 1e9) << " | "
         << fmt("%.1f", rate) << " | " << (row.sgemm_fraction() ? fmt("%.0f%%", 100 * row.sgemm_fraction()) : "-") << " | "
         << fmt("%.0f", r.peak_kb / 1024.0) << " | " << (row.torch.peak_kb ? fmt("%.0f", row.torch.peak_kb / 1024.0) : "-")
         << " | " << (row.torch_cores ? fmt("%.2f", row.torch_cores) : "-") << " |\n";
    }
    md << "\nOpenBLAS sgemm " << args["sgemm-size"].as<int>() << "^3:";
    for (auto& [t, rate] : sgemm) md << " " << fmt("%.1f", rate) << " GFLOP/s on " << t << " thread(s);";
    md << "\n\n| target | value | bound | at the sgemm rate | verdict |\n|---|---|---|---|---|\n";
    for (const auto& t : targets)
      md << "| " << t.what << " | " << fmt("%.2f", t.value) << " | " << (t.at_most ? "<= " : ">= ") << fmt("%.2f", t.bound) << " | "
         << (t.at_sgemm_rate > 0 ? fmt("%.2f", t.at_sgemm_rate) : "-") << " | " << verdict_of(t) << " |\n";
    md << "\n\"At the sgemm rate\": the ratio to PyTorch of a step that ran all its FLOPs at the sgemm rate (every product as "
          "fast as a large square, every other pass free); a bound below it cannot be met by speed alone. Where PyTorch runs "
          "the mode, it and \"% of sgemm\" come from an sgemm timed after each lockstep pair (medians over the pairs), so "
          "the step times and the sgemm's are of the same seconds; the sgemm rates above were measured before the rows.\n";
    write_file_atomic(md_path, md.str());
    std::printf("\nMarkdown table written to %s\n", md_path.c_str());
  }
}
