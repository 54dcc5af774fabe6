// Peak memory and time of `linfuse merge` on checkpoints far larger than its memory budget.
//
// Writes a base and N fine-tuned float32 checkpoints (default 1 + 3 files of ~500 MB: seven 4096x4096 matrices, one
// 3072x4096 and small vectors each, ~2 GB in all) into a temporary folder, runs the built `linfuse merge` binary on
// them as a child process for each method, and prints the child's wall time and peak resident set (wait4's
// ru_maxrss: every page the process touched, file-backed pages of its mappings included; the inputs are written by a
// forked child so that this process stays small, since Linux carries ru_maxrss over fork and exec -- the `--help`
// baseline shows the floor). Target: < 600 MB. The temporary folder is deleted at the end (--keep-files keeps it).
//
// Recorded (2026-11-29, 2-core shared machine under load, 4 x 500 MB = 2000 MB of float32 inputs, largest tensor
// 67 MB): baseline 10 MB; task_arithmetic 120 MB peak RSS (9.5 s, 1 pass), ties 137 MB (36 s, 4 passes: two radix
// digits, the sign majority, the write), dare_ties 161 MB (102 s: the Philox masks are drawn again in every pass).
//
// With --tensors N the checkpoints hold N tensors of 4 floats each instead: the merge's cost per tensor, which must
// grow linearly with N. Recorded (2026-12-05, same machine, base + 2 models, times of task_arithmetic / ties):
//   before the fix (nlohmann's parse callback rescanned the header object after each tensor: quadratic)
//     5,000 tensors 0.6 s; 10,000 2.8 s; 20,000 28 s; 200,000 with ties not done in 120 s
//   after  5,000 0.09 s; 10,000 0.22 s; 20,000 0.61 / 0.93 s; 80,000 2.5 / 4.0 s; 200,000 ties 9.0 s (462 MB)
//
//   build/merge_memory_bench [--file-mb 500] [--models 3] [--methods task_arithmetic,ties] [--dir /tmp]
//   build/merge_memory_bench --tensors 20000 --models 2 --methods task_arithmetic,ties
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "nn/safetensors.h"
#include "tensor/random.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct ChildRun {
  int exit_code = -1;
  double seconds = 0.0, peak_rss_mb = 0.0;
};

// Runs argv as a child process (stdout/stderr inherited) and measures it alone (wait4 gives that child's rusage).
// quiet: the child's stdout goes to /dev/null.
ChildRun run_child(const std::vector<std::string>& args, bool quiet = false) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ChildRun run;
  auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return run;
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.peak_rss_mb = double(usage.ru_maxrss) / 1024.0;
  return run;
}

struct Layout {
  std::vector<std::pair<std::string, linfuse::Shape>> tensors;
  double megabytes() const {
    double bytes = 0;
    for (const auto& [name, shape] : tensors) bytes += 4.0 * double(linfuse::shape_numel(shape));
    return bytes / 1e6;
  }
};

// About file_mb per file: 4096x4096 blocks, a last partial block, a few small vectors.
Layout make_layout(double file_mb) {
  Layout layout;
  const int64_t width = 4096;
  double block_mb = 4.0 * double(width * width) / 1e6;
  int blocks = int(file_mb / block_mb);
  for (int i = 0; i < blocks; ++i) {
    layout.tensors.push_back({"layers." + std::to_string(i) + ".weight", {width, width}});
    layout.tensors.push_back({"layers." + std::to_string(i) + ".bias", {width}});
  }
  int64_t rest_rows = int64_t((file_mb - layout.megabytes()) * 1e6 / 4.0 / double(width));
  if (rest_rows > 0) layout.tensors.push_back({"head.weight", {rest_rows, width}});
  layout.tensors.push_back({"norm.weight", {width}});
  return layout;
}

// N tensors of 4 floats: a header of N entries, almost no data.
Layout make_tiny_layout(int64_t count) {
  Layout layout;
  for (int64_t i = 0; i < count; ++i) layout.tensors.push_back({"layers." + std::to_string(i) + ".weight", {4}});
  return layout;
}

