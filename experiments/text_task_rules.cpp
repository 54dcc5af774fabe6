// The seven text tasks as rules over fortune sentences (s: the example's sentence, t: a partner sentence of
// the same split; word counts are of s). Each rule's comment says exactly how an example is made.
#include "experiments/text_task_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "experiments/text_edits.h"

namespace linfuse::data {
namespace {

size_t pick(Generator& gen, size_t count) { return size_t(gen.next_u64() % count); }
int64_t word_count(const FortuneSentence& s) { return int64_t(split_words(s.text).size()); }
int64_t pool_if(bool usable) { return usable ? 0 : -1; }

// The words of a sentence that hold a letter or digit (drops "--", "...", "&").
Words real_words(const std::string& sentence) {
  Words words;
  for (const std::string& word : split_words(sentence))
    if (!bare_word(word).empty()) words.push_back(word);
  return words;
}

TextExample classified(const std::string& task, TextFields fields, int64_t label, const std::vector<std::string>& label_words) {
  TextExample example;
  example.input = task_prefix_form(task, fields);
  example.fields = std::move(fields);
  example.label = label;
  example.target = label_words[size_t(label)];
  return example;
}

// ---- cola: single-sentence acceptability ------------------------------------------------------------------
// s has 5..30 words. acceptable: "cola sentence: s". unacceptable: s with one corruption of its inner words
// (corrupt_sentence: swap two adjacent words, duplicate a word, drop a function word, or move a word two or
// more places), so first and last words, capitals and final punctuation give nothing away.
const std::vector<std::string> kColaLabels = {"unacceptable", "acceptable"};

std::optional<TextExample> build_cola(int64_t label, const FortuneSentence& s, const SplitSentences&, Generator& gen) {
  if (label == 1) return classified("cola", {{"sentence", s.text}}, 1, kColaLabels);
  auto corrupted = corrupt_sentence(split_words(s.text), gen);
  if (!corrupted) return std::nullopt;
  return classified("cola", {{"sentence", join_words(*corrupted)}}, 0, kColaLabels);
}

// ---- sst2: topic of a sentence (binary, stands in for SST-2's sentiment) ----------------------------------
// s has 4..30 words and comes from a fortune file of one of two topic groups: "technical" (computers, linux,
// linuxcookie, debian, perl, science) or "everyday" (love, food, kids, pets, men-women, people, education,
// sports, work, medicine). Input "sst2 sentence: s", target the group. Sentences of other files are unused.
const std::vector<std::string> kSst2Labels = {"everyday", "technical"};

int64_t sst2_topic(const FortuneSentence& s) {
  static const std::set<std::string> technical = {"computers", "linux", "linuxcookie", "debian", "perl", "science"};
  static const std::set<std::string> everyday = {"love",   "food",      "kids",   "pets", "men-women",
                                                 "people", "education", "sports", "work", "medicine"};
  int64_t words = word_count(s);
  if (words < 4 || words > 30) return -1;
  if (technical.count(s.source)) return 1;
  if (everyday.count(s.source)) return 0;
  return -1;
}

std::optional<TextExample> build_sst2(int64_t label, const FortuneSentence& s, const SplitSentences&, Generator&) {
  return classified("sst2", {{"sentence", s.text}}, label, kSst2Labels);
}

// ---- mrpc: paraphrase of a sentence pair ---------------------------------------------------------------------
// s has 6..18 words. Both labels paraphrase with one or two meaning-preserving edits drawn among
// those that apply (toggle a contraction "do not" <-> "don't", drop an intensifier "very", swap "X and Y",
// and, always applicable, a discourse prefix "In fact,"). equivalent: sentence2 is that paraphrase.
// not_equivalent: the meaning of s is changed first, by a content word replaced by a random wamerican word
// (p = 0.6) or the negation of its first auxiliary flipped (p = 0.4; either falls back to the other), and
// the result is paraphrased the same way. Input "mrpc sentence1: s sentence2: s2".
const std::vector<std::string> kMrpcLabels = {"not_equivalent", "equivalent"};

Words paraphrase(const Words& words, Generator& gen) {
  Words out = words;
  bool prefixed = false;
  int64_t edits = 1 + int64_t(pick(gen, 2));
  for (int64_t e = 0; e < edits; ++e) {
    std::vector<Words> applicable;
    for (auto& option : {toggle_contraction(out, gen), drop_intensifier(out, gen), swap_conjuncts(out, gen)})
      if (option) applicable.push_back(*option);
    if (!prefixed && (applicable.empty() || gen.next_uniform() < 0.25)) {
      out = add_discourse_prefix(out, gen);
      prefixed = true;
    } else if (!applicable.empty()) {
      out = applicable[pick(gen, applicable.size())];
    }
  }
  if (out == words) out = add_discourse_prefix(out, gen);
  return out;
}

std::optional<TextExample> build_mrpc(int64_t label, const FortuneSentence& s, const SplitSentences& split,
                                      Generator& gen) {
  Words second = split_words(s.text);
  if (label == 0) {
    const std::string& replacement = split.random_word(gen);
    auto replaced = replace_content_word(second, replacement, gen);
    auto negated = toggle_negation(second);
    bool prefer_replacement = gen.next_uniform() < 0.6;
    if (replaced && (prefer_replacement || !negated)) second = *replaced;
    else if (negated) second = *negated;
    else return std::nullopt;
  }
  second = paraphrase(second, gen);
  return classified("mrpc", {{"sentence1", s.text}, {"sentence2", join_words(second)}}, label, kMrpcLabels);
}

// ---- qqp: duplicate questions ----------------------------------------------------------------------------------
// s has 5..14 words. A statement becomes a question by a wrapper: "Is it true that {}?", "Why do people say
// that {}?", "Do you agree that {}?", "What does it mean that {}?" or "Is it fair to say that {}?", with the
// statement's first letter lowercased and its final punctuation removed. question1 wraps s. duplicate:
// question2 wraps a noisy copy of s with a different wrapper. not_duplicate: question2 wraps a noisy copy of
// t, the sentence of 30 random candidates of the split sharing the most words with s (a hard negative).
// Noise (both labels alike): a letter-swap typo (p = 0.5), a contraction toggled (p = 0.3), an intensifier
// dropped (p = 0.3), everything lowercased (p = 0.2). Input "qqp question1: q1 question2: q2".
const std::vector<std::string> kQqpLabels = {"not_duplicate", "duplicate"};
const std::vector<std::string> kQuestionWrappers = {"Is it true that {}?", "Why do people say that {}?",
                                                    "Do you agree that {}?", "What does it mean that {}?",
                                                    "Is it fair to say that {}?"};

std::string as_question(const Words& words, size_t wrapper) {
  std::string text = kQuestionWrappers[wrapper];
  text.replace(text.find("{}"), 2, join_words(lowercase_first(strip_final_punctuation(words))));
  return text;
}

Words noisy_copy(Words words, Generator& gen) {
  if (gen.next_uniform() < 0.5)
    if (auto typo = add_typo(words, gen)) words = *typo;
  if (gen.next_uniform() < 0.3)
    if (auto toggled = toggle_contraction(words, gen)) words = *toggled;
  if (gen.next_uniform() < 0.3)
    if (auto dropped = drop_intensifier(words, gen)) words = *dropped;
  if (gen.next_uniform() < 0.2)
    for (std::string& word : words)
      for (char& c : word) c = char(std::tolower((unsigned char)c));
  return words;
}

std::set<std::string> bare_words(const std::string& sentence) {
  std::set<std::string> set;
  for (const std::string& word : split_words(sentence)) set.insert(bare_word(word));
  return set;
}

std::optional<TextExample> build_qqp(int64_t label, const FortuneSentence& s, const SplitSentences& split,
                                     Generator& gen) {
  size_t first_wrapper = pick(gen, kQuestionWrappers.size());
  size_t second_wrapper = (first_wrapper + 1 + pick(gen, kQuestionWrappers.size() - 1)) % kQuestionWrappers.size();
  std::string second_source = s.text;
  if (label == 0) {
    std::set<std::string> mine = bare_words(s.text);
    double best_overlap = -1;
    for (int candidate = 0; candidate < 30; ++candidate) {
      const FortuneSentence& t = split.partner(gen, &s);
      std::set<std::string> theirs = bare_words(t.text);
      size_t shared = 0;
      for (const std::string& word : theirs) shared += mine.count(word);
      double overlap = double(shared) / double(mine.size() + theirs.size() - shared);
      if (overlap > best_overlap) best_overlap = overlap, second_source = t.text;
    }
  }
  std::string q1 = as_question(split_words(s.text), first_wrapper);
  std::string q2 = as_question(noisy_copy(split_words(second_source), gen), second_wrapper);
  return classified("qqp", {{"question1", q1}, {"question2", q2}}, label, kQqpLabels);
}

// ---- stsb: similarity score in [0, 5] -----------------------------------------------------------------------
// s has 5..18 words; its n words with a letter or digit (not "--") are aligned by position. Draw k uniformly
// in 0..n and keep k random word positions of s; every other
// position gets the next word (lowercased, punctuation stripped) of a partner sentence t, cycling through t.
// The result is capitalized and ends with ".". score = 5 k / n rounded to one decimal; the target is the
// score with one decimal ("3.4"). Input "stsb sentence1: s sentence2: s2".
std::optional<TextExample> build_stsb(int64_t, const FortuneSentence& s, const SplitSentences& split, Generator& gen) {
  Words words = real_words(s.text);
  const FortuneSentence& t = split.partner(gen, &s);
  Words fillers;
  for (const std::string& word : split_words(t.text))
    if (std::string bare = bare_word(word); !bare.empty()) fillers.push_back(bare);
  if (fillers.empty()) return std::nullopt;
  const int64_t n = int64_t(words.size()), kept = int64_t(pick(gen, size_t(n + 1)));
  std::vector<int64_t> order = gen.permutation(n);
  std::vector<bool> keep(size_t(n), false);
  for (int64_t i = 0; i < kept; ++i) keep[size_t(order[size_t(i)])] = true;
  Words second;
  size_t next_filler = 0;
  for (int64_t i = 0; i < n; ++i)
    second.push_back(keep[size_t(i)] ? words[size_t(i)] : fillers[next_filler++ % fillers.size()]);
  second = capitalize_first(end_with_period(second));

  char target[16];
  std::snprintf(target, sizeof target, "%.1f", std::round(50.0 * double(kept) / double(n)) / 10.0);
  TextExample example;
  example.fields = {{"sentence1", s.text}, {"sentence2", join_words(second)}};
  example.input = task_prefix_form("stsb", example.fields);
  example.target = target;
  example.score = std::stod(example.target);
  return example;
}

// ---- mnli: three-way entailment -----------------------------------------------------------------------------
// s has 5..20 words and a negatable auxiliary (is/are/was/were/can/will/would/could/should/do/does/did/
// must/may/might or a negative form: isn't, can't, cannot, don't, ...) at word a, 1 <= a <= n-2. A span of
// s is cut around it: from 1..3 words before a to 2..7 words after it (at least one word on each side).
// entailment: the span. contradiction: the span with the auxiliary's negation flipped ("is" -> "is not",
// "can't" -> "can"). neutral: the span's words up to the auxiliary (and a following "not") continued by
// 2..5 words of a partner sentence t, i.e. the premise's subject with a predicate it does not support.
// Hypotheses are capitalized and end with ".". Input "mnli hypothesis: h premise: s".
const std::vector<std::string> kMnliLabels = {"entailment", "neutral", "contradiction"};

int64_t mnli_pool(const FortuneSentence& s) {
  Words words = split_words(s.text);
  int64_t a = negatable_index(words);
  return pool_if(words.size() >= 5 && words.size() <= 20 && a >= 1 && a <= int64_t(words.size()) - 2);
}

std::optional<TextExample> build_mnli(int64_t label, const FortuneSentence& s, const SplitSentences& split,
                                      Generator& gen) {
  Words words = split_words(s.text);
  const int64_t n = int64_t(words.size()), a = negatable_index(words);
  int64_t first = std::max<int64_t>(0, a - 1 - int64_t(pick(gen, 3)));
  int64_t last = std::min<int64_t>(n, a + 2 + int64_t(pick(gen, 6)));   // one past the end
  Words span(words.begin() + first, words.begin() + last);
  Words hypothesis;
  if (label == 0) {
    hypothesis = span;
  } else if (label == 2) {
    auto negated = toggle_negation(span);
    if (!negated) return std::nullopt;
    hypothesis = *negated;
  } else {
    int64_t subject_end = a + 1 + (a + 1 < n && bare_word(words[size_t(a + 1)]) == "not" ? 1 : 0);
    hypothesis.assign(words.begin() + first, words.begin() + subject_end);
    Words tail;
    for (const std::string& word : split_words(split.partner(gen, &s).text))
      if (std::string bare = bare_word(word); !bare.empty()) tail.push_back(bare);
    if (tail.size() < 2) return std::nullopt;
    size_t length = std::min<size_t>(tail.size(), 2 + pick(gen, 4));
    size_t start = pick(gen, tail.size() - length + 1);
    hypothesis.insert(hypothesis.end(), tail.begin() + long(start), tail.begin() + long(start + length));
  }
  hypothesis = capitalize_first(end_with_period(hypothesis));
  return classified("mnli", {{"hypothesis", join_words(hypothesis)}, {"premise", s.text}}, label, kMnliLabels);
}

// ---- rte: two-way entailment ----------------------------------------------------------------------------------
// s has 6..20 words. A reduced copy of s's words with a letter or digit keeps each with p = 0.7 (negations
// "not", "no", "never", "n't" forms, "nothing", "nobody", "none", "without", "cannot" are always kept),
// drops at least one and keeps at least four. entailment: the reduced copy. not_entailment: the reduced
// copy with two of its content words swapped (p = 0.5) or one replaced by a random wamerican word (either
// falls back to the other).
// Hypotheses are capitalized and end with ".". Input "rte sentence1: s sentence2: h".
const std::vector<std::string> kRteLabels = {"entailment", "not_entailment"};

std::optional<TextExample> build_rte(int64_t label, const FortuneSentence& s, const SplitSentences& split,
                                     Generator& gen) {
  Words words = real_words(s.text), reduced;
  for (int attempt = 0; attempt < 8; ++attempt) {
    reduced.clear();
    for (const std::string& word : words)
      if (is_negation(word) || gen.next_uniform() < 0.7) reduced.push_back(word);
    if (reduced.size() >= 4 && reduced.size() < words.size()) break;
  }
  if (reduced.size() < 4 || reduced.size() == words.size()) return std::nullopt;
  if (label == 1) {
    auto swapped = swap_content_words(reduced, gen);
    auto replaced = replace_content_word(reduced, split.random_word(gen), gen);
    bool prefer_swap = gen.next_uniform() < 0.5;
    if (swapped && (prefer_swap || !replaced)) reduced = *swapped;
    else if (replaced) reduced = *replaced;
    else return std::nullopt;
  }
  Words hypothesis = capitalize_first(end_with_period(reduced));
  return classified("rte", {{"sentence1", s.text}, {"sentence2", join_words(hypothesis)}}, label, kRteLabels);
}

}  // namespace

const FortuneSentence& SplitSentences::partner(Generator& gen, const FortuneSentence* not_this) const {
  const auto& pool = pools[0];
  for (;;) {
    const FortuneSentence* candidate = pool[pick(gen, pool.size())];
    if (candidate != not_this || pool.size() == 1) return *candidate;
  }
}

const std::string& SplitSentences::random_word(Generator& gen) const { return (*word_list)[pick(gen, word_list->size())]; }

const std::vector<TextRule>& text_rules() {
  static const std::vector<TextRule> rules = {
      {"cola", "accuracy", kColaLabels,
       [](const FortuneSentence& s) { return pool_if(word_count(s) >= 5 && word_count(s) <= 30); }, false, build_cola},
      {"sst2", "accuracy", kSst2Labels, sst2_topic, true, build_sst2},
      {"mrpc", "accuracy", kMrpcLabels,
       [](const FortuneSentence& s) { return pool_if(word_count(s) >= 6 && word_count(s) <= 18); }, false, build_mrpc},
      {"qqp", "accuracy", kQqpLabels,
       [](const FortuneSentence& s) { return pool_if(word_count(s) >= 5 && word_count(s) <= 14); }, false, build_qqp},
      {"stsb", "spearman", {},
       [](const FortuneSentence& s) { return pool_if(word_count(s) >= 5 && word_count(s) <= 18); }, false, build_stsb},
      {"mnli", "accuracy", kMnliLabels, mnli_pool, false, build_mnli},
      {"rte", "accuracy", kRteLabels,
       [](const FortuneSentence& s) { return pool_if(word_count(s) >= 6 && word_count(s) <= 20); }, false, build_rte},
  };
  return rules;
}

}  // namespace linfuse::data
