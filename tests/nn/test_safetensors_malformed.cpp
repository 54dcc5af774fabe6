// Malformed safetensors files: one test per validation rule (with the message a user sees), then a fuzz
// test over hundreds of corrupted variants of valid files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <random>

#include "../helpers.h"
#include "io_test_helpers.h"
#include "nn/safetensors.h"

using namespace linfuse;
using namespace linfuse::testing;
using namespace std::string_literals;

namespace {

// The message of the std::runtime_error that loading `path` throws, or "<accepted>". Any other exception
// type escapes and fails the test.
std::string rejection(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<accepted>";
}

std::string tensor_json(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                        uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// "{entry,entry,...}" (built with += : GCC 12 warns falsely on "{" + std::string temporaries).
std::string header_of(std::initializer_list<std::string> entries) {
  std::string out = "{";
  for (const std::string& e : entries) {
    if (out.size() > 1) out += ",";
    out += e;
  }
  out += "}";
  return out;
}

struct MalformedFile {
  ScratchDir dir{"st_malformed"};
  std::string path = dir.file("model.safetensors");
  // Writes a file from raw bytes and returns the rejection message.
  std::string raw(const std::string& bytes) {
    write_bytes(path, bytes);
    return rejection(path);
  }
  std::string with(const std::string& header, const std::string& data) { return raw(safetensors_bytes(header, data)); }
};

}  // namespace

TEST_CASE("safetensors rejects a file shorter than the header length field", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK(f.raw("abc") == f.path + ": is 3 bytes, too short for the 8-byte header length (the file is truncated or "
                                 "damaged, or is not a safetensors file: write it again from its source)");
  CHECK_THAT(f.raw(""), Catch::StartsWith(f.path + ": is 0 bytes"));
}

TEST_CASE("safetensors rejects a header length beyond 100 MB without allocating it", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.raw(u64_le(uint64_t(1) << 60) + "{}"),
             Catch::StartsWith(f.path + ": header length 1152921504606846976 exceeds the 100000000-byte limit"));
  CHECK_THAT(f.raw(u64_le(~uint64_t(0)) + "{}"), Catch::Contains("exceeds the 100000000-byte limit"));
  CHECK_THAT(f.raw(u64_le(100'000'001) + "{}"), Catch::Contains("exceeds the 100000000-byte limit"));
}

TEST_CASE("safetensors rejects a header length that runs past the end of the file", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.raw(u64_le(1000) + "{}                  "),
             Catch::StartsWith(f.path + ": header length 1000 runs past the end of the file (28 bytes)"));
  CHECK_THAT(f.raw(u64_le(100'000'000) + "{}"), Catch::Contains("runs past the end of the file"));
}

TEST_CASE("safetensors rejects a header that is not UTF-8", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with("{\"\xff\":1}", ""), Catch::StartsWith(f.path + ": header is not valid UTF-8 (byte 10 of the file)"));
  CHECK_THAT(f.with("{\"\xc0\xaf\":1}", ""), Catch::Contains("not valid UTF-8"));       // overlong '/'
  CHECK_THAT(f.with("{\"\xed\xa0\x80\":1}", ""), Catch::Contains("not valid UTF-8"));   // surrogate
  CHECK_THAT(f.with("{\"\xe2\x82\":1}", ""), Catch::Contains("not valid UTF-8"));       // truncated sequence
}

TEST_CASE("safetensors rejects a header that does not start with '{'", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with("[]", ""), Catch::StartsWith(f.path + ": header does not start with '{'"));
  CHECK_THAT(f.with(" {}", ""), Catch::Contains("does not start with '{'"));
  CHECK_THAT(f.raw(u64_le(0)), Catch::Contains("does not start with '{'"));
}

TEST_CASE("safetensors rejects a header that is not JSON", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with("{\"a\":", ""), Catch::StartsWith(f.path + ": header is not valid JSON: parse error"));
  CHECK_THAT(f.with("{} {}", ""), Catch::Contains("not valid JSON"));
  CHECK_THAT(f.with("{}\0\0\0"s, ""), Catch::Contains("header contains a NUL byte (byte 10 of the file)"));
  CHECK_THAT(f.with("{\"a\0b\":1}"s, ""), Catch::Contains("header contains a NUL byte"));
}

