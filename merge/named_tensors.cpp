#include "merge/named_tensors.h"

#include <stdexcept>

#include "tensor/kernels.h"

namespace linfuse::merge {

std::string join_names(const std::vector<std::string>& names, size_t limit) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += ", ... (" + std::to_string(names.size() - limit) + " more)";
  return out;
}

std::string describe_mismatch(const StateDict& a, const StateDict& b, const std::string& a_label,
                              const std::string& b_label) {
  std::vector<std::string> missing_in_a, missing_in_b, shape_differs, dtype_differs;
  for (const auto& [name, tensor] : a) {
    if (!b.contains(name)) {
      missing_in_b.push_back(name);
      continue;
    }
    const Tensor& other = b.at(name);
    if (tensor.shape() != other.shape())
      shape_differs.push_back(name + " " + shape_str(tensor.shape()) + " vs " + shape_str(other.shape()));
    if (tensor.dtype() != other.dtype())
      dtype_differs.push_back(name + " " + dtype_name(tensor.dtype()) + " vs " + dtype_name(other.dtype()));
  }
  for (const auto& entry : b)
    if (!a.contains(entry.first)) missing_in_a.push_back(entry.first);

  std::string out;
  auto section = [&](const std::string& title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    out += (out.empty() ? "" : "; ") + title + ": " + join_names(items);
  };
  section("missing in " + a_label, missing_in_a);
  section("missing in " + b_label, missing_in_b);
  section("shape differs", shape_differs);
  section("dtype differs", dtype_differs);
  return out;
}

void require_same_entries(const std::string& op, const StateDict& a, const StateDict& b, const std::string& a_label,
                          const std::string& b_label, const std::string& fix) {
  std::string mismatch = describe_mismatch(a, b, a_label, b_label);
  if (!mismatch.empty())
    throw std::invalid_argument("[" + op + "] " + a_label + " and " + b_label + " do not match: " + mismatch + ". Fix: " +
                                fix + ".");
}

void require_same_entries(const std::string& op, const std::vector<const StateDict*>& sets, const std::string& what) {
  if (sets.empty()) throw std::invalid_argument("[" + op + "] needs at least one " + what + ", got none");
  std::string all;
  for (size_t i = 1; i < sets.size(); ++i) {
    std::string mismatch =
        describe_mismatch(*sets[0], *sets[i], what + " 0", what + " " + std::to_string(i));
    if (!mismatch.empty()) all += (all.empty() ? "" : " | ") + mismatch;
  }
  if (!all.empty())
    throw std::invalid_argument("[" + op + "] the " + what + "s do not match: " + all + ". Fix: build every " + what +
                                " from the same model and parameter selection.");
}

std::vector<double> to_float64(const Tensor& t) { return t.to_vector<double>(); }

Tensor from_float64(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor out = Tensor::from_vector(values, shape);
  return dtype == DType::F64 ? out : kernels::cast(out, dtype);
}

}  // namespace linfuse::merge
