#pragma once
// Where the streaming merge (merge/streaming_merge.h) reads task vectors from: a DeltaSource hands out any range of
// tau_t for one tensor at a time, so a merge holds a chunk per input, never whole files.
//
// Numerics follow the in-memory merge exactly, so the tool and merge::* give the same bits:
// - tau_t = theta_t - theta0 is computed in float64 and rounded to the entry's "work" precision (float32 unless the
//   inputs are float64), as TaskVector::between stores it in the operands' dtype (float16/bfloat16 inputs are float32
//   tensors once loaded, so they work in float32 too).
// - Without a base the "delta" is the model itself (merging models directly, as TaskVector(state_dict) does).
// Sources are stateless between calls apart from caches, so a merge can read an entry any number of times (TIES reads
// its inputs two to four times).
#include <cstdint>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "merge/lora.h"
#include "nn/safetensors.h"

namespace linfuse::merge {

// One tensor of the flattened task vector, in processing order.
struct MergedEntry {
  std::string name;           // output name
  Shape shape;
  int64_t numel = 0;
  uint64_t flat_offset = 0;   // where it starts in the flattened task vector (DARE's random stream, TIES's tie order)
  bool work_f64 = false;      // deltas live in float64 (else float32)
  bool has_base = false;      // output = base + merged delta (else the merged delta itself)
};

class DeltaSource {
 public:
  virtual ~DeltaSource() = default;
  virtual size_t task_count() const = 0;
  virtual const std::vector<MergedEntry>& entries() const = 0;
  // out[i] = tau_task[begin + i] of entry `entry` for i < count (row-major), at the entry's work precision.
  virtual void task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) = 0;
  // out[i] = theta0[begin + i]; only for entries with has_base.
  virtual void base_values(size_t entry, int64_t begin, int64_t count, double* out) = 0;
  // Done with an entry for now: drop its mapped pages or cached deltas (the merge's memory stays near one tensor).
  virtual void release(size_t /*entry*/) {}
  // Names the input of task t in error messages.
  virtual std::string task_label(size_t task) const = 0;
};

// Fills flat_offset of every entry from the entries' sizes, in order.
void assign_flat_offsets(std::vector<MergedEntry>& entries);

// Elements [begin, begin + count) of `entry` in `file`, converted to float64 (F32, F64, F16, BF16, F8_*), then the
// pages read are handed back to the kernel (madvise), so that reading a 2 GB file does not grow the resident set by 2 GB.
// A NaN or infinite value is refused (require_finite_input): no merge method gives a meaningful result from one.
void read_as_float64(const SafetensorsFile& file, const SafetensorsEntry& entry, int64_t begin, int64_t count, double* out);
// Throws std::invalid_argument naming `file` (the input's path), the tensor and the first non-finite element, if any
// of values[0, count) is NaN or infinite; `begin` is the element index of values[0] in the tensor.
void require_finite_input(const std::string& file, const std::string& name, const double* values, int64_t count,
                          int64_t begin = 0);
// The same for a whole floating tensor (any layout).
void require_finite_input(const std::string& file, const std::string& name, const Tensor& tensor);
// Drops the resident pages of a whole tensor of `file` (after a zero-copy view of it was used).
void release_pages(const SafetensorsFile& file, const std::string& name);
bool is_floating_dtype(SafetensorsDType dtype);   // F16, BF16, F32, F64, F8_E4M3, F8_E5M2

