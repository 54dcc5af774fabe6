// The report writer (experiments/report.h) on tests/fixtures/report_results_sample.json, a synthetic
// results.json shaped like the paper's results: vision (4 tasks, 5 modes, 5 merging methods, parameter and
// weight space, sweep, cosine, disentanglement) and text (3 tasks with stsb, 3 modes, no disentanglement, no
// weight space). Expected numbers are computed here from the fixture, independently of the writer.
// Run with: ./build/test_experiments "[report_writer]". ("[report]" alone also runs the hidden vision data
// reports of test_vision_report.cpp, tagged "[.report]", which need MNIST; "[report]~[.]" leaves them out.)
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/report.h"
#include "experiments/report_format.h"
#include "experiments/report_plots.h"
#include "tests/experiments/report_checks.h"
#include "tests/helpers.h"

using namespace linfuse;
using namespace linfuse::experiments;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using testing::percent_of;
using testing::read_text;
using testing::report_without_plots;
using testing::table_row;
using testing::TempDir;
using testing::write_text;

json sample_results() { return json::parse(read_text(testing::source_path("tests/fixtures/report_results_sample.json"))); }

bool gnuplot_installed() { return std::system("gnuplot --version > /dev/null 2>&1") == 0; }

// The sample rendered once per process with plots (gnuplot is the slow part), shared by the tests below.
const TempDir& rendered_sample() {
  static TempDir dir("sample");
  static bool done = false;
  if (!done) {
    // The fixture itself, not a re-dump: nlohmann::json would sort the keys, and the report keeps file order.
    fs::copy_file(testing::source_path("tests/fixtures/report_results_sample.json"), dir.path / "results.json");
    write_report(dir.str());
    done = true;
  }
  return dir;
}

size_t line_count(const std::string& text) { return size_t(std::count(text.begin(), text.end(), '\n')); }

// "31.2 ± 2.1": a score and its standard error on `n` test examples, in closed form (accuracy: binomial;
// spearman: (1 - rho^2) / sqrt(n - 2)), as the report must show it.
double standard_error_of(double score, int n, bool spearman = false) {
  return spearman ? (1 - score * score) / std::sqrt(n - 2.0) : std::sqrt(score * (1 - score) / n);
}
std::string with_error(double score, double standard_error) { return percent_of(score) + " ± " + percent_of(standard_error); }

// The mean of `scores` over `tasks` (every one on `n` test examples, accuracies) with its standard error
// sqrt(sum SE^2) / T.
std::string average_with_error(const json& scores, const std::vector<std::string>& tasks, int n) {
  double sum = 0, variance = 0;
  for (const auto& task : tasks) {
    double p = scores.at(task).get<double>();
    sum += p, variance += p * (1 - p) / n;
  }
  return with_error(sum / double(tasks.size()), std::sqrt(variance) / double(tasks.size()));
}

const json& merged_entry(const json& suite, const std::string& method, const std::string& mode, const std::string& space) {
  for (const auto& entry : suite["merged"])
    if (entry["method"] == method && entry["mode"] == mode && entry["space"] == space) return entry;
  FAIL("fixture has no merged " << method << "/" << mode << "/" << space);
  static json none;
  return none;
}

}  // namespace

TEST_CASE("the report fixture is self-consistent: normalized = test / single-task of the same mode", "[report][report_writer]") {
  json results = sample_results();
  for (const auto& [name, suite] : results["suites"].items())
    for (const auto& entry : suite["merged"])
      for (const auto& [task, normalized] : entry["normalized"].items()) {
        double expected = entry["test"][task].get<double>() / suite["single_task"][entry["mode"].get<std::string>()][task].get<double>();
        CHECK(std::abs(normalized.get<double>() - expected) < 1e-4);
      }
}

