#pragma once
// Safetensors checkpoints, the file format of the Hugging Face ecosystem, so that files move between linfuse
// and PyTorch by parameter name.
//
// Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON
//   {"__metadata__": {"key": "value", ...},
//    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
// then the data buffer. Offsets are relative to the start of the buffer; each tensor is row-major,
// little-endian, and the tensors tile the buffer exactly (no gaps, no overlap, nothing left over).
//
// Reading validates the file as the reference implementation (huggingface/safetensors) does -- header at
// most 100,000,000 bytes and inside the file, a UTF-8 JSON object starting with '{', known dtypes, shape x
// element size == byte length, offsets ordered and inside the buffer, tensors tiling the buffer -- and also
// rejects duplicate keys (which JSON parsers otherwise silently collapse). Every malformed file gives a
// std::runtime_error "<path>: <problem>" (plus what to do), never a crash or an allocation sized by the file.
//
// Order: tensors are listed in header (JSON) order. linfuse writes the header in the order tensors were
// given (a StateDict's insertion order, i.e. the module's order), so a round trip keeps the order. The
// *data* is laid out by decreasing element size (stable), like the reference writer, so that every tensor
// is aligned and loads without a copy. Files from the reference writer list tensors sorted by (dtype, name).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensor/shape.h"
#include "tensor/state_dict.h"
#include "tensor/tensor.h"

namespace linfuse {

class AtomicFile;

// The reference implementation's cap on the JSON header: readers (ours and the reference) reject a larger one
// as a corrupt length field, so the writer refuses to produce one.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// The element types of the safetensors format, in the reference's order (increasing alignment).
enum class SafetensorsDType : uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

const char* safetensors_dtype_name(SafetensorsDType dtype);   // "F32", "BF16", ...
size_t safetensors_dtype_size(SafetensorsDType dtype);        // bytes per element
std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name);

// Free-form string -> string map stored under "__metadata__" (e.g. {"format": "pt"}).
using SafetensorsMetadata = std::map<std::string, std::string>;

// One tensor as described by the header.
struct SafetensorsEntry {
  std::string name;
  SafetensorsDType dtype;
  Shape shape;
  uint64_t data_begin = 0;   // byte range [data_begin, data_end) relative to the data buffer
  uint64_t data_end = 0;
  uint64_t bytes() const { return data_end - data_begin; }
};

// A memory-mapped safetensors file. Opening reads and validates only the header; tensor data is read
// when a tensor is asked for (a 1 GB checkpoint costs a few page faults to open). The mapping is private
// copy-on-write: tensors are ordinary writable tensors, and writes to them never reach the file.
// The mapping lives as long as the SafetensorsFile or any tensor viewing it.
//
// Files that change while mapped: replacing a file by rename (as linfuse's writers do) is safe, the mapping keeps
// the old one. Truncating it in place is not: reading a page past the new end raises SIGBUS, which would kill the
// process. The header, read_bytes and tensor_copy read under a SIGBUS guard and throw std::runtime_error naming the
// file instead; check_unchanged() also catches a truncation inside the last page (read as zeros) or a rewrite in
// place. tensor()'s zero-copy views are not guarded: callers reading inputs another program may be writing (the
// merge tool) use read_bytes / tensor_copy.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }   // header order
  const SafetensorsMetadata& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;   // throws naming the file and the name

  // The tensor's bytes as stored (little-endian, row-major), inside the mapping (unguarded, see above).
  std::span<const std::byte> raw_bytes(const std::string& name) const;
  // Copies `bytes` bytes of `entry`'s data, from `offset` bytes into it, to `out`: a read of pages the file no
  // longer has throws std::runtime_error naming the file and the tensor.
  void read_bytes(const SafetensorsEntry& entry, uint64_t offset, size_t bytes, void* out) const;
  // The tensor as tensor() gives it, but always a copy, read with read_bytes.
  Tensor tensor_copy(const std::string& name) const;
  // Throws std::runtime_error if the file at path() is the one that was mapped but has since been truncated,
  // extended or rewritten (another size or modification time). A file renamed over path() is no change to the
  // mapping and passes.
  void check_unchanged() const;

  // The tensor as a linfuse tensor:
  //   F32, F64, I64: a zero-copy view into the mapping when its address is aligned, else a copy;
  //   F16, BF16, F8_E4M3, F8_E5M2: converted to a float32 copy;
  //   BOOL, U8, I8, I16, U16, I32, U32, U64: converted to an int64 copy (U64 values above 2^63-1 throw).
  Tensor tensor(const std::string& name) const;

  // Every tensor, in header order.
  StateDict state_dict() const;

 private:
  struct Mapping;
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t data_start_ = 0;   // file offset of the data buffer (8 + N)
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  SafetensorsMetadata metadata_;
};

// Reads every tensor of `path` (see SafetensorsFile::tensor for the dtype rules); `metadata`, if given,
// receives the "__metadata__" map.
StateDict load_safetensors(const std::string& path, SafetensorsMetadata* metadata = nullptr);

// How floating tensors are stored: `keep` writes each tensor in its own dtype (float32 or float64);
// the others convert every floating tensor (rounding to nearest even). int64 tensors are always I64.
enum class FloatFormat { keep, F32, F64, F16, BF16 };

// Writes `tensors` to `path` atomically (temporary file + fsync + rename; on any error the target is left
// as it was and the temporary file is removed). Missing parent directories are created.
void save_safetensors(const std::string& path, const StateDict& tensors, const SafetensorsMetadata& metadata = {},
                      FloatFormat float_format = FloatFormat::keep);

// Streaming writer for files larger than memory (the merge tool): declare every tensor (name, dtype,
// shape) first, then write each one; peak memory is about one tensor, not the file. Writes may come in any
// order (declaration order is the natural one); each declared tensor exactly once. finish() publishes the
// file atomically; a writer destroyed before finish() (e.g. by an exception) leaves no trace.
// Writable dtypes: F32, F64, F16, BF16 (from float32/float64 tensors) and I64 (from int64 tensors).
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path, SafetensorsMetadata metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void declare(const std::string& name, SafetensorsDType dtype, const Shape& shape);
  // `tensor` must have the declared shape; any layout (strided views are gathered chunk by chunk).
  void write(const std::string& name, const Tensor& tensor);
  // Throws if a declared tensor was never written (and publishes nothing).
  void finish();

  const std::string& path() const { return path_; }

 private:
  struct Declared {
    std::string name;
    SafetensorsDType dtype;
    Shape shape;
    uint64_t data_begin = 0;
    uint64_t data_end = 0;
    bool written = false;
  };
  void lay_out_and_write_header();

  std::string path_;
  SafetensorsMetadata metadata_;
  std::unique_ptr<AtomicFile> file_;
  std::vector<Declared> declared_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t data_start_ = 0;
  bool laid_out_ = false;
  bool finished_ = false;
};

}  // namespace linfuse
