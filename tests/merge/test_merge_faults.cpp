// Fault injection on the built `linfuse merge` (issue 18): interrupted by SIGINT / SIGTERM, an input truncated while
// it is mapped, a FIFO given as an input. Each run is a child process; the promise checked is the one of --help and
// docs/reliability.md: the merge stops with a message (or by the signal), and neither an output nor a temporary file
// is left. The deterministic cases pause the merge at a known point with the test hook LINFUSE_TEST_PAUSE_MERGE
// (merge/merge_plan.h: the inputs are mapped and the temporary output exists), then act and let it go on.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "merge_tool_helpers.h"

extern char** environ;

using namespace linfuse;
using linfuse::testing::TempFolder;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A running `linfuse merge`, its stdout and stderr going to a file.
class MergeProcess {
 public:
  MergeProcess(const std::vector<std::string>& arguments, const std::string& log, const std::string& pause = "") {
    std::vector<std::string> argv_storage = {linfuse::testing::linfuse_binary(), "merge"};
    argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_storage;
    for (char** e = environ; *e; ++e) env_storage.push_back(*e);
    if (!pause.empty()) env_storage.push_back("LINFUSE_TEST_PAUSE_MERGE=" + pause);
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    // The child starts with the default disposition of every signal (Catch2 handles SIGINT and SIGTERM here).
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGBUS}) sigaddset(&defaults, s);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
    REQUIRE(posix_spawn(&pid_, argv[0], &actions, &attributes, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  ~MergeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  bool running() {
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0 || (last_status_ = status, pid_ = -1, false);
  }
  int last_status() const { return last_status_; }

 private:
  pid_t pid_ = -1;
  int last_status_ = 0;
};

// Waits (at most 60 s) until `path` exists.
bool wait_for(const std::string& path) {
  for (int i = 0; i < 6000; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A base and `models` fine-tuned checkpoints of `megabytes` each (float32), in `folder`.
std::vector<std::string> write_inputs(const TempFolder& folder, int models, double megabytes) {
  const int64_t rows = std::max<int64_t>(1, int64_t(megabytes * 1e6 / 4 / 1024));
  StateDict base;
  Generator generator(7);
  base.insert("layers.0.weight", generator.normal({rows, 1024}, 0.0, 0.05));
  base.insert("layers.0.bias", generator.normal({1024}, 0.0, 0.05));
  save_safetensors(folder / "base.safetensors", base);
  std::vector<std::string> paths;
  for (int t = 0; t < models; ++t) {
    paths.push_back(folder / ("model" + std::to_string(t) + ".safetensors"));
    save_safetensors(paths.back(), linfuse::testing::perturbed(base, generator, 0.01));
  }
  return paths;
}

std::vector<std::string> merge_arguments(const TempFolder& folder, const std::vector<std::string>& models,
                                         const std::string& method = "task_arithmetic") {
  std::vector<std::string> arguments = {"--method", method, "--base", folder / "base.safetensors", "--models"};
  arguments.insert(arguments.end(), models.begin(), models.end());
  arguments.insert(arguments.end(), {"--out", folder / "merged.safetensors"});
  return arguments;
}

// Names in `folder` that are the merge's: the output or a temporary of it.
std::vector<std::string> merge_leftovers(const TempFolder& folder) {
  std::vector<std::string> out;
  for (const auto& name : folder.listing())
    if (name.find("merged.safetensors") != std::string::npos) out.push_back(name);
  return out;
}

}  // namespace

// Regression (issue 18, finding 6): SIGINT or SIGTERM left a hidden ".merged.safetensors.tmp.PID.0" beside the output.
TEST_CASE("a merge interrupted by SIGINT or SIGTERM ends by the signal and leaves no temporary file", "[merge_faults]") {
  for (int signal_number : {SIGINT, SIGTERM}) {
    INFO("signal " << signal_number);
    TempFolder folder;
    std::vector<std::string> models = write_inputs(folder, 2, 4);
    const std::string pause = folder / "hook";
    MergeProcess merge(merge_arguments(folder, models), folder / "log", pause);
    REQUIRE(wait_for(pause + ".paused"));
    std::vector<std::string> during = merge_leftovers(folder);
    REQUIRE(during.size() == 1);   // the temporary output, nothing else yet
    CHECK(during[0].rfind(".merged.safetensors.tmp.", 0) == 0);
    ::kill(merge.pid(), signal_number);
    int status = merge.wait();
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == signal_number);
    CHECK(merge_leftovers(folder).empty());
  }
}

TEST_CASE("a merge interrupted while it writes leaves no temporary file either", "[merge_faults]") {
  // No pause: SIGINT as soon as the temporary output appears, in the middle of a TIES merge of 3 x 24 MB (several
  // passes). Should the merge win the race and finish first, it must have published its output and nothing else.
  TempFolder folder;
  std::vector<std::string> models = write_inputs(folder, 2, 24);
  MergeProcess merge(merge_arguments(folder, models, "ties"), folder / "log");
  bool signalled = false;
  for (int i = 0; i < 60000 && merge.running(); ++i) {
    std::vector<std::string> now = merge_leftovers(folder);
    if (!now.empty() && now[0].rfind(".merged.safetensors.tmp.", 0) == 0) {
      ::kill(merge.pid(), SIGINT);
      signalled = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  int status = signalled ? merge.wait() : merge.last_status();
  if (WIFSIGNALED(status)) {
    CHECK(WTERMSIG(status) == SIGINT);
    CHECK(merge_leftovers(folder).empty());
  } else {
    WARN("the merge finished before the signal arrived: " << slurp(folder / "log"));
    CHECK(merge_leftovers(folder) == std::vector<std::string>{"merged.safetensors"});
  }
}

// Regression (issue 18, finding 7): an input truncated while the merge read it (memory-mapped) killed it with SIGBUS,
// with no message and the temporary file left behind.
TEST_CASE("an input truncated while the merge reads it stops the merge with a message naming it; nothing is left",
          "[merge_faults]") {
  // Most of the file (the pages past the new end raise SIGBUS), and 8 bytes (inside the last page: read as zeros,
  // seen by the check before the output is published).
  for (bool most : {true, false}) {
    INFO((most ? "most of the file" : "the last 8 bytes"));
    TempFolder folder;
    std::vector<std::string> models = write_inputs(folder, 2, 4);
    const std::string pause = folder / "hook";
    MergeProcess merge(merge_arguments(folder, models), folder / "log", pause);
    REQUIRE(wait_for(pause + ".paused"));
    const uintmax_t size = fs::file_size(models[1]);
    fs::resize_file(models[1], most ? size / 3 : size - 8);
    std::ofstream(pause + ".resume") << "go";
    int status = merge.wait();
    std::string log = slurp(folder / "log");
    INFO(log);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(contains(log, models[1] + ": "));
    CHECK(contains(log, "truncated or rewritten in place while linfuse read it"));
    CHECK(merge_leftovers(folder).empty());
  }
}

// Regression (issue 18, finding 12): a FIFO as an input blocked the merge forever (`timeout` ends it if it still does).
TEST_CASE("a FIFO given as a merge input is refused at once", "[merge_faults]") {
  TempFolder folder;
  std::vector<std::string> models = write_inputs(folder, 1, 0.1);
  REQUIRE(::mkfifo((folder / "fifo.safetensors").c_str(), 0600) == 0);
  models.push_back(folder / "fifo.safetensors");
  std::string command = "timeout 30 " + linfuse::testing::linfuse_binary() + " merge";
  for (const auto& a : merge_arguments(folder, models)) command += " '" + a + "'";
  auto run = linfuse::testing::run_command(command);
  INFO(run.output);
  CHECK(run.exit_code == 1);   // 124 if it blocked until timeout
  CHECK(contains(run.output, folder / "fifo.safetensors" + ": is a FIFO, not a regular file"));
  CHECK(merge_leftovers(folder).empty());

  // inside a PEFT adapter folder: adapter_config.json as a FIFO
  fs::create_directory(folder / "adapter");
  REQUIRE(::mkfifo((folder / "adapter/adapter_config.json").c_str(), 0600) == 0);
  run = linfuse::testing::run_command("timeout 30 " + linfuse::testing::linfuse_binary() + " merge --method simple_average --models '" +
                                      folder / "adapter" + "' '" + folder / "adapter" + "' --out '" + folder / "merged_adapter" + "'");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(contains(run.output, "adapter_config.json is a FIFO, not a regular file"));
}
