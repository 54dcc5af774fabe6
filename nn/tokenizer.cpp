#include "nn/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "nn/atomic_file.h"

namespace linfuse {
namespace {

std::string sentinel_text(int index) { return "<extra_id_" + std::to_string(index) + ">"; }

// Feeds in-memory sentences to SentencePiece's trainer (no temporary corpus file).
class VectorSentenceIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentenceIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return position_ >= sentences_.size(); }
  void Next() override { ++position_; }
  const std::string& value() const override { return sentences_[position_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t position_ = 0;
};

// If `text` at `pos` starts with "<extra_id_N>" (N in [0, 100), no leading zeros), returns N and sets
// `length` to the marker's length; else -1.
int sentinel_at(std::string_view text, size_t pos, size_t& length) {
  static constexpr std::string_view prefix = "<extra_id_";
  if (text.compare(pos, prefix.size(), prefix) != 0) return -1;
  size_t digits = pos + prefix.size(), k = digits;
  while (k < text.size() && k - digits < 3 && text[k] >= '0' && text[k] <= '9') ++k;
  if (k == digits || k >= text.size() || text[k] != '>') return -1;
  if (k - digits > 1 && text[digits] == '0') return -1;
  int index = std::stoi(std::string(text.substr(digits, k - digits)));
  if (index >= Tokenizer::kSentinelCount) return -1;
  length = k + 1 - pos;
  return index;
}

}  // namespace

Tokenizer Tokenizer::from_serialized(std::string model_bytes, const std::string& origin) {
  auto processor = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto status = processor->LoadFromSerializedProto(model_bytes);
  if (!status.ok())
    throw std::runtime_error(origin + ": not a SentencePiece model (" + status.ToString() +
                             "); give the .model file written by SentencePiece's trainer, e.g. T5's spiece.model");
  Tokenizer t;
  t.processor_ = processor;
  t.model_bytes_ = std::move(model_bytes);
  t.origin_ = origin;
  t.piece_count_ = processor->GetPieceSize();
  t.pad_id_ = processor->pad_id();
  t.eos_id_ = processor->eos_id();
  t.unk_id_ = processor->unk_id();

  // Sentinels: the model's own pieces if it has all of them, else appended after the pieces (T5's layout).
  int present = 0;
  std::vector<int64_t> own(kSentinelCount);
  for (int i = 0; i < kSentinelCount; ++i) {
    std::string text = sentinel_text(i);
    int id = processor->PieceToId(text);
    own[size_t(i)] = id;
    if (processor->IdToPiece(id) == text) ++present;
  }
  if (present != 0 && present != kSentinelCount)
    throw std::runtime_error(origin + ": the model has " + std::to_string(present) +
                             " of the 100 sentinel pieces <extra_id_0..99>; T5 models have all or none");
  t.appended_sentinels_ = present ? 0 : kSentinelCount;
  for (int i = 0; i < kSentinelCount; ++i) {
    int64_t id = present ? own[size_t(i)] : t.piece_count_ + kSentinelCount - 1 - i;
    t.sentinel_ids_.push_back(id);
    t.sentinel_index_[id] = i;
  }
  return t;
}

Tokenizer Tokenizer::load(const std::string& model_path) {
  std::ifstream in(model_path, std::ios::binary);
  if (!in) throw std::runtime_error(model_path + ": cannot open the tokenizer model (check the path)");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw std::runtime_error(model_path + ": cannot read the tokenizer model");
  return from_serialized(bytes.str(), model_path);
}

Tokenizer Tokenizer::train_unigram(const std::vector<std::string>& sentences, int64_t vocab_size,
                                   const std::string& model_path, const TokenizerTrainOptions& options) {
  const std::string op = "[Tokenizer::train_unigram] ";
  if (sentences.empty()) throw std::invalid_argument(op + "no training sentences");
  int64_t pieces = vocab_size - kSentinelCount;
  if (pieces < 4)
    throw std::invalid_argument(op + "vocab_size " + std::to_string(vocab_size) + " leaves " + std::to_string(pieces) +
                                " pieces after the 100 sentinels; use at least 104 (pad, eos, unk and one piece)");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(pieces)},
      // T5's special ids; no bos.
      {"pad_id", "0"}, {"eos_id", "1"}, {"unk_id", "2"}, {"bos_id", "-1"},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"normalization_rule_name", options.normalization},
      {"max_sentencepiece_length", std::to_string(options.max_piece_length)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      // Determinism: one thread (the E-step's per-thread partial sums would otherwise tie the result to the
      // thread count), every sentence used, nothing shuffled or sampled.
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", options.verbose ? "0" : "1"},
  };
  VectorSentenceIterator iterator(sentences);
  std::string model_bytes;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model_bytes);
  if (!status.ok()) {
    std::string message = status.ToString();
    std::string fix;
    if (message.find("Vocabulary size") != std::string::npos)
      fix = "; lower vocab_size, give more text, or set hard_vocab_limit = false";
    throw std::runtime_error(op + "SentencePiece could not train on " + std::to_string(sentences.size()) +
                             " sentences with vocab_size " + std::to_string(vocab_size) + ": " + message + fix);
  }
  Tokenizer tokenizer = from_serialized(std::move(model_bytes), model_path);
  tokenizer.save(model_path);
  return tokenizer;
}

