// `linfuse forward`, run as the built binary (a subprocess next to this test binary), against PyTorch's outputs,
// gradients and JVPs (tools/make_forward_fixture.py -> tests/fixtures/forward_cli/), and on bad files and
// options: a non-zero exit, a message naming the problem, and no output file. Prints the largest relative errors.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../helpers.h"
#include "io_test_helpers.h"
#include "nn/reference_models.h"
#include "nn/safetensors.h"

using namespace linfuse;
using linfuse::testing::ScratchDir;
using json = nlohmann::json;

namespace {

std::string fixture(const std::string& name) { return linfuse::testing::source_path("tests/fixtures/forward_cli/" + name); }

// The linfuse binary is built next to the test binaries (build/linfuse, build/test_nn).
std::string linfuse_binary() {
  auto path = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "linfuse";
  INFO("build the command line first: cmake --build build --target linfuse");
  REQUIRE(std::filesystem::exists(path));
  return path.string();
}

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct CliRun {
  int exit_code;
  std::string out, err;
};

// Runs `linfuse forward ARGS`, capturing stdout and stderr.
CliRun run_forward(const std::vector<std::string>& args) {
  ScratchDir logs("forward_cli_logs");
  std::string command = quoted(linfuse_binary()) + " forward";
  // Appended piece by piece: `" >" + std::string&&` trips GCC 12's false -Wrestrict (PR 105329).
  for (const auto& a : args) command.append(" ").append(quoted(a));
  command.append(" >").append(quoted(logs.file("out"))).append(" 2>").append(quoted(logs.file("err")));
  int status = std::system(command.c_str());
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), linfuse::testing::read_bytes(logs.file("out")), linfuse::testing::read_bytes(logs.file("err"))};
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

struct Worst {
  double error = 0;
  std::string name;
  void add(double e, const std::string& n) {
    if (e >= error) error = e, name = n;
  }
};

// Compares every tensor of `actual` with `expected` (the same names, no more, no fewer): the error of a tensor is
// max |a - b| / max |b|. A gradient that is zero in exact arithmetic (CLIP's k_proj biases: softmax ignores a
// shift of a query's scores) holds rounding noise on both sides; it is measured against the largest gradient.
void compare(const std::string& actual_path, const std::string& expected_path, double tolerance, const std::string& label) {
  StateDict actual = load_safetensors(actual_path), expected = load_safetensors(expected_path);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  REQUIRE(sorted(actual.names()) == sorted(expected.names()));
  double gradient_scale = 0;
  for (const auto& [name, t] : expected)
    if (name.rfind("grad.", 0) == 0) gradient_scale = std::max(gradient_scale, max_abs(t));
  Worst outputs, grads, jvps;
  for (const auto& [name, b] : expected) {
    const Tensor& a = actual.at(name);
    INFO(label << ": " << name);
    REQUIRE(a.shape() == b.shape());
    CHECK(a.dtype() == b.dtype());
    double diff = linfuse::testing::max_abs_diff(a, b), scale = max_abs(b);
    const bool gradient = name.rfind("grad.", 0) == 0;
    if (gradient && scale < 1e-4 * gradient_scale) scale = gradient_scale;
    double error = diff == 0 ? 0 : diff / scale;
    CHECK(error < tolerance);
    (gradient ? grads : name.rfind("jvp.", 0) == 0 ? jvps : outputs).add(error, name);
  }
  std::printf("[forward cli] %-28s max relative error: outputs %.2e (%s), gradients %.2e (%s), JVPs %.2e (%s)\n",
              label.c_str(), outputs.error, outputs.name.c_str(), grads.error, grads.name.c_str(), jvps.error,
              jvps.name.c_str());
}

void write_json(const std::string& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2);
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A copy of a fixture file with `edit` applied to its tensors.
template <class Edit>
std::string edited(const ScratchDir& dir, const std::string& fixture_name, const std::string& name, Edit edit) {
  StateDict tensors = load_safetensors(fixture(fixture_name));
  edit(tensors);
  save_safetensors(dir.file(name), tensors);
  return dir.file(name);
}

std::vector<std::string> clip_args(const std::string& inputs, const std::string& out) {
  return {"--config", fixture("clip.json"), "--weights", fixture("clip_weights.safetensors"), "--inputs", inputs, "--out", out};
}

