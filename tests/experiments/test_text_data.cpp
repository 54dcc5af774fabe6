// Tests of the text suite (experiments/text_tasks.h): sizes, balance, format, determinism, disjoint splits,
// that labels follow their documented rules, the instruct split's own sentences and surface form, the corpus,
// the word edits the rules use, and missing-data errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <unistd.h>

#include "experiments/text_corpus.h"
#include "experiments/stable_hash.h"
#include "experiments/text_edits.h"
#include "experiments/text_instructions.h"
#include "experiments/text_tasks.h"

using namespace linfuse;
using data::Words;

namespace {

// Each task at the default sizes, built once.
const data::TextTask& default_task(const std::string& name) {
  static std::map<std::string, data::TextTask> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, data::load_text_task(name, data::TextOptions{})).first;
  return it->second;
}

data::TextOptions small_options(uint64_t seed) {
  data::TextOptions options;
  options.seed = seed;
  options.train = 201, options.validation = 40, options.test = 61;
  return options;
}

// The text of field `name` ("premise") in a T5-style input: what follows "name: " up to the task's next
// field (fortunes may contain "sentence: " themselves, so only the task's own field order is trusted).
std::string field(const std::string& input, const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> order = {
      {"sentence1", "sentence2"}, {"question1", "question2"}, {"hypothesis", "premise"}};
  size_t start = input.find(" " + name + ": ");
  REQUIRE(start != std::string::npos);
  start += name.size() + 3;
  size_t end = input.size();
  for (const auto& [first, second] : order)
    if (first == name) end = input.find(" " + second + ": ", start);
  REQUIRE(end != std::string::npos);
  return input.substr(start, end - start);
}

// The field holding each task's own (unedited) sentence.
const std::map<std::string, std::string> kPrimaryField = {{"cola", "sentence"},   {"sst2", "sentence"},
                                                          {"mrpc", "sentence1"},  {"qqp", "question1"},
                                                          {"stsb", "sentence1"},  {"mnli", "premise"},
                                                          {"rte", "sentence1"}};

std::vector<std::string> bare_words(const std::string& text) {
  std::vector<std::string> bare;
  for (const std::string& word : data::split_words(text))
    if (std::string b = data::bare_word(word); !b.empty()) bare.push_back(b);
  return bare;
}

// Bare words with contractions expanded ("isn't" -> "is", "not"; "it's" -> "it", "is").
std::vector<std::string> expanded_words(const std::string& text) {
  static const std::vector<std::pair<std::string, std::string>> endings = {
      {"n't", "not"}, {"'s", "is"}, {"'m", "am"}, {"'re", "are"}, {"'ve", "have"}, {"'ll", "will"}};
  std::vector<std::string> out;
  for (std::string word : bare_words(text)) {
    if (word == "can't" || word == "cannot") word = "can'", out.push_back("not");
    if (word == "won't") word = "will'", out.push_back("not");
    for (const auto& [ending, expansion] : endings)
      if (word.size() > ending.size() && word.compare(word.size() - ending.size(), ending.size(), ending) == 0) {
        word.resize(word.size() - ending.size());
        out.push_back(expansion);
      }
    if (!word.empty() && word.back() == '\'') word.pop_back();
    out.push_back(word);
  }
  return out;
}

bool is_subset(const std::vector<std::string>& part, const std::vector<std::string>& whole) {
  std::set<std::string> all(whole.begin(), whole.end());
  return std::all_of(part.begin(), part.end(), [&](const std::string& w) { return all.count(w) > 0; });
}

// Every word of `part` occurs in `whole` at least as often as in `part`.
bool is_sub_multiset(const std::vector<std::string>& part, const std::vector<std::string>& whole) {
  std::map<std::string, int64_t> count;
  for (const std::string& w : whole) ++count[w];
  for (const std::string& w : part)
    if (--count[w] < 0) return false;
  return true;
}