// Writes one checkpoint tensor by tensor: base values from seed 0, plus `noise` x N(0,1) from the model's own seed.
void write_checkpoint(const std::string& path, const Layout& layout, uint64_t model_seed, double noise) {
  linfuse::SafetensorsWriter writer(path, {{"format", "pt"}});
  for (const auto& [name, shape] : layout.tensors) writer.declare(name, linfuse::SafetensorsDType::F32, shape);
  linfuse::Generator base_generator(0), model_generator(model_seed);
  for (const auto& [name, shape] : layout.tensors) {
    linfuse::Tensor values = base_generator.uniform(shape, -0.05, 0.05);
    if (noise > 0) {
      linfuse::Tensor delta = model_generator.normal(shape, 0.0, noise);
      float* v = values.data<float>();
      const float* d = delta.data<float>();
      for (int64_t i = 0; i < values.numel(); ++i) v[i] += d[i];
    }
    writer.write(name, values);
  }
  writer.finish();
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("merge_memory_bench", "Peak memory and time of `linfuse merge` on ~2 GB of checkpoints");
  options.add_options()("file-mb", "size of each checkpoint in MB", cxxopts::value<double>()->default_value("500"))(
      "models", "fine-tuned checkpoints (plus one base)", cxxopts::value<int>()->default_value("3"))(
      "methods", "methods to run (comma-separated)",
      cxxopts::value<std::vector<std::string>>()->default_value("task_arithmetic,ties,dare_ties"))(
      "tensors", "instead of --file-mb: this many tensors of 4 floats each (time per tensor)",
      cxxopts::value<int64_t>()->default_value("0"))(
      "dir", "where the temporary folder goes", cxxopts::value<std::string>()->default_value("/tmp"))(
      "linfuse", "the linfuse binary (default: next to this one)", cxxopts::value<std::string>()->default_value(""))(
      "keep-files", "keep the generated checkpoints")("h,help", "show this help");
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  std::string linfuse = args["linfuse"].as<std::string>();
  if (linfuse.empty()) linfuse = (fs::read_symlink("/proc/self/exe").parent_path() / "linfuse").string();
  if (!fs::exists(linfuse)) {
    std::fprintf(stderr, "merge_memory_bench: no linfuse binary at %s: build the linfuse target first\n", linfuse.c_str());
    return 1;
  }
  int models = args["models"].as<int>();
  int64_t tiny_tensors = args["tensors"].as<int64_t>();
  Layout layout = tiny_tensors > 0 ? make_tiny_layout(tiny_tensors) : make_layout(args["file-mb"].as<double>());
  double input_mb = layout.megabytes() * (models + 1);
  double largest_mb = 0;
  for (const auto& [name, shape] : layout.tensors) largest_mb = std::max(largest_mb, 4.0 * double(linfuse::shape_numel(shape)) / 1e6);

  // Disk: inputs plus one output, with a margin.
  std::string dir = args["dir"].as<std::string>();
  struct statvfs disk {};
  statvfs(dir.c_str(), &disk);
  double free_mb = double(disk.f_bavail) * double(disk.f_frsize) / 1e6;
  double needed_mb = input_mb + layout.megabytes() * 1.2;
  std::printf("inputs: %d checkpoints of %.0f MB (%zu tensors, largest %.0f MB) = %.0f MB; %.0f MB free in %s\n",
              models + 1, layout.megabytes(), layout.tensors.size(), largest_mb, input_mb, free_mb, dir.c_str());
  if (free_mb < needed_mb) {
    std::fprintf(stderr, "merge_memory_bench: needs %.0f MB free in %s\n", needed_mb, dir.c_str());
    return 1;
  }
  std::string pattern = dir + "/linfuse_merge_bench_XXXXXX";
  std::string folder = mkdtemp(pattern.data());
  struct Cleanup {
    std::string folder;
    bool keep;
    ~Cleanup() {
      if (!keep) fs::remove_all(folder);
    }
  } cleanup{folder, args.count("keep-files") > 0};

  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> model_paths;
  for (int t = 0; t < models; ++t) model_paths.push_back(folder + "/model" + std::to_string(t) + ".safetensors");
  // The inputs are written by a forked child, so this process stays small: Linux carries a process's peak RSS
  // (ru_maxrss) over fork and exec, and a merge spawned from a process that had grown to a few hundred MB while
  // writing would report that process's peak instead of its own.
  std::fflush(stdout);
  pid_t writer = fork();
  if (writer < 0) {
    std::perror("merge_memory_bench: fork");
    return 1;
  }
  if (writer == 0) {
    int code = 0;
    try {
      write_checkpoint(folder + "/base.safetensors", layout, 0, 0.0);
      for (int t = 0; t < models; ++t) write_checkpoint(model_paths[size_t(t)], layout, uint64_t(t + 1), 0.001);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "merge_memory_bench: writing the inputs failed: %s\n", e.what());
      code = 1;
    }
    std::fflush(stderr);
    _exit(code);
  }
  int writer_status = 0;
  waitpid(writer, &writer_status, 0);
  if (!WIFEXITED(writer_status) || WEXITSTATUS(writer_status) != 0) return 1;
  double on_disk_mb = 0;
  for (const auto& item : fs::directory_iterator(folder)) on_disk_mb += double(fs::file_size(item.path())) / 1e6;
  std::printf("wrote the inputs in %.1f s: %.0f MB on disk\n\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), on_disk_mb);
  std::fflush(stdout);

  std::fflush(stdout);
  ChildRun idle = run_child({linfuse, "merge", "--help"}, /*quiet=*/true);
  std::printf("baseline: `linfuse merge --help` peak RSS %.0f MB\n\n", idle.peak_rss_mb);
  std::printf("%-18s %10s %14s %8s\n", "method", "time (s)", "peak RSS (MB)", "status");
  bool all_ok = true;
  for (const auto& method : args["methods"].as<std::vector<std::string>>()) {
    std::vector<std::string> command = {linfuse, "merge", "--method", method, "--base", folder + "/base.safetensors", "--models"};
    command.insert(command.end(), model_paths.begin(), model_paths.end());
    command.insert(command.end(), {"--out", folder + "/merged.safetensors"});
    if (method == "dare_ties" || method == "dare") command.insert(command.end(), {"--drop", "0.5", "--seed", "1"});
    std::fflush(stdout);
    ChildRun run = run_child(command);
    bool ok = run.exit_code == 0 && run.peak_rss_mb < 600.0;
    all_ok = all_ok && ok;
    std::printf("%-18s %10.1f %14.0f %8s\n\n", method.c_str(), run.seconds, run.peak_rss_mb,
                run.exit_code != 0 ? "FAILED" : ok ? "ok" : ">600MB");
    fs::remove(folder + "/merged.safetensors");
  }
  std::printf("inputs %.0f MB; target peak RSS < 600 MB%s\n", input_mb, cleanup.keep ? ("; files kept in " + folder).c_str() : "");
  return all_ok ? 0 : 1;
}
