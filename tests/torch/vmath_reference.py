#!/usr/bin/python3
"""Writes tests/torch/vmath.ref and vmath_default.ref: torch's tanh, exp,
log and sigmoid of contiguous float32 and float64 tensors, for
tests/test_engine.c, with torch's AVX2 kernels (SLEEF) and with its
portable ones (ATEN_CPU_CAPABILITY=default: libm).

    /usr/bin/python3 tests/torch/vmath_reference.py

Run with Debian's python3-torch (1.13) on a CPU with AVX2 and FMA. Each line
is `DTYPE FN N x_0 .. x_N-1 y_0 .. y_N-1` in hex floats: one tensor, so the
lengths (1 to 47, and 300) cover every remainder of torch's blocks of 8 and
16 elements, where sigmoid switches from SLEEF's exp to libm's.
"""
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, -1e-45, 1e-30, 2.0 ** -12,
           -2.0 ** -12, 0.5493, 9.0, -9.0, 10.0, 20.0, 88.7, 88.8, 89.0, -87.3, -103.9,
           -104.0, 709.7, -745.1, 3.0e38, 1.17e-38]


def write(name):
    import torch  # after ATEN_CPU_CAPABILITY is set: torch reads it once

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(7)
    lines = []
    for dt, dname in [(torch.float32, "f32"), (torch.float64, "f64")]:
        for fn in ["tanh", "exp", "log", "sigmoid"]:
            for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 33, 47, 300]:
                if n == 300:  # wide ranges, and the special values
                    x = torch.cat([torch.rand(150, generator=g, dtype=torch.float64) * 40 - 20,
                                   torch.randn(100, generator=g, dtype=torch.float64) * 3,
                                   torch.tensor(SPECIAL, dtype=torch.float64)])
                    x = torch.cat([x, torch.rand(300 - len(x), generator=g,
                                                 dtype=torch.float64) - 0.5])
                else:
                    x = torch.rand(n, generator=g, dtype=torch.float64) * 12 - 6
                x = x.to(dt)
                if fn == "log":
                    x = torch.where(torch.arange(n) % 5 == 4, x, x.abs())  # some negatives
                y = getattr(torch, fn)(x)
                hx = " ".join(float(v).hex() for v in x.double().tolist())
                hy = " ".join(float(v).hex() for v in y.double().tolist())
                lines.append("%s %s %d %s %s" % (dname, fn, n, hx, hy))
    with open(os.path.join(HERE, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    if argv[1:] == ["--one"]:
        write(os.environ.get("BPV_REF_NAME", "vmath.ref"))
        return
    for name, cap in [("vmath.ref", None), ("vmath_default.ref", "default")]:
        env = dict(os.environ, BPV_REF_NAME=name)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if cap:
            env["ATEN_CPU_CAPABILITY"] = cap
        subprocess.run([sys.executable, __file__, "--one"], env=env, check=True)


if __name__ == "__main__":
    main(sys.argv)
