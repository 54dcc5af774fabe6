#pragma once
// Tokenizer: a SentencePiece model with T5's conventions, for the tiny T5 and its text tasks.
//
// Id layout (T5's, as Hugging Face's T5Tokenizer presents a spiece.model):
//   0 <pad>, 1 </s> (eos), 2 <unk>, then the SentencePiece pieces, then 100 sentinel tokens appended
//   *after* the model's pieces in reverse order: <extra_id_0> is the last id (vocab_size() - 1),
//   <extra_id_99> is vocab_size() - 100. The sentinels are not stored in the .model file (T5's
//   spiece.model has 32000 pieces; its tokenizer has 32100 ids). A .model that already contains
//   "<extra_id_0>".."<extra_id_99>" as pieces uses those ids instead and appends nothing.
//
// Text containing "<extra_id_N>" (0 <= N < 100) encodes the marker as its sentinel id, so span-corruption
// targets can be written as text; decode() writes sentinels back as "<extra_id_N>" separated by spaces.
// Ids are int64 (what linfuse's token tensors hold).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace linfuse {

struct TokenizerTrainOptions {
  // Fraction of the corpus's characters the vocabulary must cover; rarer characters become <unk>.
  // 1.0 suits small English corpora; SentencePiece recommends 0.9995 for large multilingual ones.
  double character_coverage = 1.0;
  // SentencePiece normalization rule; T5 used "nmt_nfkc".
  std::string normalization = "nmt_nfkc";
  int max_piece_length = 16;
  // true: a corpus too small to fill vocab_size is an error. false: the vocabulary comes out smaller.
  bool hard_vocab_limit = true;
  // SentencePiece's progress log on stderr (a process-wide SentencePiece setting).
  bool verbose = false;
};

class Tokenizer {
 public:
  static constexpr int kSentinelCount = 100;

  // Trains a unigram SentencePiece model on `sentences` (one training sentence each) with T5's special
  // ids, writes it atomically to `model_path` (e.g. "<checkpoint dir>/spiece.model") and returns it.
  // `vocab_size` counts every id, the 100 sentinels included, so it is the embedding size the model needs;
  // the .model file holds vocab_size - 100 pieces. Deterministic: the same sentences and options give the
  // same bytes (training runs on one thread; SentencePiece's unigram trainer has no other randomness when
  // it keeps every sentence, which it does here).
  static Tokenizer train_unigram(const std::vector<std::string>& sentences, int64_t vocab_size,
                                 const std::string& model_path, const TokenizerTrainOptions& options = {});

  // Loads any SentencePiece .model file (e.g. a T5 spiece.model); throws naming the file if it cannot.
  static Tokenizer load(const std::string& model_path);
  // Loads the bytes of a .model file; `origin` names it in errors.
  static Tokenizer from_serialized(std::string model_bytes, const std::string& origin);

  // Writes the model (the .model bytes) atomically to `model_path`.
  void save(const std::string& model_path) const;

  std::vector<int64_t> encode(std::string_view text, bool add_eos = true) const;
  // Stops at the first eos, skips pad, writes sentinels as "<extra_id_N>"; throws on ids out of range.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const { return piece_count_ + appended_sentinels_; }
  std::string piece(int64_t id) const;     // "▁the", "</s>", "<extra_id_0>"
  int64_t piece_to_id(std::string_view piece) const;   // unk_id() for unknown pieces
  int64_t sentinel_id(int index) const;    // index in [0, 100)
  bool is_sentinel(int64_t id) const;
  // The model's special ids; -1 if the model has none (pad and eos exist in T5 models and in trained ones).
  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }

  const std::string& serialized_model() const { return model_bytes_; }
  const std::string& origin() const { return origin_; }

 private:
  Tokenizer() = default;

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> processor_;   // const methods are thread-safe
  std::string model_bytes_;
  std::string origin_;
  int64_t piece_count_ = 0;          // pieces in the .model
  int64_t appended_sentinels_ = 0;   // 100, or 0 if the model already has them as pieces
  std::vector<int64_t> sentinel_ids_;                  // [i] = id of <extra_id_i>
  std::unordered_map<int64_t, int> sentinel_index_;    // id -> i
  int64_t pad_id_ = -1, eos_id_ = -1, unk_id_ = -1;
};

}  // namespace linfuse
