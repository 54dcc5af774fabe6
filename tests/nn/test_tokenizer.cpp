// Tokenizer: SentencePiece unigram training with T5's id layout, encode/decode, sentinels, determinism,
// and a model written by SentencePiece's own command-line trainer with T5's settings.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "io_test_helpers.h"
#include "nn/tokenizer.h"

using namespace linfuse;
using namespace linfuse::testing;

namespace {

// tests/fixtures/tokenizer_corpus.txt: ~200 English sentences written for these tests (in the repository,
// so the tests need no system package).
std::vector<std::string> corpus() {
  std::ifstream in(source_path("tests/fixtures/tokenizer_corpus.txt"));
  std::vector<std::string> sentences;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) sentences.push_back(line);
  return sentences;
}

constexpr int64_t kVocab = 600;   // 500 pieces + 100 sentinels

// One trained tokenizer shared by the tests that only read it (training takes a fraction of a second).
const Tokenizer& trained() {
  static ScratchDir dir("tokenizer_shared");
  static Tokenizer tokenizer = Tokenizer::train_unigram(corpus(), kVocab, dir.file("spiece.model"));
  return tokenizer;
}

}  // namespace

TEST_CASE("trained tokenizer has T5's special ids and sentinels at the top of the vocabulary", "[tokenizer]") {
  const Tokenizer& t = trained();
  CHECK(t.vocab_size() == kVocab);
  CHECK(t.pad_id() == 0);
  CHECK(t.eos_id() == 1);
  CHECK(t.unk_id() == 2);
  CHECK(t.piece(0) == "<pad>");
  CHECK(t.piece(1) == "</s>");
  CHECK(t.piece(2) == "<unk>");
  CHECK(t.sentinel_id(0) == kVocab - 1);    // <extra_id_0> is the last id, as in T5
  CHECK(t.sentinel_id(99) == kVocab - 100);
  CHECK(t.piece(kVocab - 1) == "<extra_id_0>");
  CHECK(t.piece(kVocab - 100) == "<extra_id_99>");
  CHECK(t.piece_to_id("<extra_id_5>") == t.sentinel_id(5));
  CHECK(t.is_sentinel(kVocab - 100));
  CHECK_FALSE(t.is_sentinel(kVocab - 101));
  CHECK_FALSE(t.piece(kVocab - 101).empty());   // the last ordinary piece
  CHECK(t.piece_to_id("<s>") == t.unk_id());     // no bos, like T5
  CHECK_THROWS_WITH(t.sentinel_id(100), Catch::Contains("outside [0, 100)"));
  CHECK_THROWS_WITH(t.piece(kVocab), Catch::Contains("outside the vocabulary [0, 600)"));
}

TEST_CASE("encode then decode gives back every training sentence", "[tokenizer]") {
  const Tokenizer& t = trained();
  size_t total_ids = 0, total_bytes = 0;
  for (const std::string& sentence : corpus()) {
    total_bytes += sentence.size();
    std::vector<int64_t> ids = t.encode(sentence);
    REQUIRE(!ids.empty());
    CHECK(ids.back() == t.eos_id());
    CHECK(t.decode(ids) == sentence);
    std::vector<int64_t> without_eos = t.encode(sentence, false);
    CHECK(without_eos.size() + 1 == ids.size());
    total_ids += without_eos.size();
    for (int64_t id : without_eos) CHECK((id > t.unk_id() && id < kVocab - 100));   // no special, no sentinel
  }
  // The vocabulary compresses: fewer ids than characters on average.
  CHECK(total_ids < total_bytes / 2);
}

