// Stage "text/pretrain": the tokenizer and the span-corruption pretraining of the tiny T5 (TextSuite::pretrain).
//
// Corpus: every cleaned fortune sentence (data::text_corpus, ~20k sentences). As T5 packs C4 text into
// fixed-length inputs, the sentences' tokens are concatenated in the corpus order and cut into sequences of
// pretrain.sequence_tokens tokens; every step corrupts a batch of them afresh (new spans each time the
// sequence comes round, as T5's on-the-fly preprocessing). The corpus holds the sentences the text tasks
// are built from, as C4 holds text like GLUE's: unlabelled text only, never a label.
//
// Copy-across pairs (pretrain.pair_fraction > 0, sentence_pair_corruption.h): that share of each batch is
// instead a corpus sentence followed by an edited copy of it (or, for pair_unrelated_fraction of them, by
// another sentence), span-corrupted together, which teaches the comparison of two sentences the pair tasks
// need. pair_fraction 0 gives plain span corruption, bit for bit as before the pairs existed.
//
// Folder: spiece.model (the tokenizer), config.json + model.safetensors (Hugging Face's T5 layout),
// pretrain_metrics.json; the stage cache's own stage.json and DONE sit beside them.
#include <cmath>

#include "autodiff/functional.h"
#include "autodiff/tape.h"
#include "experiments/sentence_pair_corruption.h"
#include "experiments/span_corruption.h"
#include "experiments/text_task_rules.h"
#include "experiments/text_suite.h"
#include "nn/optim.h"
#include "nn/progress.h"
#include "nn/safetensors.h"

