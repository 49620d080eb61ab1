#!/usr/bin/python3
"""Writes tests/torch/sumdim.ref: torch.sum(x, dim), torch.mean(x, dim) and
mean's backward for float32 and float64 tensors of rank 1 to 4, every dim,
for tests/test_sumdim.c.

    /usr/bin/python3 tests/torch/sumdim_reference.py

x is viewed as [outer, len, inner] (len the size of dim, inner the product
of the later sizes, outer of the earlier ones). The cases cross lengths
1 .. 70000 (the short path, partial vectors and rows of four, the cascade's
levels) with inner sizes 1 .. 100 (the contiguous inner sum, groups of four
columns below one vector, groups of four vectors, single vectors and
leftover columns above it) and outer sizes 1 .. 6.

x and the upstream gradient g come from a 64-bit LCG (sum_reference.py's,
two steps a value) that test_sumdim.c repeats, started from each case's
seed, so only the results are stored. Values span 2^-8 to 2^8 in magnitude with both
signs, so a sum taken in another order rounds differently. Kind 1 fills x
with -0.0 (torch's sum is +0.0: the output is zero-filled, then the sum
added).

Each case is four lines, numbers in hex floats:
    C DTYPE SEED KIND DIM RANK SIZE_0 .. SIZE_RANK-1
    S sum(x, DIM)                       outer * inner values
    M mean(x, DIM)
    G x.grad[o, 0, i] after mean(x, DIM).backward(g)
The script checks that every row j of mean's x.grad is row 0's bits and
that sum's backward gives x.grad = g expanded, bit for bit, so G holds all
of mean's gradient and sum's is g.
"""
import os

import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
MASK = (1 << 64) - 1
SMALL_LENS = [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100]
INNERS = [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 32, 64, 100]
# (len, inners, largest outer) for the long sums
LONG = [(1000, [1, 2, 3, 4, 8, 9, 17, 32, 100], 3),
        (5000, [1, 3, 4, 7, 16, 33], 2),
        (70000, [1, 5, 12], 1)]


def values(state, n):
    """n values and the next state: test_sumdim.c's lcg_value(). Two steps
    of the generator each: 53 bits of mantissa, then the scale, so float64
    sums round too (24-bit values over 2^16 of range would add exactly)."""
    out = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        mant = (state >> 11) / float(1 << 53) - 0.5           # [-0.5, 0.5)
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        out.append(mant * 2.0 ** (((state >> 20) & 15) - 7))  # times 2^-7 .. 2^8
    return out, state


def factor(n, k):
    """k sizes whose product is n, the prime factors dealt round-robin."""
    dims = [1] * k
    p, i = 2, 0
    while n > 1:
        while n % p == 0:
            dims[i % k] *= p
            n //= p
            i += 1
        p += 1
    return dims


def layouts(outer, inner):
    """(rank, dim) pairs that can hold outer and inner."""
    out = []
    for rank in range(1, 5):
        for d in range(rank):
            if (outer > 1 and d == 0) or (inner > 1 and d == rank - 1):
                continue
            out.append((rank, d))
    return out


def hexs(v):
    """float.hex() without the mantissa's trailing zeros."""
    h = float(v).hex()
    if "." in h:
        mant, exp = h.split("p")
        h = mant.rstrip("0").rstrip(".") + "p" + exp
    return h


def bits(t):
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def case(lines, dt, name, seed, kind, outer, n, inner, pick):
    opts = layouts(outer, inner)
    rank, d = opts[pick % len(opts)]
    shape = factor(outer, d) + [n] + factor(inner, rank - 1 - d)
    numel = outer * n * inner
    x, st = values(seed, numel)
    g, st = values(st, outer * inner)
    if kind == 1:
        x = [-0.0] * numel
    xt = torch.tensor(x, dtype=torch.float64).to(dt).reshape(shape).requires_grad_(True)
    oshape = shape[:d] + shape[d + 1:]
    gt = torch.tensor(g, dtype=torch.float64).to(dt).reshape(oshape)
    s = torch.sum(xt, d)
    m = torch.mean(xt, d)
    s.backward(gt)
    sg = xt.grad.detach().clone().reshape(outer, n, inner)
    want = gt.reshape(outer, 1, inner).expand(outer, n, inner)
    assert torch.equal(bits(sg), bits(want.contiguous())), "sum's backward is not g"
    xt.grad = None
    m.backward(gt)
    mg = xt.grad.detach().reshape(outer, n, inner)
    assert torch.equal(bits(mg), bits(mg[:, :1, :].expand(outer, n, inner).contiguous())), \
        "mean's gradient differs along dim"
    lines.append("C %s %d %d %d %d %s" % (name, seed, kind, d, rank, " ".join(map(str, shape))))
    for tag, t in (("S", s), ("M", m), ("G", mg[:, 0, :])):
        lines.append(tag + " " + " ".join(hexs(v) for v in t.detach().reshape(-1).tolist()))


def main():
    lines = []
    for dt, name in [(torch.float32, "f32"), (torch.float64, "f64")]:
        k = 0
        plan = [(n, inner, 1 + (i + j) % 6) for i, n in enumerate(SMALL_LENS)
                for j, inner in enumerate(INNERS)]
        plan += [(n, inner, 1 + j % top) for n, inners, top in LONG
                 for j, inner in enumerate(inners)]
        for n, inner, outer in plan:
            case(lines, dt, name, 1000 + k, 0, outer, n, inner, k)
            k += 1
        for outer, n, inner in [(2, 5, 3), (1, 17, 1), (3, 1, 9), (1, 40, 40)]:
            case(lines, dt, name, 1000 + k, 1, outer, n, inner, k)
            k += 1
    with open(os.path.join(HERE, "sumdim.ref"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
