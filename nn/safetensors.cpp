// Reading safetensors files: memory mapping, header validation, conversion to linfuse tensors.
// (Writing is in safetensors_writer.cpp.)
#include "nn/safetensors.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_set>

#include "nn/file_checks.h"
#include "nn/half_precision.h"

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is every host linfuse supports");

namespace linfuse {

// ---------------------------------------------------------------------------------------------------------
// dtypes

namespace {

struct DTypeInfo {
  SafetensorsDType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {SafetensorsDType::BOOL, "BOOL", 1}, {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::I8, "I8", 1},     {SafetensorsDType::F8_E5M2, "F8_E5M2", 1},
    {SafetensorsDType::F8_E4M3, "F8_E4M3", 1},
    {SafetensorsDType::I16, "I16", 2},   {SafetensorsDType::U16, "U16", 2},
    {SafetensorsDType::F16, "F16", 2},   {SafetensorsDType::BF16, "BF16", 2},
    {SafetensorsDType::I32, "I32", 4},   {SafetensorsDType::U32, "U32", 4},
    {SafetensorsDType::F32, "F32", 4},   {SafetensorsDType::F64, "F64", 8},
    {SafetensorsDType::I64, "I64", 8},   {SafetensorsDType::U64, "U64", 8},
};

const DTypeInfo& info_of(SafetensorsDType dtype) { return kDTypes[size_t(dtype)]; }

std::string known_dtype_list() {
  std::string out;
  for (auto& d : kDTypes) out += std::string(out.empty() ? "" : ", ") + d.name;
  return out;
}

}  // namespace

const char* safetensors_dtype_name(SafetensorsDType dtype) { return info_of(dtype).name; }
size_t safetensors_dtype_size(SafetensorsDType dtype) { return info_of(dtype).size; }

std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name) {
  for (auto& d : kDTypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------------
// header validation

namespace {

using nlohmann::json;

// A valid header nests three levels (object -> tensor object -> shape array); deeper JSON is rejected
// while parsing, before it can cost memory.
constexpr int kMaxJsonDepth = 4;

const char* kDamaged = " (the file is truncated or damaged, or is not a safetensors file: write it again from its source)";

[[noreturn]] void reject(const std::string& path, const std::string& problem, const char* fix = kDamaged) {
  throw std::runtime_error(path + ": " + problem + fix);
}

std::string range_str(uint64_t begin, uint64_t end) {
  std::string out = "[";
  out += std::to_string(begin) + ", " + std::to_string(end) + "]";
  return out;
}

// Offset of the first byte that is not part of well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF), or npos.
size_t first_invalid_utf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t length;
    uint32_t lower = 0x80, upper = 0xbf;   // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) length = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) lower = 0xa0;          // overlong
      if (c == 0xed) upper = 0x9f;          // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) lower = 0x90;          // overlong
      if (c == 0xf4) upper = 0x8f;          // above U+10FFFF
    } else return i;
    if (i + length > n) return i;
    if (s[i + 1] < lower || s[i + 1] > upper) return i;
    for (size_t k = 2; k < length; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
    i += length;
  }
  return std::string::npos;
}

// A SAX pass over the header before it is parsed into a document: rejects duplicate keys at any level (JSON
// parsers otherwise keep the last one silently) and nesting deeper than a header can be (before it can cost
// memory), and records the top-level keys in file order (nlohmann::json's object is sorted).
// (Not nlohmann's parse callback: its DOM builder scans the whole enclosing object at the end of every object,
// which made opening a file of n tensors take time quadratic in n: 28 s for 20,000 tensors.)
class HeaderChecker : public nlohmann::json_sax<json> {
 public:
  HeaderChecker(const std::string& path, std::vector<std::string>& top_level_keys)
      : path_(path), top_level_keys_(top_level_keys) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    enter();
    open_objects_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (!open_objects_.back().insert(key).second)
      reject(path_, "header has the key '" + key + "' twice" + (open_objects_.size() == 1 ? " (duplicate tensor name)" : ""));
    if (open_objects_.size() == 1) top_level_keys_.push_back(key);
    return true;
  }
  bool end_object() override {
    open_objects_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    enter();
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override { throw e; }

 private:
  // A valid header nests three levels (object -> tensor object -> shape array).
  void enter() {
    if (++depth_ > kMaxJsonDepth)
      reject(path_, "header nests JSON deeper than a safetensors header can (" + std::to_string(depth_) + " levels)");
  }

  const std::string& path_;
  std::vector<std::string>& top_level_keys_;
  std::vector<std::unordered_set<std::string>> open_objects_;   // keys seen in each enclosing object
  int depth_ = 0;
};

// Parses the header JSON after HeaderChecker's checks. Returns the document and the top-level keys in file order.
json parse_header_json(const std::string& path, std::string_view text, std::vector<std::string>& top_level_keys) {
  try {
    HeaderChecker checker(path, top_level_keys);
    json::sax_parse(text.begin(), text.end(), &checker);
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> drop the bracketed id
    auto bracket = what.find("] ");
    if (what.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) what = what.substr(bracket + 2);
    reject(path, "header is not valid JSON: " + what);
  }
}

uint64_t unsigned_field(const std::string& path, const std::string& context, const json& value) {
  if (!value.is_number_unsigned())
    reject(path, context + " must be a non-negative integer, got " + value.dump());
  return value.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& info, uint64_t buffer_bytes) {
  std::string where = "tensor '" + name + "'";
  if (!info.is_object()) reject(path, where + " must be described by a JSON object, got " + info.dump());
  auto field = [&](const char* key) -> const json& {
    auto it = info.find(key);
    if (it == info.end()) reject(path, where + " has no '" + std::string(key) + "' field");
    return *it;
  };
  // Other fields are ignored, as the reference implementation does.
  SafetensorsEntry entry;
  entry.name = name;

  const json& dtype = field("dtype");
  if (!dtype.is_string()) reject(path, where + " has a dtype that is not a string: " + dtype.dump());
  auto parsed_dtype = parse_safetensors_dtype(dtype.get_ref<const std::string&>());
  if (!parsed_dtype)
    reject(path, where + " has unknown dtype " + dtype.dump() + " (known: " + known_dtype_list() + ")",
           " (written by a newer safetensors version? convert it to one of the known dtypes)");
  entry.dtype = *parsed_dtype;

  const json& shape = field("shape");
  if (!shape.is_array()) reject(path, where + " has a shape that is not an array: " + shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    uint64_t size = unsigned_field(path, where + " shape entry", d);
    if (size > uint64_t(std::numeric_limits<int64_t>::max()))
      reject(path, where + " has shape entry " + std::to_string(size) + ", beyond what an int64 holds");
    entry.shape.push_back(int64_t(size));
    overflow = overflow || __builtin_mul_overflow(numel, size, &numel);
  }
  uint64_t expected_bytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, uint64_t(safetensors_dtype_size(entry.dtype)), &expected_bytes);

  const json& offsets = field("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    reject(path, where + " data_offsets must be [begin, end], got " + offsets.dump());
  entry.data_begin = unsigned_field(path, where + " data_offsets begin", offsets[0]);
  entry.data_end = unsigned_field(path, where + " data_offsets end", offsets[1]);
  std::string range = range_str(entry.data_begin, entry.data_end);
  if (entry.data_begin > entry.data_end) reject(path, where + " data_offsets " + range + " are reversed");
  if (entry.data_end > buffer_bytes)
    reject(path, where + " data_offsets " + range + " run past the end of the data buffer (" +
                     std::to_string(buffer_bytes) + " bytes)");
  if (overflow || expected_bytes != entry.bytes())
    reject(path, where + " has shape " + shape_str(entry.shape) + " of " + safetensors_dtype_name(entry.dtype) +
                     (overflow ? " (too many bytes to count)" : " = " + std::to_string(expected_bytes) + " bytes") +
                     " but data_offsets " + range + " hold " + std::to_string(entry.bytes()) + " bytes");
  return entry;
}

SafetensorsMetadata parse_metadata(const std::string& path, const json& value) {
  if (!value.is_object()) reject(path, "__metadata__ must be an object of strings, got " + value.dump());
  SafetensorsMetadata metadata;
  for (auto& [key, item] : value.items()) {
    if (!item.is_string())
      reject(path, "__metadata__ value of '" + key + "' must be a string, got " + item.dump());
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// The tensors must tile [0, buffer_bytes): sorted by offset, each starts where the previous one ended.
void check_tiling(const std::string& path, const std::vector<SafetensorsEntry>& entries, uint64_t buffer_bytes) {
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(entries[a].data_begin, entries[a].data_end) < std::pair(entries[b].data_begin, entries[b].data_end);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (size_t i : order) {
    const SafetensorsEntry& e = entries[i];
    if (e.data_begin > covered)
      reject(path, "bytes [" + std::to_string(covered) + ", " + std::to_string(e.data_begin) +
                       ") of the data buffer belong to no tensor (gap before tensor '" + e.name + "')");
    if (e.data_begin < covered)
      reject(path, "tensor '" + e.name + "' data_offsets " + range_str(e.data_begin, e.data_end) +
                       " overlap tensor '" + previous->name + "' " + range_str(previous->data_begin, previous->data_end));
    covered = e.data_end;
    previous = &e;
  }
  if (covered != buffer_bytes)
    reject(path, "the last " + std::to_string(buffer_bytes - covered) + " bytes of the data buffer belong to no tensor");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// the mapping

struct SafetensorsFile::Mapping {
  void* base = nullptr;
  size_t size = 0;
  struct stat opened {};   // the file as it was mapped: device, inode, size, modification time
  ~Mapping() {
    if (base) ::munmap(base, size);
  }
};

namespace {

// Reads of a mapping whose file was truncated after it was mapped: the kernel answers a read of a page past the new
// end with SIGBUS. guarded_copy catches it (sigsetjmp / siglongjmp: the copy is a plain memcpy, with no object to
// destroy on the way out); a SIGBUS anywhere else goes to the previous handler, or ends the process as before.
thread_local sigjmp_buf* t_guarded_copy = nullptr;
struct sigaction previous_sigbus {};

extern "C" void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  if (sigjmp_buf* jump = t_guarded_copy) {
    t_guarded_copy = nullptr;
    siglongjmp(*jump, 1);
  }
  if (previous_sigbus.sa_flags & SA_SIGINFO) {
    previous_sigbus.sa_sigaction(signal_number, info, context);
    return;
  }
  if (previous_sigbus.sa_handler != SIG_DFL && previous_sigbus.sa_handler != SIG_IGN) {
    previous_sigbus.sa_handler(signal_number);
    return;
  }
  // The default action: raised again (delivered when this handler returns; a fault would also recur).
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(SIGBUS, &default_action, nullptr);
  ::raise(SIGBUS);
}

// Copies `bytes` from a mapping; false when a page could not be read (SIGBUS).
bool guarded_copy(void* out, const void* source, size_t bytes) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, &previous_sigbus);
  });
  sigjmp_buf jump;
  if (sigsetjmp(jump, /*save the signal mask, which the handler's return path restores*/ 1) != 0) return false;
  t_guarded_copy = &jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);   // the handler sees the jump before the copy starts
  std::memcpy(out, source, bytes);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_guarded_copy = nullptr;
  return true;
}

