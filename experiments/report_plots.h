#pragma once
// The report's plots: for each, a gnuplot script and its data file are written into <results>/plots/, and
// gnuplot renders a .png (pngcairo) and an .svg from them. The scripts stay next to the images, so a user
// can restyle a plot and run `gnuplot NAME.gp` in that folder again.
//   num_tasks_<suite>            normalized score vs number of merged tasks, task arithmetic (parameter
//                                space), one line per mode, error bars = std over subsets
//   num_tasks_<suite>_methods    small multiples: one panel per (method, space) of the sweep
//   cosine_<suite>_<mode>        cosine-similarity heatmap of the task vectors; colour range shared by the
//                                modes of a suite
//   disentanglement_<suite>_<mode>_<task a>_<task b>
//                                disentanglement-error heatmap; colour range shared by the modes of a pair
#include <string>
#include <vector>

#include "experiments/report_results.h"

namespace linfuse::experiments::report {

struct Plot {
  std::string suite;
  std::string section;  // "num_tasks", "cosine" or "disentanglement"
  std::string name;     // file stem: plots/<name>.gp, .png, .svg
  std::string caption;
  std::string script;     // gnuplot script; reads `data_file` from its own folder
  std::string data_file;  // file name in plots/
  std::string data;
  bool rendered = false;  // the .png and .svg were written
  std::string error;      // what gnuplot said when it failed
};

struct PlotSet {
  enum class Status { disabled, rendered, gnuplot_missing };
  Status status = Status::disabled;
  std::string gnuplot;  // the program that was (or would have been) run
  std::vector<Plot> plots;

  // Markdown for one section of one suite: the images (relative paths "plots/<name>.png") with a link to
  // each SVG, a line for each plot that failed, or nothing when there is no plot for the section.
  std::string markdown(const std::string& suite, const std::string& section) const;
};

// The plots of `results`, with scripts and data but not rendered.
std::vector<Plot> plan_plots(const ReportResults& results);

// Writes the scripts and data into `plots_dir` and runs `gnuplot` on each script. If gnuplot cannot be run
// at all, returns status gnuplot_missing (scripts and data are still written); a plot whose script fails
// keeps rendered = false and gnuplot's message in `error`. PNG and SVG appear atomically (gnuplot writes
// temporary names that are renamed when it succeeds).
PlotSet render_plots(std::vector<Plot> plots, const std::string& plots_dir, const std::string& gnuplot);

}  // namespace linfuse::experiments::report