void Tokenizer::save(const std::string& model_path) const { write_file_atomic(model_path, model_bytes_); }

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_eos) const {
  std::vector<int64_t> ids;
  std::vector<int> piece_ids;
  auto encode_text = [&](std::string_view segment) {
    if (segment.empty()) return;
    auto status = processor_->Encode(segment, &piece_ids);
    if (!status.ok()) throw std::runtime_error("[Tokenizer::encode] " + origin_ + ": " + status.ToString());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  };
  size_t segment_start = 0;
  for (size_t pos = text.find('<'); pos != std::string_view::npos; pos = text.find('<', pos + 1)) {
    size_t length = 0;
    int index = sentinel_at(text, pos, length);
    if (index < 0) continue;
    encode_text(text.substr(segment_start, pos - segment_start));
    ids.push_back(sentinel_ids_[size_t(index)]);
    segment_start = pos + length;
    pos = segment_start - 1;
  }
  encode_text(text.substr(segment_start));
  if (add_eos) {
    if (eos_id_ < 0)
      throw std::invalid_argument("[Tokenizer::encode] " + origin_ + " has no eos piece; encode with add_eos = false");
    ids.push_back(eos_id_);
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  std::vector<int> run;   // consecutive ordinary ids, decoded together so pieces join correctly
  auto append = [&](const std::string& part) {
    if (part.empty()) return;
    if (!out.empty()) out += ' ';
    out += part;
  };
  auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    auto status = processor_->Decode(run, &text);
    if (!status.ok()) throw std::runtime_error("[Tokenizer::decode] " + origin_ + ": " + status.ToString());
    append(text);
    run.clear();
  };
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw std::invalid_argument("[Tokenizer::decode] id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                  std::to_string(vocab_size()) + ") of " + origin_);
    if (id == eos_id_) break;
    if (id == pad_id_) continue;
    auto sentinel = sentinel_index_.find(id);
    if (sentinel != sentinel_index_.end()) {
      flush();
      append(sentinel_text(sentinel->second));
      continue;
    }
    run.push_back(int(id));
  }
  flush();
  return out;
}

std::string Tokenizer::piece(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument("[Tokenizer::piece] id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(vocab_size()) + ") of " + origin_);
  auto sentinel = sentinel_index_.find(id);
  if (sentinel != sentinel_index_.end()) return sentinel_text(sentinel->second);
  return processor_->IdToPiece(int(id));
}

int64_t Tokenizer::piece_to_id(std::string_view piece) const {
  size_t length = 0;
  int index = sentinel_at(piece, 0, length);
  if (index >= 0 && length == piece.size()) return sentinel_ids_[size_t(index)];
  return processor_->PieceToId(piece);
}

int64_t Tokenizer::sentinel_id(int index) const {
  if (index < 0 || index >= kSentinelCount)
    throw std::invalid_argument("[Tokenizer::sentinel_id] index " + std::to_string(index) +
                                " is outside [0, 100): T5 has sentinels <extra_id_0> .. <extra_id_99>");
  return sentinel_ids_[size_t(index)];
}

bool Tokenizer::is_sentinel(int64_t id) const { return sentinel_index_.count(id) != 0; }

}  // namespace linfuse
