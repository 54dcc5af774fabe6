#include "merge/merge_sources.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "merge/named_tensors.h"
#include "nn/half_precision.h"
#include "tensor/random.h"

namespace linfuse::merge {
namespace {

double round_to_work(double value, bool work_f64) { return work_f64 ? value : double(float(value)); }

uintptr_t page_size() {
  static const uintptr_t size = uintptr_t(::sysconf(_SC_PAGESIZE));
  return size;
}

// Gives the pages of [begin, end) back to the kernel. The mapping is private and never written, so the pages are
// clean copies of the file and come back from the page cache if read again; without this, every page read from a
// mapping stays in the resident set until the file is closed.
void drop_pages(const std::byte* begin, const std::byte* end) {
  if (end <= begin) return;
  uintptr_t first = reinterpret_cast<uintptr_t>(begin) & ~(page_size() - 1);
  uintptr_t last = (reinterpret_cast<uintptr_t>(end) + page_size() - 1) & ~(page_size() - 1);
  (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);   // advice only: failure is harmless
}

template <class Stored, class Convert>
void convert(const std::byte* source, int64_t count, double* out, Convert to_double) {
  for (int64_t i = 0; i < count; ++i) {
    Stored value;
    std::memcpy(&value, source + size_t(i) * sizeof(Stored), sizeof(Stored));
    out[i] = to_double(value);
  }
}

}  // namespace

bool is_floating_dtype(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::F16:
    case SafetensorsDType::BF16:
    case SafetensorsDType::F32:
    case SafetensorsDType::F64:
    case SafetensorsDType::F8_E4M3:
    case SafetensorsDType::F8_E5M2: return true;
    default: return false;
  }
}

void assign_flat_offsets(std::vector<MergedEntry>& entries) {
  uint64_t offset = 0;
  for (auto& entry : entries) {
    entry.flat_offset = offset;
    offset += uint64_t(entry.numel);
  }
}

void require_finite_input(const std::string& file, const std::string& name, const double* values, int64_t count,
                          int64_t begin) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      throw std::invalid_argument("[linfuse merge] " + file + ": tensor '" + name + "' holds a non-finite value (" +
                                  (std::isnan(values[i]) ? "nan" : values[i] > 0 ? "inf" : "-inf") + " at element " +
                                  std::to_string(begin + i) +
                                  "); merging NaN or Inf gives no meaningful result: fix or retrain that checkpoint "
                                  "(a diverged fine-tuning run?); nothing was written");
}

void require_finite_input(const std::string& file, const std::string& name, const Tensor& tensor) {
  double bad = 0.0;
  int64_t at = find_element(tensor, [&](int64_t, double v) { return std::isfinite(v) || (bad = v, false); });
  if (at >= 0) require_finite_input(file, name, &bad, 1, at);
}

void read_as_float64(const SafetensorsFile& file, const SafetensorsEntry& entry, int64_t begin, int64_t count,
                     double* out) {
  const size_t element = safetensors_dtype_size(entry.dtype);
  // Block by block through a small buffer: SafetensorsFile::read_bytes turns a read of a file truncated meanwhile
  // (SIGBUS) into an error naming it.
  alignas(8) std::byte block[size_t(1) << 16];
  const int64_t per_block = int64_t(sizeof block / element);
  for (int64_t done = 0; done < count; done += per_block) {
    const int64_t n = std::min(per_block, count - done);
    file.read_bytes(entry, uint64_t(begin + done) * element, size_t(n) * element, block);
    double* o = out + done;
    switch (entry.dtype) {
      case SafetensorsDType::F32: convert<float>(block, n, o, [](float v) { return double(v); }); break;
      case SafetensorsDType::F64: convert<double>(block, n, o, [](double v) { return v; }); break;
      case SafetensorsDType::F16:
        convert<uint16_t>(block, n, o, [](uint16_t v) { return double(float16_to_float(v)); });
        break;
      case SafetensorsDType::BF16:
        convert<uint16_t>(block, n, o, [](uint16_t v) { return double(bfloat16_to_float(v)); });
        break;
      case SafetensorsDType::F8_E4M3:
        convert<uint8_t>(block, n, o, [](uint8_t v) { return double(float8_e4m3_to_float(v)); });
        break;
      case SafetensorsDType::F8_E5M2:
        convert<uint8_t>(block, n, o, [](uint8_t v) { return double(float8_e5m2_to_float(v)); });
        break;
      default:
        throw std::logic_error("[read_as_float64] " + file.path() + ": tensor '" + entry.name + "' is " +
                               safetensors_dtype_name(entry.dtype) + ", not a floating dtype");
    }
  }
  const std::byte* source = file.raw_bytes(entry.name).data() + size_t(begin) * element;
  drop_pages(source, source + size_t(count) * element);
  require_finite_input(file.path(), entry.name, out, count, begin);
}

