#pragma once
// Where the streaming merge writes: a safetensors file through SafetensorsWriter (every tensor declared first, each
// written once, published atomically by finish()), optionally inside a PEFT adapter folder that is assembled next to
// its final place and moved there at the end. Until then the target is untouched; a failure leaves nothing behind.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "merge/lora.h"
#include "merge/merge_sources.h"
#include "merge/streaming_passes.h"
#include "nn/safetensors.h"
#include "nn/temporary_files.h"

namespace linfuse::merge {

struct OutputTensor {
  std::string name;
  SafetensorsDType dtype;
  Shape shape;
};

// Writes merged entries (entry i -> entry_names[i]) and copied tensors into one safetensors file. Every value written
// must be finite in the stored dtype: a NaN, an infinity or a value beyond float16's / bfloat16's range (a --lambda of
// 1e39, a float16 output that overflows) is refused with std::invalid_argument naming the tensor, and since the file
// is published only by finish(), nothing is written.
class SafetensorsSink : public MergeSink {
 public:
  SafetensorsSink(const std::string& path, const SafetensorsMetadata& metadata, const std::vector<OutputTensor>& declared,
                  std::vector<std::string> entry_names);
  bool wants_f64(size_t entry) const override;
  void put(size_t entry, const Tensor& values) override;
  // A tensor taken unchanged from an input (non-merged entries), its pages dropped afterwards; a floating one must be
  // finite (require_finite_input).
  void copy(const std::string& name, const SafetensorsFile& from);
  void write(const std::string& name, const Tensor& values);
  void finish() { writer_.finish(); }

 private:
  SafetensorsWriter writer_;
  std::vector<std::string> entry_names_;
  std::vector<bool> entry_f64_;
  std::unordered_map<std::string, SafetensorsDType> stored_dtype_;
};

// Weight-space merge re-factorized into a LoRA adapter: a LoRA module's merged Delta W becomes rank-r factors (A, B)
// with scaling B A ~ s B0 A0 + Delta W (merge::refactorize_lora, as merge_lora_weight_space does), the adapter's other
// entries are written as merged. Names get PEFT's "base_model.model." prefix.
class RefactorizedAdapterSink : public MergeSink {
 public:
  RefactorizedAdapterSink(SafetensorsSink& out, const WeightSpaceDeltaSource& source, int64_t rank, double scaling);
  // The merged delta at the adapters' precision (merge_lora_weight_space factorizes the delta as stored).
  bool wants_f64(size_t entry) const override { return source_.entries()[entry].work_f64; }
  void put(size_t entry, const Tensor& values) override;
  double max_residual() const { return max_residual_; }

 private:
  SafetensorsSink& out_;
  const WeightSpaceDeltaSource& source_;
  int64_t rank_;
  double scaling_;
  double max_residual_ = 0.0;
};

// A folder built under a temporary name in the same parent and renamed into place by commit(). An existing target
// (which must be a PEFT adapter folder: only adapter_config.json, adapter_model.safetensors, adapter_initial.safetensors,
// README.md) is replaced: moved aside, the new folder renamed in, the old one deleted. Destroyed before commit(), or
// interrupted by SIGINT / SIGTERM / SIGHUP (nn/temporary_files.h): the temporary folder is deleted; one left by a
// killed process is deleted by the next StagedDirectory for the same target.
class StagedDirectory {
 public:
  // Throws if `target` exists as something else than an adapter folder (checked before any work).
  static void check_target(const std::string& target);
  explicit StagedDirectory(std::string target);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;
  std::string file(const std::string& name) const;   // path inside the staged folder
  void commit();

 private:
  std::string target_, staged_;
  InterruptCleanup cleanup_;
  bool committed_ = false;
};

// Byte copy of a (small) file, atomically.
void copy_file_atomic(const std::string& from, const std::string& to);

}  // namespace linfuse::merge