TEST_CASE("report.md has every section with the numbers of results.json", "[report][report_writer]") {
  const TempDir& dir = rendered_sample();
  std::string report = read_text(dir.path / "report.md");
  json results = sample_results();
  const json& vision = results["suites"]["vision"];
  std::vector<std::string> vision_tasks = vision["tasks"];

  // 1. header and stage times
  CHECK(report.find("Preset `small`") != std::string::npos);
  CHECK(report.find("suites vision, text") != std::string::npos);
  CHECK(report.find("seed 0; 2 threads") != std::string::npos);
  CHECK(report.find("commit `4b510ec` (dirty") != std::string::npos);
  CHECK(report.find("started 2026-11-29T05:00:00Z") != std::string::npos);
  double total = 0;
  for (const auto& [stage, seconds] : results["manifest"]["stage_seconds"].items()) total += seconds.get<double>();
  char total_text[32];
  std::snprintf(total_text, sizeof total_text, "%.1f s", total);
  CHECK(table_row(report, "### Time per stage", "total")[1].rfind(total_text, 0) == 0);
  CHECK(table_row(report, "### Time per stage", "vision/finetune")[1].rfind("300.1 s", 0) == 0);

  // 2. zero-shot and single-task scores, trainable parameters
  // every score with its standard error on the fixture's 500 test examples per vision task
  REQUIRE(vision["test_examples"]["mnist"] == 500);
  auto zero_shot = table_row(report, "## Vision suite", "zero-shot (pretrained)");
  double mnist_zero_shot = vision["zero_shot"]["mnist"];
  CHECK(zero_shot[1] == with_error(mnist_zero_shot, standard_error_of(mnist_zero_shot, 500)));
  CHECK(zero_shot[1] == "31.2 ± 2.1");  // sqrt(0.312 * 0.688 / 500) = 0.0207
  CHECK(zero_shot.back() == average_with_error(vision["zero_shot"], vision_tasks, 500));
  auto lora_single = table_row(report, "## Vision suite", "lora");
  double lora_shapes = vision["single_task"]["lora"]["shapes"];
  CHECK(lora_single[3] == with_error(lora_shapes, standard_error_of(lora_shapes, 500)));
  CHECK(lora_single.back() == average_with_error(vision["single_task"]["lora"], vision_tasks, 500));
  CHECK(report.find("from the test examples scored per task: 500 for every task.") != std::string::npos);
  auto lora_mode = table_row(report, "### Fine-tuning modes", "lora");
  CHECK(lora_mode[1] == "24,576");
  CHECK(lora_mode[2] == "3.02");  // 24576 / 812544, in %
  auto stsb = table_row(report, "## Text suite", "l-lora");
  double l_lora_stsb = results["suites"]["text"]["single_task"]["l-lora"]["stsb"];
  REQUIRE(results["suites"]["text"]["test_examples"]["stsb"] == 64);
  CHECK(stsb[3] == with_error(l_lora_stsb, standard_error_of(l_lora_stsb, 64, true)));
  CHECK(report.find("from the test examples scored per task: 64 (stsb); 96 (cola, sst2).") != std::string::npos);
  CHECK(report.find("stsb: Spearman's rho x100") != std::string::npos);

  // 3. merged: headline (best per row in bold), then per method absolute and normalized
  auto headline = table_row(report, "#### Normalized average (%), parameter space", "Task arithmetic");
  REQUIRE(headline.size() == 6);  // method + 5 modes
  CHECK(headline[4] == "**" + percent_of(merged_entry(vision, "task_arithmetic", "l-lora", "parameter")["normalized_average"]) + "**");
  CHECK(headline[3] == percent_of(merged_entry(vision, "task_arithmetic", "lora", "parameter")["normalized_average"]));
  auto weight_headline = table_row(report, "#### Normalized average (%), weight space", "TIES-merging");
  CHECK(weight_headline.size() == 4);  // method + the 3 LoRA modes
  CHECK(weight_headline[2] == "**" + percent_of(merged_entry(vision, "ties", "l-lora", "weight")["normalized_average"]) + "**");
  const json& ties_weight = merged_entry(vision, "ties", "l-lora", "weight");
  auto absolute = table_row(report, "#### TIES-merging", "l-lora", "weight");
  double ties_mnist = ties_weight["test"]["mnist"];
  CHECK(absolute[2] == with_error(ties_mnist, standard_error_of(ties_mnist, 500)));
  CHECK(absolute[6] == average_with_error(ties_weight["test"], vision_tasks, 500));
  CHECK(absolute[6].rfind(percent_of(ties_weight["test_average"]) + " ± ", 0) == 0);
  CHECK(absolute[8] == "lambda = 0.5, k = 20");
  auto normalized = table_row(report, "Normalized score (%), test split:", "l-lora", "weight");  // first method: simple averaging
  CHECK(normalized[4] == percent_of(merged_entry(vision, "simple_average", "l-lora", "weight")["normalized"]["shapes"]));
  CHECK(report.find("#### LoraHub (`lorahub`)") != std::string::npos);
  CHECK(report.find("#### RegMean (`regmean`)") != std::string::npos);

  // 4. number of tasks
  const json* point = nullptr;
  for (const auto& p : vision["num_tasks_sweep"])
    if (p["method"] == "task_arithmetic" && p["mode"] == "l-lora" && p["space"] == "parameter" && p["k"] == 3) point = &p;
  REQUIRE(point);
  auto sweep_row = table_row(report, "### Normalized score vs number of merged tasks", "Task arithmetic", "l-lora");
  CHECK(sweep_row[4] == percent_of((*point)["normalized_average"]) + " ± " + percent_of((*point)["normalized_std"]));
  CHECK(report.find("](plots/num_tasks_vision.png)") != std::string::npos);

  // 5. cosine similarity: mean |cos| off the diagonal, computed here from the matrix
  const json& matrix = vision["cosine_similarity"]["lora"]["matrix"];
  double sum = 0;
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j)
      if (i != j) sum += std::abs(matrix[i][j].get<double>());
  char mean_abs[32];
  std::snprintf(mean_abs, sizeof mean_abs, "%.3f", sum / 12);
  auto cosine_row = table_row(report, "### Cosine similarity", "lora");
  CHECK(cosine_row[2] == mean_abs);
  CHECK(report.find("](plots/cosine_vision_l-lora.png)") != std::string::npos);

  // 5b. cross-task scores: own-task and other-task changes against zero-shot, computed here from the matrix
  const json& cross = vision["cross_task"]["lora"]["matrix"];
  double own = 0, others = 0, worst = 0;
  int below = 0;
  std::string worst_pair;
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j) {
      double points = 100 * (cross[i][j].get<double>() - vision["zero_shot"][vision_tasks[j]].get<double>());
      if (i == j) {
        own += points / 4;
      } else {
        others += points / 12, below += points < 0;
        if (points < worst) worst = points, worst_pair = vision_tasks[i] + " -> " + vision_tasks[j];
      }
    }
  auto signed_text = [](double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%+.1f", value);
    return std::string(buffer);
  };
  auto cross_row = table_row(report, "### Cross-task scores", "lora");
  CHECK(cross_row[1] == signed_text(own));
  CHECK(cross_row[2] == signed_text(others));
  CHECK(cross_row[3] == std::to_string(below) + " of 12");
  CHECK(cross_row[4] == worst_pair + " " + signed_text(worst));
  CHECK(report.find("](plots/cross_task_vision_l-lora.png)") != std::string::npos);
  CHECK(report.find("](plots/cross_task_text_full.png)") != std::string::npos);

  // 6. disentanglement: mean error over |a|, |b| <= 1, computed here from the grid
  const json& grid = vision["disentanglement"][1];  // l-lora, mnist + shapes
  double inside = 0;
  int count = 0;
  for (size_t i = 0; i < grid["coefficients"].size(); ++i)
    for (size_t j = 0; j < grid["coefficients"].size(); ++j)
      if (std::abs(grid["coefficients"][i].get<double>()) <= 1 && std::abs(grid["coefficients"][j].get<double>()) <= 1)
        inside += grid["error"][i][j].get<double>(), ++count;
  CHECK(count == 25);  // -1, -0.5, 0, 0.5, 1 squared
  char inside_text[32];
  std::snprintf(inside_text, sizeof inside_text, "%.3f", inside / count);
  CHECK(table_row(report, "### Weight disentanglement", "l-lora", "mnist + shapes")[4] == inside_text);
  CHECK(report.find("](plots/disentanglement_vision_lora_mnist_shapes.png)") != std::string::npos);
  CHECK(report.find("No weight-disentanglement grids in results.json for this suite.") != std::string::npos);  // text

  // 7. claims: 8 verdict lines (the caveats after them are list items too)
  size_t claims = report.find("## Claims of the paper");
  REQUIRE(claims != std::string::npos);
  std::string claim_part = report.substr(claims);
  size_t verdict_lines = 0;
  for (size_t at = claim_part.find("\n- **"); at != std::string::npos; at = claim_part.find("\n- **", at + 1))
    verdict_lines += claim_part.compare(at, 13, "\n- **Caveat (") != 0;
  CHECK(verdict_lines == 8);
  CHECK(claim_part.find("**held**: (b) Network-level L-LoRA") != std::string::npos);
}

TEST_CASE("every markdown table of the report is aligned: its lines have one width", "[report][report_writer]") {
  std::string report = read_text(rendered_sample().path / "report.md");
  auto width = [](const std::string& line) {
    return std::count_if(line.begin(), line.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  };
  std::istringstream lines(report);
  std::string line;
  long table_width = -1;
  int tables = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) != 0) {
      table_width = -1;
      continue;
    }
    if (table_width < 0) table_width = width(line), ++tables;
    CHECK(width(line) == table_width);
  }
  CHECK(tables > 20);
}

