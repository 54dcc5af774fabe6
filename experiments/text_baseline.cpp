// The word-feature baseline of the text tasks (text_baseline.h).
#include "experiments/text_baseline.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "experiments/text_corpus.h"
#include "experiments/text_edits.h"
#include "experiments/text_scoring.h"

namespace linfuse::experiments {
namespace {

using Features = std::vector<std::pair<int64_t, double>>;   // sparse: (feature index, value)

// The words of the task rules (text_corpus.h): split on spaces, bare (lowercased, outer punctuation
// stripped: "well-known" and "6/40" stay one word), pure punctuation ("--") dropped.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  for (const std::string& word : data::split_words(text))
    if (std::string bare = data::bare_word(word); !bare.empty()) words.push_back(std::move(bare));
  return words;
}

// The input without its task prefix, cut at the second field's marker ("sentence2:", "question2:",
// "premise:"), as (first field, second field); the second is empty for single-sentence inputs.
std::pair<std::string, std::string> fields_of(const std::string& input) {
  size_t start = input.find(": ");
  start = start == std::string::npos ? 0 : start + 2;
  size_t cut = std::string::npos, marker_length = 0;
  for (const char* marker : {" sentence2: ", " question2: ", " premise: "}) {
    size_t at = input.rfind(marker);
    if (at != std::string::npos && at >= start && (cut == std::string::npos || at > cut)) {
      cut = at;
      marker_length = std::string(marker).size();
    }
  }
  if (cut == std::string::npos) return {input.substr(start), ""};
  return {input.substr(start, cut - start), input.substr(cut + marker_length)};
}

// Whether a sentence negates, by the rules' own test (text_edits.h).
bool has_negation(const std::vector<std::string>& words) {
  return std::any_of(words.begin(), words.end(), [](const std::string& word) { return data::is_negation(word); });
}

constexpr int64_t kOverlapFeatures = 7;

Features overlap_features(const std::string& input) {
  auto [first, second] = fields_of(input);
  std::vector<std::string> a_words = words_of(first), b_words = words_of(second);
  std::set<std::string> a(a_words.begin(), a_words.end()), b(b_words.begin(), b_words.end());
  double shared = 0;
  for (const auto& w : b) shared += double(a.count(w));
  std::set<std::pair<std::string, std::string>> a_bigrams;
  for (size_t i = 0; i + 1 < a_words.size(); ++i) a_bigrams.insert({a_words[i], a_words[i + 1]});
  double shared_bigrams = 0;
  for (size_t i = 0; i + 1 < b_words.size(); ++i) shared_bigrams += double(a_bigrams.count({b_words[i], b_words[i + 1]}));
  const double na = double(a.size()), nb = double(b.size());
  return {{0, nb > 0 ? shared / nb : 0.0},
          {1, na > 0 ? shared / na : 0.0},
          {2, nb - shared},
          {3, na - shared},
          {4, has_negation(a_words) != has_negation(b_words) ? 1.0 : 0.0},
          {5, double(b_words.size()) / double(std::max<size_t>(1, a_words.size()))},
          {6, b_words.size() > 1 ? shared_bigrams / double(b_words.size() - 1) : 0.0}};
}

// A linear model over sparse features: `outputs` columns (classes, or 1 for regression) plus a bias.
struct LinearModel {
  int64_t inputs = 0, outputs = 0;
  std::vector<double> weights;   // (inputs + 1) x outputs, the last row the bias

  double score(const Features& x, int64_t out) const {
    double s = weights[size_t(inputs * outputs + out)];
    for (const auto& [i, v] : x) s += weights[size_t(i * outputs + out)] * v;
    return s;
  }
};

// Full-batch gradient descent on the mean cross-entropy (classification, labels in [0, classes)) or the
// mean squared error (regression, classes 0, targets in `y`), with L2 on the weights (not the bias).
LinearModel fit(const std::vector<Features>& x, const std::vector<double>& y, int64_t inputs, int64_t classes,
                int64_t steps, double learning_rate, double l2) {
  LinearModel m;
  m.inputs = inputs;
  m.outputs = std::max<int64_t>(1, classes);
  m.weights.assign(size_t((inputs + 1) * m.outputs), 0.0);
  std::vector<double> grad(m.weights.size()), residual(size_t(m.outputs));
  const double n = double(x.size());
  for (int64_t step = 0; step < steps; ++step) {
    std::fill(grad.begin(), grad.end(), 0.0);
    for (size_t e = 0; e < x.size(); ++e) {
      if (classes > 0) {   // softmax probabilities minus the one-hot label
        double top = -1e300, total = 0;
        for (int64_t c = 0; c < m.outputs; ++c) residual[size_t(c)] = m.score(x[e], c), top = std::max(top, residual[size_t(c)]);
        for (auto& r : residual) total += (r = std::exp(r - top));
        for (auto& r : residual) r /= total;
        residual[size_t(y[e])] -= 1.0;
      } else {
        residual[0] = m.score(x[e], 0) - y[e];
      }
      for (int64_t c = 0; c < m.outputs; ++c) {
        const double r = residual[size_t(c)] / n;
        for (const auto& [i, v] : x[e]) grad[size_t(i * m.outputs + c)] += r * v;
        grad[size_t(inputs * m.outputs + c)] += r;
      }
    }
    for (size_t w = 0; w < m.weights.size(); ++w) {
      const bool bias = int64_t(w) >= inputs * m.outputs;
      m.weights[w] -= learning_rate * (grad[w] + (bias ? 0.0 : l2 * m.weights[w]));
    }
  }
  return m;
}

}  // namespace

