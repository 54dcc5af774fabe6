#!/usr/bin/python3
"""Writes tests/fixtures/torch_written.safetensors and torch_written_expected.json: tensors made by PyTorch
(Debian's python3-torch) in F32, F64, F16, BF16, I64, I32 and BOOL, with metadata, laid out exactly as the
reference writer (huggingface/safetensors `serialize`) lays them out. The `safetensors` Python package is not
packaged for Debian, so the format is written by hand (tools/safetensors_io.py):

  - tensors sorted by dtype, largest alignment first (the reference's enum order, descending), then by name;
  - header JSON without spaces, "__metadata__" first, then {"dtype", "shape", "data_offsets"} per tensor;
  - header padded with spaces to a multiple of 8 bytes; data little-endian, row-major.

The JSON gives, per tensor, the dtype, shape and the exact values a reader must produce: float32 bit patterns
(uint32) for F32/F16/BF16 (F16 and BF16 widen exactly), float64 bit patterns (uint64) for F64, integers for
I64/I32/BOOL. Bit patterns keep infinities, NaN, -0 and subnormals exact.

Run: /usr/bin/python3 tools/make_safetensors_fixture.py
"""
import json, os, struct, sys
import torch

torch.manual_seed(20240229)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402  (the fixture scripts' safetensors writer)

FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")

# The reference's dtype order (increasing alignment); its writer sorts by this, descending.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
               "I64", "U64"]
TORCH_DTYPE = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL"}

inf, nan = float("inf"), float("nan")
TENSORS = {
    "encoder.layers.0.fc1.weight": torch.randn(3, 5),
    "encoder.layers.0.fc1.bias": torch.randn(5),
    "logit_scale": torch.tensor(2.6592),                      # rank 0
    "empty_rows": torch.zeros(0, 3),                          # zero elements
    "double_values": torch.tensor([1.0 / 3.0, -1e-300, 1e300], dtype=torch.float64),
    # float16: normal, max, smallest subnormal, a subnormal, -0, +-inf, NaN, a value that rounds
    "half.weight": torch.tensor([[1.0, -2.5, 65504.0], [5.960464477539063e-08, 3.0e-06, -0.0],
                                 [inf, -inf, nan], [0.1, 1000.1, -7.25]], dtype=torch.float16),
    # bfloat16: float32's range with 8 mantissa bits
    "bf16.weight": torch.tensor([3.140625, -1e30, 1e-38, inf, nan, -0.0, 0.3333], dtype=torch.bfloat16),
    "bf16.random": torch.randn(2, 3).to(torch.bfloat16),
    "position_ids": torch.arange(7, dtype=torch.int64).reshape(1, 7),
    "token_counts": torch.tensor([0, -1, 2147483647, -2147483648], dtype=torch.int32),
    "attention_mask": torch.tensor([[True, False, True]]),
}
METADATA = {"format": "pt", "written_by": "tools/make_safetensors_fixture.py"}


def expected_values(t):
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return [struct.unpack("<I", struct.pack("<f", x))[0] for x in t.float().reshape(-1).tolist()]
    if t.dtype == torch.float64:
        return [struct.unpack("<Q", struct.pack("<d", x))[0] for x in t.reshape(-1).tolist()]
    return [int(x) for x in t.reshape(-1).tolist()]


def main():
    names = sorted(TENSORS, key=lambda n: (-DTYPE_ORDER.index(TORCH_DTYPE[TENSORS[n].dtype]), n))
    safetensors_io.save_file({n: TENSORS[n] for n in names}, os.path.join(FIXTURES, "torch_written.safetensors"),
                             METADATA)

    expected = {"metadata": METADATA, "order": names, "tensors": {
        n: {"dtype": TORCH_DTYPE[TENSORS[n].dtype], "shape": list(TENSORS[n].shape), "values": expected_values(TENSORS[n])}
        for n in names}}
    with open(os.path.join(FIXTURES, "torch_written_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