bool is_ordered_subsequence(const std::vector<std::string>& part, const std::vector<std::string>& whole) {
  size_t k = 0;
  for (const std::string& word : whole)
    if (k < part.size() && part[k] == word) ++k;
  return k == part.size();
}

int64_t negation_count(const std::string& text) {
  int64_t count = 0;
  for (const std::string& word : bare_words(text))
    count += word == "not" || word == "cannot" || (word.size() > 3 && word.compare(word.size() - 3, 3, "n't") == 0);
  return count;
}

double jaccard(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::set<std::string> x(a.begin(), a.end()), y(b.begin(), b.end());
  size_t shared = 0;
  for (const std::string& w : x) shared += y.count(w);
  return double(shared) / double(x.size() + y.size() - shared);
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    for (size_t i = 0; i < v.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> rank(v.size());
    for (size_t i = 0; i < order.size();) {   // average ranks over ties
      size_t j = i;
      while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
      for (size_t k = i; k <= j; ++k) rank[order[k]] = 0.5 * double(i + j);
      i = j + 1;
    }
    return rank;
  };
  std::vector<double> ra = ranks(a), rb = ranks(b);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < ra.size(); ++i) ma += ra[i], mb += rb[i];
  ma /= double(ra.size()), mb /= double(rb.size());
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < ra.size(); ++i)
    cov += (ra[i] - ma) * (rb[i] - mb), va += (ra[i] - ma) * (ra[i] - ma), vb += (rb[i] - mb) * (rb[i] - mb);
  return cov / std::sqrt(va * vb);
}

const std::set<std::string>& corpus_set() {
  static const std::set<std::string> set = [] {
    auto corpus = data::text_corpus(data::TextOptions{});
    return std::set<std::string>(corpus.begin(), corpus.end());
  }();
  return set;
}

Words words_of(const std::string& text) { return data::split_words(text); }
std::string text_of(const std::optional<Words>& words) { return words ? data::join_words(*words) : "<none>"; }

}  // namespace

TEST_CASE("the text suite lists the seven GLUE tasks of the paper in a fixed order", "[text]") {
  CHECK(data::text_task_names() == std::vector<std::string>{"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "rte"});
}

TEST_CASE("every text task has the requested counts, balanced labels, label-word targets and clean inputs",
          "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    const data::TextTask& task = default_task(name);
    CHECK(task.name == name);
    CHECK(task.metric == (name == "stsb" ? "spearman" : "accuracy"));
    data::TextOptions defaults;
    REQUIRE(int64_t(task.train.size()) == defaults.train);
    REQUIRE(int64_t(task.validation.size()) == defaults.validation);
    REQUIRE(int64_t(task.test.size()) == defaults.test);
    for (const auto* split : {&task.train, &task.validation, &task.test}) {
      std::map<int64_t, int64_t> per_label;
      int64_t long_inputs = 0;
      for (const data::TextExample& example : *split) {
        INFO(example.input << " -> " << example.target);
        REQUIRE(example.input.rfind(name + " ", 0) == 0);   // the T5 task prefix
        bool printable = std::all_of(example.input.begin(), example.input.end(), [](char c) { return c >= 32 && c < 127; });
        CHECK(printable);
        CHECK(example.input.find("  ") == std::string::npos);
        long_inputs += int64_t(data::split_words(example.input).size()) > 40;
        if (name == "stsb") {
          CHECK(example.label == -1);
          REQUIRE(example.target.size() == 3);
          CHECK(std::isdigit((unsigned char)example.target[0]));
          CHECK(example.target[1] == '.');
          CHECK(std::isdigit((unsigned char)example.target[2]));
          CHECK(std::stod(example.target) == example.score);
          CHECK(example.score >= 0.0);
          CHECK(example.score <= 5.0);
        } else {
          REQUIRE(example.label >= 0);
          REQUIRE(example.label < int64_t(task.label_words.size()));
          CHECK(example.target == task.label_words[size_t(example.label)]);
          ++per_label[example.label];
        }
      }
      CHECK(long_inputs * 20 < int64_t(split->size()));   // at most 5% longer than 40 words
      if (name != "stsb") {
        REQUIRE(per_label.size() == task.label_words.size());
        auto [fewest, most] = std::minmax_element(per_label.begin(), per_label.end(),
                                                  [](auto& a, auto& b) { return a.second < b.second; });
        CHECK(most->second - fewest->second <= 1);
      }
    }
  }
}

TEST_CASE("same seed gives the same examples, a different seed different ones", "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    data::TextTask first = data::load_text_task(name, small_options(4));
    data::TextTask again = data::load_text_task(name, small_options(4));
    data::TextTask other = data::load_text_task(name, small_options(5));
    auto inputs = [](const std::vector<data::TextExample>& examples) {
      std::vector<std::string> all;
      for (const auto& example : examples) all.push_back(example.input + "\t" + example.target);
      return all;
    };
    CHECK(inputs(first.train) == inputs(again.train));
    CHECK(inputs(first.validation) == inputs(again.validation));
    CHECK(inputs(first.test) == inputs(again.test));
    CHECK(inputs(first.train) != inputs(other.train));
  }
}

