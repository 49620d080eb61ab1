#!/usr/bin/python3
"""Bit-exact float32 reference numbers for tests/test_engine.c, from PyTorch.

Run with the PyTorch the expectations were made with (1.13, CPU):
    /usr/bin/python3 tests/torch/ops_reference.py
and paste the printed lines into the torch_* tests of tests/test_engine.c.
Each case is an IEEE-exact chain (+ - * / sqrt, integer powers), so the
engine must agree to the last bit.
"""
import torch

def h(t):
    return float(t).hex()

def p(name, *vals):
    print(f"/* {name} */ " + ", ".join(h(v) for v in vals))

f = torch.float32
t = lambda v: torch.tensor(v, dtype=f, requires_grad=True)
c = lambda v: torch.tensor(v, dtype=f)

# quadratic tutorial step: y_hat = x^2*w1 + x*w2 + b; loss = (y_hat - y)^2
x, y = c(1.7), c(3.3)
w1, w2, b = t(0.05), t(1.5), t(0.05)
loss = (x ** 2 * w1 + x * w2 + b - y) ** 2
loss.backward()
p("quadratic: loss, dw1, dw2, db", loss, w1.grad, w2.grad, b.grad)

# div, both operands trainable: a / b
a, d = t(0.3), t(1.3)  # values where (a/b)/b differs from a/(b*b)
q = a / d
q.backward()
p("div: out, da, db", q, a.grad, d.grad)

# cube with a Python exponent (a*a*a in torch's kernel) and its backward
a = t(0.85)  # a value where (a*a)*a differs from one rounding
y3 = a ** 3
y3.backward()
p("pow3: out, da", y3, a.grad)

# 1 / x with a Python number on the left: x.reciprocal() * 1.3
a = t(3.1)  # a value where reciprocal*1.3 differs from 1.3/x
r = 1.3 / a
r.backward()
p("rdiv: out, da", r, a.grad)

# tanh backward: torch's build computes 1 - y*y with an FMA
a = t(0.4)  # a value where the fused and unfused results differ
th = torch.tanh(a)
th.backward()
p("tanh: out, da", th, a.grad)

# sigmoid backward: grad * (1 - y) * y
a = t(0.7)  # values where (g*(1-y))*y differs from g*((1-y)*y)
s = torch.sigmoid(a)
s.backward(c(1.3))
p("sigmoid: out, da (grad 1.3)", s, a.grad)

# sqrt backward: grad / (2 * out)
a = t(2.0)
s = torch.sqrt(a)
s.backward()
p("sqrt: out, da", s, a.grad)

# mse over [3] (elementwise backward is exact)
a, yy = t([0.1, 0.2, 0.3]), c([0.7, -0.4, 0.25])
l = torch.nn.functional.mse_loss(a, yy)
l.backward()
p("mse: loss, da[0..2]", l, *a.grad)

# bce over [2]
a, yy = t([0.3, 0.9]), c([1.0, 0.25])
l = torch.nn.functional.binary_cross_entropy(a, yy)
l.backward()
p("bce: loss, da[0..1]", l, *a.grad)

# a parameter reached twice: torch sums the two contributions, then adds
# that sum into the existing .grad: 1 + (2^-24 + 2^-24), not (1 + 2^-24) + 2^-24
w = t(1.0)
w.grad = c(1.0)
k = 2.0 ** -24
(w * k + w * k).backward()
p("param accumulation: grad", w.grad)