// "<path>: ..." for a mapping that can no longer be read, with the file's size then and now.
[[noreturn]] void changed_while_read(const std::string& path, const struct stat& opened, const std::string& what) {
  struct stat now {};
  std::string sizes;
  if (::stat(path.c_str(), &now) == 0 && now.st_dev == opened.st_dev && now.st_ino == opened.st_ino)
    sizes = " (" + std::to_string(opened.st_size) + " bytes when opened, " + std::to_string(now.st_size) + " now)";
  throw std::runtime_error(path + ": " + what + ": the file was truncated or rewritten in place while linfuse read it" +
                           sizes + "; is another program writing it? Read it again once it is complete");
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // Checked before open(2): opening a FIFO blocks until a writer appears (forever, for a merge input). O_NONBLOCK
  // covers a FIFO put in its place in between (it changes nothing for a regular file); fstat below refuses it.
  const char* kNotRegularFix = " (give the path of a .safetensors file: linfuse reads only regular files)";
  if (std::string kind = non_regular_kind(path); !kind.empty()) reject(path, "is " + kind + ", not a regular file", kNotRegularFix);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int error_number = errno;
    reject(path, std::string("cannot open: ") + std::strerror(error_number),
           error_number == ENOENT ? " (check the path)" : "");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int error_number = errno;
    ::close(fd);
    reject(path, std::string("cannot stat: ") + std::strerror(error_number), "");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    reject(path, "is not a regular file", kNotRegularFix);
  }
  uint64_t file_bytes = uint64_t(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    reject(path, "is " + std::to_string(file_bytes) + " bytes, too short for the 8-byte header length");
  }
  auto mapping = std::make_shared<Mapping>();
  // Private and writable: tensors viewing the mapping behave like any tensor (in-place updates copy the
  // touched pages and never reach the file); MAP_NORESERVE because untouched pages cost nothing.
  void* base = ::mmap(nullptr, file_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  int error_number = errno;
  ::close(fd);   // the mapping keeps the file
  if (base == MAP_FAILED) reject(path, std::string("cannot memory-map: ") + std::strerror(error_number), "");
  mapping->base = base;
  mapping->size = file_bytes;
  mapping->opened = st;
  const unsigned char* bytes = static_cast<const unsigned char*>(base);

  uint64_t header_bytes = 0;
  if (!guarded_copy(&header_bytes, bytes, 8)) changed_while_read(path, st, "cannot read the header length");
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    reject(path, "header length " + std::to_string(header_bytes) + " exceeds the " + std::to_string(kSafetensorsMaxHeaderBytes) +
                     "-byte limit of the format");
  if (header_bytes > file_bytes - 8)
    reject(path, "header length " + std::to_string(header_bytes) + " runs past the end of the file (" +
                     std::to_string(file_bytes) + " bytes)");
  std::string header_text(header_bytes, '\0');
  if (!guarded_copy(header_text.data(), bytes + 8, header_bytes)) changed_while_read(path, st, "cannot read the header");
  const unsigned char* header = reinterpret_cast<const unsigned char*>(header_text.data());
  if (size_t bad = first_invalid_utf8(header, header_bytes); bad != std::string::npos)
    reject(path, "header is not valid UTF-8 (byte " + std::to_string(8 + bad) + " of the file)");
  if (header_bytes == 0 || header[0] != '{') reject(path, "header does not start with '{'");
  // JSON allows no raw NUL byte anywhere, and nlohmann::json would take one as the end of the text.
  if (const void* nul = std::memchr(header, 0, header_bytes))
    reject(path, "header contains a NUL byte (byte " +
                     std::to_string(8 + (static_cast<const unsigned char*>(nul) - header)) + " of the file)");

  SafetensorsFile file;
  file.path_ = path;
  file.mapping_ = mapping;
  file.data_start_ = 8 + header_bytes;
  uint64_t buffer_bytes = file_bytes - file.data_start_;

  std::vector<std::string> keys;
  json document = parse_header_json(path, header_text, keys);
  for (const std::string& key : keys) {
    const json& value = document.at(key);
    if (key == "__metadata__") {
      file.metadata_ = parse_metadata(path, value);
      continue;
    }
    file.index_[key] = file.entries_.size();
    file.entries_.push_back(parse_entry(path, key, value, buffer_bytes));
  }
  check_tiling(path, file.entries_, buffer_bytes);
  return file;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string listing;
    for (size_t i = 0; i < entries_.size() && i < 8; ++i) listing += (i ? ", '" : "'") + entries_[i].name + "'";
    if (entries_.size() > 8) listing += ", ...";
    throw std::runtime_error(path_ + ": no tensor named '" + name + "' (the file has " +
                             std::to_string(entries_.size()) + " tensors" +
                             (listing.empty() ? "" : ": " + listing) + ")");
  }
  return entries_[it->second];
}