TEST_CASE("a text task's data does not depend on which tasks were loaded before", "[text]") {
  data::TextTask alone = data::load_text_task("rte", small_options(9));
  for (const std::string& other : data::text_task_names()) data::load_text_task(other, small_options(9));
  data::TextTask after_others = data::load_text_task("rte", small_options(9));
  for (size_t i = 0; i < alone.test.size(); ++i) CHECK(alone.test[i].input == after_others.test[i].input);
}

TEST_CASE("no sentence of a task's test or validation split is used in its train split", "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    const data::TextTask& task = default_task(name);
    const std::string& primary = kPrimaryField.at(name);
    std::set<std::string> train_sentences;
    for (const auto& example : task.train) train_sentences.insert(field(example.input, primary));
    for (const auto* split : {&task.validation, &task.test})
      for (const auto& example : *split) {
        INFO(example.input);
        CHECK(train_sentences.count(field(example.input, primary)) == 0);
      }
    // Within a split each example has its own sentence.
    CHECK(train_sentences.size() == task.train.size());
  }
}

namespace {

data::TextOptions with_instruct(int64_t instruct, double label_word_share) {
  data::TextOptions options = small_options(3);
  options.instruct = instruct;
  options.instruct_label_word_share = label_word_share;
  return options;
}

// The sentence an example is built on: its first field (mnli's hypothesis is an edit; its premise is the
// sentence).
std::string own_sentence(const std::string& task, const data::TextExample& example) {
  REQUIRE(!example.fields.empty());
  return task == "mnli" ? example.fields.back().second : example.fields.front().second;
}

}  // namespace

TEST_CASE("the fields of an example rebuild its task-prefix input", "[text]") {
  for (const std::string& name : data::text_task_names())
    for (const auto& example : data::load_text_task(name, small_options(2)).test) {
      INFO(example.input);
      CHECK(data::task_prefix_form(name, example.fields) == example.input);
    }
}

TEST_CASE("without an instruct split the train, validation and test examples are those of the three-split build", "[text]") {
  // Recorded with the code before the instruct split existed (commit 0b23916: the three splits of every task
  // at small_options(4)); an empty instruct split must leave them bit for bit.
  std::string all;
  for (const std::string& name : data::text_task_names()) {
    data::TextTask task = data::load_text_task(name, small_options(4));
    CHECK(task.instruct.empty());
    for (const auto* split : {&task.train, &task.validation, &task.test})
      for (const auto& example : *split) all += example.input + "\t" + example.target + "\n";
  }
  CHECK(data::stable_hash(all) == 0xf835d7e4f01760e3ull);
}

