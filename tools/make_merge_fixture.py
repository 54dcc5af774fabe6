#!/usr/bin/python3
"""Writes tests/fixtures/merge_tool/: small checkpoints and PEFT adapters for `linfuse merge`, and the merges computed
here in PyTorch (expected.json) that tests/merge/test_merge_tool.cpp compares the tool's output with (to 1e-6).

  base.safetensors, a/b/c.safetensors          float32 checkpoints (+ an int64 tensor the tool copies unchanged)
  base_f16.safetensors, a/b/c_f16.safetensors  the same in float16
  lora_a/, lora_b/                             LoRA adapters in the HF PEFT layout with adapter_initial.safetensors
  lora_base.safetensors                        the full model the adapters' Delta W is added to
  expected.json                                per case: the tool's config and the expected tensors (flattened)

The references are written from the papers, independently of the C++ code:
  task arithmetic  theta0 + lambda sum_t tau_t                      (Ilharco et al. 2023)
  TIES             trim each tau_t to its top-k magnitudes, elect the sign of the summed (or counted) trimmed values
                   (0 -> the majority sign, +1 if that is 0 too), mean (or sum) of the agreeing entries, times lambda,
                   plus theta0 (Yadav et al. 2023). The trim keeps exactly floor(k n) entries -- linfuse's documented
                   count (merge/ties.h; the reference code keeps one more); magnitudes here are distinct, so the set is
                   unambiguous.
  LoRA             weight space: W0 + lambda sum_t s (B_t A_t - B0 A0); adapter space: phi0 + lambda sum_t (phi_t - phi0)
Values follow linfuse's rounding (tau and the merged delta stored as float32, the sum rounded once), computed in
float64; the tests allow 1e-6.
Python's `safetensors` package is not in Debian 12, so files are written by hand by tools/safetensors_io.py.

Run: /usr/bin/python3 tools/make_merge_fixture.py
"""
import json, math, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

OUT = os.path.join(HERE, "..", "tests", "fixtures", "merge_tool")


def f32(x):   # round to float32, back to float64 for arithmetic
    return x.to(torch.float32).to(torch.float64)


def flat(sd):
    return {name: [float(v) for v in t.to(torch.float64).flatten()] for name, t in sd.items()}


# ---- checkpoints ----
LAYOUT = [("encoder.layers.0.fc.weight", (8, 6)), ("encoder.layers.0.fc.bias", (8,)), ("encoder.norm.weight", (6,)),
          ("head.weight", (4, 8)), ("logit_scale", ())]


def checkpoints(gen):
    base = {name: torch.randn(shape, generator=gen, dtype=torch.float64).to(torch.float32) for name, shape in LAYOUT}
    models = []
    for _ in range(3):
        while True:   # distinct task-vector magnitudes, so the top-k set is unambiguous
            m = {name: (t.double() + 0.1 * torch.randn(t.shape, generator=gen, dtype=torch.float64)).to(torch.float32)
                 for name, t in base.items()}
            mags = torch.cat([(m[n].double() - base[n].double()).abs().flatten() for n, _ in LAYOUT])
            if len(set(f32(mags).tolist())) == mags.numel():
                break
        models.append(m)
    return base, models


def task_vectors(base, models):
    return [{n: f32(m[n].double() - base[n].double()) for n, _ in LAYOUT} for m in models]


def apply(base, merged, dtype=torch.float32):
    return {n: (base[n].double() + f32(merged[n])).to(dtype) for n, _ in LAYOUT}


def task_arithmetic(base, models, lam):
    taus = task_vectors(base, models)
    merged = {n: sum(lam * tau[n] for tau in taus) for n, _ in LAYOUT}
    return apply(base, merged)


