// linfuse report: writes report.md, the CSV tables and the plots again from a results folder's results.json,
// without running anything: after installing gnuplot, after the report code changed, or on results copied from
// another machine. results.json is only read (experiments/report.h).
#include <cstdio>
#include <cxxopts.hpp>
#include <exception>
#include <filesystem>
#include <string>

#include "cli/command_line.h"
#include "experiments/report.h"

int report_main(int argc, char** argv) {
  cxxopts::Options options(
      "linfuse report",
      "Writes report.md, the CSV tables and plots/ again in a results folder of 'linfuse experiment', from its\n"
      "results.json alone (nothing is trained or scored; results.json is only read). Usage:\n"
      "  linfuse report results/small-vision+text-seed0\n");
  options.positional_help("RESULTS_DIR").add_options()("results", "the results folder", cxxopts::value<std::string>())(
      "no-plots", "write no plots/ folder (the report says plots were disabled)")("h,help", "show this help");
  options.parse_positional({"results"});
  const linfuse::cli::CommandLine line = linfuse::cli::parse_command_line(options, argc, argv, "linfuse report", options.help());
  if (line.exit_code) return *line.exit_code;
  const cxxopts::ParseResult& args = line.args;
  if (!args.count("results")) {
    std::fprintf(stderr, "linfuse report: name the results folder, e.g. 'linfuse report results/small-vision+text-seed0'\n");
    return 2;
  }
  const std::string dir = args["results"].as<std::string>();
  if (!std::filesystem::is_directory(dir)) {
    std::fprintf(stderr, "linfuse report: %s is not a folder: name the results folder 'linfuse experiment' wrote (--out)\n",
                 dir.c_str());
    return 2;
  }
  linfuse::experiments::ReportOptions report_options;
  report_options.plots = !args.count("no-plots");
  try {
    std::printf("report: %s\n", linfuse::experiments::write_report(dir, report_options).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse report: %s\n", e.what());
    return 1;
  }
  return 0;
}