TEST_CASE("the instruct split never shares a sentence with the task's train, validation or test split", "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    data::TextTask task = data::load_text_task(name, with_instruct(300, 0.25));
    REQUIRE(task.instruct.size() == 300);
    std::set<std::string> used;   // every sentence of the other splits, partners included
    for (const auto* split : {&task.train, &task.validation, &task.test})
      for (const auto& example : *split)
        for (const auto& field : example.fields) used.insert(field.second);
    for (const auto& example : task.instruct) {
      INFO(example.input);
      CHECK(used.count(own_sentence(name, example)) == 0);
    }
  }
}

TEST_CASE("instruct examples are natural-language instructions, never the task-prefix form", "[text]") {
  const std::vector<std::string> markers = {"sentence:", "sentence1:", "sentence2:", "question1:", "question2:",
                                            "premise:", "hypothesis:"};
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    data::TextTask task = data::load_text_task(name, with_instruct(200, 0.5));
    std::set<std::string> inputs_seen;
    for (const auto& example : task.instruct) {
      INFO(example.input);
      CHECK(example.input.rfind(name, 0) == std::string::npos);
      for (const std::string& marker : markers) CHECK(example.input.find(marker) == std::string::npos);
      for (const auto& field : example.fields) CHECK(example.input.find(field.second) != std::string::npos);
      inputs_seen.insert(example.input.substr(0, 20));
    }
    CHECK(inputs_seen.size() >= 4);   // several templates
  }
}

TEST_CASE("instruct answers are yes / no, or the task's label words at the configured share", "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    const std::vector<std::string> yes_no = data::yes_no_answers(name);
    for (double share : {0.0, 0.25, 1.0}) {
      INFO("label_word_share " << share);
      data::TextTask task = data::load_text_task(name, with_instruct(400, share));
      int64_t label_word_answers = 0;
      for (const auto& example : task.instruct) {
        INFO(example.input << " -> " << example.target);
        bool is_yes_no = std::find(yes_no.begin(), yes_no.end(), example.target) != yes_no.end();
        if (is_yes_no) {
          // the answer follows the example's label (stsb: yes iff the score is at least 2.5)
          size_t index = name == "stsb" ? size_t(example.score >= 2.5) : size_t(example.label);
          CHECK(example.target == yes_no[index]);
        } else if (name == "stsb") {
          ++label_word_answers;
          CHECK(std::abs(std::stod(example.target) - example.score) <= 0.25 + 1e-9);
          CHECK(std::fmod(std::stod(example.target) * 2, 1.0) == 0.0);
        } else {
          ++label_word_answers;
          CHECK(example.target == task.label_words.at(size_t(example.label)));
        }
      }
      const double observed = double(label_word_answers) / double(task.instruct.size());
      CHECK(std::abs(observed - share) < 0.08);
    }
  }
}

TEST_CASE("a prefix share of the instruct split stays in the task-prefix form, and share 0 changes no instruction", "[text]") {
  for (const std::string& name : data::text_task_names()) {
    INFO("task " << name);
    const data::TextTask plain = data::load_text_task(name, with_instruct(400, 0.25));
    for (double share : {0.0, 0.5}) {
      INFO("prefix_share " << share);
      data::TextOptions options = with_instruct(400, 0.25);
      options.instruct_prefix_share = share;
      const data::TextTask task = data::load_text_task(name, options);
      REQUIRE(task.instruct.size() == plain.instruct.size());
      int64_t prefix_form = 0;
      for (size_t i = 0; i < task.instruct.size(); ++i) {
        const data::TextExample& example = task.instruct[i];
        INFO(example.input << " -> " << example.target);
        if (example.input == data::task_prefix_form(name, example.fields)) {
          ++prefix_form;   // answered as fine-tuning is: the label word (stsb: its score)
          if (name == "stsb") CHECK(std::abs(std::stod(example.target) - example.score) < 0.05 + 1e-9);
          else CHECK(example.target == task.label_words.at(size_t(example.label)));
        } else {
          // an instruction, the same one the build without a prefix share made
          CHECK(example.input == plain.instruct[i].input);
          CHECK(example.target == plain.instruct[i].target);
        }
      }
      CHECK(std::abs(double(prefix_form) / double(task.instruct.size()) - share) < 0.08);
    }
  }
}

