// Text formatting for the report (see report_format.h).
#include "experiments/report_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace linfuse::experiments::report {
namespace {

// Display width of UTF-8 text: one column per code point (the report's non-ASCII characters, such as
// "–", "±" and "ρ", are one column wide).
size_t display_width(const std::string& text) {
  return size_t(std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string escape_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string text = buffer;
  // "-0.0" after rounding reads as a sign error; show it as zero.
  if (text[0] == '-' && text.find_first_not_of("-0.") == std::string::npos) text.erase(0, 1);
  return text;
}

std::string signed_fixed(double value, int decimals) {
  std::string text = fixed(value, decimals);
  if (text[0] != '-' && text.find_first_not_of("0.") != std::string::npos) text = "+" + text;
  return text;
}

std::string percent(double fraction) { return fixed(100.0 * fraction, 1); }

std::string percent(const std::optional<double>& fraction) { return fraction ? percent(*fraction) : kMissing; }

std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string duration_text(double seconds) {
  std::string text = fixed(seconds, 1) + " s";
  long whole = std::lround(seconds);
  if (whole >= 3600)
    text += " (" + std::to_string(whole / 3600) + " h " + std::to_string(whole % 3600 / 60) + " min)";
  else if (whole >= 60)
    text += " (" + std::to_string(whole / 60) + " min " + std::to_string(whole % 60) + " s)";
  return text;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + items[i];
  return text;
}

std::string method_title(const std::string& method) {
  static const std::map<std::string, std::string> titles = {
      {"simple_average", "Simple averaging"},
      {"task_arithmetic", "Task arithmetic"},
      {"ties", "TIES-merging"},
      {"dare_task_arithmetic", "DARE + task arithmetic"},
      {"dare_ties", "DARE + TIES"},
      {"fisher", "Fisher merging"},
      {"regmean", "RegMean"},
      {"adamerging_task", "AdaMerging (task-wise)"},
      {"adamerging_layer", "AdaMerging (layer-wise)"},
      {"lorahub", "LoraHub"},
  };
  auto found = titles.find(method);
  return found == titles.end() ? method : found->second;
}

std::string capitalized(const std::string& text) {
  std::string out = text;
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = char(out[0] - 'a' + 'A');
  return out;
}

std::string file_safe(const std::string& text) {
  std::string out;
  for (char c : text) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out += keep ? c : '_';
  }
  return out;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_number(const std::optional<double>& value) {
  if (!value) return "";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", *value);
  return buffer;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    line += csv_field(fields[i]);
  }
  return line + "\n";
}

MarkdownTable::MarkdownTable(std::vector<std::string> header, size_t label_columns)
    : header_(std::move(header)), label_columns_(label_columns) {}

void MarkdownTable::add_row(std::vector<std::string> cells) {
  cells.resize(std::max(cells.size(), header_.size()));
  rows_.push_back(std::move(cells));
}

std::string MarkdownTable::str() const {
  size_t columns = header_.size();
  for (const auto& row : rows_) columns = std::max(columns, row.size());
  std::vector<size_t> width(columns, 3);  // "---" is the shortest separator
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(escape_cell(row[c])));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto line = [&](const std::vector<std::string>& row) {
    std::string out = "|";
    for (size_t c = 0; c < columns; ++c) {
      std::string cell = c < row.size() ? escape_cell(row[c]) : "";
      std::string padding(width[c] - display_width(cell), ' ');
      out += ' ';
      out += c < label_columns_ ? cell + padding : padding + cell;
      out += " |";
    }
    return out + "\n";
  };
  std::string out = line(header_);
  out += "|";
  for (size_t c = 0; c < columns; ++c) {
    out += ' ';
    out += c < label_columns_ ? std::string(width[c], '-') : std::string(width[c] - 1, '-') + ":";
    out += " |";
  }
  out += "\n";
  for (const auto& row : rows_) out += line(row);
  return out;
}

}  // namespace linfuse::experiments::report