// The run fails with exit code `code`, says every one of `phrases` on stderr, and leaves no output file.
void expect_failure(const std::vector<std::string>& args, const std::string& out, int code,
                    const std::vector<std::string>& phrases) {
  CliRun run = run_forward(args);
  INFO("stderr: " << run.err);
  CHECK(run.exit_code == code);
  for (const auto& p : phrases) CHECK(run.err.find(p) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out));
}

}  // namespace

TEST_CASE("linfuse forward matches PyTorch on CLIP: outputs, clip_loss gradients, JVPs (float32 and float64)",
          "[forward_cli]") {
  ScratchDir dir("forward_cli");
  for (const std::string dtype : {"float32", "float64"}) {
    const std::string tag = dtype == "float32" ? "f32" : "f64", out = dir.file("clip_" + tag + ".safetensors");
    std::vector<std::string> args = clip_args(fixture("clip_inputs.safetensors"), out);
    for (const std::string a : {"--loss", "clip_loss", "--grads", "--tangents"}) args.push_back(a);
    args.insert(args.end(), {fixture("clip_tangents.safetensors"), "--dtype", dtype});
    CliRun run = run_forward(args);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out.find("7 outputs, 78 gradients, 7 JVPs") != std::string::npos);
    compare(out, fixture("clip_expected_" + tag + ".safetensors"), tag == "f32" ? 1e-4 : 1e-9, "clip " + dtype);
  }
}

TEST_CASE("linfuse forward matches PyTorch on T5: HF's -100 loss, aliases of shared.weight, float mask, JVPs",
          "[forward_cli]") {
  ScratchDir dir("forward_cli");
  for (const std::string dtype : {"float32", "float64"}) {
    const std::string tag = dtype == "float32" ? "f32" : "f64", out = dir.file("t5_" + tag + ".safetensors");
    CliRun run = run_forward({"--config", fixture("t5.json"), "--weights", fixture("t5_weights.safetensors"), "--inputs",
                              fixture("t5_inputs.safetensors"), "--out", out, "--loss", "cross_entropy", "--grads",
                              "--tangents", fixture("t5_tangents.safetensors"), "--dtype", dtype});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    compare(out, fixture("t5_expected_" + tag + ".safetensors"), tag == "f32" ? 1e-4 : 1e-9, "t5 " + dtype);
  }
}