TEST_CASE("instruct labels follow the task rules, as the other splits' do", "[text]") {
  data::TextTask cola = data::load_text_task("cola", with_instruct(300, 0.0));
  for (const auto& example : cola.instruct) {
    INFO(example.input << " -> " << example.target);
    CHECK((corpus_set().count(example.fields.front().second) > 0) == (example.target == "yes"));
  }
  data::TextTask rte = data::load_text_task("rte", with_instruct(300, 0.0));
  int64_t not_entailed = 0, not_entailed_subsequence = 0;
  for (const auto& example : rte.instruct) {
    bool subsequence = is_ordered_subsequence(bare_words(example.fields[1].second), bare_words(example.fields[0].second));
    if (example.target == "yes") {
      INFO(example.input);
      CHECK(subsequence);
    } else {
      ++not_entailed;
      not_entailed_subsequence += subsequence;
    }
  }
  CHECK(not_entailed_subsequence * 50 < not_entailed);
}

TEST_CASE("cola and sst2 labels follow their rules", "[text]") {
  for (const auto& example : default_task("cola").train) {
    INFO(example.input);
    bool real_sentence = corpus_set().count(field(example.input, "sentence")) > 0;
    CHECK(real_sentence == (example.target == "acceptable"));
  }
  std::map<std::string, std::string> source_of;
  for (const auto& sentence : data::read_fortune_sentences(data::TextOptions{}.fortunes_dir))
    source_of[sentence.text] = sentence.source;
  const std::set<std::string> technical = {"computers", "linux", "linuxcookie", "debian", "perl", "science"};
  for (const auto& example : default_task("sst2").test) {
    std::string source = source_of.at(field(example.input, "sentence"));
    INFO(example.input << " from " << source);
    CHECK((example.target == "technical") == (technical.count(source) > 0));
  }
}

TEST_CASE("mrpc and qqp labels follow their rules", "[text]") {
  for (const auto& example : default_task("mrpc").train) {
    INFO(example.input);
    std::string first = field(example.input, "sentence1"), second = field(example.input, "sentence2");
    CHECK(first != second);
    std::vector<std::string> kept;   // content words a paraphrase keeps
    for (const std::string& word : data::split_words(first))
      if (data::is_content_word(word)) kept.push_back(data::bare_word(word));
    bool content_kept = is_sub_multiset(kept, bare_words(second));
    bool same_polarity = negation_count(first) == negation_count(second);
    CHECK((content_kept && same_polarity) == (example.target == "equivalent"));
  }
  // The statement inside a question: the wrapper's words removed.
  auto statement = [](const std::string& question) {
    for (const std::string prefix : {"Is it true that ", "Why do people say that ", "Do you agree that ",
                                     "What does it mean that ", "Is it fair to say that "})
      if (question.rfind(prefix, 0) == 0) return question.substr(prefix.size(), question.size() - prefix.size() - 1);
    FAIL("no known wrapper: " << question);
    return std::string();
  };
  double duplicate_overlap = 0, other_overlap = 0;
  for (const auto& example : default_task("qqp").train) {
    INFO(example.input);
    std::string q1 = field(example.input, "question1"), q2 = field(example.input, "question2");
    CHECK(q1.back() == '?');
    CHECK(q2.back() == '?');
    CHECK(q1.substr(0, 12) != q2.substr(0, 12));   // different wrappers
    double overlap = jaccard(expanded_words(statement(q1)), expanded_words(statement(q2)));
    if (example.target == "duplicate") {
      CHECK(overlap >= 0.5);   // at most a typo and a dropped intensifier, in >= 5 words
      duplicate_overlap += overlap;
    } else {
      other_overlap += overlap;
    }
  }
  CHECK(duplicate_overlap / 1000 > other_overlap / 1000 + 0.3);
}

