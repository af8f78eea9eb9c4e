"""A small GGUF reader (v2 and v3): metadata and F32/F16/BF16 tensors as
PyTorch tensors in float32, in PyTorch's [out, in] order. For tests that put
a model file next to its PyTorch definition."""
import struct

import numpy as np
import torch

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _Cursor:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.at)[0]
        self.at += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = bytes(self.data[self.at:self.at + n]).decode("utf-8")
        self.at += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            elem, n = self.take("<I"), self.take("<Q")
            return [self.value(elem) for _ in range(n)]
        return self.take(_SCALAR[vtype])


def read(path):
    """(metadata dict, {name: float32 tensor})."""
    with open(path, "rb") as f:
        data = f.read()
    c = _Cursor(data)
    if c.take("<I") != 0x46554747:
        raise ValueError("%s: not a GGUF file" % path)
    version = c.take("<I")
    if version not in (2, 3):
        raise ValueError("%s: GGUF version %d" % (path, version))
    n_tensors, n_kv = c.take("<Q"), c.take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        dims = [c.take("<Q") for _ in range(c.take("<I"))]
        infos.append((name, dims, c.take("<I"), c.take("<Q")))
    align = meta.get("general.alignment", 32)
    base = (c.at + align - 1) // align * align
    tensors = {}
    for name, dims, ttype, offset in infos:
        count = int(np.prod(dims))
        at = base + offset
        if ttype == 0:
            arr = np.frombuffer(data, np.float32, count, at).copy()
        elif ttype == 1:
            arr = np.frombuffer(data, np.float16, count, at).astype(np.float32)
        elif ttype == 30:
            arr = (np.frombuffer(data, np.uint16, count, at).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: tensor %s has type %d, which this reader does not read" % (path, name, ttype))
        tensors[name] = torch.from_numpy(arr.reshape(list(reversed(dims))))
    return meta, tensors