void release_pages(const SafetensorsFile& file, const std::string& name) {
  auto bytes = file.raw_bytes(name);
  drop_pages(bytes.data(), bytes.data() + bytes.size());
}

// ---- checkpoints ----

CheckpointDeltaSource::CheckpointDeltaSource(const SafetensorsFile* base, std::vector<const SafetensorsFile*> models,
                                             std::vector<std::string> labels, const std::vector<std::string>& names)
    : base_(base), models_(std::move(models)), labels_(std::move(labels)) {
  for (const std::string& name : names) {
    const SafetensorsEntry& e = models_[0]->entry(name);
    MergedEntry entry;
    entry.name = name;
    entry.shape = e.shape;
    entry.numel = shape_numel(e.shape);
    entry.work_f64 = e.dtype == SafetensorsDType::F64;
    entry.has_base = base_ != nullptr;
    entries_.push_back(entry);
  }
  assign_flat_offsets(entries_);
}

void CheckpointDeltaSource::task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) {
  const MergedEntry& e = entries_[entry];
  const SafetensorsFile& model = *models_[task];
  read_as_float64(model, model.entry(e.name), begin, count, out);
  if (!base_) return;   // the model itself: float32/float64 values are exact as they are
  if (scratch_entry_ != entry || scratch_begin_ != begin || scratch_count_ != count) {
    scratch_.resize(size_t(count));
    read_as_float64(*base_, base_->entry(e.name), begin, count, scratch_.data());
    scratch_entry_ = entry, scratch_begin_ = begin, scratch_count_ = count;
  }
  for (int64_t i = 0; i < count; ++i) out[i] = round_to_work(out[i] - scratch_[size_t(i)], e.work_f64);
}

void CheckpointDeltaSource::base_values(size_t entry, int64_t begin, int64_t count, double* out) {
  if (scratch_entry_ == entry && scratch_begin_ == begin && scratch_count_ == count) {
    std::memcpy(out, scratch_.data(), size_t(count) * sizeof(double));
    return;
  }
  const std::string& name = entries_[entry].name;
  read_as_float64(*base_, base_->entry(name), begin, count, out);
}

void CheckpointDeltaSource::release(size_t entry) {
  // read_as_float64 already dropped the pages it read; only the base's chunk is held.
  if (scratch_entry_ == entry) scratch_entry_ = SIZE_MAX;
}

// ---- DARE ----

DareDeltaSource::DareDeltaSource(std::unique_ptr<DeltaSource> inner, double drop_probability, bool rescale,
                                 uint64_t seed)
    : inner_(std::move(inner)),
      drop_probability_(drop_probability),
      survivor_scale_(rescale ? 1.0 / (1.0 - drop_probability) : 1.0),
      seed_(seed) {
  if (!(drop_probability >= 0.0 && drop_probability < 1.0))
    throw std::invalid_argument("[dare] drop probability must be in [0, 1), got " + std::to_string(drop_probability));
}

void DareDeltaSource::task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) {
  inner_->task_delta(entry, task, begin, count, out);
  const MergedEntry& e = entries()[entry];
  // merge::dare draws tensor after tensor from Generator(seed).fork(task); element i of the flattened vector uses
  // counter i, so a chunk starts at counter flat_offset + begin.
  Generator generator = Generator(seed_).fork(uint64_t(task));
  generator.set_offset(e.flat_offset + uint64_t(begin));
  Tensor uniforms = generator.uniform({count}, 0.0, 1.0, DType::F64);
  const double* u = uniforms.data<double>();
  for (int64_t i = 0; i < count; ++i)
    out[i] = u[i] < drop_probability_ ? 0.0 : round_to_work(out[i] * survivor_scale_, e.work_f64);
}