TEST_CASE("stsb scores follow the fraction of kept word positions", "[text]") {
  std::vector<double> scores, kept_fractions;
  std::set<std::string> distinct_targets;
  for (const auto& example : default_task("stsb").train) {
    std::vector<std::string> first = bare_words(field(example.input, "sentence1"));
    std::vector<std::string> second = bare_words(field(example.input, "sentence2"));
    REQUIRE(first.size() == second.size());
    size_t same = 0;
    for (size_t i = 0; i < first.size(); ++i) same += first[i] == second[i];
    double fraction = double(same) / double(first.size());
    // Kept positions always match; a filler can match by chance, so the fraction is at least score / 5.
    CHECK(fraction + 0.051 >= example.score / 5.0);
    if (example.score == 5.0) CHECK(first == second);
    scores.push_back(example.score);
    kept_fractions.push_back(fraction);
    distinct_targets.insert(example.target);
  }
  CHECK(spearman(scores, kept_fractions) > 0.9);
  CHECK(distinct_targets.size() >= 40);   // the scores cover [0, 5]
}

TEST_CASE("mnli and rte labels follow their rules", "[text]") {
  std::map<std::string, int64_t> count, subset_count, subset_same_polarity;
  for (const auto& example : default_task("mnli").train) {
    std::string premise = field(example.input, "premise"), hypothesis = field(example.input, "hypothesis");
    bool subset = is_subset(bare_words(hypothesis), bare_words(premise));
    ++count[example.target];
    subset_count[example.target] += subset;
    subset_same_polarity[example.target] += subset && negation_count(hypothesis) == negation_count(premise);
    if (example.target == "entailment") {
      INFO(example.input);
      CHECK(subset);
    }
  }
  CHECK(subset_count["entailment"] == count["entailment"]);
  CHECK(subset_count["neutral"] * 10 < count["neutral"]);                             // new words: not supported
  CHECK(subset_same_polarity["contradiction"] * 20 < count["contradiction"]);         // polarity flipped

  int64_t not_entailment = 0, not_entailment_subsequence = 0;
  for (const auto& example : default_task("rte").train) {
    std::vector<std::string> premise = bare_words(field(example.input, "sentence1"));
    std::vector<std::string> hypothesis = bare_words(field(example.input, "sentence2"));
    bool subsequence = is_ordered_subsequence(hypothesis, premise);
    if (example.target == "entailment") {
      INFO(example.input);
      CHECK(subsequence);
      CHECK(hypothesis.size() < premise.size());
    } else {
      ++not_entailment;
      not_entailment_subsequence += subsequence;
    }
  }
  CHECK(not_entailment_subsequence * 50 < not_entailment);
}

TEST_CASE("the corpus is clean, de-duplicated and seeded", "[text]") {
  std::vector<std::string> corpus = data::text_corpus(data::TextOptions{});
  CHECK(corpus.size() > 15000);
  std::set<std::string> unique(corpus.begin(), corpus.end());
  CHECK(unique.size() == corpus.size());
  for (const std::string& sentence : corpus) {
    INFO(sentence);
    REQUIRE(std::all_of(sentence.begin(), sentence.end(), [](char c) { return c >= 32 && c < 127; }));
    size_t words = data::split_words(sentence).size();
    REQUIRE(words >= 4);
    REQUIRE(words <= 40);
    REQUIRE(sentence.find("  ") == std::string::npos);
  }
  data::TextOptions other;
  other.seed = 1;
  std::vector<std::string> reordered = data::text_corpus(other);
  CHECK(reordered != corpus);
  CHECK(std::set<std::string>(reordered.begin(), reordered.end()) == unique);
  CHECK(data::text_corpus(data::TextOptions{}) == corpus);
}

