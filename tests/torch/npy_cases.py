#!/usr/bin/python3
"""Writes the .npy files the npy() tests read, and what bpviz must load from
them as PyTorch converts them.

  /usr/bin/python3 tests/torch/npy_cases.py           # write every file
  /usr/bin/python3 tests/torch/npy_cases.py --check   # compare, write nothing

tests/data/npy/NAME.npy: arrays bpviz reads (test_npy.c). expect.txt has one
block per array: its shape, then the bits of torch.from_numpy(a).float() and
of .double() in C order (the values an f32 and an f64 model must hold;
for uint16/32/64, which torch 1.13 does not take, NumPy's casts straight
to the type, which equal torch's on every other type).
tests/errors/npy-*.npy (+ .bp; the .err files come from
BPV_UPDATE_GOLDEN=1 ./test_errors): files npy() must refuse with a located
message. tests/fuzz/regress/fuzz_npy/: seeds of the fuzz target (first byte:
dtype and batch, then the file).

Needs NumPy; PyTorch for the expected values (Debian: python3-torch). The
files are committed, so the tests need neither.
"""
import io
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
DATA = os.path.join(TESTS, "data", "npy")
ERRORS = os.path.join(TESTS, "errors")
FUZZ = os.path.join(TESTS, "fuzz", "regress", "fuzz_npy")


def npy_bytes(a, version=None):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version, allow_pickle=True)
    return b.getvalue()


def raw_npy(header, payload=b"", version=(1, 0)):
    """A .npy file with a header written by hand (padded as NumPy pads it)."""
    h = header.encode("utf-8" if version == (3, 0) else "latin1")
    pre = 10 if version == (1, 0) else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    ln = struct.pack("<H", len(h)) if version == (1, 0) else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes(version) + ln + h + payload


def good_cases():
    """NAME -> (file bytes, the array it holds)."""
    c = {}
    f4 = np.array([[1.5, -0.0, 3.25], [np.inf, -np.inf, 1e-45],
                   [0.1, -7.0, 3.4028234663852886e38], [2.0, 0.5, -1e-3]], dtype="<f4")
    c["f4"] = f4
    c["f8_1d"] = np.array([0.1, 1 / 3, 1e-40, -2.5, 1e-300, 16777217.0,
                           3.40282356e38, -0.0], dtype="<f8")
    c["f8_be"] = np.array([[1.1, -2.2], [3.3, 4.4], [5e-8, 6e10]], dtype=">f8")
    c["f4_be"] = np.arange(8, dtype=">f4").reshape(2, 2, 2) / np.float32(3)
    c["f2"] = np.array([1.0, -0.5, 65504.0, 6e-8, 0.1, -np.inf], dtype="<f2")
    c["i1"] = np.array([-128, -1, 0, 127], dtype="i1")
    c["i2"] = np.array([[-32768, 32767], [5, -6]], dtype="<i2")
    c["i4"] = np.array([-2**31, 2**31 - 1, 16777217, 16777219], dtype="<i4")
    c["i8"] = np.array([-2**63, 2**63 - 1, 2**53 + 1, 16777217, -33554435, 7],
                       dtype="<i8")
    c["u1"] = np.array([0, 1, 254, 255], dtype="u1")
    c["u2"] = np.array([0, 65535, 1234], dtype="<u2")
    c["u4"] = np.array([2**32 - 1, 16777217, 0], dtype="<u4")
    c["u8"] = np.array([2**64 - 1, 2**63 + 1, 2**53 + 1, 0], dtype="<u8")
    c["i4_be"] = np.array([[1, -2], [300000, -16777217]], dtype=">i4")
    c["u2_be"] = np.array([1, 258, 65535], dtype=">u2")
    c["i8_be"] = np.array([2**62 + 1, -5], dtype=">i8")
    c["bool"] = np.array([True, False, False, True, True], dtype="|b1")
    c["fortran_f4"] = np.asfortranarray(np.arange(24, dtype="<f4").reshape(2, 3, 4) - 5)
    c["fortran_i2"] = np.asfortranarray(np.array([[1, 2], [3, 4], [5, 6]], dtype=">i2"))
    c["d4"] = np.arange(24, dtype="<f4").reshape(3, 2, 2, 2) * np.float32(0.25)
    c["d5"] = np.arange(12, dtype="<f8").reshape(2, 1, 2, 1, 3) - 0.5
    c["x"] = np.array([[1, 2, 3], [0.5, -1, 2], [3, 1, 0.25], [2, 2, 2]], dtype="<f4")
    c["y"] = np.array([6, 1, 4, 7], dtype="<i8")
    files = {name: npy_bytes(a) for name, a in c.items()}
    c["v2"] = np.array([[1.25, 2.5], [-3.0, 4.0]], dtype="<f4")
    files["v2"] = npy_bytes(c["v2"], version=(2, 0))
    c["v3"] = np.array([9, -8, 7], dtype="<i2")
    files["v3"] = npy_bytes(c["v3"], version=(3, 0))
    # a header written by another hand: key order, spacing, double quotes,
    # Python 2's long suffix, no trailing comma
    c["odd_header"] = np.array([[1, 2], [3, 4], [5, 6]], dtype="<u1")
    files["odd_header"] = raw_npy(
        "{ \"shape\" :(3L,2L) ,'fortran_order':False,\n 'descr':'|u1'}",
        c["odd_header"].tobytes())
    for name, a in c.items():  # NumPy reads them back as written
        assert np.array_equal(np.load(io.BytesIO(files[name])), a, equal_nan=True), name
    return files, c