// Checkpoints (or PEFT adapter files in adapter-parameter space): tau_t = models[t] - base over `names`, or
// models[t] itself when `base` is null. The files must outlive the source.
class CheckpointDeltaSource : public DeltaSource {
 public:
  CheckpointDeltaSource(const SafetensorsFile* base, std::vector<const SafetensorsFile*> models,
                        std::vector<std::string> labels, const std::vector<std::string>& names);
  size_t task_count() const override { return models_.size(); }
  const std::vector<MergedEntry>& entries() const override { return entries_; }
  void task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) override;
  void base_values(size_t entry, int64_t begin, int64_t count, double* out) override;
  void release(size_t entry) override;
  std::string task_label(size_t task) const override { return labels_[task]; }

 private:
  const SafetensorsFile* base_;
  std::vector<const SafetensorsFile*> models_;
  std::vector<std::string> labels_;
  std::vector<MergedEntry> entries_;
  // The base's chunk, read once for all tasks: (entry, begin, count) of what scratch_ holds.
  std::vector<double> scratch_;
  size_t scratch_entry_ = SIZE_MAX;
  int64_t scratch_begin_ = -1, scratch_count_ = -1;
};

// DARE (merge/dare.h) applied on the fly: entry i of task t is dropped when the Philox uniform of
// Generator(seed).fork(t) at counter flat_offset + i is < p, survivors are scaled by 1 / (1 - p) and rounded to the
// work precision -- the same draws as merge::dare(task_vectors, options, seed) over the same tensor order.
class DareDeltaSource : public DeltaSource {
 public:
  DareDeltaSource(std::unique_ptr<DeltaSource> inner, double drop_probability, bool rescale, uint64_t seed);
  size_t task_count() const override { return inner_->task_count(); }
  const std::vector<MergedEntry>& entries() const override { return inner_->entries(); }
  void task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) override;
  void base_values(size_t entry, int64_t begin, int64_t count, double* out) override {
    inner_->base_values(entry, begin, count, out);
  }
  void release(size_t entry) override { inner_->release(entry); }
  std::string task_label(size_t task) const override { return inner_->task_label(task); }

 private:
  std::unique_ptr<DeltaSource> inner_;
  double drop_probability_;
  double survivor_scale_;
  uint64_t seed_;
};

// LoRA adapters in weight space: per module "<module>.weight" the delta s (B_t A_t - B0 A0) (or its linearization),
// computed by merge::lora_weight_delta one module at a time, and the adapters' other entries as ordinary deltas.
// Adapters are small and held in memory (names without PEFT's "base_model.model." prefix); a module's T deltas are
// cached while it is being read. The base of an entry is, by `base_mode`:
//   full_model: the tensor of the same name in `base_file` (the merged model's weights);
//   initial:    nothing for LoRA modules (the output is the merged Delta W), the initial adapter's value for the
//               other entries (as merge_lora_weight_space re-assembles them);
enum class WeightBase { full_model, initial };
class WeightSpaceDeltaSource : public DeltaSource {
 public:
  WeightSpaceDeltaSource(std::vector<StateDict> adapters, StateDict initial, std::vector<std::string> labels,
                         double scaling, LoraDeltaForm form, WeightBase base_mode, const SafetensorsFile* base_file);
  size_t task_count() const override { return adapters_.size(); }
  const std::vector<MergedEntry>& entries() const override { return entries_; }
  void task_delta(size_t entry, size_t task, int64_t begin, int64_t count, double* out) override;
  void base_values(size_t entry, int64_t begin, int64_t count, double* out) override;
  void release(size_t entry) override;
  std::string task_label(size_t task) const override { return labels_[task]; }

  const std::vector<LoraModule>& modules() const { return modules_; }
  const StateDict& initial() const { return initial_; }

 private:
  void fill_cache(size_t entry);

  std::vector<StateDict> adapters_;
  StateDict initial_;
  std::vector<std::string> labels_;
  double scaling_;
  LoraDeltaForm form_;
  WeightBase base_mode_;
  const SafetensorsFile* base_file_;
  std::vector<LoraModule> modules_;
  std::vector<MergedEntry> entries_;
  std::vector<std::string> source_names_;   // per entry: the adapter name ("<module>" for modules)
  std::vector<bool> is_module_;
  size_t cached_entry_ = SIZE_MAX;
  std::vector<Tensor> cached_;             // per task, the entry's delta (work precision)
};

}  // namespace linfuse::merge
