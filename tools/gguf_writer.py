"""A small GGUF (version 3) writer for Sluice's tools: metadata of every
type and tensors (F32, F16, BF16, Q8_0), as gateway/engine/local/gguf.cpp
reads them. No dependency beyond the standard library (numpy or torch
arrays may be passed as bytes)."""
import struct

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
F32, F16, Q8_0, BF16 = 0, 1, 8, 30
_SCALAR = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
           FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}


def _string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    def __init__(self, alignment=32):
        self.alignment = alignment
        self.kv = []
        self.tensors = []  # (name, dims in ggml order, type, bytes)

    def add(self, key, vtype, value):
        self.kv.append(_string(key) + struct.pack("<I", vtype) + self._value(vtype, value))

    def add_string(self, key, value):
        self.add(key, STRING, value)

    def add_array(self, key, elem_type, values):
        self.kv.append(_string(key) + struct.pack("<I", ARRAY) + struct.pack("<IQ", elem_type, len(values)) +
                       b"".join(self._value(elem_type, v) for v in values))

    def _value(self, vtype, value):
        if vtype == STRING:
            return _string(value)
        return struct.pack(_SCALAR[vtype], value)

    def add_tensor(self, name, dims, ttype, data):
        """`dims` in ggml order (fastest-varying first); `data` the raw bytes."""
        self.tensors.append((name, list(dims), ttype, bytes(data)))

    def write(self, path):
        out = bytearray(struct.pack("<IIQQ", 0x46554747, 3, len(self.tensors), len(self.kv)))
        for kv in self.kv:
            out += kv
        offset = 0
        offsets = []
        for name, dims, ttype, data in self.tensors:
            offset = (offset + self.alignment - 1) // self.alignment * self.alignment
            offsets.append(offset)
            out += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", ttype, offset)
            offset += len(data)
        out += b"\0" * ((-len(out)) % self.alignment)
        start = len(out)
        for (name, dims, ttype, data), off in zip(self.tensors, offsets):
            out += b"\0" * (start + off - len(out))
            out += data
        with open(path, "wb") as f:
            f.write(out)