std::span<const std::byte> SafetensorsFile::raw_bytes(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const std::byte* base = static_cast<const std::byte*>(mapping_->base);
  return {base + data_start_ + e.data_begin, size_t(e.bytes())};
}

void SafetensorsFile::read_bytes(const SafetensorsEntry& e, uint64_t offset, size_t bytes, void* out) const {
  if (offset > e.bytes() || bytes > e.bytes() - offset)
    throw std::logic_error("[SafetensorsFile::read_bytes] " + path_ + ": bytes [" + std::to_string(offset) + ", +" +
                           std::to_string(bytes) + ") outside tensor '" + e.name + "' of " + std::to_string(e.bytes()));
  if (bytes == 0) return;
  const std::byte* source = static_cast<const std::byte*>(mapping_->base) + data_start_ + e.data_begin + offset;
  if (!guarded_copy(out, source, bytes))
    changed_while_read(path_, mapping_->opened, "cannot read tensor '" + e.name + "' (bytes " + std::to_string(offset) +
                                                    " to " + std::to_string(offset + bytes) + " of it)");
}

void SafetensorsFile::check_unchanged() const {
  struct stat now {};
  const struct stat& opened = mapping_->opened;
  if (::stat(path_.c_str(), &now) != 0 || now.st_dev != opened.st_dev || now.st_ino != opened.st_ino) return;
  if (now.st_size != opened.st_size || now.st_mtim.tv_sec != opened.st_mtim.tv_sec ||
      now.st_mtim.tv_nsec != opened.st_mtim.tv_nsec)
    changed_while_read(path_, opened, "changed after it was opened");
}