TEST_CASE("decode stops at eos, skips pad and rejects ids out of range", "[tokenizer]") {
  const Tokenizer& t = trained();
  std::vector<int64_t> ids = t.encode("The cat slept on the warm stones.", false);
  std::vector<int64_t> padded = {t.pad_id()};
  padded.insert(padded.end(), ids.begin(), ids.end());
  padded.push_back(t.eos_id());
  std::vector<int64_t> after = t.encode("Ignored after eos.", false);
  padded.insert(padded.end(), after.begin(), after.end());
  padded.push_back(t.pad_id());
  CHECK(t.decode(padded) == "The cat slept on the warm stones.");
  CHECK(t.decode({t.pad_id(), t.pad_id()}).empty());
  CHECK(t.decode({t.eos_id()}).empty());
  CHECK_THROWS_WITH(t.decode({5, kVocab}), Catch::Contains("id 600 is outside the vocabulary"));
  CHECK_THROWS_WITH(t.decode({-1}), Catch::Contains("id -1 is outside the vocabulary"));
}

TEST_CASE("characters never seen in training encode as unk", "[tokenizer]") {
  const Tokenizer& t = trained();
  std::vector<int64_t> ids = t.encode("snow \xe4\xb8\xad", false);   // U+4E2D is not in the corpus
  CHECK(std::count(ids.begin(), ids.end(), t.unk_id()) == 1);
  CHECK(t.decode(ids).find("\xe2\x81\x87") != std::string::npos);   // SentencePiece renders unk as " ⁇ "
}

TEST_CASE("sentinel markers in text encode as sentinel ids and decode back", "[tokenizer]") {
  const Tokenizer& t = trained();
  std::vector<int64_t> ids = t.encode("The cat <extra_id_0> on the <extra_id_1>.", false);
  CHECK(std::count(ids.begin(), ids.end(), t.sentinel_id(0)) == 1);
  CHECK(std::count(ids.begin(), ids.end(), t.sentinel_id(1)) == 1);
  std::string text = t.decode(ids);
  CHECK(text == "The cat <extra_id_0> on the <extra_id_1> .");
  CHECK(t.encode(text, false) == ids);

  // A span-corruption target built from ids: sentinel, span, sentinel, span.
  std::vector<int64_t> target = {t.sentinel_id(0)};
  for (int64_t id : t.encode("slept", false)) target.push_back(id);
  target.push_back(t.sentinel_id(1));
  for (int64_t id : t.encode("warm stones", false)) target.push_back(id);
  target.push_back(t.eos_id());
  CHECK(t.decode(target) == "<extra_id_0> slept <extra_id_1> warm stones");
  std::vector<int64_t> round_trip = t.encode(t.decode(target));
  CHECK(round_trip == target);

  // Not sentinels: out of range, leading zero, unterminated.
  for (const char* text_only : {"<extra_id_100>", "<extra_id_07>", "<extra_id_3", "<extra_id_>"}) {
    INFO(text_only);
    std::vector<int64_t> plain = t.encode(text_only, false);
    for (int64_t id : plain) CHECK_FALSE(t.is_sentinel(id));
  }
}

TEST_CASE("training is deterministic and saves the model where asked", "[tokenizer]") {
  ScratchDir dir("tokenizer_determinism");
  std::vector<std::string> sentences = corpus();
  Tokenizer first = Tokenizer::train_unigram(sentences, 400, dir.file("run1/spiece.model"));
  Tokenizer second = Tokenizer::train_unigram(sentences, 400, dir.file("run2/spiece.model"));
  std::string bytes = read_bytes(dir.file("run1/spiece.model"));
  CHECK(bytes == first.serialized_model());
  CHECK(read_bytes(dir.file("run2/spiece.model")) == bytes);

  // The comparison can fail: a different corpus gives a different model.
  sentences.pop_back();
  Tokenizer third = Tokenizer::train_unigram(sentences, 400, dir.file("run3/spiece.model"));
  CHECK(third.serialized_model() != bytes);

  // Loading the saved file gives the same tokenizer.
  Tokenizer loaded = Tokenizer::load(dir.file("run1/spiece.model"));
  CHECK(loaded.vocab_size() == 400);
  for (const char* s : {"A careful reader notices the small details.", "Merging task vectors <extra_id_3>!"})
    CHECK(loaded.encode(s) == first.encode(s));
  loaded.save(dir.file("copy/spiece.model"));
  CHECK(read_bytes(dir.file("copy/spiece.model")) == bytes);
}

