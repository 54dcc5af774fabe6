#include "nn/temporary_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace linfuse {
namespace {

namespace fs = std::filesystem;

// One registered path. state: 0 free, 1 being written, 2 registered (the handler reads only these).
struct Slot {
  std::atomic<int> state{0};
  bool is_folder = false;
  char path[PATH_MAX];
};

Slot slots[kTemporarySlots];
std::atomic<bool> interrupted{false};   // set by the handler: no new registrations while it deletes

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// Deletes the files of a folder (one level: staged folders hold files only), then the folder. Only system calls.
void remove_folder(const char* path) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) char buffer[4096];
    for (;;) {
      long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
      if (n <= 0) break;
      for (long offset = 0; offset < n;) {
        // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name
        unsigned short length;
        std::memcpy(&length, buffer + offset + 16, sizeof length);
        const char* name = buffer + offset + 19;
        if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) ::unlinkat(fd, name, 0);
        offset += length;
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

extern "C" void remove_temporaries_and_reraise(int signal_number) {
  const int saved_errno = errno;
  interrupted.store(true);
  for (Slot& slot : slots) {
    if (slot.state.load(std::memory_order_acquire) != 2) continue;
    if (slot.is_folder) remove_folder(slot.path);
    else ::unlink(slot.path);
  }
  // The default action, raised again: the signal is blocked while its handler runs, so it is delivered (and ends
  // the process) when this handler returns.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(signal_number, &default_action, nullptr);
  ::raise(signal_number);
  errno = saved_errno;
}

// Installs the handler for every signal still at its default disposition. Checked at each registration (three
// sigaction calls), so that a process that restores the default later, e.g. a forked child, gets it too.
void install_handlers() {
  for (int signal_number : kSignals) {
    struct sigaction current {};
    if (::sigaction(signal_number, nullptr, &current) != 0) continue;
    if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) continue;   // ours, or the program's choice
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_reraise;
    sigemptyset(&action.sa_mask);
    for (int s : kSignals) sigaddset(&action.sa_mask, s);   // one cleanup at a time
    ::sigaction(signal_number, &action, nullptr);
  }
}

bool alive(long pid) { return ::kill(pid_t(pid), 0) == 0 || errno != ESRCH; }

// The <pid> of ".<file>.tmp.<pid>" or ".<file>.tmp.<pid>.<n>", or -1 when `entry` is not such a name.
long temporary_pid(const std::string& entry, const std::string& prefix) {
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t i = prefix.size(), digits_start = i;
  long pid = 0;
  while (i < entry.size() && entry[i] >= '0' && entry[i] <= '9' && i - digits_start < 10) pid = pid * 10 + (entry[i++] - '0');
  if (i == digits_start) return -1;
  if (i == entry.size()) return pid;
  if (entry[i] != '.' || i + 1 == entry.size()) return -1;
  for (size_t j = i + 1; j < entry.size(); ++j)
    if (entry[j] < '0' || entry[j] > '9') return -1;
  return pid;
}

}  // namespace

InterruptCleanup::InterruptCleanup(const std::string& path, bool is_folder) {
  install_handlers();
  if (interrupted.load()) return;
  std::string absolute = path;
  std::error_code ec;
  if (fs::path(path).is_relative()) absolute = (fs::current_path(ec) / path).string();
  if (absolute.size() + 1 > PATH_MAX) return;
  for (size_t i = 0; i < kTemporarySlots; ++i) {
    int expected = 0;
    if (!slots[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(slots[i].path, absolute.c_str(), absolute.size() + 1);
    slots[i].is_folder = is_folder;
    slots[i].state.store(2, std::memory_order_release);
    slot_ = int(i);
    return;
  }
}

InterruptCleanup& InterruptCleanup::operator=(InterruptCleanup&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

void InterruptCleanup::release() noexcept {
  if (slot_ < 0) return;
  slots[slot_].state.store(0, std::memory_order_release);
  slot_ = -1;
}

std::string temporary_name(const std::string& target, long pid, unsigned long long n) {
  std::string name = ".";
  name += fs::path(target).filename().string();
  name += ".tmp." + std::to_string(pid) + "." + std::to_string(n);
  return name;
}

void remove_stale_temporaries(const std::string& target) {
  fs::path path(target);
  if (!path.has_filename()) path = path.parent_path();   // "out/" -> "out"
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::string prefix = ".";   // (built with +=: GCC 12 warns falsely, -Wrestrict, on "." + std::string)
  prefix += path.filename().string();
  prefix += ".tmp.";
  std::vector<fs::path> stale;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temporary_pid(it->path().filename().string(), prefix);
    if (pid > 0 && pid != long(::getpid()) && !alive(pid)) stale.push_back(it->path());
  }
  for (const fs::path& leftover : stale) fs::remove_all(leftover, ec);
}

}  // namespace linfuse
