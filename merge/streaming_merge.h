#pragma once
// The engine of `linfuse merge`: merges safetensors checkpoints, or LoRA adapters in the HF PEFT layout, as a
// MergeSpec describes, streaming tensor by tensor from the memory-mapped inputs.
//
// Memory. Data-free methods (averages, task arithmetic, TIES, DARE) read each input a chunk at a time (PassOptions)
// and hand the pages back to the kernel after use, so the peak is about one output tensor (float32, or float64 for
// float64 output) plus a chunk per input -- below the (models + 1) x largest tensor of a tensor-at-a-time merge, and
// independent of the file sizes. fisher and regmean hold one tensor per model (plus its statistics) at a time.
// LoRA adapters are small and held in memory; a weight-space merge holds one module's Delta W per model.
//
// Results are those of merge::* on the same inputs, bit for bit (float32 and float64 inputs; float16/bfloat16 inputs
// are computed as float32, like load_safetensors gives them, and stored back in their dtype). The flattened task vector
// (DARE's random stream, TIES's tie order) follows the first model's tensor order, as TaskVector::between(first, base)
// does; the output follows the base's order (the first model's without a base).
//
// Errors. Everything is checked before anything is written: unreadable files, different tensor names, shapes or
// dtypes (one message lists every mismatch of every input), a missing base, adapters with different configs or initial
// adapters, bad hyperparameters. A failure at any point leaves no output and no temporary file.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "merge/merge_spec.h"
#include "nn/safetensors.h"

namespace linfuse::merge {

struct MergeRunOptions {
  // Recorded in the output's metadata, e.g. {"linfuse.commit": "1a2b3c"}.
  std::map<std::string, std::string> provenance;
  // Called with each warning when it arises (they are also returned in the report).
  std::function<void(const std::string&)> warn;
  int64_t chunk_elements = int64_t(1) << 18;   // elements per input per read
};

struct MergeReport {
  std::string output;
  std::string output_kind;        // "safetensors file" or "PEFT adapter folder"
  std::string space;              // "parameter", "adapter-parameter" or "weight"
  std::string input_kind;         // "checkpoints" or "PEFT adapters"
  int64_t merged_tensors = 0, copied_tensors = 0, merged_elements = 0;
  int input_reads = 0;            // passes over the inputs
  bool majority_pass = false;     // TIES needed the elected-sign majority
  double max_refactorization_residual = 0.0;   // weight space re-factorized: max relative Frobenius error
  std::vector<std::string> warnings;
  SafetensorsMetadata metadata;                // what was recorded in the output
  bool written = false;           // false for a dry run
};

// Runs the merge (or, with spec.dry_run, only the checks). Throws std::invalid_argument / std::runtime_error
// "[linfuse merge] ..." on any problem, leaving no output.
MergeReport run_merge(const MergeSpec& spec, const MergeRunOptions& options = {});

}  // namespace linfuse::merge