TEST_CASE("tokenizer errors name the file or the setting to change", "[tokenizer]") {
  ScratchDir dir("tokenizer_errors");
  CHECK_THROWS_WITH(Tokenizer::load(dir.file("missing.model")),
                    Catch::Contains(dir.file("missing.model")) && Catch::Contains("cannot open"));
  write_bytes(dir.file("garbage.model"), "this is not a protobuf");
  CHECK_THROWS_WITH(Tokenizer::load(dir.file("garbage.model")),
                    Catch::Contains(dir.file("garbage.model")) && Catch::Contains("not a SentencePiece model"));
  std::vector<std::string> tiny = {"a small corpus", "of three lines", "is not enough"};
  CHECK_THROWS_WITH(Tokenizer::train_unigram(tiny, 5000, dir.file("x.model")),
                    Catch::Contains("lower vocab_size") && Catch::Contains("hard_vocab_limit"));
  CHECK_FALSE(std::filesystem::exists(dir.file("x.model")));
  CHECK_THROWS_WITH(Tokenizer::train_unigram(tiny, 103, dir.file("x.model")), Catch::Contains("use at least 104"));
  CHECK_THROWS_WITH(Tokenizer::train_unigram({}, 500, dir.file("x.model")), Catch::Contains("no training sentences"));

  // With a soft limit the same small corpus trains a smaller vocabulary instead of failing.
  TokenizerTrainOptions soft;
  soft.hard_vocab_limit = false;
  Tokenizer small = Tokenizer::train_unigram(tiny, 5000, dir.file("soft.model"), soft);
  CHECK(small.vocab_size() < 5000);
  CHECK(small.decode(small.encode("is not enough")) == "is not enough");
}

TEST_CASE("a model from SentencePiece's spm_train with T5's settings loads with T5's id layout", "[tokenizer]") {
  // tools/make_tokenizer_fixture.py: official spm_train, pad 0 / eos 1 / unk 2 / no bos, nmt_nfkc, 400 pieces;
  // expected ids and texts from spm_encode / spm_decode.
  std::ifstream expected_file(source_path("tests/fixtures/t5_layout_spiece_expected.json"));
  REQUIRE(expected_file);
  nlohmann::json expected = nlohmann::json::parse(expected_file);
  Tokenizer t = Tokenizer::load(source_path("tests/fixtures/t5_layout_spiece.model"));
  int64_t pieces = expected["pieces_in_model"];
  CHECK(t.vocab_size() == pieces + 100);   // like t5-small: 32000 pieces, 32100 ids
  CHECK(t.pad_id() == expected["pad_id"].get<int64_t>());
  CHECK(t.eos_id() == expected["eos_id"].get<int64_t>());
  CHECK(t.unk_id() == expected["unk_id"].get<int64_t>());
  CHECK(t.sentinel_id(0) == pieces + 99);
  CHECK(t.piece(pieces + 99) == "<extra_id_0>");
  CHECK(t.piece(pieces) == "<extra_id_99>");
  for (auto& probe : expected["probes"]) {
    std::string text = probe["text"];
    INFO("probe: '" << text << "'");
    std::vector<int64_t> ids = probe["ids"].get<std::vector<int64_t>>();
    CHECK(t.encode(text, false) == ids);
    std::vector<int64_t> with_eos = ids;
    with_eos.push_back(t.eos_id());
    CHECK(t.encode(text) == with_eos);
    CHECK(t.decode(with_eos) == probe["decoded"].get<std::string>());
    // spm_encode prints an unknown piece as the text it covers; piece() names it "<unk>".
    std::vector<std::string> cli_pieces = probe["pieces"].get<std::vector<std::string>>();
    REQUIRE(cli_pieces.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      CHECK(t.piece(ids[i]) == (ids[i] == t.unk_id() ? "<unk>" : cli_pieces[i]));
  }
}