def expect_text(arrays):
    import torch
    out = []
    for name in sorted(arrays):
        a = arrays[name]
        n = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("=")))
        # NumPy's casts, straight to the type, rounded once to nearest...
        f = n.astype("<f4").ravel()
        d = n.astype("<f8").ravel()
        if n.dtype.kind != "u" or n.dtype.itemsize == 1:
            # ...are torch's (torch 1.13 takes no uint16/32/64 arrays)
            t = torch.from_numpy(n)
            assert t.float().numpy().ravel().tobytes() == f.tobytes(), name
            assert t.double().numpy().ravel().tobytes() == d.tobytes(), name
        f = f.view("<u4")
        d = d.view("<u8")
        out.append("case %s %s" % (name, " ".join(str(n) for n in a.shape)))
        out.append("f32 " + " ".join("%08x" % v for v in f))
        out.append("f64 " + " ".join("%016x" % v for v in d))
    return "\n".join(out) + "\n"


def error_cases():
    """NAME -> (file bytes or None, model text)."""
    e = {}
    f4 = np.arange(6, dtype="<f4")
    good = npy_bytes(f4)

    def model(fname):
        return ('data x = npy("%s")\nparam w = 1\nloss = (x * w)^2\ntrain epochs=1\n' % fname)

    e["npy-object"] = npy_bytes(np.array([1, "a", None], dtype=object))
    e["npy-truncated"] = good[:-7]
    e["npy-trailing"] = good + b"\0\0\0\0"
    e["npy-bad-magic"] = b"PK\x03\x04" + good[4:]
    e["npy-bad-header"] = raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,) ",
                                  f4.tobytes())
    e["npy-unknown-key"] = raw_npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'order': 'C'}", f4.tobytes())
    e["npy-0d"] = npy_bytes(np.array(3.5, dtype="<f4"))
    e["npy-no-samples"] = npy_bytes(np.zeros((0, 3), dtype="<f4"))
    e["npy-complex"] = npy_bytes(np.array([1 + 2j, 3], dtype="<c8"))
    e["npy-strings"] = npy_bytes(np.array(["ab", "c"]))
    e["npy-structured"] = npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    e["npy-rank6"] = npy_bytes(np.zeros((1, 1, 2, 1, 1, 1), dtype="<f4"))
    e["npy-version"] = good[:6] + b"\x04\x00" + good[8:]
    e["npy-f32-range"] = npy_bytes(np.array([1.0, -1e39], dtype="<f8"))
    e["npy-folder"] = None  # tests/errors/npy-folder.npy/ is a folder
    models = {name: model(name + ".npy") for name in e}
    models["npy-args"] = 'data x = npy("npy-args.npy", 0)\nparam w = 1\nloss = (x * w)^2\n'
    return e, models


def write(path, data, check, stale):
    mode = "w" if isinstance(data, str) else "wb"
    if os.path.exists(path):
        with open(path, "r" if mode == "w" else "rb") as f:
            if f.read() == data:
                return
    if check:
        stale.append(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)
    print("wrote", os.path.relpath(path, TESTS))


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    files, arrays = good_cases()
    for name, b in files.items():
        write(os.path.join(DATA, name + ".npy"), b, check, stale)
    write(os.path.join(DATA, "expect.txt"), expect_text(arrays), check, stale)
    errs, models = error_cases()
    for name, b in errs.items():
        if b is not None:
            write(os.path.join(ERRORS, name + ".npy"), b, check, stale)
    folder = os.path.join(ERRORS, "npy-folder.npy")
    write(os.path.join(folder, "README"),
          "npy-folder.bp names this folder: npy() refuses it.\n", check, stale)
    for name, text in models.items():
        write(os.path.join(ERRORS, name + ".bp"), text, check, stale)
    # fuzz seeds: byte 0 picks the dtype and batch (fuzz_npy.c), then the file
    for i, name in enumerate(["f4", "i8_be", "fortran_f4", "v3", "odd_header", "bool", "d5"]):
        write(os.path.join(FUZZ, "seed-" + name), bytes([i * 3 % 4]) + files[name], check, stale)
    if stale:
        print("out of date:\n  " + "\n  ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
