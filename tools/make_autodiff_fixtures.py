#!/usr/bin/python3
"""Writes tests/fixtures/autodiff_parity.json: composite functions evaluated by PyTorch (Debian's python3-torch)
on fixed inputs, with the output, the gradient of <cotangent, output> for every input, and the JVP along fixed
tangents (functorch.jvp). linfuse's tests read the file; they never need torch.

Run: /usr/bin/python3 tools/make_autodiff_fixtures.py
"""
import json, math, os
import torch, torch.nn.functional as F
import functorch

torch.manual_seed(1234)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "autodiff_parity.json")


def attention(q, k, v):
    # causal mask and a padded last key for batch 1; -inf everywhere a query may not look
    t = q.shape[-2]
    mask = torch.zeros(q.shape[0], 1, t, t, dtype=q.dtype)
    mask = mask.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    mask[1, :, :, t - 1] = float("-inf")
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
    return torch.softmax(scores, -1) @ v


def mlp_block(x, ln_w, ln_b, w1, b1, w2, b2):
    h = F.layer_norm(x, (x.shape[-1],), ln_w, ln_b, 1e-5)
    return x + F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2)


def mlp_block_tanh(x, ln_w, ln_b, w1, b1, w2, b2):
    h = F.layer_norm(x, (x.shape[-1],), ln_w, ln_b, 1e-5)
    return x + F.linear(F.gelu(F.linear(h, w1, b1), approximate="tanh"), w2, b2)


def t5_norm_ffn(x, g, wi0, wi1, wo):
    # T5 v1.1: RMSNorm (no mean, no bias), gated-GELU feed-forward
    var = x.pow(2).mean(-1, keepdim=True)
    h = x * torch.rsqrt(var + 1e-6) * g
    return F.linear(F.gelu(F.linear(h, wi0), approximate="tanh") * F.linear(h, wi1), wo)


def cross_entropy(logits):
    labels = torch.tensor([3, -100, 0, 4, 4, -100, 1])
    return F.cross_entropy(logits, labels, ignore_index=-100).reshape(1)


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}


def case(name, fn, shapes, dtype, scale=1.0):
    inputs = [torch.randn(*s, dtype=torch.float64) * scale for s in shapes]
    inputs = [x.to(dtype).requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    cot = torch.randn(out.shape, dtype=torch.float64).to(dtype)
    grads = torch.autograd.grad(out, inputs, cot)
    tangents = [torch.randn(x.shape, dtype=torch.float64).to(dtype) for x in inputs]
    _, jv = functorch.jvp(fn, tuple(x.detach() for x in inputs), tuple(tangents))
    return {
        "name": name, "dtype": "float64" if dtype == torch.float64 else "float32",
        "inputs": [tensor_json(x) for x in inputs], "cotangent": tensor_json(cot), "output": tensor_json(out),
        "grads": [tensor_json(g) for g in grads], "tangents": [tensor_json(t) for t in tangents], "jvp": tensor_json(jv),
    }


cases = []
for dtype in (torch.float64, torch.float32):
    cases.append(case("attention", attention, [(2, 3, 5, 4)] * 3, dtype))
    cases.append(case("mlp_block_gelu_erf", mlp_block, [(3, 4, 8), (8,), (8,), (16, 8), (16,), (8, 16), (8,)], dtype, 0.7))
    cases.append(case("mlp_block_gelu_tanh", mlp_block_tanh, [(3, 4, 8), (8,), (8,), (16, 8), (16,), (8, 16), (8,)], dtype, 0.7))
    cases.append(case("t5_rmsnorm_gated_gelu", t5_norm_ffn, [(2, 3, 8), (8,), (12, 8), (12, 8), (8, 12)], dtype, 0.7))
    cases.append(case("cross_entropy_ignore_index", cross_entropy, [(7, 5)], dtype, 3.0))

with open(OUT, "w") as f:
    json.dump({"generator": "tools/make_autodiff_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
print("wrote", OUT, len(cases), "cases")
