// The report's gnuplot scripts and data files (see report_plots.h); running gnuplot is report_gnuplot.cpp.
#include "experiments/report_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "experiments/report_format.h"

namespace linfuse::experiments::report {
namespace {

// One colour and point type per mode, the same in every plot, so that a mode is recognised at a glance:
// LoRA blue, the L-LoRA variants red and orange (the paper's comparison), full fine-tuning greys.
struct ModeStyle {
  const char* colour;
  int point_type;
};
ModeStyle mode_style(const std::string& mode, size_t index) {
  static const std::map<std::string, ModeStyle> known = {
      {"full", {"#404040", 5}},  {"linear-full", {"#9a9a9a", 4}}, {"lora", {"#1f77b4", 7}},
      {"l-lora", {"#d62728", 9}}, {"l-lora-local", {"#ff7f0e", 11}}};
  static const char* extra[] = {"#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  auto found = known.find(mode);
  return found != known.end() ? found->second : ModeStyle{extra[index % 5], int(1 + index % 3)};
}

std::string gnuplot_string(const std::string& text) {  // a gnuplot double-quoted string
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string number(double value) {  // enough digits for plotting, locale-independent
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

// The common head of every script: where the output goes and the two terminals. `body` is run once per
// format, inside `do for`, so the PNG and the SVG show the same plot (also for multiplots, where `replot`
// would not work). `output_prefix` lets the report writer render to temporary names first.
std::string script_with_body(const std::string& name, const std::string& what, int width, int height,
                             const std::string& body) {
  std::string size = std::to_string(width) + "," + std::to_string(height);
  std::string text;
  text += "# " + what + "\n";
  text += "# Written by the linfuse report writer from results.json. To restyle, edit this file and run\n";
  text += "#   gnuplot " + name + ".gp\n# in this folder: it rewrites " + name + ".png and " + name + ".svg.\n";
  text += "if (!exists(\"output_prefix\")) output_prefix = \"\"\n";
  text += "do for [format in \"png svg\"] {\n";
  text += "  reset\n";
  text += "  if (format eq \"png\") {\n";
  text += "    set terminal pngcairo size " + size + " font \"Sans,11\" noenhanced\n";
  text += "  } else {\n";
  text += "    set terminal svg size " + size + " font \"Sans,11\" noenhanced background \"white\"\n";
  text += "  }\n";
  text += "  set output output_prefix." + gnuplot_string(name + ".") + ".format\n";
  text += body;
  text += "  unset output\n";
  text += "}\n";
  return text;
}

// ---------------------------------------------------------------- normalized score vs number of tasks

struct SweepSeries {
  std::string method, space, mode;
  size_t index = 0;  // block index in the data file
};

std::string sweep_group_title(const std::string& method, const std::string& space) {
  return method_title(method) + " (" + space + " space)";
}

// The `plot` command of one panel: one line with error bars per mode of (method, space). Each mode is shifted
// slightly along x, by the same amount in every panel, so that error bars of different modes do not hide
// each other.
std::string sweep_plot_command(const std::vector<SweepSeries>& series, const std::vector<std::string>& modes,
                               const std::string& data_file, const std::string& method, const std::string& space) {
  std::vector<const SweepSeries*> lines;
  for (const auto& s : series)
    if (s.method == method && s.space == space) lines.push_back(&s);
  std::string command = "  plot ";
  for (size_t i = 0; i < lines.size(); ++i) {
    const SweepSeries& s = *lines[i];
    size_t mode_index = size_t(std::find(modes.begin(), modes.end(), s.mode) - modes.begin());
    ModeStyle style = mode_style(s.mode, mode_index);
    double shift = 0.05 * (double(mode_index) - double(modes.size() - 1) / 2.0);
    std::string x = shift == 0 ? "1" : "($1" + std::string(shift > 0 ? "+" : "") + number(shift) + ")";
    if (i) command += ", \\\n       ";
    command += gnuplot_string(data_file) + " index " + std::to_string(s.index) + " using " + x +
               ":2:3 with yerrorlines lw 2 pt " + std::to_string(style.point_type) + " ps 0.9 lc rgb " +
               gnuplot_string(style.colour) + " title " + gnuplot_string(s.mode);
  }
  return command + "\n";
}

// "normalized score (%)", naming the tasks it is over when the sweep normalized over only some of them.
std::string sweep_y_label(const std::vector<SweepPoint>& sweep) {
  if (auto normalized_over = sweep_normalized_over(sweep)) return "normalized score over " + comma_list(*normalized_over) + " (%)";
  return "normalized score (%)";
}

void plan_sweep_plots(const SuiteResults& suite, std::vector<Plot>& plots) {
  if (!suite.num_tasks_sweep || suite.num_tasks_sweep->empty()) return;
  const auto& sweep = *suite.num_tasks_sweep;
  std::string data_file = "num_tasks_" + file_safe(suite.name) + ".dat";
  std::string data = "# Normalized score (%) vs number of merged tasks k, " + suite.name +
                     " suite, test split.\n# Columns: k, mean normalized average over the subsets of k tasks, "
                     "standard deviation over the subsets.\n# One block per (method, space, mode); gnuplot "
                     "selects a block with `index`.\n";
  std::vector<SweepSeries> series;
  std::vector<std::pair<std::string, std::string>> groups;  // (method, space) in display order
  int64_t k_min = INT64_MAX, k_max = INT64_MIN;
  double low = INFINITY, high = -INFINITY;
  for (const auto& method : ordered_sweep_methods(sweep)) {
    std::vector<std::string> spaces;
    for (const auto& p : sweep)
      if (p.method == method) spaces.push_back(p.space);
    for (const auto& space : ordered_spaces(spaces)) {
      groups.emplace_back(method, space);
      for (const auto& mode : suite.modes) {
        std::vector<const SweepPoint*> points;
        for (const auto& p : sweep)
          if (p.method == method && p.space == space && p.mode == mode) points.push_back(&p);
        if (points.empty()) continue;
        std::stable_sort(points.begin(), points.end(), [](auto* a, auto* b) { return a->k < b->k; });
        data += "# " + method + " " + space + " " + mode + "\n";
        for (const SweepPoint* p : points) {
          double mean = 100 * p->normalized_average, spread = 100 * p->normalized_std.value_or(0.0);
          data += std::to_string(p->k) + " " + number(mean) + " " + number(spread) + "\n";
          k_min = std::min(k_min, p->k), k_max = std::max(k_max, p->k);
          low = std::min(low, mean - spread), high = std::max(high, mean + spread);
        }
        data += "\n\n";
        series.push_back({method, space, mode, series.size()});
      }
    }
  }
  // A y range shared by every panel of the suite, in steps of 5 points.
  double y_low = std::floor((low - 1) / 5) * 5, y_high = std::ceil((high + 1) / 5) * 5;
  std::string axes = "  set xrange [" + number(double(k_min) - 0.5) + ":" + number(double(k_max) + 0.5) + "]\n" +
                     "  set yrange [" + number(y_low) + ":" + number(y_high) + "]\n" +
                     "  set xtics 1\n  set grid ytics lc rgb \"#cccccc\" dt 3\n" +
                     "  set xlabel \"number of merged tasks\"\n  set ylabel " + gnuplot_string(sweep_y_label(sweep)) + "\n";

  auto headline = std::find(groups.begin(), groups.end(), std::pair<std::string, std::string>("task_arithmetic", "parameter"));
  if (headline == groups.end()) headline = groups.begin();
  {
    Plot plot;
    plot.suite = suite.name, plot.section = "num_tasks", plot.name = "num_tasks_" + file_safe(suite.name);
    plot.caption = capitalized(suite.name) + ": normalized score vs number of merged tasks, " +
                   sweep_group_title(headline->first, headline->second);
    // The key goes above the plot area: lines and error bars may pass through any corner of it.
    std::string body = "  set title " + gnuplot_string(capitalized(suite.name) + " suite: " +
                                                       sweep_group_title(headline->first, headline->second)) +
                       "\n" + axes + "  set key outside top center horizontal\n" +
                       sweep_plot_command(series, suite.modes, data_file, headline->first, headline->second);
    plot.script = script_with_body(plot.name, plot.caption, 640, 480, body);
    plot.data_file = data_file, plot.data = data;
    plots.push_back(plot);
  }
  if (groups.size() < 2) return;
  Plot plot;
  plot.suite = suite.name, plot.section = "num_tasks", plot.name = "num_tasks_" + file_safe(suite.name) + "_methods";
  plot.caption = capitalized(suite.name) + ": normalized score vs number of merged tasks, every method of the sweep";
  // Panels of equal size placed by hand (margins "at screen"), so that their axes line up and the titles,
  // tic labels and x labels have room; under them, one key for all panels in a strip of its own (a mode has
  // the same colour in every panel, and a panel's own key would cover its lines).
  size_t columns = std::min<size_t>(3, groups.size()), rows = (groups.size() + columns - 1) / columns;
  const int panel_width = 350, panel_height = 240, top = 70, bottom = 95, left = 70, right = 20;
  const int column_gap = 80, row_gap = 95, key_strip = 34;
  int width = left + right + int(columns) * panel_width + int(columns - 1) * column_gap;
  int height = top + bottom + int(rows) * panel_height + int(rows - 1) * row_gap;
  auto fraction = [](double pixels, int total) { return number(pixels / double(total)); };
  std::string body = "  set multiplot title " +
                     gnuplot_string(capitalized(suite.name) + " suite: normalized score vs number of merged tasks") +
                     "\n" + axes + "  unset key\n";
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& [method, space] = groups[g];
    int x = left + int(g % columns) * (panel_width + column_gap), y = top + int(g / columns) * (panel_height + row_gap);
    body += "  set lmargin at screen " + fraction(x, width) + "; set rmargin at screen " +
            fraction(x + panel_width, width) + "\n";
    body += "  set tmargin at screen " + fraction(height - y, height) + "; set bmargin at screen " +
            fraction(height - y - panel_height, height) + "\n";
    body += "  set title " + gnuplot_string(sweep_group_title(method, space)) + "\n";
    body += sweep_plot_command(series, suite.modes, data_file, method, space);
  }
  // The key strip: an empty plot (the constant -1 lies outside its y range) whose key lists every mode.
  body += "  unset title; unset xlabel; unset ylabel; unset tics; unset border; unset grid\n";
  body += "  set xrange [0:1]; set yrange [0:1]\n";
  body += "  set lmargin at screen 0; set rmargin at screen 1; set bmargin at screen 0; set tmargin at screen " +
          fraction(key_strip, height) + "\n";
  body += "  set key center center horizontal maxrows 1\n  plot -1 notitle";
  for (size_t m = 0; m < suite.modes.size(); ++m) {
    const std::string& mode = suite.modes[m];
    if (std::none_of(series.begin(), series.end(), [&](const SweepSeries& s) { return s.mode == mode; })) continue;
    ModeStyle style = mode_style(mode, m);
    body += ", \\\n       keyentry with yerrorlines lw 2 pt " + std::to_string(style.point_type) + " ps 0.9 lc rgb " +
            gnuplot_string(style.colour) + " title " + gnuplot_string(mode);
  }
  body += "\n  unset multiplot\n";
  plot.script = script_with_body(plot.name, plot.caption, width, height, body);
  plot.data_file = data_file, plot.data = data;
  plots.push_back(plot);
}

// ---------------------------------------------------------------- heatmaps

// gnuplot tics naming the tasks at positions 0, 1, ...: ("mnist" 0, "shapes" 1)
std::string task_tics(const std::vector<std::string>& tasks) {
  std::string tics = "(";
  for (size_t i = 0; i < tasks.size(); ++i) tics += (i ? ", " : "") + gnuplot_string(tasks[i]) + " " + std::to_string(i);
  return tics + ")";
}

// A tasks x tasks heatmap with each cell's value printed in it: rows top to bottom and columns left to right in
// the suite's task order, a blue-white-red palette over [-range, range] (0 is white).
struct TaskMatrixHeatmap {
  std::string section, name, caption;
  std::string data_comment;   // the data file's first comment line: what the numbers are
  std::string colour_label;   // the colour box's label
  std::string cell_format;    // gnuplot sprintf format of the printed values
  std::string x_label, y_label;
  double range = 1;
  bool blank_diagonal = false;  // the diagonal is left out of the colours (the cosine's 1 would dominate them)
};

Plot task_matrix_plot(const SuiteResults& suite, const Matrix& matrix, const TaskMatrixHeatmap& spec) {
  const size_t n = suite.tasks.size();
  Plot plot;
  plot.suite = suite.name, plot.section = spec.section, plot.name = spec.name, plot.caption = spec.caption;
  plot.data_file = plot.name + ".dat";
  plot.data = "# " + spec.data_comment + "\n# Rows and columns in task order: ";
  for (size_t i = 0; i < n; ++i) plot.data += (i ? " " : "") + suite.tasks[i];
  plot.data += "\n";
  for (const auto& row : matrix) {
    for (size_t j = 0; j < row.size(); ++j) {
      if (j) plot.data += ' ';
      plot.data += number(row[j]);
    }
    plot.data += "\n";
  }
  std::string limit = number(spec.range), contrast = number(0.6 * spec.range);
  std::string colour = spec.blank_diagonal ? "($1 == $2 ? NaN : $3)" : "3";
  std::string dark_cell = spec.blank_diagonal ? "$1 != $2 && abs($3) > " + contrast : "abs($3) > " + contrast;
  std::string body =
      "  set title " + gnuplot_string(plot.caption) + "\n" +
      "  set size square\n  unset key\n" +
      "  set xrange [-0.5:" + number(double(n) - 0.5) + "]\n  set yrange [" + number(double(n) - 0.5) + ":-0.5]\n" +
      "  set xtics " + task_tics(suite.tasks) + " rotate by 35 right nomirror scale 0\n" +
      "  set ytics " + task_tics(suite.tasks) + " nomirror scale 0\n" +
      (spec.x_label.empty() ? "" : "  set xlabel " + gnuplot_string(spec.x_label) + "\n") +
      (spec.y_label.empty() ? "" : "  set ylabel " + gnuplot_string(spec.y_label) + "\n") +
      "  set cbrange [-" + limit + ":" + limit + "]\n" +
      "  set cblabel " + gnuplot_string(spec.colour_label) + "\n" +
      "  set palette defined (0 \"#2166ac\", 0.5 \"#f7f7f7\", 1 \"#b2182b\")\n" +
      "  plot " + gnuplot_string(plot.data_file) + " matrix using 1:2:" + colour + " with image, \\\n       " +
      gnuplot_string(plot.data_file) + " matrix using 1:2:(sprintf(" + gnuplot_string(spec.cell_format) + ", $3)):(" +
      dark_cell + " ? 0xffffff : 0x000000) with labels font \",9\" tc rgb variable\n";
  plot.script = script_with_body(plot.name, plot.caption, 620, 560, body);
  return plot;
}

void plan_cosine_plots(const SuiteResults& suite, std::vector<Plot>& plots) {
  if (!suite.cosine_similarity) return;
  // One colour range for every mode of the suite, symmetric around 0 and set by the largest off-diagonal
  // |cosine|, so that small similarities stay visible. The diagonal (always 1) is left blank: in the colour
  // scale it would read as the strongest similarity of all.
  double largest = 0;
  for (const auto& [mode, cosine] : *suite.cosine_similarity)
    for (size_t i = 0; i < cosine.matrix.size(); ++i)
      for (size_t j = 0; j < cosine.matrix.size(); ++j)
        if (i != j) largest = std::max(largest, std::abs(cosine.matrix[i][j]));
  for (const auto& mode : suite.modes) {
    auto found = suite.cosine_similarity->find(mode);
    if (found == suite.cosine_similarity->end() || found->second.matrix.empty()) continue;
    TaskMatrixHeatmap spec;
    spec.section = "cosine";
    spec.name = "cosine_" + file_safe(suite.name) + "_" + file_safe(mode);
    spec.caption = capitalized(suite.name) + ", " + mode + ": cosine similarity of task vectors";
    spec.data_comment = "Cosine similarity of the flattened task vectors, " + suite.name + " suite, mode " + mode + ".";
    spec.colour_label = "cosine similarity (range shared by the modes)";
    spec.cell_format = "%.2f";
    spec.range = std::max(0.05, std::ceil(largest / 0.05) * 0.05);
    spec.blank_diagonal = true;
    plots.push_back(task_matrix_plot(suite, found->second.matrix, spec));
  }
}

void plan_cross_task_plots(const SuiteResults& suite, std::vector<Plot>& plots) {
  if (!suite.cross_task) return;
  // Fine-tuned minus zero-shot score in points; one colour range for every mode, symmetric around 0 and set
  // by the largest change (gains on the diagonal, mostly losses off it), in steps of 5 points.
  std::map<std::string, Matrix> changes;
  double largest = 0;
  for (const auto& [mode, matrix] : *suite.cross_task)
    if (auto change = cross_task_change(suite, matrix)) {
      for (const auto& row : *change)
        for (double points : row) largest = std::max(largest, std::abs(points));
      changes[mode] = *change;
    }
  for (const auto& mode : suite.modes) {
    auto found = changes.find(mode);
    if (found == changes.end()) continue;
    TaskMatrixHeatmap spec;
    spec.section = "cross_task";
    spec.name = "cross_task_" + file_safe(suite.name) + "_" + file_safe(mode);
    spec.caption = capitalized(suite.name) + ", " + mode + ": fine-tuned minus zero-shot score";
    spec.data_comment = "Test score minus zero-shot score in points, " + suite.name + " suite, mode " + mode +
                        "; row i: fine-tuned on task i, column j: scored on task j.";
    spec.colour_label = "points (range shared by the modes)";
    spec.cell_format = "%.0f";
    spec.x_label = "scored on", spec.y_label = "fine-tuned on";
    spec.range = std::max(5.0, std::ceil(largest / 5) * 5);
    plots.push_back(task_matrix_plot(suite, found->second, spec));
  }
}

bool evenly_spaced(const std::vector<double>& values) {
  double step = (values.back() - values.front()) / double(values.size() - 1);
  for (size_t i = 1; i < values.size(); ++i)
    if (std::abs(values[i] - values[i - 1] - step) > 1e-6 * std::max(1.0, std::abs(step))) return false;
  return true;
}

void plan_disentanglement_plots(const SuiteResults& suite, std::vector<Plot>& plots) {
  if (!suite.disentanglement) return;
  // One colour range per task pair, shared by its modes: [0, largest error of the pair].
  std::map<std::pair<std::string, std::string>, double> largest;
  for (const auto& grid : *suite.disentanglement)
    for (const auto& row : grid.error)
      for (double e : row) largest[{grid.task_a, grid.task_b}] = std::max(largest[{grid.task_a, grid.task_b}], e);
  for (const auto& grid : *suite.disentanglement) {
    Plot plot;
    plot.suite = suite.name, plot.section = "disentanglement";
    plot.name = "disentanglement_" + file_safe(suite.name) + "_" + file_safe(grid.mode) + "_" +
                file_safe(grid.task_a) + "_" + file_safe(grid.task_b);
    plot.caption = capitalized(suite.name) + ", " + grid.mode + ": disentanglement error, " + grid.task_a + " + " +
                   grid.task_b;
    plot.data_file = plot.name + ".dat";
    plot.data = "# Weight-disentanglement error, " + suite.name + " suite, mode " + grid.mode +
                ".\n# Columns: coefficient of " + grid.task_a + ", coefficient of " + grid.task_b + ", error.\n";
    const auto& c = grid.coefficients;
    for (size_t i = 0; i < c.size(); ++i) {
      for (size_t j = 0; j < c.size(); ++j)
        plot.data += number(c[i]) + " " + number(c[j]) + " " + number(grid.error[i][j]) + "\n";
      plot.data += "\n";
    }
    double top = largest[{grid.task_a, grid.task_b}];
    if (top <= 0) top = 1;
    double half_step = (c.back() - c.front()) / double(c.size() - 1) / 2;
    std::string x_range = "[" + number(c.front() - half_step) + ":" + number(c.back() + half_step) + "]";
    // `with image` needs an even grid; an uneven one is drawn as pm3d surface seen from above instead.
    std::string draw = evenly_spaced(c)
                           ? "  plot " + gnuplot_string(plot.data_file) + " using 1:2:3 with image\n"
                           : "  set view map\n  set pm3d map corners2color c1\n  splot " + gnuplot_string(plot.data_file) +
                                 " using 1:2:3 with pm3d\n";
    std::string body =
        "  set title " + gnuplot_string(plot.caption) + "\n" + "  set size square\n  unset key\n" +
        "  set xrange " + x_range + "\n  set yrange " + x_range + "\n" +
        "  set xlabel " + gnuplot_string("coefficient of " + grid.task_a) + "\n" +
        "  set ylabel " + gnuplot_string("coefficient of " + grid.task_b) + "\n" +
        "  set cbrange [0:" + number(top) + "]\n" +
        "  set cblabel \"disentanglement error (range shared by the modes)\"\n" +
        "  set palette defined (0 \"#440154\", 0.25 \"#3b528b\", 0.5 \"#21918c\", 0.75 \"#5ec962\", 1 \"#fde725\")\n" +
        "  set object 1 rectangle from -1,-1 to 1,1 front fillstyle empty border lc rgb \"white\" dt 2 lw 2\n" +
        "  set label 1 \"|a|, |b| <= 1\" at -0.95,0.85 front tc rgb \"white\" font \",9\"\n" + draw;
    plot.script = script_with_body(plot.name, plot.caption, 600, 560, body);
    plots.push_back(plot);
  }
}

}  // namespace

std::vector<Plot> plan_plots(const ReportResults& results) {
  std::vector<Plot> plots;
  for (const auto& suite : results.suites) {
    plan_sweep_plots(suite, plots);
    plan_cosine_plots(suite, plots);
    plan_cross_task_plots(suite, plots);
    plan_disentanglement_plots(suite, plots);
  }
  return plots;
}

}  // namespace linfuse::experiments::report
