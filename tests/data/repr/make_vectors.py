#!/usr/bin/python3
"""Python's repr() of doubles, the ground truth bpviz's number formatter
(bpv_fmt_repr_s) must match byte for byte.

  make_vectors.py stream > stream.txt   FNV-1a 64 hashes of the reprs of a
                                        generated stream (test_base reruns it)
  make_vectors.py edges > edges.txt     "hexbits repr" for edge cases
  make_vectors.py big > FILE            the same plus ~300k random cases, for
                                        repr_exhaustive python FILE

The stream (splitmix64 from seed 2026, case i of kind i % 4) is generated
the same way in tests/test_base.c:
  0: a random 64-bit pattern, the top exponent bit flipped if not finite
  1: a random float32 pattern widened to double (same flip, bit 30)
  2: a random integer below 2^53
  3: "{m}e{e}" read by float(): d = 1 + r % 17 digits m = (r >> 8) % 10^d,
     e = (r >> 40) % 660 - 340
"""
import math
import struct
import sys

M64 = (1 << 64) - 1
STREAM_SEED = 2026
STREAM_BLOCK = 1 << 16
STREAM_BLOCKS = 32


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def from_bits(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def to_bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def f32_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


def stream_case(i, r):
    kind = i % 4
    if kind == 0:
        if (r >> 52) & 0x7FF == 0x7FF:
            r ^= 1 << 62
        return from_bits(r)
    if kind == 1:
        f = r & 0xFFFFFFFF
        if (f >> 23) & 0xFF == 0xFF:
            f ^= 1 << 30
        return f32_bits(f)
    if kind == 2:
        return float(r >> 11)
    d = 1 + r % 17
    m = (r >> 8) % 10**d
    e = (r >> 40) % 660 - 340
    return float(f"{m}e{e}")


def stream():
    state = STREAM_SEED
    print(f"# seed {STREAM_SEED}, {STREAM_BLOCKS} blocks of {STREAM_BLOCK}: FNV-1a 64 of repr + '\\n'")
    i = 0
    for blk in range(STREAM_BLOCKS):
        h = 0xCBF29CE484222325
        for _ in range(STREAM_BLOCK):
            state, r = splitmix(state)
            for c in (repr(stream_case(i, r)) + "\n").encode():
                h = ((h ^ c) * 0x100000001B3) & M64
            i += 1
        print(f"{blk} {h:016x}")


def around(v, n):
    out = []
    if not math.isfinite(v):
        return out
    up = down = v
    out += [v, -v]
    for _ in range(n):
        up = math.nextafter(up, math.inf)
        down = math.nextafter(down, -math.inf)
        out += [up, down, -up, -down]
    return [x for x in out if math.isfinite(x)]


def edges(n=1):
    """n neighbours each side at the points checked; the checked-in file
    has n = 1 and fewer of everything, big() more."""
    vals = [0.0, -0.0, math.inf, -math.inf, math.nan]
    for v in (5e-324, 2.2250738585072014e-308, 1.7976931348623157e308):
        vals += around(v, 20 * n)
    for e in range(-1074, 1024):
        vals += around(math.ldexp(1.0, e), n)[::1 if n > 1 else 2]
    for e in range(-325, 309):
        vals += around(float(f"1e{e}"), n)[::1 if n > 1 else 2]
        if n > 1:
            vals += [float(f"{m}e{e}") for m in range(2, 10)]
    for v in (1e16, 1e-4, 1e15, 1e-5, 9999999999999998.0, 2.0**53):
        vals += around(v, 30 * n)[::1 if n > 1 else 2]
    vals += [from_bits(b) for b in range(1, 200 * n)]
    vals += [float(i) for i in range(1, 200 * n)]
    return vals


def big():
    vals = edges(4)
    for v in (1e16, 1e-4, 1e15, 1e-5):
        vals += around(v, 5000)
    state = 99
    for i in range(300000):
        state, r = splitmix(state)
        vals.append(stream_case(i, r))
    for b in range(1, 20000):
        vals.append(from_bits(b))
    return vals


def dump(vals):
    for v in vals:
        print(f"{to_bits(v):016x} {v!r}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "stream":
        stream()
    elif what == "edges":
        dump(edges())
    elif what == "big":
        dump(big())
    else:
        sys.exit(__doc__)
