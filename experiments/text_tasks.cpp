// The text suite's assembly: sources, disjoint sentence parts per split, label balance, the corpus.
//
// Splits. Each task has its own generator, Generator(seed).fork(stable_hash("text/" + name)). The sentences
// a task can use (its rule's pool_of) are shuffled once per pool and cut into consecutive parts in
// proportion to the requested train/validation/test/instruct sizes (the last requested part takes the
// rounding's remainder, so that without an instruct split the three others are what they were before it
// existed); a split builds its examples from its own part only (the example's sentence and any partner
// sentence), so no sentence is shared between splits. Labels are a seeded shuffle of i mod classes
// (balanced); example i takes the next sentence of its part that the rule can turn into an example of its
// label. The instruct split's examples are then rewritten as instructions (text_instructions.h).
#include "experiments/text_tasks.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "experiments/stable_hash.h"
#include "experiments/text_instructions.h"
#include "experiments/text_task_rules.h"

namespace linfuse::data {
namespace {

// Parsed Debian sources, cached per path for the process: every task load needs them, they are small
// (~2 MB), and Debian's files do not change while a program runs.
template <class Value>
std::shared_ptr<const Value> cached(const std::string& path, Value (*read)(const std::string&)) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Value>> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(path); it != cache.end()) return it->second;
  }
  auto value = std::make_shared<const Value>(read(path));   // throws for missing files: nothing is cached
  std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(path, value).first->second;
}

const TextRule& find_rule(const std::string& name) {
  for (const TextRule& rule : text_rules())
    if (rule.name == name) return rule;
  std::string known;
  for (const std::string& n : text_task_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("[load_text_task] unknown task '" + name + "'; known: " + known);
}

std::vector<TextExample> build_split(const TextRule& rule, const SplitSentences& part, int64_t count,
                                     const Generator& split_gen, const std::string& split_name) {
  const int64_t classes = std::max<int64_t>(1, int64_t(rule.label_words.size()));
  std::vector<int64_t> order = split_gen.fork(0).permutation(count);
  std::vector<size_t> cursor(part.pools.size(), 0);
  const Generator example_gens = split_gen.fork(1);
  std::vector<TextExample> examples;
  for (int64_t i = 0; i < count; ++i) {
    int64_t label = order[size_t(i)] % classes;
    size_t pool = rule.pool_per_label ? size_t(label) : 0;
    Generator gen = example_gens.fork(uint64_t(i));
    for (;;) {
      const auto& sentences = part.pools[pool];
      if (cursor[pool] >= sentences.size())
        throw std::invalid_argument("[load_text_task] " + rule.name + ": the " + split_name + " split ran out of "
                                    "sentences after " + std::to_string(i) + " of " + std::to_string(count) +
                                    " examples (its part holds " + std::to_string(sentences.size()) +
                                    "); request fewer examples");
      std::optional<TextExample> example = rule.build(label, *sentences[cursor[pool]++], part, gen);
      if (example) {
        examples.push_back(std::move(*example));
        break;
      }
    }
  }
  return examples;
}

}  // namespace

std::string task_prefix_form(const std::string& task, const TextFields& fields) {
  std::string input = task;
  for (const auto& [name, text] : fields) input += " " + name + ": " + text;
  return input;
}

std::vector<std::string> text_task_names() {
  std::vector<std::string> names;
  for (const TextRule& rule : text_rules()) names.push_back(rule.name);
  return names;
}

TextTask load_text_task(const std::string& name, const TextOptions& options) {
  const TextRule& rule = find_rule(name);
  const std::vector<int64_t> counts = {options.train, options.validation, options.test, options.instruct};
  for (int64_t count : counts)
    if (count < 0)
      throw std::invalid_argument("[load_text_task] " + name + ": split sizes must be >= 0, got train " +
                                  std::to_string(options.train) + ", validation " + std::to_string(options.validation) +
                                  ", test " + std::to_string(options.test) + ", instruct " + std::to_string(options.instruct));
  auto sentences = cached(options.fortunes_dir, read_fortune_sentences);
  auto word_list = cached(options.words_file, read_word_list);

  const Generator task_gen = Generator(options.seed).fork(stable_hash("text/" + name));
  const size_t pool_count = rule.pool_per_label ? rule.label_words.size() : 1;
  std::vector<std::vector<const FortuneSentence*>> pools(pool_count);
  for (const FortuneSentence& sentence : *sentences)
    if (int64_t pool = rule.pool_of(sentence); pool >= 0) pools[size_t(pool)].push_back(&sentence);

  const size_t splits = counts.size();
  std::vector<SplitSentences> parts(splits);
  int64_t total = 0;
  size_t last_requested = 2;   // the test split when nothing is requested at all
  for (size_t split = 0; split < splits; ++split) {
    total += counts[split];
    if (counts[split] > 0) last_requested = std::max(last_requested, split);
  }
  for (size_t pool = 0; pool < pool_count; ++pool) {
    std::vector<int64_t> order = task_gen.fork(100 + pool).permutation(int64_t(pools[pool].size()));
    const int64_t available = int64_t(order.size());
    int64_t begin = 0;
    for (size_t split = 0; split < splits; ++split) {
      int64_t size = split == last_requested ? available - begin
                     : split > last_requested ? 0
                                              : (total > 0 ? available * counts[split] / total : 0);
      SplitSentences& part = parts[split];
      part.pools.resize(pool_count);
      part.word_list = word_list.get();
      for (int64_t k = begin; k < begin + size; ++k) part.pools[pool].push_back(pools[pool][size_t(order[size_t(k)])]);
      begin += size;
    }
  }

  TextTask task;
  task.name = rule.name;
  task.metric = rule.metric;
  task.label_words = rule.label_words;
  const char* split_names[] = {"train", "validation", "test", "instruct"};
  std::vector<TextExample>* outputs[] = {&task.train, &task.validation, &task.test, &task.instruct};
  for (size_t split = 0; split < splits; ++split)
    *outputs[split] = build_split(rule, parts[split], counts[split], task_gen.fork(split), split_names[split]);
  // The instruct split in its own surface form, each template drawn by a generator of the example.
  const Generator template_gens = task_gen.fork(200), form_gens = task_gen.fork(201);
  for (size_t i = 0; i < task.instruct.size(); ++i) {
    // A generator of its own decides the form, so that a share of 0 leaves every template draw as it was.
    if (options.instruct_prefix_share > 0.0 && form_gens.fork(uint64_t(i)).next_uniform() < options.instruct_prefix_share)
      continue;   // stays in the prefix form, answered by its label word
    Generator gen = template_gens.fork(uint64_t(i));
    task.instruct[i] = instruction_form(rule.name, task.instruct[i], rule.label_words, options.instruct_label_word_share, gen);
  }
  return task;
}

std::vector<std::string> text_corpus(const TextOptions& options) {
  auto sentences = cached(options.fortunes_dir, read_fortune_sentences);
  std::vector<int64_t> order = Generator(options.seed).fork(stable_hash("text/corpus")).permutation(int64_t(sentences->size()));
  std::vector<std::string> corpus;
  corpus.reserve(order.size());
  for (int64_t index : order) corpus.push_back((*sentences)[size_t(index)].text);
  return corpus;
}

}  // namespace linfuse::data
