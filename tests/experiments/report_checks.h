#pragma once
// Helpers shared by the report writer's tests (test_report.cpp, test_report_gain.cpp): files in a temporary
// folder, a report rendered without plots, and the cells of a row of one of its markdown tables.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/report.h"

namespace linfuse::testing {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A fresh directory under the system temp folder, removed with the object.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() / ("linfuse_report_test_" + std::to_string(getpid()) + "_" + name +
                                                     "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string str() const { return path.string(); }
};

// Writes `results` as dir's results.json and returns the report rendered from it without plots.
inline std::string report_without_plots(const TempDir& dir, const nlohmann::json& results) {
  write_text(dir.path / "results.json", results.dump());
  experiments::ReportOptions no_plots;
  no_plots.plots = false;
  return read_text(experiments::write_report(dir.str(), no_plots));
}

// A fraction as the report shows it: one decimal of the percentage.
inline std::string percent_of(double fraction) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", 100 * fraction);
  return buffer;
}

inline std::string trim(const std::string& text) {
  size_t begin = text.find_first_not_of(' '), end = text.find_last_not_of(' ');
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

// The cells of the first table row whose first cell is `label` (and, if given, whose second cell is
// `second`), after the first occurrence of `heading` in `report`.
inline std::vector<std::string> table_row(const std::string& report, const std::string& heading, const std::string& label,
                                          const std::string& second = "") {
  size_t start = report.find(heading);
  REQUIRE(start != std::string::npos);
  std::istringstream lines(report.substr(start));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) != 0) continue;
    std::vector<std::string> cells;
    std::string cell;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '|' && line[i - 1] != '\\') cells.push_back(trim(cell)), cell.clear();
      else cell += line[i];
    }
    if (!cells.empty() && cells[0] == label && (second.empty() || (cells.size() > 1 && cells[1] == second)))
      return cells;
  }
  FAIL("no row '" << label << "' after '" << heading << "'");
  return {};
}

}  // namespace linfuse::testing