TEST_CASE("the CSV files have one row per item of results.json", "[report][report_writer]") {
  const TempDir& dir = rendered_sample();
  json results = sample_results();
  size_t single = 1, merged = 1, sweep = 1, cosine = 1, cross_task = 1, disentanglement = 1;
  for (const auto& [name, suite] : results["suites"].items()) {
    size_t tasks = suite["tasks"].size();
    single += suite["single_task"].size() * tasks;
    merged += suite["merged"].size() * tasks;
    sweep += suite["num_tasks_sweep"].size();
    cosine += suite["cosine_similarity"].size() * 2 * tasks * tasks;
    cross_task += suite["cross_task"].size() * tasks * tasks;
    if (suite.contains("disentanglement")) disentanglement += suite["disentanglement"].size();
  }
  CHECK(single == 1 + 5 * 4 + 3 * 3);
  CHECK(line_count(read_text(dir.path / "single_task.csv")) == single);
  CHECK(line_count(read_text(dir.path / "merged.csv")) == merged);
  CHECK(line_count(read_text(dir.path / "num_tasks.csv")) == sweep);
  CHECK(line_count(read_text(dir.path / "cosine.csv")) == cosine);
  CHECK(line_count(read_text(dir.path / "cross_task.csv")) == cross_task);
  CHECK(read_text(dir.path / "cross_task.csv").find("vision,lora,shapes,mnist,") != std::string::npos);
  CHECK(line_count(read_text(dir.path / "disentanglement.csv")) == disentanglement);
  std::string merged_text = read_text(dir.path / "merged.csv");
  CHECK(merged_text.rfind("suite,method,mode,space,task,metric,test,normalized,validation_average,hyperparameters,"
                          "test_se,gain,gain_se,pretrained_model\n", 0) == 0);
  CHECK(read_text(dir.path / "single_task.csv")
            .rfind("suite,mode,task,metric,zero_shot,single_task,finetune_seconds,test_examples,zero_shot_se,single_task_se\n", 0) == 0);
  CHECK(merged_text.find("vision,ties,l-lora,weight,mnist,accuracy,") != std::string::npos);
}

TEST_CASE("plots are valid PNG and SVG files, each with its gnuplot script and data", "[report][report_writer]") {
  if (!gnuplot_installed()) {
    WARN("gnuplot is not installed: plot checks skipped (apt-get install gnuplot-nox)");
    return;
  }
  fs::path plots = rendered_sample().path / "plots";
  std::vector<std::string> expected = {"num_tasks_vision", "num_tasks_vision_methods", "num_tasks_text",
                                       "cosine_vision_full", "cosine_vision_l-lora-local", "cosine_text_lora",
                                       "cross_task_vision_full", "cross_task_text_l-lora",
                                       "disentanglement_vision_lora_mnist_shapes",
                                       "disentanglement_vision_l-lora_fashion_mnist_glyphs"};
  for (const auto& name : expected) {
    INFO(name);
    std::string png = read_text(plots / (name + ".png"));
    REQUIRE(png.size() > 1000);
    CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    std::string svg = read_text(plots / (name + ".svg"));
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(fs::exists(plots / (name + ".gp")));
  }
  CHECK(!fs::exists(plots / "num_tasks_text_methods.png"));  // the text sweep has one method: no small multiples
  size_t images = 0, temporaries = 0;
  for (const auto& entry : fs::directory_iterator(plots)) {
    images += entry.path().extension() == ".png";
    temporaries += entry.path().filename().string().rfind(".", 0) == 0;
  }
  // sweeps, vision cosine, vision disentanglement, text cosine, vision and text cross-task
  CHECK(images == 3 + 5 + 5 + 2 + 5 + 3);
  CHECK(temporaries == 0);
  CHECK(read_text(plots / "num_tasks_vision.dat").find("# task_arithmetic parameter l-lora") != std::string::npos);
}

TEST_CASE("running the report twice gives identical files, and results.json is left untouched", "[report][report_writer]") {
  const TempDir& dir = rendered_sample();
  std::string results_before = read_text(dir.path / "results.json");
  std::map<std::string, std::string> first;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path))
    if (entry.is_regular_file()) first[fs::relative(entry.path(), dir.path).string()] = read_text(entry.path());
  write_report(dir.str());
  std::map<std::string, std::string> second;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path))
    if (entry.is_regular_file()) second[fs::relative(entry.path(), dir.path).string()] = read_text(entry.path());
  REQUIRE(first.size() == second.size());
  for (const auto& [name, bytes] : first) {
    INFO(name);
    CHECK(second[name] == bytes);
  }
  CHECK(read_text(dir.path / "results.json") == results_before);
}

TEST_CASE("without gnuplot the report is written, says how to install it, and keeps the plot scripts", "[report][report_writer]") {
  TempDir dir("no_gnuplot");
  write_text(dir.path / "results.json", sample_results().dump());
  ReportOptions options;
  options.gnuplot = (dir.path / "no-such-gnuplot").string();
  std::string report = read_text(write_report(dir.str(), options));
  CHECK(report.find("Plots were skipped") != std::string::npos);
  CHECK(report.find("apt-get install gnuplot-nox") != std::string::npos);
  CHECK(report.find("](plots/") == std::string::npos);
  CHECK(fs::exists(dir.path / "plots" / "num_tasks_vision.gp"));
  CHECK(fs::exists(dir.path / "plots" / "num_tasks_vision.dat"));
  CHECK(!fs::exists(dir.path / "plots" / "num_tasks_vision.png"));
  CHECK(fs::exists(dir.path / "merged.csv"));

  // A gnuplot that runs but fails: each plot says so, the rest of the report stands.
  options.gnuplot = "false";
  report = read_text(write_report(dir.str(), options));
  CHECK(report.find("Plot `plots/num_tasks_vision.gp` failed: gnuplot exited with code 1") != std::string::npos);
  CHECK(report.find("## Claims of the paper") != std::string::npos);

  options.plots = false;
  TempDir bare("no_plots");
  write_text(bare.path / "results.json", sample_results().dump());
  report = read_text(write_report(bare.str(), options));
  CHECK(report.find("Plots were not drawn") != std::string::npos);
  CHECK(!fs::exists(bare.path / "plots"));
}

TEST_CASE("missing sections are skipped with a note, never a crash", "[report][report_writer]") {
  TempDir dir("missing");
  ReportOptions no_plots;
  no_plots.plots = false;
  SECTION("a suite with tasks only and no manifest") {
    write_text(dir.path / "results.json", R"({"suites": {"vision": {"tasks": ["mnist", "shapes"]}}})");
    std::string report = read_text(write_report(dir.str(), no_plots));
    CHECK(report.find("No manifest in results.json") != std::string::npos);
    CHECK(report.find("No single-task scores in results.json") != std::string::npos);
    CHECK(report.find("No merged models in results.json") != std::string::npos);
    CHECK(report.find("No number-of-tasks sweep") != std::string::npos);
    CHECK(report.find("No cosine similarities") != std::string::npos);
    CHECK(report.find("No weight-disentanglement grids") != std::string::npos);
    CHECK(report.find("No leakage matrices in results.json") != std::string::npos);
    CHECK(report.find("### Linear probe") == std::string::npos);   // vision diagnostics: no section when absent
    CHECK(report.find("### Domain similarity") == std::string::npos);
    CHECK(report.find("**not measured** (normalized score), **not measured** (retained gain G): (a) Network-level") !=
          std::string::npos);
    CHECK(line_count(read_text(dir.path / "merged.csv")) == 1);
  }
  SECTION("no suites at all") {
    write_text(dir.path / "results.json", R"({"manifest": {"preset": "tiny"}, "suites": {}})");
    std::string report = read_text(write_report(dir.str(), no_plots));
    CHECK(report.find("No suite in results.json") != std::string::npos);
  }
  SECTION("a merged entry without normalized scores, a task that failed, a suite without its sweep") {
    json results = sample_results();
    json& text = results["suites"]["text"];
    text["merged"][0].erase("normalized");
    text["merged"][0].erase("normalized_average");
    text["merged"][1]["test"].erase("sst2");
    text["merged"][1].erase("test_average");
    results["suites"]["vision"].erase("num_tasks_sweep");
    std::string report = report_without_plots(dir, results);
    // The plots are planned without the vision sweep (rendering is tested elsewhere; gnuplot is slow).
    auto plots = report::plan_plots(report::read_results_file((dir.path / "results.json").string()));
    CHECK(std::none_of(plots.begin(), plots.end(), [](const report::Plot& p) { return p.name.rfind("num_tasks_vision", 0) == 0; }));
    CHECK(std::any_of(plots.begin(), plots.end(), [](const report::Plot& p) { return p.name == "num_tasks_text"; }));
    CHECK(std::any_of(plots.begin(), plots.end(), [](const report::Plot& p) { return p.name == "cosine_vision_lora"; }));
    auto row = table_row(report, "## Text suite", "lora", "parameter");  // simple averaging, absolute
    CHECK(row[3] == "–");       // sst2 failed
    CHECK(row[5] == "–");       // so no average either
    CHECK(report.find("No number-of-tasks sweep") != std::string::npos);
  }
}

