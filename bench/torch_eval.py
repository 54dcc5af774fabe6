#!/usr/bin/python3
"""Evaluation counterpart of ../shared/bench/torch_ref.py (whose model it uses): the forward pass of the
reference ViT without autograd (eval), and the forward of the network-level linearized LoRA model through
functorch.jvp without autograd (eval-llora), as linfuse's train_step_bench times them.
Usage: torch_eval.py PATH/torch_ref.py THREADS [MODE ...]   (Debian's python3-torch; run with /usr/bin/python3)
Prints one line per mode: mode, threads, median step seconds (12 steps, the first 2 dropped).
As a module: set `ref` to the loaded torch_ref module, then call bench(mode, steps).
"""
import importlib.util, sys, time, statistics

ref = None  # the torch_ref module


def load_ref(path):
    spec = importlib.util.spec_from_file_location("torch_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(mode, steps=12):
    torch = ref.torch
    torch.manual_seed(0)
    model = ref.ViT()
    x = torch.randn(ref.B, ref.IMG, ref.IMG)
    if mode == "eval":
        forward = model
    elif mode == "eval-llora":
        model = ref.lora_wrap(model)
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params0 = tuple(dict(model.named_parameters())[n].detach().clone() for n in names)
        params = [p.clone() for p in params0]
        def forward(inp):
            dp = tuple(p - p0 for p, p0 in zip(params, params0))
            call = lambda *pp: ref.functional_call(model, dict(zip(names, pp)), (inp,))
            out, jv = ref.functorch.jvp(call, params0, dp)
            return out + jv
    else:
        raise SystemExit(f"torch_eval.py: unknown mode {mode}")
    times = []
    with torch.no_grad():
        for _ in range(steps):
            t = time.perf_counter()
            forward(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


if __name__ == "__main__":
    ref = load_ref(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ref.torch.set_num_threads(threads)
    for mode in sys.argv[3:] or ("eval", "eval-llora"):
        print(f"{mode} threads={ref.torch.get_num_threads()} step_s={bench(mode):.4f}", flush=True)
