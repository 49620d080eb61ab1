"""Reference numbers for tests/test_model.c (optimizer steps).

The model in the test is `param w = W0`, `const c = C`, `loss = sum(w * c)`,
so every step's gradient is exactly c and only the optimizer's arithmetic is
under test. Run with torch 1.13: /usr/bin/python3 tests/torch/optim_reference.py
and paste the printed values into test_model.c.
"""
import torch

W0 = [0.5, -1.25, 2.0, 0.1]
C = [0.3, -0.7, 1.1, 0.05]


def run(make_opt, steps):
    w = torch.tensor(W0, requires_grad=True)
    c = torch.tensor(C)
    opt = make_opt([w])
    for _ in range(steps):
        opt.zero_grad()
        loss = (w * c).sum()
        loss.backward()
        opt.step()
    return [repr(float(v)) for v in w.detach()]


print("momentum", run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 3))
print("adam", run(lambda p: torch.optim.Adam(p, lr=0.01), 3))
print("adam_opts", run(lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6), 5))
