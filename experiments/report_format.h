#pragma once
// Text formatting shared by the pieces of the report: numbers as the report shows them, display names, CSV
// fields and aligned markdown tables.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace linfuse::experiments::report {

inline constexpr const char* kMissing = "–";  // shown where a value was not measured

// A fraction as a percentage with one decimal: 0.8345 -> "83.5" (Spearman's rho x100 likewise). Never "-0.0".
std::string percent(double fraction);
std::string percent(const std::optional<double>& fraction);  // empty -> kMissing
// Fixed decimals, never "-0.0"; signed_fixed adds "+" to positive values ("+1.2").
std::string fixed(double value, int decimals);
std::string signed_fixed(double value, int decimals);
// 812544 -> "812,544".
std::string with_thousands(int64_t value);
// Seconds with one decimal, plus minutes / hours when long: "41.2 s", "300.1 s (5 min 0 s)".
std::string duration_text(double seconds);

// Items joined by ", ": {"cola", "qqp"} -> "cola, qqp" (lists of tasks and modes in the report's sentences).
std::string comma_list(const std::vector<std::string>& items);

// "task_arithmetic" -> "Task arithmetic"; unknown methods are shown as written.
std::string method_title(const std::string& method);
// "vision" -> "Vision".
std::string capitalized(const std::string& text);
// Letters, digits, '-' and '_' kept, anything else becomes '_' (for file names made of task or mode names).
std::string file_safe(const std::string& text);

// CSV (RFC 4180): a field is quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& text);
// A number with enough digits to read back the double's value closely ("%.10g"); empty for no value.
std::string csv_number(const std::optional<double>& value);
std::string csv_line(const std::vector<std::string>& fields);  // fields joined by ',' and a '\n'

// A markdown table whose columns are padded to equal width, so that it also reads well as plain text.
// The first `label_columns` columns are left-aligned, the others (numbers) right-aligned. '|' in a cell is
// escaped. Rows shorter than the header are padded with empty cells.
class MarkdownTable {
 public:
  MarkdownTable(std::vector<std::string> header, size_t label_columns = 1);
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  std::string str() const;

 private:
  std::vector<std::string> header_;
  size_t label_columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace linfuse::experiments::report
