#pragma once
// The text suite: 7 GLUE-shaped text-to-text tasks for a tiny T5 (cola, sst2, mrpc, qqp, stsb, mnli, rte:
// the seven GLUE tasks of the paper's T5 experiments), built by documented deterministic rules from real
// English text that Debian ships (the sentences of the `fortunes` package, the word list of `wamerican`).
// Inputs are T5-style with a task prefix ("cola sentence: ...", "mnli hypothesis: ... premise: ..."),
// targets are label words (or a score like "3.4" for stsb). Same options -> same bytes.
// A fourth split, "instruct", holds the examples of the instruction-tuning mixture (the "Flan" stage): built by
// the same rules from sentences no other split of the task uses, and written in another surface form,
// natural-language instructions answered "yes" / "no" (text_instructions.h), so that a model tuned on it meets
// the task-prefix form first when it is scored zero-shot or fine-tuned.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace linfuse::data {

using TextFields = std::vector<std::pair<std::string, std::string>>;

struct TextExample {
  std::string input;    // the encoder's text, task prefix included
  std::string target;   // the decoder's text: a label word, or the stsb score with one decimal
  int64_t label = -1;   // index into TextTask::label_words; -1 for regression
  double score = 0;     // the regression target (stsb), equal to std::stod(target) in the task-prefix form
  // The texts the input is made of, by field name in input order: {"sentence", s}, or {"question1", q1},
  // {"question2", q2}, ... The task-prefix form is "<task> <name>: <text> <name>: <text>".
  TextFields fields;
};

struct TextTask {
  std::string name;
  std::string metric;                      // "accuracy" or "spearman"
  std::vector<std::string> label_words;    // classification targets, e.g. {"unacceptable", "acceptable"}
  std::vector<TextExample> train, validation, test;
  // The instruction-tuning examples, in the instruction form (empty unless TextOptions::instruct > 0).
  std::vector<TextExample> instruct;
};

struct TextOptions {
  uint64_t seed = 0;
  int64_t train = 2000, validation = 500, test = 500;
  // Examples of the instruct split (0: none; the other splits are then those of a build without it).
  int64_t instruct = 0;
  // The share of instruct examples whose instruction offers the task's own label words as the answers
  // ("... acceptable or unacceptable?"); the others are answered "yes" / "no" ("maybe" for mnli's neutral).
  double instruct_label_word_share = 0.0;
  // The share of instruct examples left in the task-prefix form (the form fine-tuning and evaluation use, on
  // sentences they never see), the rest in the instruction form. Why: a T5 instruction-tuned on instructions alone
  // answers every prefix-form example of a task alike (zero-shot exactly at chance, one label for all), so a
  // task vector must first overcome that answer's margin, and scaled down (task arithmetic) it no longer does;
  // Flan-T5's mixture holds GLUE's own training sets. docs/findings-text.md measures it.
  double instruct_prefix_share = 0.0;
  // Debian's text sources (overridable for tests).
  std::string fortunes_dir = "/usr/share/games/fortunes";          // package fortunes
  std::string words_file = "/usr/share/dict/american-english";     // package wamerican
};

// The task-prefix form of an example's fields: "<task> <name>: <text> <name>: <text> ..." (T5's GLUE format).
std::string task_prefix_form(const std::string& task, const TextFields& fields);

// The task names in their fixed order: cola, sst2, mrpc, qqp, stsb, mnli, rte.
std::vector<std::string> text_task_names();

// Builds one task; splits are label-balanced (counts differ by at most one) and never share a source
// sentence (the instruct split included). Throws std::invalid_argument for an unknown name or impossible sizes, std::runtime_error when
// the Debian text sources are missing (the message names the package to install).
TextTask load_text_task(const std::string& name, const TextOptions& options);

// Every usable fortune sentence, cleaned (ASCII, one line, 4..40 words) and de-duplicated, in a seeded
// order: the text for tokenizer training and span-corruption pretraining.
std::vector<std::string> text_corpus(const TextOptions& options);

}  // namespace linfuse::data
