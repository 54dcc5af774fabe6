#include "merge/merge_outputs.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>
#include <sstream>
#include <stdexcept>

#include "merge/named_tensors.h"
#include "nn/atomic_file.h"
#include "nn/half_precision.h"
#include "tensor/kernels.h"

namespace linfuse::merge {
namespace {

namespace fs = std::filesystem;
const std::string kPeftPrefix = "base_model.model.";

// ".<name>.<kind>.<pid>": a hidden sibling of the target. (Built with +=: GCC 12 warns falsely, -Wrestrict, on
// "." + std::string.)
std::string sibling_name(const fs::path& target, const char* kind) {
  std::string name = ".";
  name += target.filename().string();
  name += kind;
  name += std::to_string(::getpid());
  return name;
}

}  // namespace

SafetensorsSink::SafetensorsSink(const std::string& path, const SafetensorsMetadata& metadata,
                                 const std::vector<OutputTensor>& declared, std::vector<std::string> entry_names)
    : writer_(path, metadata), entry_names_(std::move(entry_names)) {
  for (const auto& tensor : declared) {
    writer_.declare(tensor.name, tensor.dtype, tensor.shape);
    stored_dtype_[tensor.name] = tensor.dtype;
  }
  for (const auto& name : entry_names_)
    entry_f64_.push_back(stored_dtype_.count(name) && stored_dtype_[name] == SafetensorsDType::F64);
}

bool SafetensorsSink::wants_f64(size_t entry) const { return entry < entry_f64_.size() && entry_f64_[entry]; }

void SafetensorsSink::put(size_t entry, const Tensor& values) { write(entry_names_[entry], values); }

void SafetensorsSink::write(const std::string& name, const Tensor& values) {
  auto stored = stored_dtype_.find(name);
  if (values.dtype() != DType::I64 && stored != stored_dtype_.end()) {
    const SafetensorsDType dtype = stored->second;
    double bad = 0.0;
    // The value as it will be stored: float32 and the half formats round, and may overflow to infinity.
    const int64_t i = find_element(values, [&](int64_t, double v) {
      double kept = v;
      if (dtype == SafetensorsDType::F32) kept = double(float(v));
      if (dtype == SafetensorsDType::F16) kept = double(float16_to_float(float_to_float16(float(v))));
      if (dtype == SafetensorsDType::BF16) kept = double(bfloat16_to_float(float_to_bfloat16(float(v))));
      return std::isfinite(kept) || (bad = v, false);
    });
    const std::string where = "[linfuse merge] the merged tensor '" + name + "' ";
    if (i >= 0 && std::isfinite(bad))
      throw std::invalid_argument(where + "holds " + std::to_string(bad) + " at element " + std::to_string(i) +
                                  ", beyond the range of " + safetensors_dtype_name(dtype) +
                                  " (it would be stored as infinity): write float32 (--dtype float32) or scale the merge "
                                  "down (--lambda); nothing was written");
    if (i >= 0)
      throw std::invalid_argument(where + "is not finite (" + (std::isnan(bad) ? "nan" : "inf") + " at element " +
                                  std::to_string(i) +
                                  "): the inputs are finite, so the merge overflowed; check --lambda (and --weights) "
                                  "against the inputs' magnitudes; nothing was written");
  }
  writer_.write(name, values);
}

void SafetensorsSink::copy(const std::string& name, const SafetensorsFile& from) {
  Tensor tensor = from.tensor_copy(name);   // a copy, read under read_bytes' guard against a truncated input
  if (tensor.dtype() != DType::I64) require_finite_input(from.path(), name, tensor);
  write(name, tensor);
  release_pages(from, name);
}

RefactorizedAdapterSink::RefactorizedAdapterSink(SafetensorsSink& out, const WeightSpaceDeltaSource& source,
                                                 int64_t rank, double scaling)
    : out_(out), source_(source), rank_(rank), scaling_(scaling) {}

void RefactorizedAdapterSink::put(size_t entry, const Tensor& values) {
  const MergedEntry& e = source_.entries()[entry];
  if (entry >= source_.modules().size()) {   // the adapter's own entries (initial + merged delta)
    out_.write(kPeftPrefix + e.name, values);
    return;
  }
  // merge_lora_weight_space: target = merged Delta W + s B0 A0, factorized with the same s.
  const LoraModule& module = source_.modules()[entry];
  std::vector<double> target = to_float64(values);
  auto as_f64 = [](const Tensor& t) { return t.dtype() == DType::F64 ? t : kernels::cast(t, DType::F64); };
  std::vector<double> initial_product =
      kernels::matmul(as_f64(source_.initial().at(module.b_name())), as_f64(source_.initial().at(module.a_name())))
          .to_vector<double>();
  for (size_t i = 0; i < target.size(); ++i) target[i] += scaling_ * initial_product[i];
  int64_t rank = rank_ == 0 ? module.rank : rank_;
  LoraFactors factors =
      refactorize_lora(from_float64(target, {module.out_features, module.in_features}, DType::F64), rank, scaling_);
  DType dtype = source_.initial().at(module.a_name()).dtype();   // the library casts the factors to the adapter's dtype
  out_.write(kPeftPrefix + module.a_name(), kernels::cast(factors.lora_A, dtype));
  out_.write(kPeftPrefix + module.b_name(), kernels::cast(factors.lora_B, dtype));
  max_residual_ = std::max(max_residual_, factors.residual);
}

// ---- staged adapter folder ----

void StagedDirectory::check_target(const std::string& target) {
  std::error_code ec;
  fs::file_status status = fs::status(target, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status))
    throw std::invalid_argument("[linfuse merge] the output " + target +
                                " exists and is not a folder; an adapter is written as a PEFT folder: choose another --out");
  static const std::set<std::string> adapter_files = {"adapter_config.json", "adapter_model.safetensors",
                                                      "adapter_initial.safetensors", "README.md"};
  std::vector<std::string> foreign;
  for (const auto& item : fs::directory_iterator(target, ec))
    if (!adapter_files.count(item.path().filename().string())) foreign.push_back(item.path().filename().string());
  if (!foreign.empty())
    throw std::invalid_argument("[linfuse merge] the output folder " + target + " exists and holds other files (" +
                                join_names(foreign) + "); it would be replaced as a whole: choose a new --out");
}