TEST_CASE("the report names the tasks normalized scores leave out, with their threshold and lowest score", "[report][report_writer]") {
  TempDir dir("learned");
  json results = sample_results();
  json& text = results["suites"]["text"];
  text["learned_thresholds"] = {{"cola", 0.77}, {"sst2", 0.6}, {"stsb", 0.2}};
  text["normalized_tasks"] = {"sst2", "stsb"};   // cola: l-lora's 0.748 is below 0.77
  results["suites"]["vision"]["learned_thresholds"] = json::object();
  for (const auto& task : results["suites"]["vision"]["tasks"]) {
    results["suites"]["vision"]["learned_thresholds"][task.get<std::string>()] = 0.16;
    results["suites"]["vision"]["normalized_tasks"].push_back(task);
  }
  std::string report = report_without_plots(dir, results);
  const size_t text_part = report.find("## Text suite");
  REQUIRE(text_part != std::string::npos);
  CHECK(report.find("Every task passed.") < text_part);   // vision
  CHECK(report.find("2 of 3 tasks passed: sst2, stsb. Left out (threshold; the lowest single-task score and its mode): "
                    "cola (77.0; 74.8 l-lora).", text_part) != std::string::npos);
  // the claims say over which tasks the text suite's normalized averages were taken
  CHECK(report.find("text/parameter (normalized over 2 of 3 tasks: sst2, stsb):") != std::string::npos);
  CHECK(report.find("vision/parameter (normalized over") == std::string::npos);
}

TEST_CASE("the overview says on how many tasks zero-shot is above chance and fine-tuning adds 5 points", "[report][report_writer]") {
  TempDir dir("regime");
  json results = sample_results();
  json& text = results["suites"]["text"];
  text["learned_thresholds"] = {{"cola", 0.55}, {"sst2", 0.55}, {"stsb", 0.07}};
  text["zero_shot"] = {{"cola", 0.56}, {"sst2", 0.50}, {"stsb", 0.08}};
  // gains over zero-shot: full 0.10 / 0.10 / 0.05 (a gain of exactly 5 points counts), lora 0.049 / 0.3 / 0.2,
  // l-lora 0.0 / 0.0 / -0.01
  text["single_task"] = {{"full", {{"cola", 0.66}, {"sst2", 0.60}, {"stsb", 0.13}}},
                         {"lora", {{"cola", 0.609}, {"sst2", 0.80}, {"stsb", 0.28}}},
                         {"l-lora", {{"cola", 0.56}, {"sst2", 0.50}, {"stsb", 0.07}}}};
  std::string report = report_without_plots(dir, results);
  const size_t text_part = report.find("## Text suite");
  REQUIRE(text_part != std::string::npos);
  CHECK(report.find("Regime: zero-shot is above chance plus merge.learned_margin_se standard errors (the learned threshold) "
                    "on 2 of 3 tasks (cola, stsb); fine-tuning adds 5 points or more to zero-shot on 3 / 2 / 0 of 3 tasks "
                    "(full / lora / l-lora).", text_part) != std::string::npos);
  // without thresholds (results written before them) only the fine-tuning half
  text.erase("learned_thresholds");
  report = report_without_plots(dir, results);
  CHECK(report.find("Regime: fine-tuning adds 5 points or more to zero-shot on 3 / 2 / 0 of 3 tasks", report.find("## Text suite")) !=
        std::string::npos);
}

TEST_CASE("a sweep normalized over some tasks says over which, and shows the absolute averages", "[report][report_writer]") {
  TempDir dir("sweep_partial");
  json results = sample_results();
  json& sweep = results["suites"]["text"]["num_tasks_sweep"];
  for (size_t i = 0; i < sweep.size(); ++i) {
    sweep[i]["normalized_over"] = {"sst2"};
    sweep[i]["absolute_average"] = 0.5 + 0.01 * double(i);
  }
  std::string report = report_without_plots(dir, results);
  const size_t text_part = report.find("## Text suite");
  REQUIRE(text_part != std::string::npos);
  CHECK(report.find("among those holding a learned task (sst2)", text_part) != std::string::npos);
  CHECK(report.find("among those holding a learned task") > text_part);   // not in the vision suite
  const json* point = nullptr;
  for (const auto& p : sweep)
    if (p["mode"] == "lora" && p["k"] == 3) point = &p;
  REQUIRE(point);
  auto row = table_row(report.substr(text_part), "Absolute test average", "Task arithmetic", "lora");
  CHECK(row[4] == percent_of((*point)["absolute_average"]));
  // k = 2 merged three subsets (a spread), k = 3 one (none shown)
  REQUIRE((*point)["subsets"].size() == 1);
  auto normalized = table_row(report.substr(text_part), "### Normalized score vs number", "Task arithmetic", "lora");
  CHECK(normalized[4] == percent_of((*point)["normalized_average"]));
  CHECK(normalized[3].find(" ± ") != std::string::npos);
  // the plot's y axis names the tasks it is over
  auto plots = report::plan_plots(report::read_results_file((dir.path / "results.json").string()));
  auto text_plot = std::find_if(plots.begin(), plots.end(), [](const report::Plot& p) { return p.name == "num_tasks_text"; });
  REQUIRE(text_plot != plots.end());
  CHECK(text_plot->script.find("set ylabel \"normalized score over sst2 (%)\"") != std::string::npos);
  CHECK(line_count(read_text(dir.path / "num_tasks.csv")) == 1 + sweep.size() + results["suites"]["vision"]["num_tasks_sweep"].size());
}

