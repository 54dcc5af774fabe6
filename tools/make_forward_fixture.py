#!/usr/bin/python3
"""Writes the fixture of `linfuse forward` (tests/nn/test_forward_cli.cpp) to tests/fixtures/forward_cli/:

  clip.json, t5.json                      Hugging Face style config.json of a tiny CLIPModel and a tiny T5
  <model>_weights.safetensors             the weights by HF name (float32 values; t5's file is HF's state_dict(),
                                          with the encoder/decoder.embed_tokens aliases of shared.weight)
  <model>_inputs.safetensors              the inputs by the names `linfuse forward --help` lists
  <model>_tangents.safetensors            parameter name -> tangent, for some parameters only (missing = zero)
  <model>_expected_f64.safetensors        PyTorch's outputs, grad.<parameter> of the loss and jvp.<output>
  <model>_expected_f32.safetensors        the same computed in float32
  clip_vision_sum_expected_f64.safetensors   grad.<parameter> of sum(image_embeds) for the vision-side parameters
                                          (the "sum_of_<output>" losses), with image_embeds and its jvp

The expected files hold exactly the tensor names the CLI writes for
  clip: --loss clip_loss --grads --tangents clip_tangents.safetensors
  t5:   --loss cross_entropy --grads --tangents t5_tangents.safetensors

The reference models are the ones of tools/make_clip_fixtures.py and tools/make_t5_fixtures.py (written after
Hugging Face's modeling_clip.py and modeling_t5.py; `transformers` is not needed), imported from there. The T5
loss follows HF: cross_entropy(ignore_index=-100), so a label equal to pad_token_id is a target (row 0 has one).
Weights, inputs and tangents hold float32 values, so the float32 and float64 runs start from the same numbers.
JVPs are functorch.jvp through functional_call of the whole model.

Run: /usr/bin/python3 tools/make_forward_fixture.py   (Debian's python3-torch; writes about 150 KB)
"""
import json
import os
import sys

import functorch
import torch
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_clip_fixtures as clipref  # noqa: E402  (the reference CLIP)
import make_t5_fixtures as t5ref  # noqa: E402  (the reference T5)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

OUT = os.path.join(HERE, "..", "tests", "fixtures", "forward_cli")
METADATA = {"generator": "tools/make_forward_fixture.py", "torch": torch.__version__}

CLIP_CONFIG = {
    "model_type": "clip",
    "architectures": ["CLIPModel"],
    "projection_dim": 4,
    "logit_scale_init_value": 2.6592,
    "initializer_factor": 1.0,
    "text_config": {
        "model_type": "clip_text_model", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
        "projection_dim": 4, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 8,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0,
    },
    "vision_config": {
        "model_type": "clip_vision_model", "hidden_size": 8, "intermediate_size": 16, "projection_dim": 4,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_channels": 3, "image_size": 8, "patch_size": 4,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "initializer_range": 0.02,
        "initializer_factor": 1.0,
    },
}

T5_CONFIG = dict(architectures=["T5ForConditionalGeneration"], model_type="t5", vocab_size=20, d_model=8, d_kv=4,
                 num_heads=3, d_ff=12, num_layers=2, num_decoder_layers=2, relative_attention_num_buckets=8,
                 relative_attention_max_distance=16, dropout_rate=0.1, layer_norm_epsilon=1e-6,
                 initializer_factor=1.0, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                 eos_token_id=1, decoder_start_token_id=0)


def to_f32_values(t):
    return t.float().double() if t.is_floating_point() else t


def save(name, tensors, dtype=None):
    """Writes `tensors`; floating ones converted to `dtype` when given (functorch may return a float32 run's
    tangent of a scalar in float64)."""
    if dtype is not None:
        tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    path = os.path.join(OUT, name)
    safetensors_io.save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, METADATA)
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def jvp_of(model, names, tangents, dtype, run):
    """functorch.jvp of run(model with the given parameters) along `tangents` (zero where missing)."""
    params = dict(model.named_parameters())
    primals = tuple(params[n].detach() for n in names)
    directions = tuple(tangents[n].to(dtype) if n in tangents else torch.zeros_like(params[n]) for n in names)
    _, jv = functorch.jvp(lambda *ps: run(dict(zip(names, ps))), primals, directions)
    return jv


# ---------------- CLIP ----------------