TEST_CASE("safetensors rejects an unknown dtype and lists the known ones", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("x", "F42", "[1]", 0, 4)}), "abcd"),
             Catch::StartsWith(f.path + ": tensor 'x' has unknown dtype \"F42\" (known: BOOL, U8,") &&
                 Catch::Contains("U64)"));
}

TEST_CASE("safetensors rejects a shape whose byte size differs from the data offsets", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("x", "F32", "[2,3]", 0, 20)}), std::string(20, 'a')),
             Catch::StartsWith(f.path + ": tensor 'x' has shape (2,3) of F32 = 24 bytes but data_offsets [0, 20] hold 20 bytes"));
  // Shapes whose byte count overflows 64 bits are caught before any multiplication wraps.
  CHECK_THAT(f.with(header_of({tensor_json("x", "F32", "[4294967296,4294967296,16]", 0, 4)}), "abcd"),
             Catch::Contains("tensor 'x' has shape (4294967296,4294967296,16) of F32 (too many bytes to count)"));
  CHECK_THAT(f.with(header_of({tensor_json("x", "U8", "[9223372036854775808]", 0, 4)}), "abcd"),
             Catch::Contains("beyond what an int64 holds"));
}

TEST_CASE("safetensors rejects reversed data offsets", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("x", "F32", "[1]", 8, 4)}), std::string(8, 'a')),
             Catch::StartsWith(f.path + ": tensor 'x' data_offsets [8, 4] are reversed"));
}

TEST_CASE("safetensors rejects data offsets past the end of the buffer", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("x", "F32", "[4]", 0, 16)}), std::string(8, 'a')),
             Catch::StartsWith(f.path + ": tensor 'x' data_offsets [0, 16] run past the end of the data buffer (8 bytes)"));
  CHECK_THAT(f.with(header_of({tensor_json("x", "F32", "[1]", 18446744073709551612ull, 18446744073709551615ull)}), "abcd"),
             Catch::Contains("run past the end of the data buffer"));
}

TEST_CASE("safetensors rejects gaps between tensors", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("a", "F32", "[1]", 0, 4), tensor_json("b", "F32", "[1]", 8, 12)}),
                    std::string(12, 'a')),
             Catch::StartsWith(f.path + ": bytes [4, 8) of the data buffer belong to no tensor (gap before tensor 'b')"));
  CHECK_THAT(f.with(header_of({tensor_json("b", "F32", "[1]", 4, 8)}), std::string(8, 'a')),
             Catch::Contains("bytes [0, 4) of the data buffer belong to no tensor"));
}

TEST_CASE("safetensors rejects overlapping tensors", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("a", "F32", "[2]", 0, 8), tensor_json("b", "F32", "[2]", 4, 12)}),
                    std::string(12, 'a')),
             Catch::StartsWith(f.path + ": tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
  // An empty tensor inside another one's bytes also breaks the tiling.
  CHECK_THAT(f.with(header_of({tensor_json("a", "F32", "[2]", 0, 8), tensor_json("e", "F32", "[0]", 4, 4)}),
                    std::string(8, 'a')),
             Catch::Contains("tensor 'e' data_offsets [4, 4] overlap tensor 'a' [0, 8]"));
}

TEST_CASE("safetensors rejects data bytes that belong to no tensor", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("a", "F32", "[1]", 0, 4)}), std::string(8, 'a')),
             Catch::StartsWith(f.path + ": the last 4 bytes of the data buffer belong to no tensor"));
  CHECK_THAT(f.with("{}", "x"), Catch::Contains("the last 1 bytes of the data buffer belong to no tensor"));
}