TEST_CASE("linfuse forward gives T5 the same outputs from explicit decoder_input_ids as from shifted labels",
          "[forward_cli]") {
  ScratchDir dir("forward_cli");
  std::string inputs = edited(dir, "t5_inputs.safetensors", "inputs.safetensors", [](StateDict& t) {
    // HF's _shift_right: decoder_start_token_id (0) first, -100 -> pad (0).
    std::vector<int64_t> labels = t.at("labels").to_vector<int64_t>(), shifted(labels.size());
    const int64_t length = t.at("labels").size(1);
    for (size_t i = 0; i < labels.size(); ++i)
      shifted[i] = i % length == 0 ? 0 : std::max<int64_t>(labels[i - 1], 0);
    t.insert("decoder_input_ids", Tensor::from_vector(shifted, t.at("labels").shape()));
  });
  const std::string out = dir.file("out.safetensors");
  CliRun run = run_forward({"--config", fixture("t5.json"), "--weights", fixture("t5_weights.safetensors"), "--inputs",
                            inputs, "--out", out, "--dtype", "float64"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  StateDict actual = load_safetensors(out), expected = load_safetensors(fixture("t5_expected_f64.safetensors"));
  CHECK(actual.names() == std::vector<std::string>{"encoder_last_hidden_state", "logits", "loss"});
  for (const auto& [name, tensor] : actual) CHECK(linfuse::testing::max_abs_diff(tensor, expected.at(name)) < 1e-12);
}

TEST_CASE("linfuse forward runs one CLIP tower from a whole CLIP checkpoint, with sum_of_<output> gradients",
          "[forward_cli]") {
  ScratchDir dir("forward_cli");
  json clip_config = read_json(fixture("clip.json"));
  const std::string pixels = edited(dir, "clip_inputs.safetensors", "pixels.safetensors", [](StateDict& t) {
    t.erase("input_ids");
    t.erase("attention_mask");
  });
  const std::string text = edited(dir, "clip_inputs.safetensors", "text.safetensors", [](StateDict& t) { t.erase("pixel_values"); });

  SECTION("clip_vision from the wrapper layout: image_embeds, gradients of their sum, JVP") {
    write_json(dir.file("vision.json"), {{"model", "clip_vision"}, {"config", clip_config}});
    const std::string out = dir.file("vision.safetensors");
    CliRun run = run_forward({"--config", dir.file("vision.json"), "--weights", fixture("clip_weights.safetensors"),
                              "--inputs", pixels, "--out", out, "--loss", "sum_of_image_embeds", "--grads", "--tangents",
                              fixture("clip_tangents.safetensors"), "--dtype", "float64"});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    // The text side of the checkpoint and of the tangents is skipped, and said so.
    CHECK(run.err.find("skipped text_projection.weight") != std::string::npos);
    CHECK(run.err.find("skipped logit_scale") != std::string::npos);
    compare(out, fixture("clip_vision_sum_expected_f64.safetensors"), 1e-9, "clip_vision float64");
  }
  SECTION("clip_text from a plain CLIPModel config with --model: text_embeds") {
    const std::string out = dir.file("text_out.safetensors");
    CliRun run = run_forward({"--config", fixture("clip.json"), "--model", "clip_text", "--weights",
                              fixture("clip_weights.safetensors"), "--inputs", text, "--out", out});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    StateDict actual = load_safetensors(out), expected = load_safetensors(fixture("clip_expected_f32.safetensors"));
    // CLIPTextModelWithProjection's text_embeds is unnormalised: CLIPModel's text_features, not its text_embeds.
    REQUIRE(actual.names() == std::vector<std::string>{"text_embeds"});
    CHECK(linfuse::testing::max_abs_diff(actual.at("text_embeds"), expected.at("text_features")) <
          1e-4 * max_abs(expected.at("text_features")));
  }
  SECTION("clip_vision from a CLIPVisionConfig alone uses its projection_dim") {
    json vision = clip_config["vision_config"];
    write_json(dir.file("vision_only.json"), vision);
    CliRun run = run_forward({"--config", dir.file("vision_only.json"), "--list-parameters"});
    REQUIRE(run.exit_code == 0);
    CHECK(run.out.find("visual_projection.weight (4,8)") != std::string::npos);
    CHECK(run.out.find("text_model") == std::string::npos);
  }
}

TEST_CASE("linfuse forward rejects bad weights, inputs, tangents, configs and options without writing a file",
          "[forward_cli]") {
  ScratchDir dir("forward_cli");
  const std::string inputs = fixture("clip_inputs.safetensors"), out = dir.file("out.safetensors");
  auto with_weights = [&](const std::string& weights) {
    std::vector<std::string> args = clip_args(inputs, out);
    args[3] = weights;
    return args;
  };
  auto with_inputs = [&](const std::string& file) { return clip_args(file, out); };

  SECTION("a missing weight") {
    auto w = edited(dir, "clip_weights.safetensors", "w.safetensors", [](StateDict& t) { t.erase("text_projection.weight"); });
    expect_failure(with_weights(w), out, 1, {"missing (1)", "text_projection.weight (4,8)", "--list-parameters"});
  }
  SECTION("a weight of the wrong shape") {
    auto w = edited(dir, "clip_weights.safetensors", "w.safetensors",
                    [](StateDict& t) { t.set("visual_projection.weight", Tensor::zeros({4, 7})); });
    expect_failure(with_weights(w), out, 1, {"wrong shape (1)", "visual_projection.weight is (4,7) in the file, (4,8)"});
  }
  SECTION("an unexpected weight") {
    auto w = edited(dir, "clip_weights.safetensors", "w.safetensors", [](StateDict& t) { t.insert("vision_model.extra", Tensor::zeros({2})); });
    expect_failure(with_weights(w), out, 1, {"unexpected (1)", "vision_model.extra"});
  }
  SECTION("an integer weight") {
    auto w = edited(dir, "clip_weights.safetensors", "w.safetensors",
                    [](StateDict& t) { t.set("logit_scale", Tensor::from_vector<int64_t>({2}, {})); });
    expect_failure(with_weights(w), out, 1, {"logit_scale is stored as I64"});
  }
  SECTION("a weights file that is not safetensors") {
    linfuse::testing::write_bytes(dir.file("w.safetensors"), "not a safetensors file");
    expect_failure(with_weights(dir.file("w.safetensors")), out, 1, {"weights", dir.file("w.safetensors")});
  }
  SECTION("input_ids stored as float32") {
    auto i = edited(dir, "clip_inputs.safetensors", "i.safetensors",
                    [](StateDict& t) { t.set("input_ids", Tensor::zeros(t.at("input_ids").shape())); });
    expect_failure(with_inputs(i), out, 1, {"input_ids is stored as F32", "I64"});
  }
  SECTION("input_ids stored as int32") {
    // A hand-built file: linfuse's writer has no I32. 1 x 4 ids with eos (2).
    std::vector<int32_t> ids = {1, 5, 2, 0};
    std::vector<float> pixels(3 * 8 * 8, 0.5f);
    std::string header = R"({"input_ids":{"dtype":"I32","shape":[1,4],"data_offsets":[0,16]},)"
                         R"("pixel_values":{"dtype":"F32","shape":[1,3,8,8],"data_offsets":[16,784]}})";
    linfuse::testing::write_bytes(dir.file("i.safetensors"), linfuse::testing::safetensors_bytes(
                                                                  header, linfuse::testing::le_bytes(ids) + linfuse::testing::le_bytes(pixels)));
    expect_failure(with_inputs(dir.file("i.safetensors")), out, 1, {"input_ids is stored as I32", "torch.int64"});
  }
  SECTION("pixel_values of the wrong shape") {
    auto i = edited(dir, "clip_inputs.safetensors", "i.safetensors", [](StateDict& t) { t.set("pixel_values", Tensor::zeros({3, 3, 6, 6})); });
    expect_failure(with_inputs(i), out, 1, {"pixel_values is (3,3,6,6)", "(B, 3, 8, 8)"});
  }
  SECTION("a token id outside the vocabulary") {
    auto i = edited(dir, "clip_inputs.safetensors", "i.safetensors", [](StateDict& t) {
      std::vector<int64_t> ids = t.at("input_ids").to_vector<int64_t>();
      ids[1] = 16;
      t.set("input_ids", Tensor::from_vector(ids, t.at("input_ids").shape()));
    });
    expect_failure(with_inputs(i), out, 1, {"id 16 at (0, 1)", "text_config.vocab_size"});
  }
  SECTION("a mask that is not 0/1, or of another shape") {
    auto i = edited(dir, "clip_inputs.safetensors", "i.safetensors", [](StateDict& t) { t.set("attention_mask", Tensor::full({3, 6}, 2.0)); });
    expect_failure(with_inputs(i), out, 1, {"attention_mask", "neither 0 nor 1"});
    auto j = edited(dir, "clip_inputs.safetensors", "j.safetensors", [](StateDict& t) { t.set("attention_mask", Tensor::ones({3, 5})); });
    expect_failure(with_inputs(j), out, 1, {"attention_mask is (3,5) but input_ids is (3,6)"});
  }
  SECTION("a missing or unknown input") {
    auto i = edited(dir, "clip_inputs.safetensors", "i.safetensors", [](StateDict& t) { t.erase("pixel_values"); });
    expect_failure(with_inputs(i), out, 1, {"missing pixel_values (B, C, H, W)"});
    auto j = edited(dir, "clip_inputs.safetensors", "j.safetensors", [](StateDict& t) { t.insert("pixel_value", Tensor::zeros({1})); });
    expect_failure(with_inputs(j), out, 1, {"'pixel_value' is not an input of clip", "pixel_values, input_ids, attention_mask"});
  }
  SECTION("an inputs file that is truncated") {
    std::string bytes = linfuse::testing::read_bytes(inputs);
    linfuse::testing::write_bytes(dir.file("i.safetensors"), bytes.substr(0, bytes.size() - 10));
    expect_failure(with_inputs(dir.file("i.safetensors")), out, 1, {"inputs", dir.file("i.safetensors"), "truncated"});
  }
  SECTION("a config that is not JSON, not an object, or has a bad field") {
    std::vector<std::string> args = clip_args(inputs, out);
    args[1] = dir.file("c.json");
    linfuse::testing::write_bytes(dir.file("c.json"), "{\"model_type\": \"clip\",");
    expect_failure(args, out, 1, {"config '" + dir.file("c.json") + "' is not valid JSON"});
    linfuse::testing::write_bytes(dir.file("c.json"), "[1, 2]");
    expect_failure(args, out, 1, {"must be a JSON object"});
    json bad = read_json(fixture("clip.json"));
    bad["vision_config"]["hidden_size"] = "eight";
    write_json(dir.file("c.json"), bad);
    expect_failure(args, out, 1, {"hidden_size", "wrong type"});
    bad["vision_config"]["hidden_size"] = 9;   // 2 heads
    write_json(dir.file("c.json"), bad);
    expect_failure(args, out, 1, {"hidden_size 9 is not divisible by num_attention_heads 2"});
    args[1] = dir.file("missing.json");
    expect_failure(args, out, 1, {"cannot open", dir.file("missing.json")});
  }
  SECTION("an unknown model name") {
    write_json(dir.file("c.json"), {{"model", "clipp"}, {"config", read_json(fixture("clip.json"))}});
    std::vector<std::string> args = clip_args(inputs, out);
    args[1] = dir.file("c.json");
    expect_failure(args, out, 1, {"unknown model 'clipp'", "clip_vision, clip_text, clip, t5"});
    args = clip_args(inputs, out);
    args.insert(args.end(), {"--model", "vit"});
    expect_failure(args, out, 1, {"unknown model 'vit'"});
    args = clip_args(inputs, out);
    args.insert(args.end(), {"--model", "t5"});
    expect_failure(args, out, 1, {"model_type 'clip'", "cannot run as --model t5"});
  }
  SECTION("a tangent of an unknown parameter or of the wrong shape") {
    auto t = edited(dir, "clip_tangents.safetensors", "t.safetensors", [](StateDict& s) { s.insert("vision_model.q_proj.weight", Tensor::zeros({1})); });
    std::vector<std::string> args = clip_args(inputs, out);
    args.insert(args.end(), {"--tangents", t});
    expect_failure(args, out, 1, {"'vision_model.q_proj.weight' is not a parameter"});
    auto u = edited(dir, "clip_tangents.safetensors", "u.safetensors", [](StateDict& s) { s.set("logit_scale", Tensor::zeros({1})); });
    args.back() = u;
    expect_failure(args, out, 1, {"logit_scale is (1,) but the parameter is ()"});
  }
  SECTION("losses: unknown, unavailable, or without --grads") {
    std::vector<std::string> args = clip_args(inputs, out);
    args.insert(args.end(), {"--loss", "cross_entropy", "--grads"});
    expect_failure(args, out, 1, {"unknown loss 'cross_entropy' for clip", "clip_loss, sum_of_image_embeds"});
    args = clip_args(inputs, out);
    args.push_back("--grads");
    expect_failure(args, out, 2, {"--grads needs --loss"});
    auto t5_inputs = edited(dir, "t5_inputs.safetensors", "t5.safetensors", [](StateDict& t) {
      t.insert("decoder_input_ids", t.at("input_ids"));
      t.erase("labels");
      t.erase("decoder_attention_mask");
    });
    expect_failure({"--config", fixture("t5.json"), "--weights", fixture("t5_weights.safetensors"), "--inputs", t5_inputs,
                    "--out", out, "--loss", "cross_entropy", "--grads"},
                   out, 1, {"needs the output 'loss'", "written only when labels are given"});
  }
  SECTION("bad options") {
    expect_failure({"--config", fixture("clip.json")}, out, 2, {"missing --weights"});
    std::vector<std::string> args = clip_args(inputs, out);
    args.insert(args.end(), {"--dtype", "float16"});
    expect_failure(args, out, 2, {"--dtype must be float32 or float64"});
    args = clip_args(inputs, out);
    args.insert(args.end(), {"--threads", "-2"});
    expect_failure(args, out, 2, {"--threads must be 0"});
    args = clip_args(inputs, dir.path().string());
    CliRun run = run_forward(args);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("is a directory") != std::string::npos);
    CHECK(dir.listing().empty());
  }
  SECTION("an existing output file is left as it was") {
    linfuse::testing::write_bytes(out, "previous contents");
    auto w = edited(dir, "clip_weights.safetensors", "w.safetensors", [](StateDict& t) { t.erase("logit_scale"); });
    CliRun run = run_forward(with_weights(w));
    CHECK(run.exit_code == 1);
    CHECK(linfuse::testing::read_bytes(out) == "previous contents");
    CHECK(dir.listing() == std::vector<std::string>{"out.safetensors", "w.safetensors"});   // no temporary left behind
  }
}

// Regression (issue 18, finding 1): --out naming an input replaced that input and exited 0. The inputs here are
// copies, so that the fixtures survive a build without the check.
TEST_CASE("linfuse forward refuses an --out that is one of its inputs, also through a symlink or a hard link",
          "[forward_cli]") {
  ScratchDir dir("forward_cli_same");
  for (const char* name : {"clip.json", "clip_weights.safetensors", "clip_inputs.safetensors", "clip_tangents.safetensors"})
    std::filesystem::copy_file(fixture(name), dir.file(name));
  const std::string config = dir.file("clip.json"), weights = dir.file("clip_weights.safetensors"),
                    inputs = dir.file("clip_inputs.safetensors"), tangents = dir.file("clip_tangents.safetensors");
  std::filesystem::create_symlink(inputs, dir.file("inputs_link.safetensors"));
  std::filesystem::create_hard_link(config, dir.file("config_link.json"));
  const std::vector<std::pair<std::string, std::string>> cases = {{weights, "--weights"},
                                                                  {dir.file("inputs_link.safetensors"), "--inputs"},
                                                                  {dir.file("config_link.json"), "--config"},
                                                                  {tangents, "--tangents"}};
  for (const auto& [out, flag] : cases) {
    INFO("--out " << out);
    const std::string before = linfuse::testing::read_bytes(out);
    CliRun run = run_forward({"--config", config, "--weights", weights, "--inputs", inputs, "--tangents", tangents, "--out", out});
    INFO(run.err);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("is the file of " + flag) != std::string::npos);
    CHECK(run.err.find("write the output elsewhere") != std::string::npos);
    CHECK(linfuse::testing::read_bytes(out) == before);
  }
}

