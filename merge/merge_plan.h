#pragma once
// Internal to the merge tool (streaming_merge.cpp, adapter_merge.cpp): collecting input problems into one error,
// comparing safetensors headers, output dtypes, metadata and the method dispatch shared by checkpoints and adapters.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "merge/merge_outputs.h"
#include "merge/merge_sources.h"
#include "merge/streaming_merge.h"
#include "merge/streaming_passes.h"

namespace linfuse::merge::tool {

// Every problem found while checking the inputs; one error lists them all.
struct Problems {
  std::vector<std::string> items;
  void add(const std::string& problem) { items.push_back(problem); }
  bool empty() const { return items.empty(); }
  // Throws std::invalid_argument "[linfuse merge] <headline>; nothing was written: <p1> | <p2> ..." if any.
  void throw_if_any(const std::string& headline) const;
};

// Opens a safetensors file, or records why it cannot be read.
std::optional<SafetensorsFile> open_input(const std::string& path, const std::string& role, Problems& problems);

// How `other` differs from `reference`: "missing in <other>: x, y; missing in <reference>: z; shape differs: w (2,3)
// vs (3,2); dtype differs: v F32 vs F16" (every name listed); "" when they hold the same tensors.
std::string header_mismatch(const SafetensorsFile& reference, const std::string& reference_label,
                            const SafetensorsFile& other, const std::string& other_label);

// The stored dtype of a merged (floating) tensor read as `input`.
SafetensorsDType stored_dtype(OutputDType choice, SafetensorsDType input);

// Methods that merge task vectors tau_t = theta_t - theta0 and therefore need theta0.
bool needs_task_vectors(const MergeSpec& spec);

// Wraps `source` in DARE's drop-and-rescale when the method is dare.
std::unique_ptr<DeltaSource> with_dare(const MergeSpec& spec, std::unique_ptr<DeltaSource> source);

// Runs the data-free method of `spec` over `source` into `sink`.
void run_data_free(const MergeSpec& spec, DeltaSource& source, MergeSink& sink, PassStats& stats,
                   const MergeRunOptions& options);

// The metadata every output records: method, hyperparameters, inputs, space, the full config, provenance, `extra`.
SafetensorsMetadata merge_metadata(const MergeSpec& spec, const std::string& space, const SafetensorsMetadata& extra,
                                   const MergeRunOptions& options);

// Problems with the output path: it is one of the inputs, or (for a file output) an existing folder.
void check_output(const MergeSpec& spec, bool folder_output, Problems& problems);

void warn(MergeReport& report, const MergeRunOptions& options, const std::string& message);

// Every input must still be the file that was read (SafetensorsFile::check_unchanged): a truncation inside the last
// page reads as zeros without any SIGBUS, so a merge checks its inputs before it publishes the output. Null entries
// are skipped.
void check_inputs_unchanged(const std::vector<const SafetensorsFile*>& inputs);

// Test hook for tests/merge/test_merge_faults.cpp, not for use otherwise: with LINFUSE_TEST_PAUSE_MERGE=<path> in the
// environment, a checkpoint merge whose inputs are mapped and whose temporary output exists creates <path>.paused,
// then waits until <path>.resume exists (at most 60 s), so that a test can truncate an input or send a signal at a
// known point of the merge.
void test_pause_point();

// LoRA adapters in the HF PEFT layout (merge/adapter_merge.cpp).
bool is_adapter_folder(const std::string& path);
MergeReport run_adapter_merge(const MergeSpec& spec, const MergeRunOptions& options);

}  // namespace linfuse::merge::tool