def ties(base, models, keep, lam, sign="mass", trim="global", aggregation="mean"):
    taus = task_vectors(base, models)
    names = [n for n, _ in LAYOUT]
    flats = [torch.cat([tau[n].flatten() for n in names]) for tau in taus]
    sizes = [taus[0][n].numel() for n in names]
    trimmed = []
    for v in flats:
        kept = torch.zeros_like(v)
        segments = [(0, v.numel())] if trim == "global" else \
            [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]
        for b, e in segments:
            k = int(math.floor(keep * (e - b) + 1e-9))
            if k > 0:
                idx = torch.topk(v[b:e].abs(), k).indices + b
                kept[idx] = v[idx]
        trimmed.append(kept)
    stack = torch.stack(trimmed)
    total = stack.sum(0) if sign == "mass" else torch.sign(stack).sum(0)
    elected = torch.sign(total)
    majority = torch.sign(elected.sum())
    if majority == 0:
        majority = torch.tensor(1.0, dtype=torch.float64)
    elected[elected == 0] = majority
    agree = (stack != 0) & (torch.sign(stack) == elected)
    summed = (stack * agree).sum(0)
    count = agree.sum(0)
    agg = torch.where(count > 0, summed / count.clamp(min=1), torch.zeros_like(summed)) if aggregation == "mean" else summed
    merged_flat = lam * agg
    merged, offset = {}, 0
    for n, size in zip(names, sizes):
        merged[n] = merged_flat[offset:offset + size].reshape(taus[0][n].shape)
        offset += size
    return apply(base, merged)


# ---- LoRA adapters ----
MODULES = [("layers.0.q_proj", 6, 6), ("layers.0.v_proj", 6, 6), ("layers.0.fc1", 6, 10)]
RANK, ALPHA = 2, 4.0
SCALING = ALPHA / RANK


def adapters(gen):
    initial = {}
    for module, fan_in, fan_out in MODULES:
        bound = 1.0 / math.sqrt(fan_in)   # PEFT's default: A kaiming-uniform, B = 0
        initial[module + ".lora_A.weight"] = ((torch.rand((RANK, fan_in), generator=gen, dtype=torch.float64) * 2 - 1)
                                              * bound).to(torch.float32)
        initial[module + ".lora_B.weight"] = torch.zeros((fan_out, RANK), dtype=torch.float32)
    trained = []
    for _ in range(2):
        trained.append({n: (t.double() + 0.2 * torch.randn(t.shape, generator=gen, dtype=torch.float64)).to(torch.float32)
                        for n, t in initial.items()})
    base = {}
    for module, fan_in, fan_out in MODULES:
        base[module + ".weight"] = torch.randn((fan_out, fan_in), generator=gen, dtype=torch.float64).to(torch.float32)
        base[module + ".bias"] = torch.randn((fan_out,), generator=gen, dtype=torch.float64).to(torch.float32)
    base["embed.weight"] = torch.randn((12, 6), generator=gen, dtype=torch.float64).to(torch.float32)
    base["position_ids"] = torch.arange(5, dtype=torch.int64).reshape(1, 5)
    return initial, trained, base


def peft_config():
    return {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": "lora_base.safetensors", "r": RANK,
            "lora_alpha": ALPHA, "lora_dropout": 0.0, "use_rslora": False,
            "target_modules": [m for m, _, _ in MODULES], "bias": "none", "fan_in_fan_out": False,
            "modules_to_save": None, "inference_mode": True, "init_lora_weights": True,
            "linfuse": {"init": "peft", "init_seed": 0, "compensate_base": True, "mode": "standard"}}