// Regression (issue 18, finding 5): transformers saves the position_ids buffers as I64; the dtype check ran before
// the documented skip and refused such checkpoints.
TEST_CASE("linfuse forward skips I64 position_ids buffers as transformers saves them", "[forward_cli]") {
  ScratchDir dir("forward_cli_position_ids");
  auto weights = edited(dir, "clip_weights.safetensors", "w.safetensors", [](StateDict& t) {
    t.insert("text_model.embeddings.position_ids", Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {1, 8}));
    t.insert("vision_model.embeddings.position_ids", Tensor::from_vector<int64_t>({0, 1, 2, 3, 4}, {1, 5}));
  });
  const std::string out = dir.file("out.safetensors");
  std::vector<std::string> args = clip_args(fixture("clip_inputs.safetensors"), out);
  args[3] = weights;
  CliRun run = run_forward(args);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.find("skipped text_model.embeddings.position_ids") != std::string::npos);
  CHECK(run.err.find("skipped vision_model.embeddings.position_ids") != std::string::npos);
  StateDict actual = load_safetensors(out), expected = load_safetensors(fixture("clip_expected_f32.safetensors"));
  CHECK(linfuse::testing::max_abs_diff(actual.at("logits_per_text"), expected.at("logits_per_text")) <
        1e-4 * max_abs(expected.at("logits_per_text")));
}

