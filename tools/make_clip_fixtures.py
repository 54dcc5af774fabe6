#!/usr/bin/python3
"""Writes the tiny-CLIP parity fixtures for tests/nn/test_clip_parity.cpp:

  tests/fixtures/clip_parity_config.json       HF-layout config.json of the fixture model
  tests/fixtures/clip_parity_f64.safetensors   weights, inputs, outputs, gradients, JVP in float64
  tests/fixtures/clip_parity_f32.safetensors   the same computed by PyTorch in float32 (same weights, rounded)

The reference model below is written after Hugging Face's modeling_clip.py (CLIPModel and its parts, with HF's
parameter names, pre_layrnorm included); `transformers` is not needed. Its weights are random and perturbed
away from any special values (LayerNorm weights != 1, biases != 0), and the inputs exercise padding on both
sides, a masked hole and a repeated end-of-text token.

Recorded: image and text features, logits_per_image / logits_per_text, HF's clip_loss, the gradient of that loss
for every parameter, a JVP (functorch.jvp) of the image features along random tangents of every vision-side
parameter, and the zero-shot classifier: head weight from prompt templates, logits, cross-entropy loss and its
gradient for every vision_model parameter.

Run: /usr/bin/python3 tools/make_clip_fixtures.py   (Debian's python3-torch; writes < 1 MB)
"""
import json
import math
import os
import sys

import functorch
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

OUT = os.path.join(HERE, "..", "tests", "fixtures")

CONFIG = {
    "model_type": "clip",
    "architectures": ["CLIPModel"],       # unknown to linfuse: must be ignored
    "torch_dtype": "float32",
    "projection_dim": 8,
    "logit_scale_init_value": 2.6592,
    "initializer_factor": 1.0,
    "text_config": {
        "model_type": "clip_text_model", "vocab_size": 24, "hidden_size": 12, "intermediate_size": 24,
        "projection_dim": 8, "num_hidden_layers": 2, "num_attention_heads": 3, "max_position_embeddings": 10,
        "hidden_act": "gelu", "layer_norm_eps": 1e-5, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0,
    },
    "vision_config": {
        "model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32, "projection_dim": 8,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_channels": 3, "image_size": 12, "patch_size": 4,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "initializer_range": 0.02,
        "initializer_factor": 1.0,
    },
}

ACT = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}


# ---------------- the reference model (after HF modeling_clip.py) ----------------

class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.heads, self.head_dim = c["num_attention_heads"], d // c["num_attention_heads"]
        self.scale = self.head_dim ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, mask):
        b, t, d = x.shape
        shape = lambda y: y.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = shape(self.q_proj(x)), shape(self.k_proj(x)), shape(self.v_proj(x))
        w = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if mask is not None:
            w = w + mask
        w = torch.softmax(w, dim=-1)   # in the model's dtype (HF >= 4.48 upcasts to float32 even for float64)
        return self.out_proj(torch.matmul(w, v).transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = ACT[c["hidden_act"]]
        self.fc1 = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.fc2 = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.self_attn = Attention(c)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(c)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.class_embedding = nn.Parameter(torch.randn(d))
        self.patch_embedding = nn.Conv2d(c["num_channels"], d, kernel_size=c["patch_size"], stride=c["patch_size"],
                                         bias=False)
        n = (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.position_embedding = nn.Embedding(n, d)
        self.register_buffer("position_ids", torch.arange(n).expand((1, -1)), persistent=False)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(b, 1, -1), patches], dim=1)
        return x + self.position_embedding(self.position_ids)


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.embeddings = VisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(d, eps=eps)
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(d, eps=eps)

    def forward(self, pixel_values):
        h = self.encoder(self.pre_layrnorm(self.embeddings(pixel_values)))
        return self.post_layernorm(h[:, 0, :])


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])

    def forward(self, input_ids):
        t = input_ids.shape[-1]
        return self.token_embedding(input_ids) + self.position_embedding(torch.arange(t).unsqueeze(0))


class TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.eos_token_id = c["eos_token_id"]
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, input_ids, attention_mask=None):
        h = self.embeddings(input_ids)
        b, t, _ = h.shape
        minimum = torch.finfo(h.dtype).min
        # HF: _create_4d_causal_attention_mask and _prepare_4d_attention_mask (finfo.min, not -inf)
        mask = torch.triu(torch.full((t, t), minimum, dtype=h.dtype), 1)[None, None].expand(b, 1, t, t)
        if attention_mask is not None:
            inverted = 1.0 - attention_mask[:, None, None, :].to(h.dtype).expand(b, 1, t, t)
            mask = mask + inverted.masked_fill(inverted.bool(), minimum)
        h = self.final_layer_norm(self.encoder(h, mask))
        if bool(torch.all(input_ids.max(dim=-1).values == 49407)):
            positions = input_ids.to(torch.int).argmax(dim=-1)
        else:   # HF after PR #24773: the first eos_token_id
            positions = (input_ids.to(torch.int) == self.eos_token_id).int().argmax(dim=-1)
        return h[torch.arange(b), positions]


class CLIPModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.text_model = TextTransformer(c["text_config"])
        self.vision_model = VisionTransformer(c["vision_config"])
        p = c["projection_dim"]
        self.visual_projection = nn.Linear(c["vision_config"]["hidden_size"], p, bias=False)
        self.text_projection = nn.Linear(c["text_config"]["hidden_size"], p, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(c["logit_scale_init_value"]))

    def get_image_features(self, pixel_values):
        return self.visual_projection(self.vision_model(pixel_values))

    def get_text_features(self, input_ids, attention_mask=None):
        return self.text_projection(self.text_model(input_ids, attention_mask))

    def forward(self, pixel_values, input_ids, attention_mask):
        image = self.get_image_features(pixel_values)
        text = self.get_text_features(input_ids, attention_mask)
        image_n = image / image.pow(2).sum(-1, keepdim=True).pow(0.5)
        text_n = text / text.pow(2).sum(-1, keepdim=True).pow(0.5)
        logits_per_text = torch.matmul(text_n, image_n.t()) * self.logit_scale.exp()
        return image, text, logits_per_text.t(), logits_per_text


def clip_loss(similarity):   # HF
    targets = torch.arange(len(similarity))
    return (F.cross_entropy(similarity, targets) + F.cross_entropy(similarity.t(), targets)) / 2.0


# ---------------- weights and inputs ----------------

def randomize(model, gen):
    """HF's init scheme for the shapes, then perturbed so that no parameter sits at a special value."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("layer_norm1.weight") or name.endswith("layer_norm2.weight") or "layrnorm.weight" in name \
                    or "layernorm.weight" in name or "final_layer_norm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif name == "logit_scale":
                p.fill_(2.3)
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:   # projections: fan-in scaled so activations stay O(1)
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in))


WORDS = ["a", "photo", "of", "the", "digit", "zero", "one", "two", "small", "."]   # ids 3..12 (0 pad, 1 bos, 2 eos)
CLASS_NAMES = ["zero", "one", "two"]
TEMPLATES = ["a photo of the digit {}.", "the small {}", "{}"]


def word_ids(text):
    return [3 + WORDS.index(w) for w in text.replace(".", " .").split()]


def tokenize_for_clip(texts, c):
    """As linfuse's tokenize_for_clip: bos + ids + eos, right-padded with pad_token_id."""
    seqs = [[c["bos_token_id"]] + word_ids(t) + [c["eos_token_id"]] for t in texts]
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), c["pad_token_id"], dtype=torch.int64)
    mask = torch.zeros((len(seqs), t), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


def build(dtype, params64, inputs, tangents64):
    model = CLIPModel(CONFIG).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in params64.items()})
    pixel_values = inputs["pixel_values"].to(dtype)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    out = {}

    image, text, logits_per_image, logits_per_text = model(pixel_values, ids, mask)
    loss = clip_loss(logits_per_text)
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()])
    out.update({"output.image_features": image, "output.text_features": text, "output.logits_per_image": logits_per_image,
                "output.logits_per_text": logits_per_text, "output.loss": loss})
    out.update({"grad." + n: g for n, g in zip(names, grads)})

    # JVP of the image features along tangents of every vision-side parameter.
    vision_names = [n for n in names if n.startswith("vision_model.") or n == "visual_projection.weight"]
    params = dict(model.named_parameters())
    primals = tuple(params[n].detach() for n in vision_names)
    tangents = tuple(tangents64[n].to(dtype) for n in vision_names)

    def image_features(*vision_params):
        return model_image_features(model, dict(zip(vision_names, vision_params)), pixel_values)

    _, jv = functorch.jvp(image_features, primals, tangents)
    out["output.image_features_jvp"] = jv
    out.update({"tangent." + n: t for n, t in zip(vision_names, tangents)})

    # Zero-shot head and the image classifier (vision tower + projection + normalise + frozen head).
    with torch.no_grad():
        prompts = [t.replace("{}", c) for c in CLASS_NAMES for t in TEMPLATES]
        p_ids, p_mask = tokenize_for_clip(prompts, CONFIG["text_config"])
        text_emb = normalize(model.get_text_features(p_ids, p_mask)).view(len(CLASS_NAMES), len(TEMPLATES), -1)
        head = normalize(text_emb.mean(dim=1)) * model.logit_scale.exp()
    logits = F.linear(normalize(model.get_image_features(pixel_values)), head)
    cls_loss = F.cross_entropy(logits, inputs["labels"])
    tower = [(n, p) for n, p in model.named_parameters() if n.startswith("vision_model.")]
    cls_grads = torch.autograd.grad(cls_loss, [p for _, p in tower])
    out.update({"output.head_weight": head, "output.classifier_logits": logits, "output.classifier_loss": cls_loss})
    out.update({"classifier_grad." + n: g for (n, _), g in zip(tower, cls_grads)})

    tensors = {n: p.detach() for n, p in model.named_parameters()}
    tensors.update({"input." + k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()})
    tensors.update({k: v.detach() for k, v in out.items()})
    return tensors, names


