#!/usr/bin/python3
"""The PyTorch peer of `train_step_bench --last-block class-token`: ../shared/bench/torch_ref.py's workload with
its last block computing only what the loss reads, the class token's row (keys and values from every token),
as nn::CLIPVisionTransformer::pooled_output does. Everything else (modes, bench(), the command line) is
torch_ref.py's, loaded from LINFUSE_TORCH_REF or ../shared/bench/torch_ref.py beside the repository.
Usage: as torch_ref.py; or as the --torch of train_step_bench with --last-block class-token.
"""
import importlib.util, math, os, sys, time, types
import torch, torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
path = os.environ.get("LINFUSE_TORCH_REF", os.path.join(here, "..", "..", "shared", "bench", "torch_ref.py"))
if not os.path.exists(path):
    sys.exit(f"torch_ref_class_token.py: {path} not found; set LINFUSE_TORCH_REF to the path of torch_ref.py")
spec = importlib.util.spec_from_file_location("torch_ref", path)
torch_ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_ref)
D, H = torch_ref.D, torch_ref.H


def block_class_token(blk, x):
    """Row 0 of blk(x): (B, T, D) -> (B, 1, D)."""
    b, t, _ = x.shape
    h = blk.ln1(x)
    q = blk.q(h[:, :1]).view(b, 1, H, D // H).transpose(1, 2)
    k, v = (m(h).view(b, t, H, D // H).transpose(1, 2) for m in (blk.k, blk.v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), -1) @ v
    x = x[:, :1] + blk.o(a.transpose(1, 2).reshape(b, 1, D))
    return x + blk.fc2(F.gelu(blk.fc1(blk.ln2(x))))


# The ViT's own forward stays torch_ref.py's: its last block returns the class token's row, which x[:, 0] reads.
vit_init = torch_ref.ViT.__init__


def init_with_class_token_last_block(self):
    vit_init(self)
    last = self.blocks[-1]
    last.forward = types.MethodType(block_class_token, last)


torch_ref.ViT.__init__ = init_with_class_token_last_block


def bench(mode, steps=12):
    # bench/torch_lockstep.py replaces this module's `time` with its clock; torch_ref's loop reads torch_ref's own.
    torch_ref.time = time
    return torch_ref.bench(mode, steps)

if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    for mode in sys.argv[2:] or ("fft", "lora", "llora", "lfft"):
        print(f"{mode} threads={torch.get_num_threads()} step_s={bench(mode):.4f}", flush=True)