// Regression (issue 18, finding 10): the model was built (and its placeholder weights drawn) before the weights were
// checked -- 1.6 GB and 22 s for a 25M vocabulary before "wrong shape"; a vocabulary of 10^12 printed only
// "std::bad_alloc". Memory is measured, not time: the child's peak resident set (wait4's ru_maxrss).
TEST_CASE("linfuse forward checks the weights against the config before it allocates the model", "[forward_cli]") {
  ScratchDir dir("forward_cli_sizes");
  json config = read_json(fixture("clip.json"));
  const std::string out = dir.file("out.safetensors");
  auto run_with_vocabulary = [&](int64_t vocab_size, double& peak_rss_mb) {
    config["text_config"]["vocab_size"] = vocab_size;
    write_json(dir.file("config.json"), config);
    std::vector<std::string> args = {linfuse_binary(), "forward"};
    for (const auto& a : clip_args(fixture("clip_inputs.safetensors"), out)) args.push_back(a);
    args[3] = dir.file("config.json");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::dup2(pipe_fds[1], 2);
      ::close(pipe_fds[0]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    std::string err;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) err.append(buffer, size_t(n));
    ::close(pipe_fds[0]);
    int status = 0;
    struct rusage usage {};
    ::wait4(child, &status, 0, &usage);
    peak_rss_mb = double(usage.ru_maxrss) / 1024.0;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    return err;
  };
  double peak_mb = 0;
  // 25M x 8 float32 = 800 MB of token embedding: the file's (16, 8) is refused without building it.
  std::string err = run_with_vocabulary(25000000, peak_mb);
  INFO(err);
  CHECK(err.find("text_model.embeddings.token_embedding.weight is (16,8) in the file, (25000000,8) for the config") !=
        std::string::npos);
  CHECK(peak_mb < 400);   // about 20 MB here; the model alone would take 800 MB
  // 10^12 x 8: more than any machine's memory, named as such.
  err = run_with_vocabulary(1000000000000LL, peak_mb);
  INFO(err);
  CHECK(err.find("more than this machine's memory") != std::string::npos);
  CHECK(err.find("text_model.embeddings.token_embedding.weight (1000000000000,8)") != std::string::npos);
  CHECK(err.find("bad_alloc") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out));
}