TEST_CASE("the text suite's word-feature baseline is a row of the single-task table, its features named", "[report][report_writer]") {
  TempDir dir("baseline");
  json results = sample_results();
  results["suites"]["text"]["baseline"] = {{"cola", 0.512}, {"sst2", 0.724}, {"stsb", 0.987}};
  results["suites"]["text"]["baseline_features"] = {{"cola", "bag of words"}, {"sst2", "bag of words"}, {"stsb", "word overlap"}};
  std::string report = report_without_plots(dir, results);
  auto row = table_row(report, "## Text suite", "word-feature baseline");
  REQUIRE(row.size() == 5);
  // scored on the suite's test examples (96, 96, 64), so with their standard errors
  CHECK(row[1] == with_error(0.512, standard_error_of(0.512, 96)));
  CHECK(row[1] == "51.2 ± 5.1");
  CHECK(row[3] == with_error(0.987, standard_error_of(0.987, 64, true)));
  double average_error = std::sqrt(std::pow(standard_error_of(0.512, 96), 2) + std::pow(standard_error_of(0.724, 96), 2) +
                                   std::pow(standard_error_of(0.987, 64, true), 2)) / 3;
  CHECK(row[4] == with_error((0.512 + 0.724 + 0.987) / 3, average_error));
  CHECK(report.find("(bag of words: cola, sst2; word overlap: stsb).") != std::string::npos);
  // the sample's fine-tuned text models average about 84%, within 10 points of this baseline: no caveat
  CHECK(report.find("the model did not learn them") == std::string::npos);
  results["suites"]["text"]["baseline"] = {{"cola", 0.99}, {"sst2", 0.99}, {"stsb", 0.99}};
  report = report_without_plots(dir, results);
  CHECK(report.find("- **Caveat (text)**: the word-feature baseline averages 99.0, more than 10 points above the best "
                    "fine-tuned model") != std::string::npos);
}

TEST_CASE("the text suite's overview says how answers became decisions when results.json says it", "[report][report_writer]") {
  TempDir dir("scoring");
  json results = sample_results();
  std::string report = report_without_plots(dir, results);
  CHECK(report.find("Answers: ") == std::string::npos);
  results["suites"]["text"]["scoring"] = "each answer's log-probability less its mean over 100 validation inputs";
  report = report_without_plots(dir, results);
  const size_t text_suite = report.find("## Text suite"), answers = report.find("Answers: each answer's log-probability less its mean");
  REQUIRE(text_suite != std::string::npos);
  CHECK((answers != std::string::npos && answers > text_suite));
  results["suites"]["text"]["scoring"] = 3;
  CHECK_THROWS_WITH(report_without_plots(dir, results), Catch::Contains("suites.text.scoring"));
}

TEST_CASE("the report warns when task arithmetic chose lambda 0, the pretrained model", "[report][report_writer]") {
  TempDir dir("lambda0");
  json results = sample_results();
  std::string at_zero;
  for (auto& m : results["suites"]["text"]["merged"])
    if (m["method"] == "task_arithmetic" && m["mode"] == "lora") {
      m["hyperparameters"]["lambda"] = 0.0;
      at_zero = "lora (" + m["space"].get<std::string>() + ")";
      break;
    }
  REQUIRE(!at_zero.empty());
  std::string report = report_without_plots(dir, results);
  CHECK(report.find("- **Caveat (text)**: task arithmetic chose lambda = 0, i.e. the pretrained model, on validation for " +
                    at_zero + ":") != std::string::npos);
  CHECK(report.find("- **Caveat (vision)**: task arithmetic chose lambda = 0") == std::string::npos);
}

TEST_CASE("the report warns when one task's fine-tuning lowers the other tasks in every mode", "[report][report_writer]") {
  TempDir dir("interference");
  json results = sample_results();
  // text: every off-diagonal score 5 points below zero-shot in lora, 2 below in the other modes
  const json& zero_shot = results["suites"]["text"]["zero_shot"];
  const std::vector<std::string> tasks = results["suites"]["text"]["tasks"];
  for (auto& [mode, entry] : results["suites"]["text"]["cross_task"].items())
    for (size_t i = 0; i < tasks.size(); ++i)
      for (size_t j = 0; j < tasks.size(); ++j)
        if (i != j) entry["matrix"][i][j] = zero_shot[tasks[j]].get<double>() - (mode == "lora" ? 0.05 : 0.02);
  // vision: one mode whose fine-tuning helps the other tasks: no caveat for the suite
  for (auto& row : results["suites"]["vision"]["cross_task"]["lora"]["matrix"])
    for (auto& score : row) score = 1.0;
  std::string report = report_without_plots(dir, results);
  CHECK(report.find("- **Caveat (text)**: fine-tuning one task alone lowers the other tasks' scores below the pretrained "
                    "model's, by 2.0 to 5.0 points on average") != std::string::npos);
  CHECK(report.find("- **Caveat (vision)**: fine-tuning one task alone") == std::string::npos);
  CHECK(table_row(report, "## Text suite", "lora")[0] == "lora");
  auto cross_row = table_row(report.substr(report.find("## Text suite")), "### Cross-task scores", "lora");
  CHECK(cross_row[2] == "-5.0");
  CHECK(cross_row[3] == "6 of 6");
}

TEST_CASE("the scaling section splits task arithmetic's retained gain into one vector's share and interference", "[report][report_writer]") {
  TempDir dir("scaling");
  json results = sample_results();
  json& vision = results["suites"]["vision"];   // task arithmetic: lambda 0.3 (full), 0.4 (l-lora)
  const std::vector<std::string> tasks = vision["tasks"];
  // each task keeps this share of its own gain at each lambda; l-lora's curve also has its lambda, 0.4
  auto set_curve = [&](const std::string& mode, const std::vector<double>& lambdas, const std::vector<double>& kept) {
    json matrix = json::array();
    for (const auto& task : tasks) {
      const double zero_shot = vision["zero_shot"][task].get<double>(), single = vision["single_task"][mode][task].get<double>();
      json row = json::array();
      for (double share : kept) row.push_back(zero_shot + share * (single - zero_shot));
      matrix.push_back(row);
    }
    vision["task_vector_scaling"][mode] = {{"lambdas", lambdas}, {"matrix", matrix}};
  };
  set_curve("full", {0.1, 0.3, 0.5}, {0.1, 0.3, 0.6});
  SECTION("r at the chosen lambda is read from the mode's own curve; the columns are the lambdas all curves share") {
    set_curve("l-lora", {0.1, 0.3, 0.4, 0.5}, {0.1, 0.3, 0.45, 0.6});
    std::string report = report_without_plots(dir, results);
    const std::string at_vision = report.substr(report.find("## Vision suite"));
    auto full = table_row(at_vision, "### One task vector, scaled", "full");
    REQUIRE(full.size() == 8);
    CHECK(std::vector<std::string>(full.begin() + 1, full.begin() + 5) == std::vector<std::string>{"0.10", "0.30", "0.60", "0.3"});
    CHECK(full[6] == "0.30");   // r at task arithmetic's lambda
    CHECK(full[7] == report::fixed(0.30 - std::stod(full[5]), 2));
    auto l_lora = table_row(at_vision, "### One task vector, scaled", "l-lora");
    CHECK(std::vector<std::string>(l_lora.begin() + 1, l_lora.begin() + 5) == std::vector<std::string>{"0.10", "0.30", "0.60", "0.4"});
    CHECK(l_lora[6] == "0.45");
    // modes without a curve have no row; a suite without curves has no section
    const size_t section = at_vision.find("### One task vector, scaled");
    const std::string scaling = at_vision.substr(section, at_vision.find("### ", section + 4) - section);
    CHECK(scaling.find("| lora ") == std::string::npos);
    CHECK(report.substr(report.find("## Text suite")).find("### One task vector, scaled") == std::string::npos);
  }
  SECTION("a curve without the chosen lambda leaves r there empty") {
    set_curve("l-lora", {0.1, 0.3, 0.5}, {0.1, 0.3, 0.6});
    std::string report = report_without_plots(dir, results);
    auto l_lora = table_row(report.substr(report.find("## Vision suite")), "### One task vector, scaled", "l-lora");
    CHECK(l_lora[4] == "0.4");
    CHECK(l_lora[6] == "–");
    CHECK(l_lora[7] == "–");
  }
}