namespace linfuse::experiments {

nlohmann::json TextSuite::pretrain_key() const {
  return {{"seed", seed_}, {"model", config_["model"]}, {"tokenizer_vocab", config_["tokenizer_vocab"]},
          {"tokenizer_sentences", config_.value("tokenizer_sentences", int64_t(0))}, {"pretrain", config_["pretrain"]}};
}

namespace {

// The model config of the preset's "model" section (Hugging Face T5Config keys) with the tokenizer's size.
nn::T5Config model_config_from(const nlohmann::json& section, int64_t vocab_size) {
  nlohmann::json j = section;
  j["vocab_size"] = vocab_size;
  return nn::T5Config::from_json(j.dump());
}

// The corpus's tokens (no eos) cut into sequences of `length` tokens (the last partial one dropped).
std::vector<std::vector<int64_t>> packed_sequences(const std::vector<std::string>& corpus, const Tokenizer& tokenizer, int64_t length) {
  std::vector<std::vector<int64_t>> out;
  std::vector<int64_t> current;
  for (const auto& sentence : corpus)
    for (int64_t id : tokenizer.encode(sentence, false)) {
      current.push_back(id);
      if (int64_t(current.size()) == length) out.push_back(std::exchange(current, {}));
    }
  return out;
}

// The tokenizer's training text: the corpus plus the tasks' vocabulary (task names, label words, the STS-B
// scores), each line repeated, so that answers are a few whole pieces. T5's vocabulary, built on C4, holds
// these words; the fortunes alone do not ("not_entailment" would hold an <unk>, digits split from their
// word-start marker). The pretraining text stays the corpus alone.
// `sentences` > 0 keeps an evenly spaced subset of that many corpus sentences (SentencePiece's training time
// grows with the corpus; a few thousand sentences already give the frequent pieces).
std::vector<std::string> tokenizer_corpus(const std::vector<std::string>& corpus, int64_t sentences) {
  std::vector<std::string> lines;
  if (sentences <= 0 || sentences >= int64_t(corpus.size())) {
    lines = corpus;
  } else {
    for (int64_t i = 0; i < sentences; ++i) lines.push_back(corpus[size_t(i * int64_t(corpus.size()) / sentences)]);
  }
  std::vector<std::string> vocabulary;
  for (const data::TextRule& rule : data::text_rules()) {
    std::string line = rule.name;
    for (const auto& word : rule.label_words) line += " " + word;
    vocabulary.push_back(line);
  }
  std::string scores;
  for (int k = 0; k <= 50; ++k) {
    if (k) scores += ' ';
    scores += std::to_string(k / 10);  // appended piece by piece: GCC 12 warns falsely on "lit" + std::string&&
    scores += '.';
    scores += std::to_string(k % 10);
  }
  vocabulary.push_back(scores);
  for (int repeat = 0; repeat < 20; ++repeat) lines.insert(lines.end(), vocabulary.begin(), vocabulary.end());
  return lines;
}

}  // namespace

void TextSuite::pretrain(nlohmann::json& results) {
  StageTimer timer(ctx_, "text/pretrain");
  nlohmann::json key = pretrain_key();
  auto dir = ctx_.cache.folder("text/pretrain", key);
  const auto& p = config_["pretrain"];
  if (ctx_.cache.done("text/pretrain", key)) {
    tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::load((dir / "spiece.model").string()));
    model_config_ = nn::T5Config::load((dir / "config.json").string());
    pretrained_ = load_safetensors((dir / "model.safetensors").string());
    results["pretrain"] = read_json(dir / "pretrain_metrics.json");
    results["pretrain"].erase("seconds");   // times belong to manifest.json, not to results.json
    ctx_.log("text: pretrained T5 loaded from " + dir.string());
    return;
  }
  auto start = std::chrono::steady_clock::now();
  data::TextOptions corpus_options = text_options();
  std::vector<std::string> corpus = data::text_corpus(corpus_options);
  TokenizerTrainOptions tokenizer_options;
  tokenizer_options.hard_vocab_limit = false;   // a small corpus may not fill the requested size
  tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::train_unigram(
      tokenizer_corpus(corpus, config_.value("tokenizer_sentences", int64_t(0))), config_["tokenizer_vocab"].get<int64_t>(), (dir / "spiece.model").string(), tokenizer_options));
  model_config_ = model_config_from(config_["model"], tokenizer_->vocab_size());
  auto elapsed = [&] { return std::to_string(int(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count())) + " s"; };
  ctx_.log("text: corpus of " + std::to_string(corpus.size()) + " sentences and tokenizer ready after " + elapsed());

  const int64_t length = p.value("sequence_tokens", int64_t(48));
  std::vector<std::vector<int64_t>> sequences = packed_sequences(corpus, *tokenizer_, length);
  if (sequences.empty())
    throw std::runtime_error("[text pretrain] the corpus gives no sequence of " + std::to_string(length) +
                             " tokens; lower text.pretrain.sequence_tokens");
  ctx_.log("text: " + std::to_string(sequences.size()) + " pretraining sequences ready after " + elapsed());
  // Copy-across pairs: sentences short enough that a sentence and its copy fit about one sequence.
  const double pair_fraction = p.value("pair_fraction", 0.0);
  data::SentencePairOptions pair_options;
  pair_options.unrelated_fraction = p.value("pair_unrelated_fraction", pair_options.unrelated_fraction);
  pair_options.max_edits = p.value("pair_max_edits", pair_options.max_edits);
  std::vector<std::string> pair_sentences, word_list;
  if (pair_fraction > 0) {
    for (const auto& sentence : corpus) {
      const int64_t tokens = int64_t(tokenizer_->encode(sentence, false).size());
      if (tokens >= 4 && tokens <= length / 2) pair_sentences.push_back(sentence);
    }
    if (pair_sentences.size() < 2)
      throw std::runtime_error("[text pretrain] no corpus sentence of 4.." + std::to_string(length / 2) +
                               " tokens for copy-across pairs; raise text.pretrain.sequence_tokens or set pair_fraction 0");
    word_list = data::read_word_list(corpus_options.words_file);
    ctx_.log("text: " + std::to_string(pair_sentences.size()) + " sentences for copy-across pairs (" +
             std::to_string(int(100 * pair_fraction)) + "% of each batch)");
  }
  SpanCorruptionOptions corruption;
  corruption.noise_density = p.value("noise_density", corruption.noise_density);
  corruption.mean_span_length = p.value("mean_span_length", corruption.mean_span_length);

  Generator init(seed_ + 101);
  nn::T5ForConditionalGeneration model(model_config_, init);
  const int64_t steps = p["steps"].get<int64_t>(), batch = p["batch_size"].get<int64_t>();
  const double lr = p["learning_rate"].get<double>();
  std::vector<Tensor> params;
  for (auto& e : model.named_parameters()) params.push_back(*e.tensor);
  nn::AdamW optimizer(params, lr, p.value("weight_decay", 0.01));
  const int64_t warmup = int64_t(p.value("warmup_fraction", 0.05) * double(steps));
  Generator order_gen(seed_ * 7919 + 5), noise_gen(seed_ * 104729 + 9), pair_gen(seed_ * 15485863 + 13);
  std::vector<int64_t> order;
  int64_t packed_taken = 0;   // packed sequences used so far (the order ignores the pairs)
  auto sentinel = [this](int i) { return tokenizer_->sentinel_id(i); };
  nn::Progress progress("text: pretraining T5 (span corruption)", steps);
  std::vector<double> losses;
  model.train(true);
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<SpanCorruptionPair> pairs;
    for (int64_t b = 0; b < batch; ++b) {
      if (pair_fraction > 0 && pair_gen.next_uniform() < pair_fraction) {
        const std::string& first = pair_sentences[size_t(pair_gen.next_u64() % pair_sentences.size())];
        const std::string& other = pair_sentences[size_t(pair_gen.next_u64() % pair_sentences.size())];
        std::vector<int64_t> tokens = tokenizer_->encode(first, false);
        for (int64_t id : tokenizer_->encode(data::sentence_pair_second(first, other, word_list, pair_options, pair_gen), false))
          tokens.push_back(id);
        pairs.push_back(span_corrupt(tokens, corruption, sentinel, tokenizer_->eos_id(), noise_gen));
        continue;
      }
      int64_t pos = packed_taken++ % int64_t(sequences.size());
      if (pos == 0 || order.empty()) order = order_gen.permutation(int64_t(sequences.size()));
      pairs.push_back(span_corrupt(sequences[size_t(order[size_t(pos)])], corruption, sentinel, tokenizer_->eos_id(), noise_gen));
    }
    std::vector<const std::vector<int64_t>*> inputs, targets;
    for (const auto& pair : pairs) inputs.push_back(&pair.input), targets.push_back(&pair.target);
    TokenBatch x = pad_batch(inputs, tokenizer_->pad_id()), y = pad_batch(targets, tokenizer_->pad_id());
    optimizer.set_lr(nn::warmup_cosine_lr(step, warmup, steps, lr));
    optimizer.zero_grad();
    Tensor loss = teacher_forced_loss(t5_logits(model), x, y, model_config_.decoder_start_token_id);
    const double loss_value = loss.item();
    if (!std::isfinite(loss_value))
      throw std::runtime_error("text pretraining diverged (loss " + std::to_string(loss_value) + " at step " +
                               std::to_string(step) + "): lower text.pretrain.learning_rate");
    losses.push_back(loss_value);
    backward(loss);
    nn::clip_grad_norm(params, 1.0);
    optimizer.step();
    progress.update(step + 1, loss_value);
  }
  progress.finish();
  model.eval();
  model_config_.save((dir / "config.json").string());
  save_safetensors((dir / "model.safetensors").string(), model.state_dict());
  pretrained_ = load_safetensors((dir / "model.safetensors").string());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double first_loss = losses.empty() ? 0.0 : losses.front(), recent = final_loss_of(losses);
  nlohmann::json metrics = {{"steps", steps}, {"first_loss", first_loss}, {"final_loss", recent}, {"seconds", seconds},
                            {"sequences", sequences.size()}, {"sequence_tokens", length}, {"vocab_size", tokenizer_->vocab_size()},
                            {"parameters", model.num_parameters()}};
  write_json(dir / "pretrain_metrics.json", metrics);
  results["pretrain"] = metrics;
  results["pretrain"].erase("seconds");   // times belong to manifest.json, not to results.json
  ctx_.cache.mark_done("text/pretrain", key);
  ctx_.log("text: pretrained T5 (" + std::to_string(model.num_parameters()) + " parameters, vocab " +
           std::to_string(tokenizer_->vocab_size()) + ") for " + std::to_string(steps) + " steps on " +
           std::to_string(sequences.size()) + " sequences, span-corruption loss " + std::to_string(first_loss).substr(0, 5) +
           " -> " + std::to_string(recent).substr(0, 5) + " (" + std::to_string(int(seconds)) + " s)");
}

}  // namespace linfuse::experiments
