"""st_reader.py - a small, strict, independent safetensors reader for tests.

Written from the format spec, not from our C code, so the parity tests
check minigpt's files against a second opinion. It applies the same rules as
src/io/safetensors.c: UTF-8 JSON object header of at most 100 MB, known
dtypes, integer shapes/offsets in [0, 2^53), at most 8 dims, byte span ==
numel * dtype size, tensors tiling the data block exactly (no overlap, gap
or trailing byte), unique keys, __metadata__ an object of strings, no NUL
in any string. Anything else raises ValueError.

    tensors, metadata = load(path)   # name -> np.ndarray, key -> str

BF16 has no numpy dtype; it is returned widened to float32 (exact)."""

import json
import struct

import numpy as np

MAX_HEADER = 100_000_000
MAX_DIMS = 8
MAX_INT = 2**53
DTYPES = {
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "F64": ("<f8", 8),
    "I32": ("<i4", 4),
    "I64": ("<i8", 8),
    "U8": ("u1", 1),
    "I8": ("i1", 1),
}
ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def _no_dup_object(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in header object")
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _check_str(s, what):
    if "\x00" in s:
        raise ValueError(f"{what} contains NUL")
    s.encode("utf-8")  # raises on lone surrogates from \\ud800 escapes
    return s


def _uint(v, what):
    # JSON numbers are doubles: integral floats are fine, bools are not.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} is not a number")
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"{what} is not an integer")
        v = int(v)
    if not 0 <= v < MAX_INT:
        raise ValueError(f"{what} out of range [0, 2^53)")
    return v


def loads(buf):
    """Parses a whole safetensors file held in bytes."""
    buf = bytes(buf)
    if len(buf) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n == 0 or n > MAX_HEADER or n > len(buf) - 8:
        raise ValueError(f"bad header size {n} for a {len(buf)}-byte file")
    text = buf[8 : 8 + n].decode("utf-8")  # strict: raises on bad UTF-8
    try:
        header = json.loads(text, object_pairs_hook=_no_dup_object, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("header JSON nests too deep") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data = buf[8 + n :]
    metadata = {}
    spans = []
    for name, entry in header.items():
        _check_str(name, "name")
        if name == "__metadata__":
            if not isinstance(entry, dict):
                raise ValueError("__metadata__ is not an object")
            for k, v in entry.items():
                if not isinstance(v, str):
                    raise ValueError(f"__metadata__[{k!r}] is not a string")
                metadata[_check_str(k, "metadata key")] = _check_str(v, "metadata value")
            continue
        if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
            raise ValueError(f"tensor {name!r}: entry must be an object with exactly {sorted(ENTRY_KEYS)}")
        dtype = entry["dtype"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_DIMS:
            raise ValueError(f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} ints")
        shape = [_uint(d, f"tensor {name!r} shape") for d in shape]
        offs = entry["data_offsets"]
        if not isinstance(offs, list) or len(offs) != 2:
            raise ValueError(f"tensor {name!r}: data_offsets must be [begin, end]")
        begin, end = (_uint(o, f"tensor {name!r} data_offsets") for o in offs)
        numel = 1
        for d in shape:
            numel *= d  # Python ints do not overflow; the size check bounds it
        if end < begin or end - begin != numel * DTYPES[dtype][1]:
            raise ValueError(f"tensor {name!r}: data_offsets {offs} do not match {dtype} {shape}")
        if end > len(data):
            raise ValueError(f"tensor {name!r}: data_offsets beyond the data block")
        spans.append((begin, end, name, dtype, shape))
    spans.sort()
    pos = 0
    tensors = {}
    for begin, end, name, dtype, shape in spans:
        if begin != pos:
            raise ValueError(f"tensor {name!r}: {'overlap' if begin < pos else 'gap'} at offset {begin}")
        arr = np.frombuffer(data, dtype=DTYPES[dtype][0], count=(end - begin) // DTYPES[dtype][1], offset=begin)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr.reshape(shape).copy()
        pos = end
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes not covered by any tensor")
    return tensors, metadata


def load(path):
    """(dict name -> np.ndarray, dict metadata) from a safetensors file."""
    with open(path, "rb") as f:
        return loads(f.read())


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        try:
            t, m = load(p)
            print(f"{p}: OK {len(t)} tensors, {len(m)} metadata")
        except ValueError as e:
            print(f"{p}: REJECT {e}")