// Regression (issue 18, finding 11): with every label -100 the loss was written as 0.0; PyTorch's mean cross-entropy
// over no token is NaN, and the reference follows it (with a warning; the gradient is 0, as PyTorch's backward).
TEST_CASE("linfuse forward gives T5's loss as NaN, as PyTorch, when every label is -100", "[forward_cli]") {
  ScratchDir dir("forward_cli_ignored");
  std::string inputs = edited(dir, "t5_inputs.safetensors", "inputs.safetensors", [](StateDict& t) {
    t.set("labels", Tensor::full(t.at("labels").shape(), -100.0, DType::I64));
  });
  const std::string out = dir.file("out.safetensors");
  CliRun run = run_forward({"--config", fixture("t5.json"), "--weights", fixture("t5_weights.safetensors"), "--inputs", inputs,
                            "--out", out, "--loss", "cross_entropy", "--grads"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.find("every label is -100") != std::string::npos);
  StateDict result = load_safetensors(out);
  CHECK(std::isnan(result.at("loss").item()));
  CHECK(max_abs(result.at("grad.shared.weight")) == 0.0);
  CHECK(std::isfinite(max_abs(result.at("logits"))));
}

TEST_CASE("linfuse forward --help lists every model, input, output and loss name", "[forward_cli]") {
  CliRun run = run_forward({"--help"});
  REQUIRE(run.exit_code == 0);
  for (const auto& spec : nn::reference_model_specs()) {
    INFO(spec.name);
    CHECK(run.out.find("  " + spec.name + ": ") != std::string::npos);
    for (const auto& t : spec.inputs) CHECK(run.out.find("in   " + t.name + " ") != std::string::npos);
    for (const auto& t : spec.outputs) CHECK(run.out.find("out  " + t.name + " ") != std::string::npos);
    for (const auto& [loss, _] : spec.losses) CHECK(run.out.find(loss) != std::string::npos);
  }
  for (const std::string phrase : {"grad.<parameter>", "jvp.<output>", "sum_of_<output>", "--tangents", "--dtype"})
    CHECK(run.out.find(phrase) != std::string::npos);
}

TEST_CASE("linfuse forward --list-parameters prints the names and shapes of the fixture's weights", "[forward_cli]") {
  CliRun run = run_forward({"--config", fixture("clip.json"), "--list-parameters"});
  REQUIRE(run.exit_code == 0);
  StateDict weights = load_safetensors(fixture("clip_weights.safetensors"));
  size_t lines = std::count(run.out.begin(), run.out.end(), '\n');
  CHECK(lines == weights.size());
  for (const auto& [name, tensor] : weights) CHECK(run.out.find(name + " " + shape_str(tensor.shape()) + "\n") != std::string::npos);
}
