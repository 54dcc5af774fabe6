// Running gnuplot on the report's plot scripts (see report_plots.h).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "experiments/report_plots.h"
#include "nn/atomic_file.h"

namespace linfuse::experiments::report {
namespace {

struct RunOutcome {
  bool started = false;  // false: the program could not be executed at all (not installed)
  int exit_code = -1;
  std::string messages;  // what it wrote on stderr
};

// Runs `program arguments...` in `directory` with stdin and stdout on /dev/null, collecting stderr.
// fork + execvp rather than system(): no shell, so file and program names need no quoting.
RunOutcome run_program(const std::string& program, const std::vector<std::string>& arguments,
                       const std::string& directory) {
  int error_pipe[2], exec_pipe[2];
  if (pipe(error_pipe) != 0) return {};
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    close(error_pipe[0]), close(error_pipe[1]);
    return {};
  }
  pid_t child = fork();
  if (child < 0) {
    for (int fd : {error_pipe[0], error_pipe[1], exec_pipe[0], exec_pipe[1]}) close(fd);
    return {};
  }
  if (child == 0) {
    // In the child only async-signal-safe calls until exec.
    int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 0), dup2(null_fd, 1), dup2(error_pipe[1], 2);
    close(error_pipe[0]), close(error_pipe[1]), close(exec_pipe[0]);
    if (chdir(directory.c_str()) == 0) {
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      execvp(program.c_str(), argv.data());
    }
    int error_number = errno;  // exec (or chdir) failed: tell the parent through the close-on-exec pipe
    ssize_t ignored = write(exec_pipe[1], &error_number, sizeof error_number);
    (void)ignored;
    _exit(127);
  }
  close(error_pipe[1]), close(exec_pipe[1]);
  RunOutcome outcome;
  int exec_error = 0;
  outcome.started = read(exec_pipe[0], &exec_error, sizeof exec_error) != sizeof exec_error;
  close(exec_pipe[0]);
  char buffer[4096];
  ssize_t got;
  while ((got = read(error_pipe[0], buffer, sizeof buffer)) > 0 || (got < 0 && errno == EINTR))
    if (got > 0) outcome.messages.append(buffer, size_t(got));
  close(error_pipe[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (!outcome.started) outcome.messages = std::strerror(exec_error);
  return outcome;
}

// gnuplot's complaint on one line (it goes into a markdown paragraph), at most 300 characters.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.size() > 300 ? out.substr(0, 297) + "..." : out;
}

}  // namespace

PlotSet render_plots(std::vector<Plot> plots, const std::string& plots_dir, const std::string& gnuplot) {
  namespace fs = std::filesystem;
  PlotSet set;
  set.gnuplot = gnuplot;
  set.status = PlotSet::Status::rendered;
  for (const auto& plot : plots) {
    write_file_atomic(plots_dir + "/" + plot.data_file, plot.data);  // shared data files are written twice, same bytes
    write_file_atomic(plots_dir + "/" + plot.name + ".gp", plot.script);
  }
  // "-d": skip ~/.gnuplot and the system init file, so a user's settings do not change the report.
  if (plots.empty()) return set;
  RunOutcome probe = run_program(gnuplot, {"-d", "-e", "exit"}, plots_dir);
  if (!probe.started) {
    set.status = PlotSet::Status::gnuplot_missing;
    set.plots = std::move(plots);
    return set;
  }
  // Temporary names start with '.', like AtomicFile's, and carry the process id.
  const std::string prefix = ".tmp." + std::to_string(getpid()) + ".";
  for (auto& plot : plots) {
    RunOutcome run = run_program(gnuplot, {"-d", "-e", "output_prefix='" + prefix + "'", plot.name + ".gp"}, plots_dir);
    bool complete = run.started && run.exit_code == 0;
    for (const char* format : {".png", ".svg"}) {
      fs::path temporary = fs::path(plots_dir) / (prefix + plot.name + format);
      std::error_code error;
      if (complete && fs::exists(temporary) && fs::file_size(temporary) > 0) {
        fs::rename(temporary, fs::path(plots_dir) / (plot.name + format), error);
        if (error) complete = false, run.messages += "cannot rename " + temporary.string() + ": " + error.message();
      } else {
        complete = false;
        fs::remove(temporary, error);
      }
    }
    plot.rendered = complete;
    if (!complete)
      plot.error = one_line(run.messages.empty() ? "gnuplot exited with code " + std::to_string(run.exit_code) : run.messages);
  }
  set.plots = std::move(plots);
  return set;
}

std::string PlotSet::markdown(const std::string& suite, const std::string& section) const {
  std::string images, failures;
  for (const auto& plot : plots) {
    if (plot.suite != suite || plot.section != section) continue;
    if (status != Status::rendered) continue;
    if (plot.rendered)
      images += "![" + plot.caption + "](plots/" + plot.name + ".png) [svg](plots/" + plot.name + ".svg)\n";
    else
      failures += "Plot `plots/" + plot.name + ".gp` failed: " + plot.error + "\n\n";
  }
  if (images.empty()) return failures;
  return images + "\n" + failures;
}

}  // namespace linfuse::experiments::report