// ---- LoRA weight space ----

WeightSpaceDeltaSource::WeightSpaceDeltaSource(std::vector<StateDict> adapters, StateDict initial,
                                               std::vector<std::string> labels, double scaling, LoraDeltaForm form,
                                               WeightBase base_mode, const SafetensorsFile* base_file)
    : adapters_(std::move(adapters)),
      initial_(std::move(initial)),
      labels_(std::move(labels)),
      scaling_(scaling),
      form_(form),
      base_mode_(base_mode),
      base_file_(base_file) {
  // Order of merge_lora_weight_space: the LoRA modules of the (first) adapter, then its other entries.
  modules_ = find_lora_modules(adapters_[0]);
  for (const LoraModule& module : modules_) {
    MergedEntry entry;
    entry.name = module.weight_name();
    entry.shape = {module.out_features, module.in_features};
    entry.numel = module.out_features * module.in_features;
    entry.work_f64 = adapters_[0].at(module.a_name()).dtype() == DType::F64;
    entry.has_base = base_mode_ == WeightBase::full_model;
    entries_.push_back(entry);
    source_names_.push_back(module.module);
    is_module_.push_back(true);
  }
  for (const auto& [name, tensor] : adapters_[0]) {
    if (name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")) continue;
    MergedEntry entry;
    entry.name = name;
    entry.shape = tensor.shape();
    entry.numel = tensor.numel();
    entry.work_f64 = tensor.dtype() == DType::F64;
    entry.has_base = true;
    entries_.push_back(entry);
    source_names_.push_back(name);
    is_module_.push_back(false);
  }
  assign_flat_offsets(entries_);
  if (base_mode_ == WeightBase::full_model && !base_file_)
    throw std::logic_error("[WeightSpaceDeltaSource] full-model output needs the base file");
}

void WeightSpaceDeltaSource::fill_cache(size_t entry) {
  if (cached_entry_ == entry) return;
  cached_.clear();
  cached_entry_ = SIZE_MAX;
  const std::string& source = source_names_[entry];
  for (const StateDict& adapter : adapters_) {
    if (is_module_[entry]) {
      // One module at a time through the library (same kernels, same bits as the whole-adapter call).
      LoraModule module = modules_[entry];
      StateDict one, one_initial;
      for (const std::string& name : {module.a_name(), module.b_name()}) {
        one.insert(name, adapter.at(name));
        one_initial.insert(name, initial_.at(name));
      }
      cached_.push_back(lora_weight_delta(one, one_initial, scaling_, form_).at(module.weight_name()));
    } else {
      StateDict one, one_initial;
      one.insert(source, adapter.at(source));
      one_initial.insert(source, initial_.at(source));
      cached_.push_back(TaskVector::between(one, one_initial).at(source));
    }
  }
  cached_entry_ = entry;
}

void WeightSpaceDeltaSource::task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) {
  fill_cache(entry);
  const Tensor& delta = cached_[task];
  if (delta.dtype() == DType::F64) std::memcpy(out, delta.data<double>() + begin, size_t(count) * sizeof(double));
  else
    for (int64_t i = 0; i < count; ++i) out[i] = double(delta.data<float>()[begin + i]);
}

void WeightSpaceDeltaSource::base_values(size_t entry, int64_t begin, int64_t count, double* out) {
  const MergedEntry& e = entries_[entry];
  if (base_mode_ == WeightBase::full_model) {
    read_as_float64(*base_file_, base_file_->entry(e.name), begin, count, out);
    return;
  }
  // Initial mode: only the adapter's own (non-LoRA) entries have a base, the initial adapter's value.
  std::vector<double> values = initial_.at(source_names_[entry]).to_vector<double>();
  std::memcpy(out, values.data() + begin, size_t(count) * sizeof(double));
}

void WeightSpaceDeltaSource::release(size_t entry) {
  if (cached_entry_ == entry) {
    cached_.clear();
    cached_entry_ = SIZE_MAX;
  }
}

}  // namespace linfuse::merge
