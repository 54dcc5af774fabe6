#include "nn/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace linfuse::nn {

bool Progress::enabled() {
  static const bool on = isatty(STDERR_FILENO) && std::getenv("LINFUSE_QUIET") == nullptr;
  return on;
}

Progress::Progress(std::string label, int64_t total_steps)
    : label_(std::move(label)), total_(total_steps), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t step, double loss) {
  if (!enabled()) return;
  auto now = std::chrono::steady_clock::now();
  if (step < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? double(step) / elapsed : 0;
  double left = rate > 0 ? double(total_ - step) / rate : 0;
  std::fprintf(stderr, "\r%s step %lld/%lld  loss %.4f  %.1f it/s  %d:%02d left   ", label_.c_str(), (long long)step,
               (long long)total_, loss, rate, int(left) / 60, int(left) % 60);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (drawn_) {
    std::fprintf(stderr, "\n");
    drawn_ = false;
  }
}

}  // namespace linfuse::nn