TEST_CASE("the diagnostics sections show the leakage, the linear probe and the damage correlation", "[report][report_writer]") {
  TempDir dir("diagnostics");
  json results = sample_results();
  json& vision = results["suites"]["vision"];   // tasks mnist, fashion_mnist, shapes, glyphs
  // linear-full: off-diagonal entries summing to 4.8 over 12 pairs (mean 0.40); lora: 1.2 everywhere off it
  vision["leakage"]["linear-full"]["matrix"] = {{1.0, 0.2, 0.4, 0.6}, {0.3, 1.0, 0.5, 0.7}, {0.1, 0.3, 1.0, 0.3}, {0.4, 0.4, 0.6, 1.0}};
  vision["leakage"]["lora"]["matrix"] = {{1.0, 1.2, 1.2, 1.2}, {1.2, 1.0, 1.2, 1.2}, {1.2, 1.2, 1.0, 1.2}, {1.2, 1.2, 1.2, 1.0}};
  // lora's centered matrix: 0.6 everywhere off the diagonal; linear-full has none (results.json before it existed)
  vision["leakage"]["lora"]["centered"] = {{1.0, 0.6, 0.6, 0.6}, {0.6, 1.0, 0.6, 0.6}, {0.6, 0.6, 1.0, 0.6}, {0.6, 0.6, 0.6, 1.0}};
  vision["linear_probe"] = {{"mnist", 0.98}, {"fashion_mnist", 0.90}, {"shapes", 0.97}, {"glyphs", 0.95}};
  vision["linear_probe_l2"] = {{"mnist", 0.001}, {"fashion_mnist", 0.0001}, {"shapes", 0.01}, {"glyphs", 0.001}};
  vision["domain_similarity"]["matrix"] = {{1.0, 0.5, 0.1, 0.2}, {0.5, 1.0, 0.3, 0.4}, {0.1, 0.3, 1.0, 0.6}, {0.2, 0.4, 0.6, 1.0}};
  for (const auto& mode : vision["modes"]) vision["domain_similarity"]["damage_correlation"][mode.get<std::string>()] = 0.45;
  std::string report = report_without_plots(dir, results);
  const std::string at_vision = report.substr(report.find("## Vision suite"));

  auto leakage = table_row(at_vision, "### Cross-task leakage", "linear-full");
  CHECK(leakage[1] == "0.40");
  CHECK(leakage[2] == "–");
  CHECK(leakage[3] == "shapes -> mnist 0.10");
  CHECK(leakage[4] == "fashion_mnist -> glyphs 0.70");
  CHECK(table_row(at_vision, "### Cross-task leakage", "lora")[1] == "1.20");
  CHECK(table_row(at_vision, "### Cross-task leakage", "lora")[2] == "0.60");
  CHECK(table_row(at_vision, "The whole matrix for linear-full", "shapes") == std::vector<std::string>{"shapes", "0.10", "0.30", "1.00", "0.30"});
  CHECK(at_vision.find("moves the other tasks' logits 0.40 times as far as its own on average: less than half as far") != std::string::npos);
  // the text suite has no leakage in the sample: a note, and no vision-only sections
  const std::string at_text = report.substr(report.find("## Text suite"));
  CHECK(at_text.find("No leakage matrices in results.json") != std::string::npos);
  CHECK(at_text.find("### Linear probe") == std::string::npos);

  auto mnist = table_row(at_vision, "### Linear probe", "mnist");
  CHECK(mnist[1] == percent_of(0.312));   // zero-shot
  CHECK(mnist[2] == "98.0");
  CHECK(mnist[3] == percent_of(0.991));   // full fine-tuning
  CHECK(mnist[4] == "-1.1");
  CHECK(mnist[5] == "0.0010");
  CHECK(table_row(at_vision, "### Linear probe", "average")[2] == "95.0");
  CHECK(at_vision.find("within 3 points, CLIP's regime: fine-tuning re-uses the pretrained features") != std::string::npos);

  // the mean damage of full, computed here from the fixture: zero-shot minus cross-task, over the 12 pairs
  const std::vector<std::string> tasks = vision["tasks"];
  double damage = 0;
  for (size_t t = 0; t < tasks.size(); ++t)
    for (size_t s = 0; s < tasks.size(); ++s)
      if (s != t) damage += 100 * (vision["zero_shot"][tasks[s]].get<double>() - vision["cross_task"]["full"]["matrix"][t][s].get<double>()) / 12;
  auto full = table_row(at_vision, "### Domain similarity", "full");
  CHECK(full[1] == "+0.45");
  CHECK(full[2] == report::signed_fixed(damage, 1));
  CHECK(at_vision.find("The mean similarity of two different tasks is 0.35.") != std::string::npos);
  CHECK(at_vision.find("In every mode the damage rises with the similarity") != std::string::npos);

  SECTION("a probe far below fine-tuning is not CLIP's regime; damage unrelated to similarity says so") {
    vision["linear_probe"] = {{"mnist", 0.5}, {"fashion_mnist", 0.5}, {"shapes", 0.5}, {"glyphs", 0.5}};
    for (const auto& mode : vision["modes"]) vision["domain_similarity"]["damage_correlation"][mode.get<std::string>()] = 0.1;
    std::string other = report_without_plots(dir, results);
    CHECK(other.find("more than 3 points below, not CLIP's regime") != std::string::npos);
    CHECK(other.find("In no mode does the damage follow the similarity") != std::string::npos);
  }
}

