#!/usr/bin/python3
"""The bench models in PyTorch, trained the way bpviz trains them, timed.

    /usr/bin/python3 bench/torch_bench.py [--threads N|default] [--no-mkldnn] MODEL STEPS [DATADIR]
    /usr/bin/python3 bench/torch_bench.py --epoch MODEL [DATADIR]

MODEL: linear quadratic mlp8641 mlp64 mnist micrograd, and mlp64_momentum
mlp64_adam mnist_momentum mnist_adam (torch.optim.SGD(momentum=0.9) and
torch.optim.Adam with its default betas and eps, the same lr); the course's
lenet (batch 64), lenet_b1 (batch 1), rnn (batch 1) and rnn_b64 (batch 64),
models/*.bp. Prints `torch: N steps, X ns/step` for STEPS steps after
STEPS/10 warm-up steps. Float32, the same data, batch order and optimizer as
the .bp model; one thread unless --threads says otherwise (`default`: leave
PyTorch's own choice); torch.backends.mkldnn at its default (on) unless
--no-mkldnn. The MLPs' initial values differ from the .bp's (only the time
matters there); the course's models start from the .bp's values (bpviz's
seeded randn and uniform, ported by tests/torch/bpref.py), write the .bp's
ops one for one and update as bpviz does (p - lr * grad), so that
`--epoch MODEL` (one epoch, mkldnn disabled: the im2col path) prints the
line `bpviz run MODEL.bp` prints, bit for bit.
"""
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


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


def course_params(name):
    """The .bp's params (name, float32 tensor), as bpviz initialises them."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "torch"))
    from bpref import randn, uniform

    def p(v):
        return torch.tensor(v, dtype=torch.float32, requires_grad=True)
    if name.startswith("lenet"):
        return [("w1", p(randn([10, 1, 5, 5], seed=1, std=0.2))), ("b1", p([0.0] * 10)),
                ("w2", p(randn([20, 10, 5, 5], seed=2, std=0.06))), ("b2", p([0.0] * 20)),
                ("W", p(randn([320, 10], seed=3, std=0.05))), ("b", p([0.0] * 10))]
    ih = [32, 16] if name == "rnn" else [16, 32]  # rnn_b64: x @ W_ih
    return [("W_ih", p(uniform(ih, -0.18, 0.18, seed=1))), ("b_ih", p([0.0] * 32)),
            ("W_hh", p(uniform([32, 32], -0.18, 0.18, seed=2))), ("b_hh", p([0.0] * 32))]


def course(name, datadir, epoch_log=None):
    """lenet, lenet_b1, rnn, rnn_b64 (models/*.bp): a step function, or with
    epoch_log one epoch whose `bpviz run` line is appended to epoch_log."""
    import torch.nn.functional as F
    params = course_params(name)
    ps = [t for _, t in params]
    if name.startswith("lenet"):
        f = os.path.join(datadir, "digits.csv")
        x, y = csv(f, range(784)), csv(f, [784]).squeeze(1).long()
        bs, lr = (1, 0.01) if name == "lenet_b1" else (64, 0.1)
        w1, b1, w2, b2, W, b = ps

        def loss_fn(xb, yb):
            # reshape(pixels, [1, 28, 28]): a batch dimension stays in front
            xi = xb.reshape(1, 28, 28) if bs == 1 else xb.reshape(-1, 1, 28, 28)
            a1 = F.relu(F.max_pool2d(F.conv2d(xi, w1, b1), 2))
            a2 = F.relu(F.max_pool2d(F.conv2d(a1, w2, b2), 2))
            logits = (torch.flatten(a2) if bs == 1 else torch.flatten(a2, 1)) @ W + b
            return F.cross_entropy(logits, yb)
    else:
        f = os.path.join(datadir, "seq16.csv")
        x, y = csv(f, range(320)), csv(f, range(320, 340)).long()
        bs, lr = (1, 0.01) if name == "rnn" else (64, 0.1)
        W_ih, b_ih, W_hh, b_hh = ps

        def loss_fn(xb, yb):
            h = torch.zeros(32)
            ls = []
            if bs == 1:
                xs = xb.reshape(20, 16)
                for t in range(1, 21):
                    h = torch.tanh(W_ih @ xs[t - 1] + b_ih + W_hh @ h + b_hh)
                    ls.append(F.cross_entropy(h, yb[t - 1]))
            else:
                xs = xb.reshape(-1, 20, 16)
                for t in range(1, 21):
                    h = torch.tanh(xs[:, t - 1] @ W_ih + b_ih + h @ W_hh + b_hh)
                    ls.append(F.cross_entropy(h, yb[:, t - 1]))
            return torch.stack(ls).sum()
    bl = [(x[i], y[i]) for i in range(len(x))] if bs == 1 else batches(x, y, bs)
    i = 0

    def step():
        nonlocal i
        xb, yb = bl[i % len(bl)]
        i += 1
        loss = loss_fn(xb, yb)
        loss.backward()
        with torch.no_grad():  # bpviz's SGD: p - fl(lr) * grad
            for p in ps:
                p.sub_(lr * p.grad)
                p.grad = None
        return loss
    if epoch_log is None:
        return step
    for _ in range(len(bl)):
        loss = step()
    fmt = lambda t: repr(float(t.item())) if t.dim() == 0 else repr(t.tolist())
    epoch_log.append(" ".join(["epoch=0", "loss=" + fmt(loss.detach())]
                              + ["%s=%s" % (n, fmt(t.detach())) for n, t in params]))


def make(name, datadir):
    if name in ("lenet", "lenet_b1", "rnn", "rnn_b64"):
        return course(name, datadir)
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
    args = sys.argv[1:]
    threads, mkldnn = "1", True
    while args and args[0].startswith("--"):
        a = args.pop(0)
        if a == "--threads":
            threads = args.pop(0)
        elif a == "--no-mkldnn":
            mkldnn = False
        elif a == "--epoch":
            torch.set_num_threads(1)
            torch.backends.mkldnn.enabled = False
            log = []
            course(args[0], args[1] if len(args) > 1 else os.path.join(HERE, "data"), log)
            print(log[0])
            return
        else:
            sys.exit("usage: torch_bench.py [--threads N|default] [--no-mkldnn] MODEL STEPS [DATADIR]"
                     " | --epoch MODEL [DATADIR]")
    if threads != "default":
        torch.set_num_threads(int(threads))
    torch.backends.mkldnn.enabled = mkldnn
    name, steps = args[0], int(args[1])
    datadir = args[2] if len(args) > 2 else os.path.join(HERE, "data")
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