// ---------------------------------------------------------------------------------------------------------
// conversion to linfuse tensors

namespace {

// Converts `count` little-endian elements of type Stored at `source` (any alignment) into `out`.
template <class Stored, class Out, class Convert>
void convert_elements(const std::byte* source, int64_t count, Out* out, Convert convert) {
  for (int64_t i = 0; i < count; ++i) {
    Stored value;
    std::memcpy(&value, source + size_t(i) * sizeof(Stored), sizeof(Stored));
    out[i] = convert(value);
  }
}

template <class Stored>
void widen_to_int64(const std::byte* source, int64_t count, int64_t* out) {
  convert_elements<Stored>(source, count, out, [](Stored v) { return int64_t(v); });
}

}  // namespace

namespace {

// A copy of the tensor `e` of `path` whose stored bytes are at `source` (any alignment), in the dtype tensor() gives.
Tensor decode(const std::string& path, const SafetensorsEntry& e, const std::byte* source) {
  int64_t count = shape_numel(e.shape);
  auto native = [&](DType dtype) {
    Tensor copy = Tensor::empty(e.shape, dtype);
    if (count > 0) std::memcpy(copy.raw_data(), source, size_t(e.bytes()));
    return copy;
  };
  switch (e.dtype) {
    case SafetensorsDType::F32: return native(DType::F32);
    case SafetensorsDType::F64: return native(DType::F64);
    case SafetensorsDType::I64: return native(DType::I64);
    default: break;
  }

  bool to_float = e.dtype == SafetensorsDType::F16 || e.dtype == SafetensorsDType::BF16 ||
                  e.dtype == SafetensorsDType::F8_E4M3 || e.dtype == SafetensorsDType::F8_E5M2;
  Tensor out = Tensor::empty(e.shape, to_float ? DType::F32 : DType::I64);
  if (to_float) {
    float* f = out.data<float>();
    switch (e.dtype) {
      case SafetensorsDType::F16: convert_elements<uint16_t>(source, count, f, float16_to_float); break;
      case SafetensorsDType::BF16: convert_elements<uint16_t>(source, count, f, bfloat16_to_float); break;
      case SafetensorsDType::F8_E4M3: convert_elements<uint8_t>(source, count, f, float8_e4m3_to_float); break;
      default: convert_elements<uint8_t>(source, count, f, float8_e5m2_to_float); break;
    }
    return out;
  }
  int64_t* i = out.data<int64_t>();
  switch (e.dtype) {
    case SafetensorsDType::BOOL:
      convert_elements<uint8_t>(source, count, i, [](uint8_t v) { return int64_t(v != 0); });
      break;
    case SafetensorsDType::U8: widen_to_int64<uint8_t>(source, count, i); break;
    case SafetensorsDType::I8: widen_to_int64<int8_t>(source, count, i); break;
    case SafetensorsDType::I16: widen_to_int64<int16_t>(source, count, i); break;
    case SafetensorsDType::U16: widen_to_int64<uint16_t>(source, count, i); break;
    case SafetensorsDType::I32: widen_to_int64<int32_t>(source, count, i); break;
    case SafetensorsDType::U32: widen_to_int64<uint32_t>(source, count, i); break;
    case SafetensorsDType::U64:
      for (int64_t k = 0; k < count; ++k) {
        uint64_t v;
        std::memcpy(&v, source + size_t(k) * 8, 8);
        if (v > uint64_t(std::numeric_limits<int64_t>::max()))
          throw std::runtime_error(path + ": tensor '" + e.name + "' (U64) holds " + std::to_string(v) +
                                   ", which does not fit linfuse's int64 (store it as I64)");
        i[k] = int64_t(v);
      }
      break;
    default:
      throw std::logic_error("[SafetensorsFile::tensor] unhandled dtype " + std::string(safetensors_dtype_name(e.dtype)));
  }
  return out;
}

}  // namespace

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const std::byte* source = raw_bytes(name).data();
  const bool native = e.dtype == SafetensorsDType::F32 || e.dtype == SafetensorsDType::F64 || e.dtype == SafetensorsDType::I64;
  if (native && e.bytes() > 0 && reinterpret_cast<uintptr_t>(source) % safetensors_dtype_size(e.dtype) == 0) {
    // Zero copy: the storage borrows the mapping and keeps it alive.
    auto storage = std::make_shared<Storage>(const_cast<std::byte*>(source), size_t(e.bytes()), std::shared_ptr<void>(mapping_));
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(storage);
    impl->shape = e.shape;
    impl->strides = contiguous_strides(e.shape);
    impl->dtype = e.dtype == SafetensorsDType::F32 ? DType::F32 : e.dtype == SafetensorsDType::F64 ? DType::F64 : DType::I64;
    return Tensor::from_impl(std::move(impl));
  }
  return decode(path_, e, source);   // misaligned, empty, or converted: a copy
}

Tensor SafetensorsFile::tensor_copy(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const bool native = e.dtype == SafetensorsDType::F32 || e.dtype == SafetensorsDType::F64 || e.dtype == SafetensorsDType::I64;
  if (native) {   // straight into the tensor
    Tensor copy = Tensor::empty(e.shape, e.dtype == SafetensorsDType::F32   ? DType::F32
                                         : e.dtype == SafetensorsDType::F64 ? DType::F64
                                                                            : DType::I64);
    read_bytes(e, 0, size_t(e.bytes()), copy.raw_data());
    return copy;
  }
  std::vector<std::byte> stored(size_t(e.bytes()));
  read_bytes(e, 0, stored.size(), stored.data());
  return decode(path_, e, stored.data());
}

StateDict SafetensorsFile::state_dict() const {
  StateDict out;
  for (const SafetensorsEntry& e : entries_) out.insert(e.name, tensor(e.name));
  return out;
}

StateDict load_safetensors(const std::string& path, SafetensorsMetadata* metadata) {
  SafetensorsFile file = SafetensorsFile::open(path);
  if (metadata) *metadata = file.metadata();
  return file.state_dict();
}

}  // namespace linfuse
