#!/usr/bin/python3
"""The bench models in PyTorch, trained the way bpviz trains them, timed.

    /usr/bin/python3 bench/torch_bench.py MODEL STEPS [DATADIR]

MODEL: linear quadratic mlp8641 mlp64 mnist micrograd, and mlp64_momentum
mlp64_adam mnist_momentum mnist_adam (torch.optim.SGD(momentum=0.9) and
torch.optim.Adam with its default betas and eps, the same lr). Prints
`torch: N steps, X ns/step` for STEPS steps after STEPS/10 warm-up steps.
Single-threaded, float32, the same data, batch order and optimizer as the
.bp model (the initial values differ: only the time matters here).
"""
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)


def csv(path, cols):
    rows = [l.split(",") for l in open(path).read().split("\n")[1:] if l]
    return torch.tensor([[float(r[c]) for c in cols] for r in rows], dtype=torch.float32)


def tutorial(quadratic):
    xs, ys = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]
    xs = [torch.tensor(v) for v in xs]
    ys = [torch.tensor(v) for v in ys]
    if quadratic:
        w1 = torch.tensor(0.05, requires_grad=True)
        w2 = torch.tensor(1.5, requires_grad=True)
        b = torch.tensor(0.05, requires_grad=True)
        params = [(w1, 0.001), (w2, 0.05), (b, 0.001)]
    else:
        w = torch.tensor(1.0, requires_grad=True)
        params = [(w, 0.01)]
    i = 0

    def step():
        nonlocal i
        x, y = xs[i % 4], ys[i % 4]
        i += 1
        y_hat = x ** 2 * w1 + x * w2 + b if quadratic else x * w
        loss = (y_hat - y) ** 2
        loss.backward()
        for p, lr in params:  # the tutorial's update and zeroing
            p.data = p.data - lr * p.grad.data
            p.grad.data.zero_()
    return step


def batches(x, y, bs):
    n = x.shape[0]
    out = [(x[s:s + bs], y[s:s + bs]) for s in range(0, n, bs)]
    return out


def network(layers, act, loss_fn, x, y, bs, lr, optim="sgd"):
    torch.manual_seed(0)
    mods = []
    for i, (a, b) in enumerate(zip(layers, layers[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(layers) - 2:
            mods.append(act())
    if loss_fn == "bce":
        mods.append(torch.nn.Sigmoid())
    net = torch.nn.Sequential(*mods)
    crit = {"bce": torch.nn.BCELoss(), "mse": torch.nn.MSELoss(),
            "ce": torch.nn.CrossEntropyLoss()}[loss_fn]
    if optim == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9 if optim == "momentum" else 0)
    bl = batches(x, y, bs)
    i = 0

    def step():
        nonlocal i
        xb, yb = bl[i % len(bl)]
        i += 1
        out = net(xb)
        loss = crit(out.squeeze(-1) if loss_fn != "ce" else out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def micrograd():
    sys.path.insert(0, HERE)
    import gen
    layers = gen.micrograd_weights()
    xs, ys = gen.moons()
    ps = []
    W = []
    for w, b in layers:
        wt = [[torch.tensor(v, requires_grad=True) for v in row] for row in w]
        bt = [torch.tensor(v, requires_grad=True) for v in b]
        W.append((wt, bt))
        ps += [v for row in wt for v in row] + bt
    data = [([torch.tensor(v) for v in x], torch.tensor(float(y))) for x, y in zip(xs, ys)]
    i = 0

    def step():
        nonlocal i
        x, y = data[i % len(data)]
        i += 1
        h = x
        for li, (wt, bt) in enumerate(W):
            nxt = []
            for row, bj in zip(wt, bt):
                s = row[0] * h[0]
                for k in range(1, len(row)):
                    s = s + row[k] * h[k]
                s = s + bj
                nxt.append(s if li == len(W) - 1 else torch.relu(s))
            h = nxt
        loss = (h[0] - y) ** 2
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p -= 0.01 * p.grad
                p.grad = None
    return step


def make(name, datadir):
    base, _, optim = name.partition("_")  # mlp64_adam: mlp64 with Adam
    if base in ("mlp64", "mnist") and optim in ("momentum", "adam"):
        name = base
    elif optim:
        sys.exit("unknown model " + name)
    else:
        optim = "sgd"
    if name in ("linear", "quadratic"):
        return tutorial(name == "quadratic")
    if name == "mlp8641":
        f = os.path.join(datadir, "diabetes.csv")
        return network([8, 6, 4, 1], torch.nn.Sigmoid, "bce", csv(f, range(8)),
                       csv(f, [8]).squeeze(1), 32, 0.1)
    if name == "mlp64":
        f = os.path.join(datadir, "wide64.csv")
        return network([64, 64, 64, 1], torch.nn.Tanh, "mse", csv(f, range(64)),
                       csv(f, [64]).squeeze(1), 32, 0.05, optim)
    if name == "mnist":
        f = os.path.join(datadir, "digits.csv")
        return network([784, 128, 10], torch.nn.ReLU, "ce", csv(f, range(784)),
                       csv(f, [784]).squeeze(1).long(), 64, 0.1, optim)
    if name == "micrograd":
        return micrograd()
    sys.exit("unknown model " + name)


def main():
    name, steps = sys.argv[1], int(sys.argv[2])
    datadir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "data")
    step = make(name, datadir)
    for _ in range(max(1, steps // 10)):
        step()
    t0 = time.perf_counter_ns()
    for _ in range(steps):
        step()
    t1 = time.perf_counter_ns()
    print("torch: %d steps, %.1f ns/step" % (steps, (t1 - t0) / steps))


if __name__ == "__main__":
    main()
