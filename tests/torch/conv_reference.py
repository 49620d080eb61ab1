#!/usr/bin/python3
"""Writes tests/torch/conv.ref: torch 1.13's conv2d, max_pool2d and
avg_pool2d on the CPU with oneDNN off (slow_conv2d: im2col and reference
BLAS gemms), forward and autograd backward, float32 and float64, for
tests/test_conv.c, which checks bpviz's kernels (src/conv.c) bit for bit.

    /usr/bin/python3 tests/torch/conv_reference.py

Torch must run on Debian's reference BLAS (libblas.so.3, no FMA): its sgemm
loop order is what bpviz reproduces. Values are m * 2^e with m uniform in
[-1, 1) and e in [-6, 6], so sums taken in another order round differently.

Each case is a header line, then one line per array: `NAME COUNT V...` in
hex floats (inputs first, then torch's results).
  conv DTYPE N C H W O KH KW STRIDE PAD BIAS UNBATCHED   x w [b] gy y gx gw [gb]
  maxpool|avgpool DTYPE N C H W K UNBATCHED               x gy y gx
UNBATCHED 1: torch saw the sample as a 3-D [C, H, W] tensor (N is 1).

Also prints how far torch's default float32 path (oneDNN) is from the slow
path on the same conv cases (not stored).
"""
import os
import random
import re

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}


def hexf(v):
    """A number as a short hex float (trailing zero digits dropped)."""
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return re.sub(r"\.?0*p", "p", float(v).hex())


def values(rng, n, dt):
    t = torch.tensor([rng.uniform(-1.0, 1.0) * 2.0 ** rng.randint(-6, 6) for _ in range(n)],
                     dtype=torch.float64)
    return t.to(dt)


def line(name, t):
    vals = t.detach().reshape(-1).tolist()
    return "%s %d %s" % (name, len(vals), " ".join(hexf(v) for v in vals))


def conv_case(rng, name, dt, n, c, h, w, o, kh, kw, s, pad, bias, unbatched, stats):
    dtype = DTYPES[dt]
    shape = (c, h, w) if unbatched else (n, c, h, w)
    x0 = values(rng, n * c * h * w, dtype).reshape(shape)
    w0 = values(rng, o * c * kh * kw, dtype).reshape(o, c, kh, kw)
    b0 = values(rng, o, dtype) if bias else None
    oh, ow = (h + 2 * pad - kh) // s + 1, (w + 2 * pad - kw) // s + 1
    gshape = (o, oh, ow) if unbatched else (n, o, oh, ow)
    gy = values(rng, n * o * oh * ow, dtype).reshape(gshape)

    def run():
        x = x0.clone().requires_grad_()
        wt = w0.clone().requires_grad_()
        b = b0.clone().requires_grad_() if bias else None
        y = F.conv2d(x, wt, b, stride=s, padding=pad)
        y.backward(gy)
        return [y, x.grad, wt.grad] + ([b.grad] if bias else [])

    with torch.backends.mkldnn.flags(enabled=False):
        slow = run()
    if dt == "f32":  # the default path, for the report only
        fast = run()
        for k, (a, r) in enumerate(zip(fast, slow)):
            d = (a.double() - r.double()).abs()
            rel = (d / r.double().abs().clamp_min(1e-30)).max().item()
            norm = (d.max() / r.double().abs().max().clamp_min(1e-30)).item()
            st = stats.setdefault(k, [0.0, 0.0, 0, 0])
            st[0], st[1] = max(st[0], rel), max(st[1], norm)
            st[2] += int(bool((d > 0).any()))
            st[3] += 1
    out = ["conv %s %d %d %d %d %d %d %d %d %d %d %d" %
           (dt, n, c, h, w, o, kh, kw, s, pad, int(bias), int(unbatched)),
           line("x", x0), line("w", w0)]
    if bias:
        out.append(line("b", b0))
    out += [line("gy", gy), line("y", slow[0]), line("gx", slow[1]), line("gw", slow[2])]
    if bias:
        out.append(line("gb", slow[3]))
    return out


def pool_case(rng, kind, dt, n, c, h, w, k, unbatched, style, stride=None, pad=0):
    dtype = DTYPES[dt]
    shape = (c, h, w) if unbatched else (n, c, h, w)
    if style == "ties":  # few distinct values: ties in most windows, +0.0 and -0.0
        x0 = torch.tensor([rng.choice([-1.0, -0.0, 0.0, 0.5, 1.0]) for _ in range(n * c * h * w)],
                          dtype=dtype)
    else:
        x0 = values(rng, n * c * h * w, dtype)
    if style == "nan":  # one NaN, and two in another window (the last one takes the gradient)
        x0[rng.randrange(x0.numel())] = float("nan")
        x0[0], x0[1] = float("nan"), float("nan")
        x0[2] = float("-inf")
    x0 = x0.reshape(shape)
    st = k if stride is None else stride
    oh, ow = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1
    gshape = (c, oh, ow) if unbatched else (n, c, oh, ow)
    gy = values(rng, n * c * oh * ow, dtype).reshape(gshape)
    if style == "ties":
        gy.view(-1)[0] = -0.0
    x = x0.clone().requires_grad_()
    with torch.backends.mkldnn.flags(enabled=False):
        if kind == "maxpool":
            y = F.max_pool2d(x, k, stride=st, padding=pad)
        else:
            y = F.avg_pool2d(x, k, stride=st, padding=pad)
        y.backward(gy)
    return ["%s %s %d %d %d %d %d %d %d %d" % (kind, dt, n, c, h, w, k, int(unbatched), st, pad),
            line("x", x0), line("gy", gy), line("y", y), line("gx", x.grad)]


