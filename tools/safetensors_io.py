"""The safetensors writer of the fixture scripts in tools/ (make_clip_fixtures.py, make_forward_fixture.py,
make_merge_fixture.py, make_peft_fixture.py, make_safetensors_fixture.py, make_t5_fixtures.py).

Python's `safetensors` package is not in Debian 12, so the format is written here by hand, the way
huggingface/safetensors `serialize` lays it out:

  - 8 bytes: the header's length in bytes, unsigned little-endian;
  - the header: JSON without spaces, "__metadata__" first (only when metadata is given, None omits it), then
    {"dtype", "shape", "data_offsets"} per tensor in the order of `tensors` (a caller that wants the reference
    writer's order, largest alignment first, passes the tensors in that order);
  - the header padded with spaces to a multiple of 8 bytes, so that the data starts 8-aligned;
  - the tensors' data back to back, row-major, little-endian, no padding between tensors.

Every fixture script wrote exactly this layout with its own copy of the writer before this module; the committed
fixtures under tests/fixtures/ are byte-identical when regenerated through it. Only the writer is here: no script
reads safetensors (the C++ tests do).

Import it from a script in tools/ with
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import safetensors_io
so that `python3 tools/make_x.py` works from any directory.
"""
import json
import struct
import sys

# numpy / torch dtype name -> safetensors dtype code
DTYPE_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
               "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16",
               "uint8": "U8", "bool": "BOOL"}


def _encode(t):
    """The safetensors dtype code, the shape and the raw little-endian row-major bytes of a torch tensor or an
    array-like."""
    if hasattr(t, "detach") and hasattr(t, "numpy"):   # a torch.Tensor (torch is imported only by its users)
        if sys.byteorder != "little":
            raise ValueError("safetensors_io: torch tensors are written from memory, which needs a little-endian host")
        t = t.detach().contiguous()
        name = str(t.dtype).replace("torch.", "")
        if name == "bfloat16":   # numpy has no bfloat16: reinterpret the bits
            import torch
            return DTYPE_CODES[name], list(t.shape), t.view(torch.int16).numpy().tobytes()
        return DTYPE_CODES[name], list(t.shape), t.numpy().tobytes()
    import numpy as np
    a = np.asarray(t)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder != "little"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return DTYPE_CODES[a.dtype.name], list(a.shape), a.tobytes(order="C")


def save_file(tensors, path, metadata=None):
    """Writes `tensors` (name -> torch tensor or numpy array-like, in that order) to `path` in the safetensors
    format, with `metadata` (a dict of strings) as "__metadata__" unless it is None (an empty dict is written as
    "__metadata__":{}; no fixture script passes one)."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        code, shape, data = _encode(t)
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