TEST_CASE("safetensors rejects duplicate tensor names and duplicate keys", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(header_of({tensor_json("a", "F32", "[1]", 0, 4), tensor_json("a", "F32", "[1]", 4, 8)}),
                    std::string(8, 'a')),
             Catch::StartsWith(f.path + ": header has the key 'a' twice (duplicate tensor name)"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
             Catch::Contains("header has the key 'dtype' twice"));
  CHECK_THAT(f.with(R"({"__metadata__":{"k":"1","k":"2"}})", ""), Catch::Contains("header has the key 'k' twice"));
}

TEST_CASE("safetensors rejects metadata that is not a map of strings", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(R"({"__metadata__":{"epoch":3}})", ""),
             Catch::StartsWith(f.path + ": __metadata__ value of 'epoch' must be a string, got 3"));
  CHECK_THAT(f.with(R"({"__metadata__":["a"]})", ""), Catch::Contains("__metadata__ must be an object of strings"));
}

TEST_CASE("safetensors rejects tensor descriptions with missing or mistyped fields", "[safetensors][malformed]") {
  MalformedFile f;
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
             Catch::StartsWith(f.path + ": tensor 'a' has no 'shape' field"));
  CHECK_THAT(f.with(R"({"a":5})", ""), Catch::Contains("tensor 'a' must be described by a JSON object, got 5"));
  CHECK_THAT(f.with(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
             Catch::Contains("tensor 'a' has a dtype that is not a string: 7"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", "abcd"),
             Catch::Contains("tensor 'a' has a shape that is not an array: 4"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
             Catch::Contains("tensor 'a' shape entry must be a non-negative integer, got -1"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd"),
             Catch::Contains("shape entry must be a non-negative integer, got 1.5"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "abcd"),
             Catch::Contains("tensor 'a' data_offsets must be [begin, end], got [0,4,8]"));
  CHECK_THAT(f.with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}})", "abcd"),
             Catch::Contains("data_offsets begin must be a non-negative integer"));
}

TEST_CASE("safetensors rejects JSON nested deeper than a header can be", "[safetensors][malformed]") {
  MalformedFile f;
  std::string deep = R"({"__metadata__":{"k":)" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  CHECK_THAT(f.with(deep, ""), Catch::StartsWith(f.path + ": header nests JSON deeper than a safetensors header can"));
}

TEST_CASE("safetensors open errors name the file and the fix", "[safetensors][malformed]") {
  ScratchDir dir("st_open");
  std::string missing = dir.file("missing.safetensors");
  CHECK(rejection(missing) == missing + ": cannot open: No such file or directory (check the path)");
  CHECK_THAT(rejection(dir.path().string()), Catch::Contains("is a folder, not a regular file"));

  std::string path = dir.file("m.safetensors");
  StateDict one;
  one.insert("a", Tensor::ones({1}));
  save_safetensors(path, one);
  SafetensorsFile file = SafetensorsFile::open(path);
  CHECK_THROWS_WITH(file.tensor("nope"), path + ": no tensor named 'nope' (the file has 1 tensors: 'a')");
}

// ---------------------------------------------------------------------------------------------------------

