#!/usr/bin/python3
"""Writes tests/fixtures/peft_adapter/: a small PyTorch model's base weights (base.safetensors), a LoRA adapter in
the Hugging Face PEFT layout (adapter_config.json as PEFT writes it, adapter_model.safetensors with PEFT's keys
"base_model.model.<module>.lora_A.weight"), an input and the adapted model's output (expected.json).
LoRA is applied the way PEFT's lora.Linear does: y = W x + b + (alpha / r) * B A x.
Python's `safetensors` package is not in Debian 12, so the files are written by hand by tools/safetensors_io.py.

Run: /usr/bin/python3 tools/make_peft_fixture.py
"""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

OUT = os.path.join(HERE, "..", "tests", "fixtures", "peft_adapter")
R, ALPHA, D = 4, 16, 8
TARGETS = ["q_proj", "v_proj", "fc1"]


def write_safetensors(path, tensors, metadata=None):
    """Every tensor stored as float32."""
    safetensors_io.save_file({n: t.to(torch.float32) for n, t in tensors.items()}, path, metadata)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj, self.v_proj = nn.Linear(D, D), nn.Linear(D, D)
        self.fc1, self.fc2 = nn.Linear(D, 2 * D), nn.Linear(2 * D, D)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Layer(), Layer()])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()


def forward(net, x, lora):
    def lin(name, module, h):
        y = module(h)
        if name in lora:
            a, b = lora[name]
            y = y + (ALPHA / R) * (h @ a.t() @ b.t())
        return y
    h = x
    for i, layer in enumerate(net.encoder.layers):
        p = f"encoder.layers.{i}."
        h = h + lin(p + "v_proj", layer.v_proj, torch.tanh(lin(p + "q_proj", layer.q_proj, h)))
        h = h + lin(p + "fc2", layer.fc2, F.gelu(lin(p + "fc1", layer.fc1, h)))
    return h


torch.manual_seed(7)
net = Net()
lora = {}
for name, module in net.named_modules():
    if name.split(".")[-1] in TARGETS:
        a = torch.empty(R, module.in_features)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        b = torch.randn(module.out_features, R) * 0.1   # a trained adapter: B is no longer zero
        lora[name] = (a, b)
x = torch.randn(3, D)
with torch.no_grad():
    y = forward(net, x, lora)

os.makedirs(OUT, exist_ok=True)
write_safetensors(os.path.join(OUT, "base.safetensors"), dict(net.state_dict()), {"format": "pt"})
adapter = {}
for name, (a, b) in lora.items():
    adapter[f"base_model.model.{name}.lora_A.weight"] = a
    adapter[f"base_model.model.{name}.lora_B.weight"] = b
write_safetensors(os.path.join(OUT, "adapter_model.safetensors"), adapter, {"format": "pt"})
config = {  # the fields PEFT 0.x writes for a LoraConfig
    "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tiny-test-net", "bias": "none",
    "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
    "layers_to_transform": None, "lora_alpha": ALPHA, "lora_dropout": 0.0, "modules_to_save": None,
    "peft_type": "LORA", "r": R, "rank_pattern": {}, "revision": None, "target_modules": TARGETS,
    "task_type": None, "use_rslora": False,
}
with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
    json.dump(config, f, indent=2)
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"input": {"shape": list(x.shape), "data": x.reshape(-1).tolist()},
               "output": {"shape": list(y.shape), "data": y.reshape(-1).tolist()}}, f)
print("wrote", OUT)
