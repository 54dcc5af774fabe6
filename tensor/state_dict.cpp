#include "tensor/state_dict.h"

#include <stdexcept>

namespace linfuse {

void StateDict::insert(const std::string& name, const Tensor& tensor) {
  if (contains(name)) throw std::invalid_argument("[StateDict] duplicate name '" + name + "'");
  index_[name] = entries_.size();
  entries_.emplace_back(name, tensor);
}

void StateDict::set(const std::string& name, const Tensor& tensor) {
  auto it = index_.find(name);
  if (it == index_.end()) insert(name, tensor);
  else entries_[it->second].second = tensor;
}

const Tensor& StateDict::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw std::out_of_range("[StateDict] no tensor named '" + name + "'");
  return entries_[it->second].second;
}

Tensor& StateDict::at(const std::string& name) {
  return const_cast<Tensor&>(static_cast<const StateDict&>(*this).at(name));
}

void StateDict::erase(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  entries_.erase(entries_.begin() + it->second);
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].first] = i;
}

std::vector<std::string> StateDict::names() const {
  std::vector<std::string> out;
  for (auto& e : entries_) out.push_back(e.first);
  return out;
}

int64_t StateDict::numel() const {
  int64_t n = 0;
  for (auto& e : entries_) n += e.second.numel();
  return n;
}

}  // namespace linfuse