namespace {

struct FuzzTally {
  int files = 0, rejected = 0, accepted = 0;
};

// Loads `bytes` as a file; it must either be rejected with a runtime_error naming the file, or load with
// every tensor materialised. Returns true if it was accepted.
bool load_or_reject(const std::string& path, const std::string& bytes, FuzzTally& tally) {
  write_bytes(path, bytes);
  ++tally.files;
  try {
    SafetensorsFile file = SafetensorsFile::open(path);
    for (auto& e : file.entries()) (void)file.tensor(e.name).numel();
    ++tally.accepted;
    return true;
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    if (message.rfind(path + ": ", 0) != 0) FAIL("rejection does not start with the file name: " << message);
    ++tally.rejected;
    return false;
  }
}

uint64_t header_length_of(const std::string& bytes) {
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

// One random structural change to a parsed header (some keep the file valid, most do not).
void mutate_header(nlohmann::ordered_json& header, std::mt19937_64& rng) {
  std::vector<std::string> names;
  for (auto& [key, value] : header.items())
    if (key != "__metadata__") names.push_back(key);
  auto pick = [&](size_t n) { return size_t(rng() % n); };
  const nlohmann::ordered_json weird[] = {-1, 1.5, "3", nullptr, true, nlohmann::ordered_json::array(),
                                          nlohmann::ordered_json::object(), uint64_t(1) << 63, ~uint64_t(0), 0, 1, 1000000};
  auto random_weird = [&] { return weird[pick(std::size(weird))]; };
  if (names.empty()) {
    header["__metadata__"] = random_weird();
    return;
  }
  auto& tensor = header[names[pick(names.size())]];
  switch (pick(14)) {
    case 0: tensor["dtype"] = std::vector<std::string>{"F32", "F16", "I32", "U8", "F64", "BOOL", "F4", "f32", ""}[pick(9)]; break;
    case 1: tensor["dtype"] = random_weird(); break;
    case 2: tensor["shape"].push_back(pick(3)); break;
    case 3: if (!tensor["shape"].empty()) tensor["shape"][pick(tensor["shape"].size())] = random_weird(); break;
    case 4: tensor["shape"] = random_weird(); break;
    case 5: std::swap(tensor["data_offsets"][0], tensor["data_offsets"][1]); break;
    case 6: tensor["data_offsets"][pick(2)] = tensor["data_offsets"][pick(2)].get<uint64_t>() + 1 + pick(3); break;
    case 7: tensor["data_offsets"][pick(2)] = random_weird(); break;
    case 8: tensor.erase(std::vector<std::string>{"dtype", "shape", "data_offsets"}[pick(3)]); break;
    case 9: tensor["unknown_field"] = random_weird(); break;   // ignored, as the reference does
    case 10: header[names[pick(names.size())] + "_copy"] = tensor; break;
    case 11: header.erase(names[pick(names.size())]); break;
    case 12: header["__metadata__"] = random_weird(); break;
    default: header["__metadata__"] = {{"key", random_weird()}}; break;
  }
}

// Textual damage to a header that structured mutation cannot express. Sets `must_reject` for damage that
// no valid header survives (cutting or deleting a byte may only shorten a name or the padding).
std::string damage_header_text(std::string text, std::mt19937_64& rng, bool& must_reject) {
  size_t at = size_t(rng() % text.size());
  must_reject = true;
  switch (rng() % 6) {
    case 0: must_reject = false; return text.substr(0, at);                  // cut short
    case 1: return text.insert(at, 1, char(0x80 + rng() % 0x40));            // stray UTF-8 continuation byte
    case 2: return text.insert(at, 1, '\0');
    case 3: must_reject = false; return text.erase(at, 1);
    case 4: {                                                                 // repeat the first entry: duplicate key
      size_t end_of_first = text.find('}', 1);
      std::string repeated = "{";
      repeated += text.substr(1, end_of_first) + ",";
      repeated += text.substr(1);
      return repeated;
    }
    default: text[0] = '[';
      return text;
  }
}

void fuzz_one_valid_file(const std::string& valid, const std::string& path, std::mt19937_64& rng, FuzzTally& tally) {
  REQUIRE(load_or_reject(path, valid, tally));
  uint64_t header_bytes = header_length_of(valid);
  uint64_t data_start = 8 + header_bytes;
  std::string header_text = valid.substr(8, header_bytes);
  std::string data = valid.substr(data_start);

  // 1. Truncation at every length through the header region and a sample of data lengths: all rejected.
  for (size_t length = 0; length < valid.size(); length += (length < data_start + 8 ? 1 : 7)) {
    INFO("truncated to " << length << " of " << valid.size() << " bytes");
    CHECK_FALSE(load_or_reject(path, valid.substr(0, length), tally));
  }

  // 2. Absurd header lengths: only the true one loads.
  for (uint64_t n : {uint64_t(0), uint64_t(1), uint64_t(7), header_bytes - 1, header_bytes + 1, uint64_t(valid.size() - 8),
                     uint64_t(valid.size() - 7), uint64_t(valid.size()), uint64_t(100'000'000), uint64_t(100'000'001),
                     uint64_t(1) << 32, uint64_t(1) << 60, uint64_t(1) << 63, ~uint64_t(0)}) {
    INFO("header length field " << n);
    CHECK_FALSE(load_or_reject(path, u64_le(n) + valid.substr(8), tally));
  }

  // 3. Random bit flips. Flips confined to the data buffer must still load; others may go either way.
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = valid;
    int flips = 1 + int(rng() % 3);
    bool header_hit = false;
    for (int k = 0; k < flips; ++k) {
      size_t at = size_t(rng() % bytes.size());
      bytes[at] = char(bytes[at] ^ (1 << (rng() % 8)));
      header_hit = header_hit || at < data_start;
    }
    bool accepted = load_or_reject(path, bytes, tally);
    if (!header_hit) CHECK(accepted);
  }

  // 4. Structured JSON mutations, re-serialised with a correct length field.
  auto parsed = nlohmann::ordered_json::parse(header_text);
  for (int trial = 0; trial < 200; ++trial) {
    auto header = parsed;
    mutate_header(header, rng);
    std::string text = header.dump();
    load_or_reject(path, safetensors_bytes(text, data), tally);
  }
  // 5. Textual damage, also with a correct length field.
  for (int trial = 0; trial < 100; ++trial) {
    bool must_reject = false;
    std::string text = damage_header_text(header_text, rng, must_reject);
    INFO("damaged header: " << text);
    bool accepted = load_or_reject(path, safetensors_bytes(text, data), tally);
    if (must_reject) CHECK_FALSE(accepted);
  }
}

}  // namespace