TEST_CASE("word edits do what the rules say", "[text]") {
  Generator gen(3);
  CHECK(text_of(data::toggle_negation(words_of("He is happy."))) == "He is not happy.");
  CHECK(text_of(data::toggle_negation(words_of("It is not over."))) == "It is over.");
  CHECK(text_of(data::toggle_negation(words_of("She can't swim."))) == "She can swim.");
  CHECK(text_of(data::toggle_negation(words_of("You can go."))) == "You cannot go.");
  CHECK(text_of(data::toggle_negation(words_of("Don't panic now, they won't."))) == "Don't panic now, they will.");
  CHECK(text_of(data::toggle_negation(words_of("Don't panic."), true)) == "Do panic.");
  CHECK(!data::toggle_negation(words_of("Birds fly south.")));
  CHECK(text_of(data::toggle_contraction(words_of("I do not know."), gen)) == "I don't know.");
  CHECK(text_of(data::toggle_contraction(words_of("It's late."), gen)) == "It is late.");
  CHECK(text_of(data::swap_conjuncts(words_of("I like cats and dogs."), gen)) == "I like dogs and cats.");
  CHECK(text_of(data::drop_intensifier(words_of("It is very cold today."), gen)) == "It is cold today.");
  CHECK(data::join_words(data::end_with_period(words_of("-- don't worry, \"it's"))) == "don't worry, it's.");
  CHECK(data::join_words(data::capitalize_first(words_of("\"yes\" she said"))) == "\"Yes\" she said");
  CHECK(data::join_words(data::lowercase_first(words_of("I am"))) == "I am");
  CHECK(data::join_words(data::lowercase_first(words_of("The end"))) == "the end");
  Words sentence = words_of("The quick brown fox jumps over the lazy dog.");
  for (int draw = 0; draw < 50; ++draw) {
    auto corrupted = data::corrupt_sentence(sentence, gen);
    REQUIRE(corrupted);
    INFO(data::join_words(*corrupted));
    CHECK(*corrupted != sentence);
    CHECK(corrupted->front() == "The");
    CHECK(corrupted->back() == "dog.");
    CHECK(std::abs(int64_t(corrupted->size()) - int64_t(sentence.size())) <= 1);
    auto typo = data::add_typo(sentence, gen);
    REQUIRE(typo);
    CHECK(typo->size() == sentence.size());
    CHECK(*typo != sentence);
  }
}

TEST_CASE("missing Debian text sources are errors that name the package", "[text][errors]") {
  auto empty = std::filesystem::temp_directory_path() / ("linfuse_text_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(empty);
  data::TextOptions no_fortunes;
  no_fortunes.fortunes_dir = empty.string();
  try {
    data::load_text_task("cola", no_fortunes);
    FAIL("no error for a fortunes directory without fortune files");
  } catch (const std::runtime_error& error) {
    CHECK_THAT(error.what(), Catch::Contains(empty.string()) && Catch::Contains("fortunes") &&
                                 Catch::Contains("make setup"));
  }
  CHECK_THROWS_WITH(data::text_corpus(no_fortunes), Catch::Contains("fortunes"));
  data::TextOptions no_words;
  no_words.words_file = (empty / "american-english").string();
  CHECK_THROWS_WITH(data::load_text_task("mrpc", no_words),
                    Catch::Contains("american-english") && Catch::Contains("wamerican"));
  std::filesystem::remove_all(empty);
}

TEST_CASE("unknown text tasks and impossible sizes are rejected with a clear message", "[text][errors]") {
  CHECK_THROWS_WITH(data::load_text_task("wnli", data::TextOptions{}),
                    Catch::Contains("unknown task 'wnli'") && Catch::Contains("cola"));
  data::TextOptions too_many;
  too_many.train = 50000;
  CHECK_THROWS_WITH(data::load_text_task("mnli", too_many), Catch::Contains("request fewer examples"));
  data::TextOptions negative;
  negative.validation = -3;
  CHECK_THROWS_AS(data::load_text_task("cola", negative), std::invalid_argument);
}