def main():
    rng = random.Random(20240601)
    lines, stats = [], {}
    cases = []
    # the two LeNet layers; conv1 with a batch of 4 in float32
    cases.append(("f32", 4, 1, 28, 28, 6, 5, 5, 1, 0, True, False))
    cases.append(("f32", 2, 6, 12, 12, 16, 5, 5, 1, 0, True, False))
    cases.append(("f64", 1, 6, 12, 12, 6, 5, 5, 1, 0, True, True))
    # 1x1 outputs (the bias gradient's column-sum form), one output channel
    # (one merged sum), 1x1 kernels (torch skips im2col)
    for dt in DTYPES:
        cases.append((dt, 3, 2, 3, 3, 5, 3, 3, 1, 0, True, False))
        cases.append((dt, 1, 2, 3, 3, 4, 3, 3, 1, 0, True, False))
        cases.append((dt, 5, 3, 9, 7, 1, 3, 2, 1, 1, True, False))
        cases.append((dt, 2, 3, 6, 5, 4, 1, 1, 1, 0, True, False))
        cases.append((dt, 1, 3, 6, 5, 4, 1, 1, 2, 1, False, True))
    # random shapes, each under 450 input and output elements (the file's size)
    while len(cases) < 56:
        dt = "f32" if len(cases) % 3 else "f64"
        kh = rng.choice([1, 2, 3, 5])
        kw = kh if rng.random() < 0.6 else rng.choice([1, 2, 3, 5])
        s, pad = rng.choice([1, 1, 2, 3]), rng.choice([0, 0, 1, 2])
        unbatched = rng.random() < 0.15
        n = 1 if unbatched else rng.choice([1, 1, 2, 3, 4, 5])
        hi = 30 if rng.random() < 0.15 else 9
        h = rng.randint(max(1, kh - 2 * pad), hi)
        w = rng.randint(max(1, kw - 2 * pad), hi)
        c, o = rng.randint(1, 4), rng.randint(1, 6)
        oh, ow = (h + 2 * pad - kh) // s + 1, (w + 2 * pad - kw) // s + 1
        if n * (c * h * w + o * oh * ow) > 450:
            continue
        cases.append((dt, n, c, h, w, o, kh, kw, s, pad, rng.random() < 0.75, unbatched))
    for cs in cases:
        lines += conv_case(rng, "conv", *cs, stats)
    for kind in ("maxpool", "avgpool"):
        for dt in DTYPES:
            for style in ("plain", "ties", "nan"):
                if kind == "avgpool" and style == "ties":
                    continue
                for k in (2, 3):
                    for (n, c, h, w, unb) in ((2, 2, 7, 5, False), (1, 1, 9, 5, True),
                                              (3, 1, 4, 6, False)):
                        lines += pool_case(rng, kind, dt, n, c, h, w, k, unb, style)
    # overlapping windows (stride below the kernel: gradients add up) and
    # padding (max: ignored; avg: counted in the divisor), as in inception
    for kind in ("maxpool", "avgpool"):
        for dt in DTYPES:
            for (k, st, pad) in ((3, 1, 1), (3, 2, 1), (2, 1, 0), (4, 3, 2), (3, 1, 0)):
                for style in ("plain", "nan") if kind == "maxpool" else ("plain",):
                    lines += pool_case(rng, kind, dt, 2, 2, 7, 6, k, False, style, st, pad)
    # the LeNet pools: after conv1 and conv2
    lines += pool_case(rng, "maxpool", "f32", 1, 4, 24, 24, 2, False, "plain")
    lines += pool_case(rng, "maxpool", "f32", 2, 16, 8, 8, 2, False, "plain")
    with open(os.path.join(HERE, "conv.ref"), "w") as f:
        f.write("\n".join(lines) + "\n")
    names = ["y", "gx", "gw", "gb"]
    print("float32, oneDNN (default) vs slow_conv2d over %d conv cases:" % stats[0][3])
    for k in sorted(stats):
        rel, norm, differ, total = stats[k]
        print("  %-2s max elementwise rel %.3g, max |diff| / max |ref| %.3g, %d of %d cases differ"
              % (names[k], rel, norm, differ, total))


if __name__ == "__main__":
    main()