TEST_CASE("safetensors fuzz: corrupted files are rejected with the file's name or load, never crash",
          "[safetensors][malformed][fuzz]") {
  ScratchDir dir("st_fuzz");
  std::string path = dir.file("fuzzed.safetensors");
  std::mt19937_64 rng(20240229);
  FuzzTally tally;

  StateDict tensors;
  tensors.insert("encoder.weight", Tensor::full({4, 5}, 0.25));
  tensors.insert("encoder.bias", Tensor::arange(5));
  tensors.insert("position_ids", Tensor::arange(6, DType::I64));
  tensors.insert("scale", Tensor::scalar(2.0, DType::F64));
  tensors.insert("empty", Tensor::zeros({0, 2}));
  std::string linfuse_file = dir.file("valid.safetensors");
  save_safetensors(linfuse_file, tensors, {{"format", "pt"}, {"task", "mnist"}});
  fuzz_one_valid_file(read_bytes(linfuse_file), path, rng, tally);

  save_safetensors(linfuse_file, tensors, {}, FloatFormat::BF16);
  fuzz_one_valid_file(read_bytes(linfuse_file), path, rng, tally);

  fuzz_one_valid_file(read_bytes(source_path("tests/fixtures/torch_written.safetensors")), path, rng, tally);

  SUCCEED("safetensors fuzz: " << tally.files << " files, " << tally.rejected << " rejected, " << tally.accepted
                            << " loaded");
  CHECK(tally.files > 2000);
  CHECK(tally.accepted > 3 * 50);   // data-only bit flips at least; the valid files themselves
}

// Regression (issue 18, finding 12): open(2) on a FIFO blocks until some process opens it for writing, so a FIFO
// given as a merge input hung the merge forever. The open runs on another thread here; if it is still blocked after
// 20 s the test fails and opens the FIFO for writing itself, which releases it.
TEST_CASE("safetensors refuses a FIFO without opening it, so it cannot block", "[safetensors][malformed]") {
  ScratchDir dir("st_fifo");
  const std::string fifo = dir.file("model.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto opening = std::async(std::launch::async, [&] { return rejection(fifo); });
  if (opening.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    int writer = ::open(fifo.c_str(), O_WRONLY);   // unblocks the reader, which then sees an empty stream
    opening.wait();
    if (writer >= 0) ::close(writer);
    FAIL("opening a FIFO blocked");
  }
  CHECK(opening.get() == fifo + ": is a FIFO, not a regular file (give the path of a .safetensors file: linfuse reads only "
                               "regular files)");
}