def prefixed(sd):
    return {"base_model.model." + n: t for n, t in sd.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20240229)
    cases = {}

    base, models = checkpoints(gen)
    position_ids = torch.arange(5, dtype=torch.int64).reshape(1, 5)
    safetensors_io.save_file({**base, "position_ids": position_ids}, os.path.join(OUT, "base.safetensors"),
                             {"format": "pt"})
    for name, m in zip("abc", models):
        safetensors_io.save_file({**m, "position_ids": position_ids}, os.path.join(OUT, name + ".safetensors"),
                                 {"format": "pt"})
    names = ["a.safetensors", "b.safetensors", "c.safetensors"]

    def case(key, config, expected, dtype="F32"):
        config = dict(config, output="out/" + key + ".safetensors")
        cases[key] = {"config": config, "dtype": dtype, "expected": flat(expected)}

    case("task_arithmetic", {"method": "task_arithmetic", "base": "base.safetensors", "models": names,
                             "hyperparameters": {"lambda": 0.3}}, task_arithmetic(base, models, 0.3))
    avg = {n: sum((1.0 / 3.0) * m[n].double() for m in models).to(torch.float32) for n, _ in LAYOUT}
    case("simple_average", {"method": "simple_average", "models": names}, avg)   # no base: sum_t (1/3) theta_t
    weights = [0.5, 0.3, 0.2]
    taus = task_vectors(base, models)
    weighted = apply(base, {n: sum(w * tau[n] for w, tau in zip(weights, taus)) for n, _ in LAYOUT})
    case("weighted_average", {"method": "weighted_average", "base": "base.safetensors",
                              "models": [{"path": p, "weight": w} for p, w in zip(names, weights)]}, weighted)
    case("ties_global", {"method": "ties", "base": "base.safetensors",
                         "models": [{"path": p, "weight": 1.0} for p in names],
                         "hyperparameters": {"keep": 0.2, "lambda": 1.0, "sign": "mass", "trim": "global"}},
         ties(base, models, 0.2, 1.0))
    case("ties_per_tensor_count_sum", {"method": "ties", "base": "base.safetensors", "models": names,
                                       "hyperparameters": {"keep": 0.3, "lambda": 0.7, "sign": "count",
                                                           "trim": "per-tensor", "aggregation": "sum"}},
         ties(base, models, 0.3, 0.7, sign="count", trim="per-tensor", aggregation="sum"))
    # DARE with p = 0 drops nothing: exactly task arithmetic (the random masks are tested by their statistics in C++).
    case("dare_p0_task_arithmetic", {"method": "dare", "base": "base.safetensors", "models": names,
                                     "hyperparameters": {"drop": 0.0, "seed": 7, "combine": "task_arithmetic",
                                                         "lambda": 0.3}}, task_arithmetic(base, models, 0.3))

    # float16 inputs: computed in float32, stored back in float16.
    base16 = {n: t.to(torch.float16) for n, t in base.items()}
    models16 = [{n: t.to(torch.float16) for n, t in m.items()} for m in models]
    safetensors_io.save_file(base16, os.path.join(OUT, "base_f16.safetensors"))
    for name, m in zip("abc", models16):
        safetensors_io.save_file(m, os.path.join(OUT, name + "_f16.safetensors"))
    as32 = lambda sd: {n: t.to(torch.float32) for n, t in sd.items()}
    ta16 = {n: t.to(torch.float16) for n, t in task_arithmetic(as32(base16), [as32(m) for m in models16], 0.3).items()}
    case("task_arithmetic_f16", {"method": "task_arithmetic", "base": "base_f16.safetensors",
                                 "models": ["a_f16.safetensors", "b_f16.safetensors", "c_f16.safetensors"],
                                 "hyperparameters": {"lambda": 0.3}}, ta16, dtype="F16")

    # LoRA adapters.
    initial, trained, lora_base = adapters(gen)
    for name, adapter in zip(["lora_a", "lora_b"], trained):
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "adapter_config.json"), "w") as f:
            json.dump(peft_config(), f, indent=2)
        for file, tensors in (("adapter_model.safetensors", adapter), ("adapter_initial.safetensors", initial)):
            safetensors_io.save_file(prefixed(tensors), os.path.join(folder, file), {"format": "pt"})
    safetensors_io.save_file(lora_base, os.path.join(OUT, "lora_base.safetensors"))
    lam = 0.5
    weight_space = {}
    for n, t in lora_base.items():
        module = n[:-len(".weight")]
        if n.endswith(".weight") and module + ".lora_A.weight" in initial:
            a0, b0 = initial[module + ".lora_A.weight"].double(), initial[module + ".lora_B.weight"].double()
            delta = sum(lam * f32(SCALING * (ad[module + ".lora_B.weight"].double() @ ad[module + ".lora_A.weight"].double()
                                            - b0 @ a0)) for ad in trained)
            weight_space[n] = (t.double() + f32(delta)).to(torch.float32)
        else:
            weight_space[n] = t
    cases["lora_weight_space"] = {
        "config": {"method": "task_arithmetic", "models": ["lora_a", "lora_b"], "space": "weight",
                   "base": "lora_base.safetensors", "hyperparameters": {"lambda": lam},
                   "output": "out/lora_weight_space.safetensors"},
        "dtype": "F32", "expected": flat(weight_space)}
    adapter_space = {n: (t.double() + f32(sum(lam * f32(ad[n].double() - t.double()) for ad in trained))).to(torch.float32)
                     for n, t in initial.items()}
    cases["lora_adapter_space"] = {
        "config": {"method": "task_arithmetic", "models": ["lora_a", "lora_b"], "space": "parameter",
                   "hyperparameters": {"lambda": lam}, "output": "out/lora_adapter_space"},
        "dtype": "F32", "expected": flat(prefixed(adapter_space))}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"generator": "tools/make_merge_fixture.py", "torch": torch.__version__, "cases": cases}, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