TextBaselineResult text_feature_baseline(const data::TextTask& task, int64_t test_examples) {
  if (task.train.empty() || task.test.empty())
    throw std::invalid_argument("[text baseline] task '" + task.name + "' needs training and test examples");
  const size_t test_count = test_examples <= 0 ? task.test.size() : std::min(task.test.size(), size_t(test_examples));
  const std::vector<data::TextExample> test(task.test.begin(), task.test.begin() + long(test_count));
  const bool pair = !fields_of(task.train.front().input).second.empty();
  const bool regression = task.metric == "spearman";

  TextBaselineResult result;
  std::vector<Features> train_x, test_x;
  int64_t inputs = 0;
  if (pair) {
    result.features = "word overlap";
    for (const auto& e : task.train) train_x.push_back(overlap_features(e.input));
    for (const auto& e : test) test_x.push_back(overlap_features(e.input));
    inputs = kOverlapFeatures;
    // Standardize with the training split's mean and deviation, so one step size suits every feature.
    std::vector<double> mean(size_t(inputs), 0.0), deviation(size_t(inputs), 0.0);
    for (const auto& x : train_x)
      for (const auto& [i, v] : x) mean[size_t(i)] += v / double(train_x.size());
    for (const auto& x : train_x)
      for (const auto& [i, v] : x) deviation[size_t(i)] += (v - mean[size_t(i)]) * (v - mean[size_t(i)]) / double(train_x.size());
    for (auto* set : {&train_x, &test_x})
      for (auto& x : *set)
        for (auto& [i, v] : x) v = (v - mean[size_t(i)]) / (std::sqrt(deviation[size_t(i)]) + 1e-9);
  } else {
    result.features = "bag of words";
    std::map<std::string, int64_t> document_frequency, index;
    for (const auto& e : task.train) {
      std::vector<std::string> words = words_of(fields_of(e.input).first);
      for (const auto& w : std::set<std::string>(words.begin(), words.end())) ++document_frequency[w];
    }
    for (const auto& [word, count] : document_frequency)
      if (count >= 2) index.emplace(word, int64_t(index.size()));
    auto bag = [&](const std::string& input) {
      std::vector<std::string> words = words_of(fields_of(input).first);
      Features x;
      for (const auto& w : std::set<std::string>(words.begin(), words.end()))
        if (auto found = index.find(w); found != index.end()) x.push_back({found->second, 1.0});
      return x;
    };
    for (const auto& e : task.train) train_x.push_back(bag(e.input));
    for (const auto& e : test) test_x.push_back(bag(e.input));
    inputs = int64_t(index.size());
  }

  std::vector<double> train_y;
  for (const auto& e : task.train) train_y.push_back(regression ? e.score : double(e.label));
  const int64_t classes = regression ? 0 : int64_t(task.label_words.size());
  // Step sizes: below 2 / (largest curvature). Cross-entropy's curvature is at most 1/4 of the features'
  // second moment; squared error's is their covariance, up to 7 for 7 standardized, correlated features.
  const double learning_rate = regression ? 0.1 : pair ? 0.5 : 1.0;
  LinearModel model = fit(train_x, train_y, inputs, classes, pair ? 1000 : 300, learning_rate, 1e-3);

  if (regression) {
    std::vector<double> predicted, truth;
    for (size_t e = 0; e < test.size(); ++e) predicted.push_back(model.score(test_x[e], 0)), truth.push_back(test[e].score);
    result.test = spearman_correlation(predicted, truth);
  } else {
    int64_t correct = 0;
    for (size_t e = 0; e < test.size(); ++e) {
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (model.score(test_x[e], c) > model.score(test_x[e], best)) best = c;
      correct += best == test[e].label;
    }
    result.test = double(correct) / double(test.size());
  }
  return result;
}

}  // namespace linfuse::experiments
