#pragma once
// StateDict: an ordered map from parameter names ("vision_model.encoder.layers.0.mlp.fc1.weight") to tensors,
// the currency of checkpoints, task vectors and merging. Order is insertion order (the module's order).
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  void insert(const std::string& name, const Tensor& tensor);   // throws if the name is already present
  void set(const std::string& name, const Tensor& tensor);      // inserts or replaces
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Tensor& at(const std::string& name) const;              // throws naming the missing key
  Tensor& at(const std::string& name);
  void erase(const std::string& name);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> names() const;
  int64_t numel() const;   // total elements

  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }
  std::vector<Entry>::iterator begin() { return entries_.begin(); }
  std::vector<Entry>::iterator end() { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace linfuse
