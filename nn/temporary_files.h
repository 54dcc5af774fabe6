#pragma once
// Temporary files and folders that must not outlive an interrupted process. linfuse writes every output under a
// temporary name beside its target and renames it into place at the end (nn/atomic_file.h; merge's staged adapter
// folders); these functions remove such temporaries when the process is interrupted, and those of processes that
// died before they could.
//
// Interruption: the first registration installs a handler for SIGINT, SIGTERM and SIGHUP -- for each signal whose
// disposition is still the default; a program that handles or ignores one keeps its choice -- which deletes every
// registered path (a file with unlink, a folder with the files in it, then rmdir), restores the default action and
// raises the signal again, so the process still ends as interrupted (exit status 128 + signal in a shell). The handler
// is async-signal-safe: the paths live in a fixed table of kTemporarySlots slots of PATH_MAX bytes, filled before the
// temporary is created; when the table is full (or a path is longer) a temporary goes unregistered, and the next
// run's remove_stale_temporaries deletes it if the process dies. SIGKILL cannot be caught: that too is left to the
// next run.
#include <cstddef>
#include <string>

namespace linfuse {

inline constexpr size_t kTemporarySlots = 64;

// Registers `path` for deletion on interruption until the guard is released or destroyed. Register before creating
// the temporary and release after it is renamed or deleted, so that no moment leaves it unregistered.
class InterruptCleanup {
 public:
  InterruptCleanup() = default;
  InterruptCleanup(const std::string& path, bool is_folder);
  ~InterruptCleanup() { release(); }
  InterruptCleanup(InterruptCleanup&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  InterruptCleanup& operator=(InterruptCleanup&& other) noexcept;
  InterruptCleanup(const InterruptCleanup&) = delete;
  InterruptCleanup& operator=(const InterruptCleanup&) = delete;

  void release() noexcept;
  bool registered() const { return slot_ >= 0; }

 private:
  int slot_ = -1;
};

// The temporary name of `target` for process `pid` and counter `n`: ".<file name>.tmp.<pid>.<n>" in the target's
// folder (the folder is not part of the result).
std::string temporary_name(const std::string& target, long pid, unsigned long long n);

// Deletes the leftovers of dead processes beside `target`: entries named ".<file name>.tmp.<pid>" or
// ".<file name>.tmp.<pid>.<n>" (files or folders) whose <pid> is not a running process (kill(pid, 0) fails with
// ESRCH). The current process's own temporaries, and those of any live process, are left alone. Best effort: errors
// are ignored. (A process in another PID namespace writing into the same folder would look dead.)
void remove_stale_temporaries(const std::string& target);

}  // namespace linfuse
