// nn/temporary_files.h: temporaries deleted when the process is interrupted, and leftovers of dead processes deleted
// by the next writer. Interruptions are real signals sent to a forked child.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "io_test_helpers.h"
#include "nn/atomic_file.h"
#include "nn/temporary_files.h"

using namespace linfuse;
using namespace linfuse::testing;
namespace fs = std::filesystem;

namespace {

// Runs `prepare` in a forked child (with the default action for SIGINT, SIGTERM and SIGHUP, which Catch2 replaces in
// this process), waits until it has prepared, sends it `signal_number` and returns how it ended.
template <class Prepare>
int interrupted_child(int signal_number, Prepare prepare) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
    prepare();
    (void)!::write(ready[1], "r", 1);
    for (;;) ::pause();   // until the signal
  }
  ::close(ready[1]);
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  ::kill(child, signal_number);
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

// The pid of a process that has ended.
pid_t dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

}  // namespace

// Regression (issue 18, finding 6): an interrupted merge left its hidden ".OUT.tmp.PID.N" (52 MB seen) beside the
// output for good.
TEST_CASE("an AtomicFile's temporary is deleted when the process is interrupted, and it still ends by the signal",
          "[atomic][temporary_files]") {
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
    INFO("signal " << signal_number);
    ScratchDir dir("atomic_signal");
    int status = interrupted_child(signal_number, [&] {
      static AtomicFile* file = new AtomicFile(dir.file("merged.safetensors"));   // alive until the signal
      file->write("half of a checkpoint");
    });
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == signal_number);
    CHECK(dir.listing().empty());
  }
}

TEST_CASE("a registered temporary folder is deleted with its files on interruption", "[temporary_files]") {
  ScratchDir dir("folder_signal");
  const std::string staged = dir.file(".merged_lora.tmp.1");
  int status = interrupted_child(SIGTERM, [&] {
    new InterruptCleanup(staged, /*is_folder=*/true);   // registered until the signal
    fs::create_directory(staged);
    write_bytes(staged + "/adapter_config.json", "{}");
    write_bytes(staged + "/adapter_model.safetensors", "bytes");
  });
  CHECK(WIFSIGNALED(status));
  CHECK(dir.listing().empty());
}

TEST_CASE("a released temporary is not deleted on interruption", "[temporary_files]") {
  ScratchDir dir("released_signal");
  const std::string kept = dir.file("kept.txt");
  interrupted_child(SIGINT, [&] {
    InterruptCleanup cleanup(kept, false);
    write_bytes(kept, "renamed into place, say");
    cleanup.release();
  });
  CHECK(dir.listing() == std::vector<std::string>{"kept.txt"});
}

// Regression (issue 18, finding 6): no later run removed the temporaries of a killed merge.
TEST_CASE("the next writer of a target deletes the temporaries of dead processes and keeps those of live ones",
          "[atomic][temporary_files]") {
  ScratchDir dir("stale");
  const std::string target = dir.file("merged.safetensors");
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getppid());
  write_bytes(dir.file(".merged.safetensors.tmp." + dead + ".0"), "left by SIGKILL");
  fs::create_directory(dir.file(".merged.safetensors.tmp." + dead));   // a staged folder
  write_bytes(dir.file(".merged.safetensors.tmp." + dead) + "/adapter_model.safetensors", "x");
  write_bytes(dir.file(".merged.safetensors.tmp." + live + ".3"), "another run, still writing");
  write_bytes(dir.file(".other.safetensors.tmp." + dead + ".0"), "another target's");
  write_bytes(dir.file(".merged.safetensors.tmp.notapid"), "not a temporary name");
  write_file_atomic(target, "new");
  CHECK(dir.listing() == std::vector<std::string>{".merged.safetensors.tmp." + live + ".3", ".merged.safetensors.tmp.notapid",
                                                  ".other.safetensors.tmp." + dead + ".0", "merged.safetensors"});
}