def clip_outputs(model, params, inputs):
    """HF CLIPModel's names: image_embeds / text_embeds L2-normalised (CLIPOutput), image_features / text_features
    unnormalised (get_*_features), logits, clip_loss."""
    image, text, logits_per_image, logits_per_text = functional_call(
        model, params, (inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"]))
    return (image / image.norm(p=2, dim=-1, keepdim=True), text / text.norm(p=2, dim=-1, keepdim=True), image, text,
            logits_per_image, logits_per_text, clipref.clip_loss(logits_per_text))


def make_clip(gen):
    reference = clipref.CLIPModel(CLIP_CONFIG).double()
    clipref.randomize(reference, gen)
    weights = {n: to_f32_values(p.detach()) for n, p in reference.named_parameters()}
    names = list(weights)
    # Tangents on every parameter but the text encoder's layers (those stay zero: "missing = zero").
    tangents = {n: to_f32_values(torch.randn(p.shape, generator=gen, dtype=torch.float64))
                for n, p in weights.items() if not n.startswith("text_model.encoder.")}
    inputs = {
        "pixel_values": to_f32_values(torch.randn((3, 3, 8, 8), generator=gen, dtype=torch.float64)),
        # pad 0, bos 1, eos 2. Rows: right padding; full length; left padding and a masked hole.
        "input_ids": torch.tensor([[1, 5, 9, 2, 0, 0],
                                   [1, 3, 15, 6, 7, 2],
                                   [0, 1, 8, 10, 2, 0]], dtype=torch.int64),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0],
                                        [1, 1, 1, 1, 1, 1],
                                        [0, 1, 0, 1, 1, 0]], dtype=torch.int64),
    }
    save("clip_weights.safetensors", {n: w.float() for n, w in weights.items()})
    save("clip_inputs.safetensors", {k: (v.float() if v.is_floating_point() else v) for k, v in inputs.items()})
    save("clip_tangents.safetensors", {n: t.float() for n, t in tangents.items()})
    with open(os.path.join(OUT, "clip.json"), "w") as f:
        json.dump(CLIP_CONFIG, f, indent=2)
        f.write("\n")

    output_names = ["image_embeds", "text_embeds", "image_features", "text_features", "logits_per_image",
                    "logits_per_text", "loss"]
    for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
        model = clipref.CLIPModel(CLIP_CONFIG).to(dtype).eval()
        model.load_state_dict({n: w.to(dtype) for n, w in weights.items()})
        x = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
        params = dict(model.named_parameters())
        outputs = clip_outputs(model, params, x)
        grads = torch.autograd.grad(outputs[-1], [params[n] for n in names])
        jvps = jvp_of(model, names, tangents, dtype, lambda ps: clip_outputs(model, ps, x))
        expected = dict(zip(output_names, outputs))
        expected.update({"grad." + n: g for n, g in zip(names, grads)})
        expected.update({"jvp." + o: j for o, j in zip(output_names, jvps)})
        save(f"clip_expected_{tag}.safetensors", expected, dtype)
        print(f"  clip {tag}: loss {outputs[-1].item():.12f}")

        if dtype == torch.float64:   # clip_vision with --loss sum_of_image_embeds
            vision = [n for n in names if n.startswith("vision_model.") or n == "visual_projection.weight"]

            def image_embeds(ps):   # CLIPVisionModelWithProjection's image_embeds: CLIPModel's image_features
                return clip_outputs(model, {**params, **ps}, x)[2]

            embeds = image_embeds({})
            sum_grads = torch.autograd.grad(embeds.sum(), [params[n] for n in vision])
            sum_expected = {"image_embeds": embeds}
            sum_expected.update({"grad." + n: g for n, g in zip(vision, sum_grads)})
            sum_expected["jvp.image_embeds"] = jvp_of(model, vision, tangents, dtype, image_embeds)
            save("clip_vision_sum_expected_f64.safetensors", sum_expected, dtype)


# ---------------- T5 ----------------

def make_t5(gen):
    c = t5ref.Config(**{k: v for k, v in T5_CONFIG.items() if k not in ("architectures", "model_type")})
    reference = t5ref.T5ForConditionalGeneration(c).double().eval()
    t5ref.init_weights(reference, c, gen)   # rounds to float32 values
    names = [n for n, _ in reference.named_parameters()]   # shared.weight once
    # HF's state_dict(): the embed_tokens aliases of shared.weight included, as torch.save would write them.
    weights = {n: p.detach().clone() for n, p in reference.state_dict().items()}
    assert "encoder.embed_tokens.weight" in weights and "decoder.embed_tokens.weight" in weights
    tangents = {n: to_f32_values(torch.randn(p.shape, generator=gen, dtype=torch.float64))
                for n, p in reference.named_parameters() if n != "lm_head.weight"}   # lm_head: zero tangent
    inputs = {
        "input_ids": torch.tensor([[5, 9, 13, 4, 1], [7, 18, 1, 0, 0]], dtype=torch.int64),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.float32),   # float mask
        # Row 0 has a label equal to pad_token_id (0): a target in HF's loss. Row 1 is padded with -100.
        "labels": torch.tensor([[3, 0, 11, 1], [16, 1, -100, -100]], dtype=torch.int64),
        "decoder_attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.int64),
    }
    save("t5_weights.safetensors", {n: w.float() for n, w in weights.items()})
    save("t5_inputs.safetensors", inputs)
    save("t5_tangents.safetensors", {n: t.float() for n, t in tangents.items()})
    with open(os.path.join(OUT, "t5.json"), "w") as f:
        json.dump(T5_CONFIG, f, indent=2)
        f.write("\n")

    output_names = ["encoder_last_hidden_state", "logits", "loss"]
    for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
        model = t5ref.T5ForConditionalGeneration(c).to(dtype).eval()
        model.load_state_dict({n: w.to(dtype) for n, w in weights.items()})
        params = dict(model.named_parameters())
        args = (inputs["input_ids"], inputs["attention_mask"], inputs["labels"], inputs["decoder_attention_mask"])

        def run(ps):
            return functional_call(model, ps, args)

        outputs = run(params)
        grads = torch.autograd.grad(outputs[-1], [params[n] for n in names])
        jvps = jvp_of(model, names, tangents, dtype, run)
        expected = dict(zip(output_names, outputs))
        expected.update({"grad." + n: g for n, g in zip(names, grads)})
        expected.update({"jvp." + o: j for o, j in zip(output_names, jvps)})
        save(f"t5_expected_{tag}.safetensors", expected, dtype)
        print(f"  t5 {tag}: loss {outputs[-1].item():.12f}")


def main():
    assert sys.byteorder == "little"
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    make_clip(torch.Generator().manual_seed(20240611))
    make_t5(torch.Generator().manual_seed(20240612))


if __name__ == "__main__":
    main()
