"""Helpers for the PyTorch reference programs of the golden tests.

Each golden model is written twice by hand: once in the .bp language
(tests/golden/NAME.bp) and once as a plain PyTorch program
(tests/torch/golden_models.py). This module holds what the PyTorch programs
share: the output format of `bpviz run` and the training loop `train`
statements stand for. It is not a .bp interpreter.

Output format (the spec's `bpviz run MODEL.bp`):
  predict CALL = VALUE                     CALL echoed as written in the .bp
  epoch=E loss=L NAME=VALUE ...            after each epoch, params in declaration order
Numbers are Python's repr() of the value (a float32 value widened to double
under the default dtype); tensors are repr(tensor.tolist()).
"""
import torch


def fmt(t):
    """repr() of a number, or of tensor.tolist() for a tensor of rank >= 1."""
    if isinstance(t, torch.Tensor):
        if t.dim() == 0:
            return repr(float(t.item()))
        return repr(t.tolist())
    return repr(float(t))


class Param:
    """A trainable tensor with its declared name and optional per-param lr."""

    def __init__(self, name, value, dtype, lr=None):
        self.name = name
        self.t = torch.tensor(value, dtype=dtype, requires_grad=True)
        self.lr = lr


class Run:
    """Collects the lines `bpviz run` prints; the epoch counter continues
    across train statements, like bpviz's."""

    def __init__(self, dtype=torch.float32):
        self.dtype = dtype
        self.lines = []
        self.epoch = 0

    # -- declarations -----------------------------------------------------
    def data(self, values):
        return torch.tensor(values, dtype=self.dtype)

    def param(self, name, value, lr=None):
        return Param(name, value, self.dtype, lr)

    def value(self, v):
        """A predict binding: a number or (nested) list as a tensor."""
        return torch.tensor(v, dtype=self.dtype)

    # -- statements -------------------------------------------------------
    def predict(self, call, fn, **bindings):
        """`predict CALL`: evaluates fn(**bindings) with the current params."""
        with torch.no_grad():
            v = fn(**{k: self.value(b) for k, b in bindings.items()})
        self.lines.append("predict %s = %s" % (call, fmt(v)))

    def train(self, params, data, loss_fn, epochs, lr=None, batch=1,
              optimizer="sgd", momentum=0.0, betas=(0.9, 0.999), eps=1e-8,
              zero_grad=True):
        """One `train` statement.

        params:  list of Param in declaration order
        data:    dict name -> tensor whose first dimension indexes the samples
        loss_fn: called with one keyword argument per data name, returns the
                 scalar loss tensor
        batch:   1 (one sample, no batch dimension: x[i]), N (x[i:i+N], the
                 last batch may be smaller) or "all"
        """
        n = len(next(iter(data.values()))) if data else 1  # no data: one step an epoch
        if batch == "all":
            batch = n
        groups = [{"params": [p.t], "lr": p.lr if p.lr is not None else lr}
                  for p in params]
        opt = None
        if optimizer == "adam":
            opt = torch.optim.Adam(groups, betas=betas, eps=eps)
        elif momentum != 0.0:
            opt = torch.optim.SGD(groups, lr=lr, momentum=momentum)
        for _ in range(epochs):
            for start in range(0, n, batch):
                if not data:
                    sample = {}
                elif batch == 1:
                    sample = {k: v[start] for k, v in data.items()}
                else:
                    sample = {k: v[start:start + batch] for k, v in data.items()}
                loss = loss_fn(**sample)
                loss.backward()
                if opt is not None:
                    opt.step()
                else:
                    # the tutorial's update, float32 throughout: p - fl(lr) * g
                    for p in params:
                        plr = p.lr if p.lr is not None else lr
                        p.t.data = p.t.data - plr * p.t.grad.data
                if zero_grad:
                    for p in params:
                        p.t.grad.zero_()
            self.lines.append(" ".join(
                ["epoch=%d" % self.epoch, "loss=" + fmt(loss.detach())]
                + ["%s=%s" % (p.name, fmt(p.t.detach())) for p in params]))
            self.epoch += 1


# -- bpviz's seeded initialisers (init.c), for models that use them ---------
M64 = (1 << 64) - 1


def _splitmix64(state):
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & M64
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _unit(state):
    return (_splitmix64(state) >> 11) * 2.0 ** -53


def randn(shape, seed, std=1.0):
    """bpviz's randn(SHAPE, seed=N, std=S): Box-Muller in double over
    splitmix64 (math's log, sqrt, cos, sin are the C library's, as bpviz's),
    as a nested list of doubles (the caller rounds to the dtype)."""
    import math
    n = 1
    for d in shape:
        n *= d
    state, out = [seed], [0.0] * n
    for i in range(n):
        if i % 2 == 0:
            u1 = 1.0 - _unit(state)
            u2 = _unit(state)
            r, t = math.sqrt(-2.0 * math.log(u1)), 2.0 * 3.14159265358979323846 * u2
            out[i] = r * math.cos(t)
            if i + 1 < n:
                out[i + 1] = r * math.sin(t)
        out[i] *= std
    return torch.tensor(out, dtype=torch.float64).reshape(shape).tolist()


def uniform(shape, lo, hi, seed):
    """bpviz's uniform(SHAPE, LO, HI, seed=N)."""
    n = 1
    for d in shape:
        n *= d
    state = [seed]
    out = [lo + (hi - lo) * _unit(state) for _ in range(n)]
    return torch.tensor(out, dtype=torch.float64).reshape(shape).tolist()
