#include <catch2/catch.hpp>

#include "autodiff/ops.h"
#include "nn/layers.h"
#include "nn/module.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {
struct Block : Module {
  std::shared_ptr<Linear> q_proj, fc;
  std::shared_ptr<LayerNorm> norm;
  Tensor scale;
  Block(Generator& g) {
    q_proj = register_module("q_proj", std::make_shared<Linear>(4, 4, true, g));
    norm = register_module("norm", std::make_shared<LayerNorm>(4));
    fc = register_module("fc", std::make_shared<Linear>(4, 2, false, g));
    scale = Tensor::ones({1});
    register_buffer("scale", scale);
  }
};
struct Net : Module {
  std::shared_ptr<ModuleList<Block>> layers;
  Net(Generator& g) {
    layers = register_module("layers", std::make_shared<ModuleList<Block>>());
    layers->push_back(std::make_shared<Block>(g));
    layers->push_back(std::make_shared<Block>(g));
  }
};
}  // namespace

TEST_CASE("parameters get hierarchical Hugging Face style names in registration order", "[nn][module]") {
  Generator g(0);
  Net net(g);
  auto names = net.state_dict().names();
  REQUIRE(names.size() == 12);   // 5 parameters and 1 buffer per block
  CHECK(names[0] == "layers.0.q_proj.weight");
  CHECK(names[1] == "layers.0.q_proj.bias");
  CHECK(names[4] == "layers.0.fc.weight");
  CHECK(names.back() == "layers.1.scale");
  CHECK(net.num_parameters() == 2 * (16 + 4 + 4 + 4 + 8));
  CHECK(net.find_module("layers.1.norm") == net.layers->operator[](1)->norm);
  CHECK(net.find_module("layers.2") == nullptr);
}

TEST_CASE("freezing by glob or regex changes which parameters are trainable", "[nn][module]") {
  Generator g(0);
  Net net(g);
  CHECK(net.freeze("*") == 10);
  CHECK(net.num_parameters(true) == 0);
  CHECK(net.unfreeze("*.q_proj.*") == 4);
  CHECK(net.num_parameters(true) == 2 * 20);
  CHECK(net.unfreeze("re:layers\\.1\\.fc\\.weight") == 1);
  CHECK(net.trainable_parameters().back().name == "layers.1.fc.weight");
  CHECK(name_matches("*.q_proj.*", "vision_model.encoder.layers.0.self_attn.q_proj.weight"));
  CHECK_FALSE(name_matches("re:q_proj", "a.q_proj.weight"));   // regexes match the whole name
}

TEST_CASE("load_state_dict copies in place and lists every mismatch", "[nn][module]") {
  Generator g(0), h(1);
  Net a(g), b(h);
  Tensor w = a.layers->operator[](0)->q_proj->weight;   // a handle held elsewhere (an optimizer, say)
  a.load_state_dict(b.state_dict());
  CHECK(w.to_vector<float>() == b.layers->operator[](0)->q_proj->weight.to_vector<float>());
  StateDict bad = b.state_dict();
  bad.erase("layers.0.fc.weight");
  bad.set("layers.1.norm.bias", Tensor::zeros({5}));
  bad.insert("extra.weight", Tensor::zeros({1}));
  try {
    a.load_state_dict(bad);
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("shape differs (1): layers.1.norm.bias (5,) vs model (4,)"));
    CHECK_THAT(msg, Catch::Contains("missing from the state (1): layers.0.fc.weight"));
    CHECK_THAT(msg, Catch::Contains("not in the model (1): extra.weight"));
  }
}

namespace {
struct ScaleAdapter : LinearAdapter {
  std::shared_ptr<Linear> extra;
  ScaleAdapter(Generator& g, int64_t in, int64_t out) { extra = register_module("lora_A", std::make_shared<Linear>(in, out, false, g)); }
  Tensor adapt(const Tensor& x, const Tensor& y) override { return add(y, extra->forward(x)); }
};
}  // namespace

TEST_CASE("a Linear adapter's parameters are named under the Linear, and removing it restores the layer", "[nn][module]") {
  Generator g(3);
  Net net(g);
  auto q = net.layers->operator[](0)->q_proj;
  Tensor x = g.normal({2, 4});
  Tensor before = q->forward(x);
  q->set_adapter(std::make_shared<ScaleAdapter>(g, 4, 4));
  CHECK(net.state_dict().contains("layers.0.q_proj.lora_A.weight"));
  Tensor after = q->forward(x);
  Tensor expect = add(before, q->adapter()->children()[0].second->parameter("weight").defined()
                                  ? linear(x, q->adapter()->children()[0].second->parameter("weight"))
                                  : Tensor());
  CHECK(after.to_vector<float>() == expect.to_vector<float>());
  q->remove_adapter();
  CHECK_FALSE(net.state_dict().contains("layers.0.q_proj.lora_A.weight"));
  CHECK(q->forward(x).to_vector<float>() == before.to_vector<float>());
}