TEST_CASE("a malformed results.json is an error naming the file and the problem", "[report][report_writer]") {
  TempDir dir("malformed");
  std::string path = (dir.path / "results.json").string();
  SECTION("missing file") {
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains(path) && Catch::Contains("linfuse experiment"));
  }
  SECTION("not JSON (cut short)") {
    std::string text = sample_results().dump();
    write_text(path, text.substr(0, text.size() / 2));
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains(path) && Catch::Contains("not valid JSON"));
  }
  SECTION("a score of the wrong type") {
    json results = sample_results();
    results["suites"]["vision"]["merged"][2]["test"]["mnist"] = "0.8";
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains(path) &&
                                                   Catch::Contains("suites.vision.merged[2].test.mnist") &&
                                                   Catch::Contains("should be a number but is a string"));
  }
  SECTION("a cosine matrix of the wrong size") {
    json results = sample_results();
    results["suites"]["text"]["cosine_similarity"]["lora"]["matrix"].erase(0);
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.text.cosine_similarity.lora.matrix") &&
                                                   Catch::Contains("should have 3 rows but has 2"));
  }
  SECTION("a cross-task matrix row of the wrong length") {
    json results = sample_results();
    results["suites"]["vision"]["cross_task"]["l-lora"]["matrix"][2].erase(1);
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.vision.cross_task.l-lora.matrix[2]") &&
                                                   Catch::Contains("should have 4 entries but has 3"));
  }
  SECTION("a leakage matrix of the wrong size, a damage correlation that is not a number") {
    json results = sample_results();
    results["suites"]["vision"]["leakage"]["lora"]["matrix"] = {{1.0, 0.5}, {0.5, 1.0}};
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.vision.leakage.lora.matrix") &&
                                                   Catch::Contains("should have 4 rows but has 2"));
    results["suites"]["vision"].erase("leakage");
    results["suites"]["vision"]["domain_similarity"] = {{"matrix", json::array()}};
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.vision.domain_similarity.matrix"));
    results["suites"]["vision"]["domain_similarity"] = {
        {"matrix", {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}}, {"damage_correlation", {{"full", "high"}}}};
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.vision.domain_similarity.damage_correlation.full") &&
                                                   Catch::Contains("should be a number"));
  }
  SECTION("a task that is not in the suite") {
    json results = sample_results();
    results["suites"]["text"]["single_task"]["lora"]["mnli"] = 0.7;
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.text.single_task.lora") && Catch::Contains("'mnli'"));
  }
  SECTION("a normalized task that is not in the suite") {
    json results = sample_results();
    results["suites"]["text"]["normalized_tasks"] = {"cola", "mnli"};
    write_text(path, results.dump());
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.text.normalized_tasks") && Catch::Contains("'mnli'"));
  }
  SECTION("not a results document") {
    write_text(path, "[1, 2, 3]");
    CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains(path) && Catch::Contains("should be an object"));
  }
  CHECK(!fs::exists(dir.path / "report.md"));
}

namespace {

// Results of two suites where both L-LoRA variants differ from LoRA by `vision_edge` / `text_edge` in every
// measurement, in the paper's direction when the edge is positive: better merged normalized averages (and
// retained gains G: zero-shot averages 44, LoRA's single-task 85, merged = normalized x single-task, so
// G = ((0.8 + e)(0.85 - e) - 0.44) / (0.41 - e), 0.585 for LoRA, above it for e > 0, below for e < 0), less
// similar task vectors, an advantage growing with k, and a lower single-task score.
json claim_results(double vision_edge, double text_edge, bool with_local = true) {
  json results = {{"manifest", {{"preset", "tiny"}}}, {"suites", json::object()}};
  std::vector<std::string> modes = {"lora", "l-lora"};
  if (with_local) modes.push_back("l-lora-local");
  for (const auto& [name, edge] : {std::pair<std::string, double>{"vision", vision_edge}, {"text", text_edge}}) {
    json suite = {{"tasks", {"a", "b", "c"}}, {"modes", modes}};
    suite["zero_shot"] = {{"a", 0.5}, {"b", 0.4}, {"c", 0.42}};
    for (const auto& mode : modes) {
      double shift = mode == "lora" ? 0.0 : edge;
      suite["single_task"][mode] = {{"a", 0.9 - shift}, {"b", 0.8 - shift}, {"c", 0.85 - shift}};
      json test;
      for (const auto& [task, single] : suite["single_task"][mode].items()) test[task] = (0.80 + shift) * single.get<double>();
      for (const char* method : {"task_arithmetic", "ties", "simple_average", "lorahub"})
        for (const char* space : {"parameter", "weight"})
          suite["merged"].push_back({{"method", method}, {"mode", mode}, {"space", space}, {"test", test},
                                     {"normalized_average", 0.80 + shift}});
      double off = 0.2 - shift / 2;
      json matrix = {{1.0, off, off}, {off, 1.0, off}, {off, off, 1.0}};
      suite["cosine_similarity"][mode] = {{"matrix", matrix}, {"mean_off_diagonal", off},
                                          {"layer_averaged_matrix", matrix}, {"layer_averaged_mean_off_diagonal", off}};
      for (int k : {2, 3})
        suite["num_tasks_sweep"].push_back({{"method", "task_arithmetic"}, {"mode", mode}, {"space", "parameter"},
                                            {"k", k}, {"normalized_average", 0.95 - 0.05 * k + shift * k}});
    }
    results["suites"][name] = suite;
  }
  return results;
}

std::map<std::string, ClaimVerdict> by_claim(const std::vector<ClaimVerdict>& verdicts) {
  std::map<std::string, ClaimVerdict> map;
  for (const auto& verdict : verdicts) {
    std::string key = verdict.claim.substr(0, 3) + (verdict.claim.find("`l-lora-local`") != std::string::npos ? " local" : " network");
    map[key] = verdict;
  }
  return map;
}

}  // namespace

TEST_CASE("claims hold when L-LoRA beats LoRA everywhere, fail when it loses, are mixed when one suite each", "[report][report_writer]") {
  SECTION("better everywhere: held") {
    auto verdicts = evaluate_claims(claim_results(0.05, 0.05));
    REQUIRE(verdicts.size() == 8);
    for (const auto& verdict : verdicts) {
      INFO(verdict.claim << " -> " << verdict.evidence);
      CHECK(verdict.verdict == "held");
    }
    auto claims = by_claim(verdicts);
    CHECK(claims.at("(a) network").evidence.rfind("16 of 16 comparisons agree", 0) == 0);
    CHECK(claims.at("(a) network").gain_verdict == "held");
    CHECK(claims.at("(a) local").gain_verdict == "held");
    CHECK(claims.at("(a) network").evidence.find("On the retained gain G: 16 of 16 agree.") != std::string::npos);
    CHECK(claims.at("(a) network").evidence.find("Task arithmetic 85.0 vs 80.0 [G 0.67 vs 0.59]") != std::string::npos);
    CHECK(claims.at("(b) network").gain_verdict.empty());  // measured one way only
    CHECK(claims.at("(a) network").evidence.find("vision/weight: Task arithmetic 85.0 vs 80.0") != std::string::npos);
    CHECK(claims.at("(b) local").evidence.find("flattened 0.175 vs 0.200") != std::string::npos);
    CHECK(claims.at("(c) network").evidence.find("Task arithmetic +10.0 at k=2 -> +15.0 at k=3") != std::string::npos);
    CHECK(claims.at("(d) network").evidence.find("vision: average 80.0 vs 85.0") != std::string::npos);
  }
  SECTION("worse everywhere: did not hold") {
    for (const auto& verdict : evaluate_claims(claim_results(-0.05, -0.05))) {
      INFO(verdict.claim << " -> " << verdict.evidence);
      CHECK(verdict.verdict == "did not hold");
      CHECK((verdict.gain_verdict.empty() || verdict.gain_verdict == "did not hold"));
    }
    CHECK(by_claim(evaluate_claims(claim_results(-0.05, -0.05))).at("(a) network").gain_verdict == "did not hold");
  }
  SECTION("better in vision, worse in text: mixed") {
    for (const auto& verdict : evaluate_claims(claim_results(0.05, -0.05))) {
      INFO(verdict.claim << " -> " << verdict.evidence);
      CHECK(verdict.verdict == "mixed");
      CHECK((verdict.gain_verdict.empty() || verdict.gain_verdict == "mixed"));
      CHECK(verdict.evidence.find("(disagrees)") != std::string::npos);
    }
    CHECK(by_claim(evaluate_claims(claim_results(0.05, -0.05))).at("(a) local").gain_verdict == "mixed");
  }
  SECTION("a variant that was not run: not measured, the other is still judged") {
    auto claims = by_claim(evaluate_claims(claim_results(0.05, 0.05, false)));
    CHECK(claims.at("(a) local").verdict == "not measured");
    CHECK(claims.at("(a) local").gain_verdict == "not measured");
    CHECK(claims.at("(a) local").evidence.find("l-lora-local") != std::string::npos);
    CHECK(claims.at("(d) local").verdict == "not measured");
    CHECK(claims.at("(a) network").verdict == "held");
  }
  SECTION("equal scores are not 'better'") {
    auto claims = by_claim(evaluate_claims(claim_results(0.0, 0.0)));
    CHECK(claims.at("(a) network").verdict == "did not hold");
    CHECK(claims.at("(a) network").gain_verdict == "did not hold");
  }
}

