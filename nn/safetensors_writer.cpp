// Writing safetensors files: header layout, dtype conversion, streaming writes through AtomicFile.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "nn/atomic_file.h"
#include "nn/half_precision.h"
#include "nn/safetensors.h"

namespace linfuse {
namespace {

constexpr size_t kChunkBytes = size_t(1) << 20;       // conversion buffer: peak extra memory per write

bool is_writable(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::F32:
    case SafetensorsDType::F64:
    case SafetensorsDType::F16:
    case SafetensorsDType::BF16:
    case SafetensorsDType::I64: return true;
    default: return false;
  }
}

// A JSON string literal for `text`; throws if `text` is not UTF-8 (JSON headers must be).
std::string json_string(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("[SafetensorsWriter] " + what + " is not valid UTF-8: a safetensors header is UTF-8 JSON");
  }
}

// Visits the elements of `tensor` in row-major order, any strides, calling f(const T&) with T its C++ type.
template <class T, class F>
void for_each_element(const Tensor& tensor, F&& f) {
  const T* base = tensor.data<T>();
  int64_t count = tensor.numel();
  if (tensor.is_contiguous()) {
    for (int64_t i = 0; i < count; ++i) f(base[i]);
    return;
  }
  const Shape& shape = tensor.shape();
  const Shape& strides = tensor.strides();
  int64_t rank = tensor.dim();
  std::vector<int64_t> index(size_t(rank), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < count; ++i) {
    f(base[offset]);
    for (int64_t d = rank - 1; d >= 0; --d) {
      offset += strides[d];
      if (++index[d] < shape[d]) break;
      offset -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
}

// Streams `tensor` (float32, float64 or int64, any layout) into `file` at `file_offset`, encoding each
// element as `stored` with at most kChunkBytes buffered.
void write_encoded(AtomicFile& file, uint64_t file_offset, const Tensor& tensor, SafetensorsDType stored) {
  size_t element = safetensors_dtype_size(stored);
  std::vector<unsigned char> chunk;
  chunk.reserve(kChunkBytes);
  auto flush = [&] {
    file.write_at(file_offset, chunk.data(), chunk.size());
    file_offset += chunk.size();
    chunk.clear();
  };
  auto put = [&](const void* bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(bytes);
    chunk.insert(chunk.end(), p, p + element);
    if (chunk.size() + element > kChunkBytes) flush();
  };
  dispatch_all(tensor.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for_each_element<T>(tensor, [&](const T& value) {
      switch (stored) {
        case SafetensorsDType::F32: { float v = float(value); put(&v); break; }
        case SafetensorsDType::F64: { double v = double(value); put(&v); break; }
        case SafetensorsDType::F16: { uint16_t v = float_to_float16(float(value)); put(&v); break; }
        case SafetensorsDType::BF16: { uint16_t v = float_to_bfloat16(float(value)); put(&v); break; }
        default: { int64_t v = int64_t(value); put(&v); break; }
      }
    });
  });
  if (!chunk.empty()) flush();
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, SafetensorsMetadata metadata)
    : path_(std::move(path)), metadata_(std::move(metadata)), file_(std::make_unique<AtomicFile>(path_)) {}

SafetensorsWriter::~SafetensorsWriter() = default;   // an unfinished AtomicFile deletes its temporary file

void SafetensorsWriter::declare(const std::string& name, SafetensorsDType dtype, const Shape& shape) {
  std::string where = "[SafetensorsWriter] " + path_ + ": tensor '" + name + "'";
  if (laid_out_) throw std::logic_error(where + " declared after the first write; declare every tensor first");
  if (name == "__metadata__") throw std::invalid_argument(where + ": the name is reserved by the format");
  if (index_.count(name)) throw std::invalid_argument(where + " declared twice");
  if (!is_writable(dtype))
    throw std::invalid_argument(where + ": linfuse writes F32, F64, F16, BF16 and I64, not " +
                                safetensors_dtype_name(dtype));
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument(where + " has negative dimension in shape " + shape_str(shape));
  index_[name] = declared_.size();
  declared_.push_back({name, dtype, shape});
}

void SafetensorsWriter::lay_out_and_write_header() {
  // Data by decreasing element size (stable), so every tensor is aligned to its element size: the data
  // buffer starts at a multiple of 8 and every size before a tensor is a multiple of its element size.
  std::vector<size_t> data_order(declared_.size());
  for (size_t i = 0; i < data_order.size(); ++i) data_order[i] = i;
  std::stable_sort(data_order.begin(), data_order.end(), [&](size_t a, size_t b) {
    return safetensors_dtype_size(declared_[a].dtype) > safetensors_dtype_size(declared_[b].dtype);
  });
  uint64_t offset = 0;
  for (size_t i : data_order) {
    Declared& d = declared_[i];
    d.data_begin = offset;
    offset += uint64_t(shape_numel(d.shape)) * safetensors_dtype_size(d.dtype);
    d.data_end = offset;
  }
  uint64_t buffer_bytes = offset;

  // Header in declaration order, "__metadata__" first, fields in the reference's order.
  std::string header = "{";
  if (!metadata_.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (auto& [key, value] : metadata_) {
      if (!first) header += ",";
      header += json_string(key, "metadata key '" + key + "'") + ":" +
                json_string(value, "metadata value of '" + key + "'");
      first = false;
    }
    header += "}";
  }
  for (size_t i = 0; i < declared_.size(); ++i) {
    const Declared& d = declared_[i];
    if (header.size() > 1) header += ",";
    header += json_string(d.name, "tensor name '" + d.name + "'") + ":{\"dtype\":\"" +
              safetensors_dtype_name(d.dtype) + "\",\"shape\":[";
    for (size_t k = 0; k < d.shape.size(); ++k) {
      if (k) header += ",";
      header += std::to_string(d.shape[k]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(d.data_begin) + "," + std::to_string(d.data_end) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');   // the data buffer starts 8-byte aligned
  if (header.size() > kSafetensorsMaxHeaderBytes)
    throw std::invalid_argument("[SafetensorsWriter] " + path_ + ": header of " + std::to_string(header.size()) +
                                " bytes exceeds the format's 100,000,000-byte limit; split the tensors over several files");

  uint64_t header_length = header.size();
  unsigned char length_bytes[8];
  std::memcpy(length_bytes, &header_length, 8);   // little-endian host (checked in safetensors.cpp)
  file_->write(length_bytes, 8);
  file_->write(header);
  data_start_ = 8 + header_length;
  file_->resize(data_start_ + buffer_bytes);
  laid_out_ = true;
}

void SafetensorsWriter::write(const std::string& name, const Tensor& tensor) {
  std::string where = "[SafetensorsWriter] " + path_ + ": tensor '" + name + "'";
  if (finished_) throw std::logic_error(where + " written after finish()");
  auto it = index_.find(name);
  if (it == index_.end()) throw std::invalid_argument(where + " was not declared; declare every tensor before writing");
  Declared& d = declared_[it->second];
  if (d.written) throw std::invalid_argument(where + " written twice");
  if (!tensor.defined()) throw std::invalid_argument(where + " is undefined");
  if (tensor.shape() != d.shape)
    throw std::invalid_argument(where + " has shape " + shape_str(tensor.shape()) + " but was declared " +
                                shape_str(d.shape));
  bool integer_tensor = tensor.dtype() == DType::I64;
  bool integer_stored = d.dtype == SafetensorsDType::I64;
  if (integer_tensor != integer_stored)
    throw std::invalid_argument(where + " is " + dtype_name(tensor.dtype()) + " but was declared " +
                                safetensors_dtype_name(d.dtype) + " (integers are stored as I64, floats as F32/F64/F16/BF16)");
  if (!laid_out_) lay_out_and_write_header();

  bool same_layout = tensor.is_contiguous() &&
                     ((tensor.dtype() == DType::F32 && d.dtype == SafetensorsDType::F32) ||
                      (tensor.dtype() == DType::F64 && d.dtype == SafetensorsDType::F64) || integer_tensor);
  if (same_layout) file_->write_at(data_start_ + d.data_begin, tensor.raw_data(), size_t(d.data_end - d.data_begin));
  else write_encoded(*file_, data_start_ + d.data_begin, tensor, d.dtype);
  d.written = true;
}

void SafetensorsWriter::finish() {
  if (finished_) throw std::logic_error("[SafetensorsWriter] " + path_ + ": finish() called twice");
  std::string missing;
  size_t missing_count = 0;
  for (const Declared& d : declared_)
    if (!d.written && missing_count++ < 8) missing += (missing.empty() ? "'" : ", '") + d.name + "'";
  if (missing_count)
    throw std::runtime_error("[SafetensorsWriter] " + path_ + ": " + std::to_string(missing_count) +
                             " declared tensors were never written (" + missing + (missing_count > 8 ? ", ..." : "") +
                             "); nothing was saved");
  if (!laid_out_) lay_out_and_write_header();
  file_->commit();
  finished_ = true;
}

void save_safetensors(const std::string& path, const StateDict& tensors, const SafetensorsMetadata& metadata,
                      FloatFormat float_format) {
  SafetensorsWriter writer(path, metadata);
  for (auto& [name, tensor] : tensors) {
    if (!tensor.defined())
      throw std::invalid_argument("[save_safetensors] " + path + ": tensor '" + name + "' is undefined");
    SafetensorsDType stored = SafetensorsDType::I64;
    if (tensor.dtype() != DType::I64) {
      switch (float_format) {
        case FloatFormat::keep:
          stored = tensor.dtype() == DType::F64 ? SafetensorsDType::F64 : SafetensorsDType::F32;
          break;
        case FloatFormat::F32: stored = SafetensorsDType::F32; break;
        case FloatFormat::F64: stored = SafetensorsDType::F64; break;
        case FloatFormat::F16: stored = SafetensorsDType::F16; break;
        case FloatFormat::BF16: stored = SafetensorsDType::BF16; break;
      }
    }
    writer.declare(name, stored, tensor.shape());
  }
  for (auto& [name, tensor] : tensors) writer.write(name, tensor);
  writer.finish();
}

}  // namespace linfuse