StagedDirectory::StagedDirectory(std::string target) : target_(std::move(target)) {
  check_target(target_);
  fs::path path(target_);
  if (!path.has_filename()) path = path.parent_path();   // "out/" -> "out"
  target_ = path.string();
  fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  fs::create_directories(parent);
  remove_stale_temporaries(target_);   // staged folders of earlier runs that were killed
  staged_ = (parent / sibling_name(path, ".tmp.")).string();
  cleanup_ = InterruptCleanup(staged_, /*is_folder=*/true);   // before it exists: an interruption deletes it
  fs::remove_all(staged_);
  fs::create_directory(staged_);
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staged_, ec);
  cleanup_.release();
}

std::string StagedDirectory::file(const std::string& name) const { return staged_ + "/" + name; }

void StagedDirectory::commit() {
  fs::path path(target_);
  fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (fs::exists(path, ec)) {
    // Replace: move the old folder aside first (rename cannot replace a non-empty folder), then delete it.
    fs::path old = parent / sibling_name(path, ".old.");
    fs::remove_all(old, ec);
    fs::rename(path, old);
    fs::rename(staged_, path);
    fs::remove_all(old, ec);
  } else {
    fs::rename(staged_, path);
  }
  cleanup_.release();
  committed_ = true;
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw std::runtime_error("[linfuse merge] cannot read " + from);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  write_file_atomic(to, bytes.str());
}

}  // namespace linfuse::merge
