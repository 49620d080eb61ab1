#!/usr/bin/python3
"""Writes tests/golden/NAME.out, the expected `bpviz run NAME.bp` output, for
every model in golden_models.MODELS, by running its PyTorch program.

  /usr/bin/python3 tests/torch/make_golden.py            # all models
  /usr/bin/python3 tests/torch/make_golden.py linear fn  # some
  /usr/bin/python3 tests/torch/make_golden.py --check    # compare, write nothing
  /usr/bin/python3 tests/torch/make_golden.py --portable # NAME.portable.out

--portable runs PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default: libm
instead of SLEEF, no fused multiply-adds) and writes NAME.portable.out where
the output differs from NAME.out (removing a stale one where it does not);
test_golden compares with it when bpviz runs with the same variable.

Needs PyTorch (Debian: apt-get install python3-torch). Also checks that the
quadratic model reproduces the tutorial's published output.
"""
import os
import sys

if "--portable" in sys.argv:  # before torch reads it
    os.environ["ATEN_CPU_CAPABILITY"] = "default"

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_models  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(HERE), "golden")

# The tutorial's published output (produced by PyTorch), from the spec.
QUADRATIC_FIRST = "predict y_hat(x=5) = 8.800000190734863"
QUADRATIC_LAST = [
    "epoch=199 loss=7.842553895898163e-05 w1=0.006645866669714451 "
    "w2=1.955818772315979 b=0.060525789856910706",
    "predict y_hat(x=5) = 10.005765914916992",
]


def main(argv):
    check = "--check" in argv
    names = [a for a in argv if not a.startswith("--")] or list(golden_models.MODELS)
    torch.set_num_threads(1)
    status = 0
    for name in names:
        bp = os.path.join(GOLDEN, name + ".bp")
        if not os.path.exists(bp):
            sys.exit("make_golden: %s has no %s" % (name, bp))
        try:
            text = "\n".join(golden_models.MODELS[name]()) + "\n"
        except RuntimeError as e:
            if "--portable" not in argv:
                raise
            # a program that picks its values by the AVX2 kernels' results
            print("skipped %s: %s" % (name, str(e).splitlines()[0]))
            continue
        if name == "quadratic" and "--portable" not in argv:
            lines = text.splitlines()
            if lines[0] != QUADRATIC_FIRST or lines[-2:] != QUADRATIC_LAST:
                sys.exit("make_golden: quadratic does not reproduce the tutorial:\n"
                         + "\n".join([lines[0]] + lines[-2:]))
        out = os.path.join(GOLDEN, name + ".out")
        if "--portable" in argv:
            port = os.path.join(GOLDEN, name + ".portable.out")
            same = os.path.exists(out) and open(out).read() == text
            if check:
                old = open(port).read() if os.path.exists(port) else None
                if (old is None) != same or (old is not None and old != text):
                    print("differs: " + port)
                    status = 1
            elif same:
                if os.path.exists(port):
                    os.remove(port)
                    print("removed " + port)
            else:
                with open(port, "w") as f:
                    f.write(text)
                print("wrote " + port)
            continue
        if check:
            old = open(out).read() if os.path.exists(out) else None
            if old != text:
                print("differs: " + out)
                status = 1
        else:
            with open(out, "w") as f:
                f.write(text)
            print("wrote " + out)
    missing = sorted(f[:-3] for f in os.listdir(GOLDEN)
                     if f.endswith(".bp") and f[:-3] not in golden_models.MODELS)
    if missing:
        print("no PyTorch program for: " + " ".join(missing))
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