def model_image_features(model, vision_params, pixel_values):
    """visual_projection(vision_model(pixel_values)) with the given vision-side parameters (for functorch.jvp)."""
    tower = {k[len("vision_model."):]: v for k, v in vision_params.items() if k.startswith("vision_model.")}
    pooled = functional_call(model.vision_model, tower, (pixel_values,))
    return functional_call(model.visual_projection, {"weight": vision_params["visual_projection.weight"]}, (pooled,))


def main():
    assert sys.byteorder == "little"
    gen = torch.Generator().manual_seed(20240501)
    torch.manual_seed(20240501)
    reference = CLIPModel(CONFIG).to(torch.float64)
    randomize(reference, gen)
    params64 = {n: p.detach().clone() for n, p in reference.named_parameters()}
    tangents64 = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in params64.items()
                  if n.startswith("vision_model.") or n == "visual_projection.weight"}
    inputs = {
        "pixel_values": torch.randn((4, 3, 12, 12), generator=gen, dtype=torch.float64),
        # eos = 2, pad = 0. Rows: right padding; full length with the largest id; left and right padding;
        # a masked hole (position 2) and eos twice (the first one is pooled).
        "input_ids": torch.tensor([[1, 5, 9, 2, 0, 0, 0],
                                   [1, 3, 4, 23, 6, 7, 2],
                                   [0, 0, 1, 8, 10, 2, 0],
                                   [1, 11, 12, 13, 2, 2, 0]], dtype=torch.int64),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0, 0],
                                        [1, 1, 1, 1, 1, 1, 1],
                                        [0, 0, 1, 1, 1, 1, 0],
                                        [1, 1, 0, 1, 1, 0, 0]], dtype=torch.int64),
        "labels": torch.tensor([0, 2, 1, 2], dtype=torch.int64),
    }
    prompt_ids = {t.replace("{}", c): word_ids(t.replace("{}", c)) for c in CLASS_NAMES for t in TEMPLATES}
    with open(os.path.join(OUT, "clip_parity_config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        tensors, names = build(dtype, params64, inputs, tangents64)
        metadata = {"generator": "tools/make_clip_fixtures.py", "torch": torch.__version__,
                    "parameter_names": json.dumps(names), "class_names": json.dumps(CLASS_NAMES),
                    "templates": json.dumps(TEMPLATES), "prompt_ids": json.dumps(prompt_ids)}
        path = os.path.join(OUT, f"clip_parity_{suffix}.safetensors")
        safetensors_io.save_file(tensors, path, metadata)
        print("wrote", path, len(tensors), "tensors,", os.path.getsize(path), "bytes; loss", float(tensors["output.loss"]))


if __name__ == "__main__":
    main()
