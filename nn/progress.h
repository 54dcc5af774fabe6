#pragma once
// A one-line progress display for training loops: step, loss, rate and time left, redrawn in place on a
// terminal (stderr) and silent when stderr is not a terminal (logs, CI).
#include <chrono>
#include <cstdint>
#include <string>

namespace linfuse::nn {

class Progress {
 public:
  Progress(std::string label, int64_t total_steps);
  ~Progress();   // ends the line if one was drawn
  void update(int64_t step, double loss);   // step is 1-based; redraws at most ~10 times a second
  void finish();
  static bool enabled();   // stderr is a terminal and LINFUSE_QUIET is not set

 private:
  std::string label_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace linfuse::nn
