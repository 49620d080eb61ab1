#!/usr/bin/python3
"""Writes tests/torch/sum.ref: torch.sum, torch.mean and F.mse_loss of
float32 and float64 vectors of many lengths, for tests/test_engine.c.

    /usr/bin/python3 tests/torch/sum_reference.py

The vectors come from a 64-bit linear congruential generator that
test_engine.c repeats, so only the lengths and results are stored. Values
span 2^-8 to 2^8 in magnitude with both signs, so a sum taken in another
order rounds differently. The lengths cover the short path (fewer terms
than one vector), partial vectors and rows, and the cascade's first,
second and third levels (blocks of 16, 256 and 4096 rows of 32 floats).
Each line: `DTYPE N SUM MEAN MSE` in hex floats; MSE is mse_loss(a, b) of
the vector a and the next N values b. Then lines `DTYPE cols R C S_0 ..
S_C-1`: x.sum(0) of the next R x C values, the reduction that gives a
broadcast bias its gradient.
"""
import os

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
LENGTHS = (list(range(1, 41)) + [47, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513,
                                  1000, 2047, 2048, 2049, 8191, 8192, 8193, 10000, 65537,
                                  131072, 140001])
MASK = (1 << 64) - 1
COLUMNS = [(1, 2), (3, 4), (20, 11), (33, 1), (17, 5), (9, 3), (100, 40), (64, 128), (257, 33),
           (1000, 3), (16, 64), (300, 17), (5000, 10), (70001, 3)]


def values(state, n):
    """n values and the next state: test_engine.c's lcg_value()."""
    out = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        mant = (state >> 40) / float(1 << 24) - 0.5           # [-0.5, 0.5)
        out.append(mant * 2.0 ** (((state >> 20) & 15) - 7))  # times 2^-7 .. 2^8
    return out, state


def main():
    lines = []
    for dt, name in [(torch.float32, "f32"), (torch.float64, "f64")]:
        state = 12345
        for n in LENGTHS:
            a, state = values(state, n)
            b, state = values(state, n)
            ta = torch.tensor(a, dtype=torch.float64).to(dt)
            tb = torch.tensor(b, dtype=torch.float64).to(dt)
            r = [ta.sum(), ta.mean(), F.mse_loss(ta, tb)]
            lines.append("%s %d %s" % (name, n, " ".join(float(v).hex() for v in r)))
        for rows, cols in COLUMNS:
            a, state = values(state, rows * cols)
            t = torch.tensor(a, dtype=torch.float64).to(dt).reshape(rows, cols)
            sums = " ".join(float(v).hex() for v in t.sum(0).tolist())
            lines.append("%s cols %d %d %s" % (name, rows, cols, sums))
    with open(os.path.join(HERE, "sum.ref"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