TEST_CASE("claims on the sample results: the numbers behind each verdict", "[report][report_writer]") {
  auto claims = by_claim(evaluate_claims(sample_results()));
  // The fixture was built so that network-level L-LoRA merges better everywhere except text simple averaging,
  // and layer-level L-LoRA loses in the vision weight space.
  CHECK(claims.at("(a) network").verdict == "mixed");
  CHECK(claims.at("(a) network").evidence.find("Simple averaging 76.4 vs 78.4 (disagrees)") != std::string::npos);
  CHECK(claims.at("(a) local").verdict == "mixed");
  CHECK(claims.at("(b) network").verdict == "held");
  CHECK(claims.at("(b) local").verdict == "held");
  CHECK(claims.at("(c) network").verdict == "held");
  CHECK(claims.at("(c) local").verdict == "mixed");  // TIES: layer-level L-LoRA's edge over LoRA shrinks with k
  CHECK(claims.at("(d) network").verdict == "held");
  CHECK(claims.at("(d) local").verdict == "held");
}

TEST_CASE("linfuse report writes a results folder's report again; a missing folder or results.json is a clear error", "[report][report_writer][cli]") {
  const std::string binary = (fs::read_symlink("/proc/self/exe").parent_path() / "linfuse").string();
  REQUIRE(fs::exists(binary));
  auto run = [&](const std::string& arguments, int& status) {
    std::string output;
    FILE* pipe = popen((binary + " report " + arguments + " 2>&1").c_str(), "r");
    REQUIRE(pipe);
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
    status = WEXITSTATUS(pclose(pipe));
    return output;
  };
  TempDir by_command("cli"), in_process("cli_reference");
  fs::copy_file(testing::source_path("tests/fixtures/report_results_sample.json"), by_command.path / "results.json");
  const std::string results_before = read_text(by_command.path / "results.json");
  int status = -1;
  std::string output = run(by_command.str() + " --no-plots", status);
  INFO(output);
  CHECK(status == 0);
  CHECK_THAT(output, Catch::Contains("report: " + (by_command.path / "report.md").string()));
  // the same report the library writes, and results.json untouched
  fs::copy_file(testing::source_path("tests/fixtures/report_results_sample.json"), in_process.path / "results.json");
  ReportOptions no_plots;
  no_plots.plots = false;
  CHECK(read_text(by_command.path / "report.md") == read_text(write_report(in_process.str(), no_plots)));
  CHECK(read_text(by_command.path / "results.json") == results_before);
  CHECK_FALSE(fs::exists(by_command.path / "plots"));

  output = run((by_command.path / "absent").string(), status);
  CHECK(status == 2);
  CHECK_THAT(output, Catch::Contains("is not a folder") && Catch::Contains("--out"));
  output = run("", status);
  CHECK(status == 2);
  CHECK_THAT(output, Catch::Contains("name the results folder"));
  TempDir empty("cli_empty");
  output = run(empty.str(), status);
  CHECK(status == 1);
  CHECK_THAT(output, Catch::StartsWith("linfuse report: ") && Catch::Contains("results.json"));
  CHECK_FALSE(fs::exists(empty.path / "report.md"));
  // The options every command reads the same way (cli/command_line.h): an unknown option or a second folder is a
  // one-line error pointing at --help, --help the help.
  output = run(empty.str() + " --plots-please", status);
  CHECK(status == 2);
  CHECK_THAT(output, Catch::Contains("plots-please") && Catch::Contains("see 'linfuse report --help'"));
  output = run(empty.str() + " " + by_command.str(), status);
  CHECK(status == 2);
  CHECK_THAT(output, Catch::Contains("unexpected argument '" + by_command.str() + "'"));
  output = run("--help", status);
  CHECK(status == 0);
  CHECK_THAT(output, Catch::Contains("RESULTS_DIR") && Catch::Contains("--no-plots"));
}

TEST_CASE("report number formatting: one decimal, no negative zero, thousands, CSV quoting", "[report][report_writer]") {
  using namespace linfuse::experiments::report;
  CHECK(percent(0.8345) == "83.5");
  CHECK(percent(-0.0004) == "0.0");
  CHECK(percent(std::optional<double>()) == kMissing);
  CHECK(signed_fixed(0.04, 1) == "0.0");
  CHECK(signed_fixed(1.25, 1) == "+1.2");  // round-half-even of the double 1.25
  CHECK(with_thousands(812544) == "812,544");
  CHECK(with_thousands(-1000) == "-1,000");
  CHECK(csv_field("lambda=0.3; k=20") == "lambda=0.3; k=20");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  MarkdownTable table({"name", "value"});
  table.add_row({"|a|", "1.0"});
  CHECK(table.str() == "| name  | value |\n| ----- | ----: |\n| \\|a\\| |   1.0 |\n");
}

// Hidden: renders the sample (or the results.json named by $LINFUSE_PREVIEW_RESULTS) into
// $LINFUSE_PREVIEW_DIR (default ./report_preview), to look at the report and its plots.
// Run with: ./build/test_experiments "[.report_preview]"
TEST_CASE("report preview of the sample results", "[.report_preview]") {
  const char* env = std::getenv("LINFUSE_PREVIEW_DIR");
  const char* results = std::getenv("LINFUSE_PREVIEW_RESULTS");
  fs::path dir = env && *env ? env : "report_preview";
  fs::create_directories(dir);
  fs::copy_file(results && *results ? results : testing::source_path("tests/fixtures/report_results_sample.json"),
                dir / "results.json", fs::copy_options::overwrite_existing);
  std::printf("wrote %s\n", write_report(dir.string()).c_str());
}
