"""The golden models as PyTorch programs, one function per tests/golden/NAME.bp.

Each function is written by hand to do what the .bp file says, statement by
statement, in plain PyTorch: tensors, parameters with requires_grad=True, the
forward expression, loss.backward(), and the update (bpref.Run.train: the
tutorial's `p.data = p.data - lr * p.grad.data`, or torch.optim.SGD with
momentum / torch.optim.Adam). A function returns the lines `bpviz run NAME.bp`
must print.

Correspondence of .bp operators to PyTorch:
  a ^ n, a ** n (literal n) -> a ** n        sum/mean(e) -> e.sum()/e.mean()
  a @ b -> a @ b   T(e) -> e.T                mse -> F.mse_loss, bce -> F.binary_cross_entropy
  softmax/log_softmax(e) -> over dim -1       cross_entropy(l, y) -> F.cross_entropy(l, y.long())
  a number in an expression -> a Python number (PyTorch rounds it to the dtype)
  const k = 3 -> a tensor of the model's dtype
"""
import torch
import torch.nn.functional as F

from bpref import Run

f32 = torch.float32


def linear():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([2, 4, 6, 8])
    w = r.param("w", 1.0)

    def y_hat(x):
        return x * w.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=5)", y_hat, x=5)
    r.train([w], {"x": x, "y": y}, loss, epochs=100, lr=0.01)
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def quadratic():
    """The tutorial, written out without bpref's training loop, as a check
    of it (make_golden.py also checks the tutorial's published lines)."""
    lines = []
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([2.0, 4.0, 6.0, 8.0])
    w1 = torch.tensor(0.05, requires_grad=True)
    w2 = torch.tensor(1.5, requires_grad=True)
    b = torch.tensor(0.05, requires_grad=True)

    def forward(x):
        return x ** 2 * w1 + x * w2 + b

    with torch.no_grad():
        lines.append("predict y_hat(x=5) = %r" % forward(torch.tensor(5.0)).item())
    for epoch in range(200):
        for x_i, y_i in zip(x, y):
            y_hat = forward(x_i)
            loss = (y_hat - y_i) ** 2
            loss.backward()
            w1.data = w1.data - 0.001 * w1.grad.data
            w2.data = w2.data - 0.05 * w2.grad.data
            b.data = b.data - 0.001 * b.grad.data
            w1.grad.data.zero_()
            w2.grad.data.zero_()
            b.grad.data.zero_()
        lines.append("epoch=%d loss=%r w1=%r w2=%r b=%r"
                     % (epoch, loss.item(), w1.item(), w2.item(), b.item()))
    with torch.no_grad():
        lines.append("predict y_hat(x=5) = %r" % forward(torch.tensor(5.0)).item())
    return lines


def divsub():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([1.5, 0.25, -1, -2.5])
    a = r.param("a", 2.0)
    b = r.param("b", 0.5)
    c = r.param("c", -0.25)
    k = r.data(3)

    def y_hat(x):
        return a.t / (x + b.t) - c.t * x - -b.t / k + -(x / a.t)

    def loss(x, y):
        return (y - y_hat(x)) ** 2

    r.predict("y_hat(x=2)", y_hat, x=2)
    r.train([a, b, c], {"x": x, "y": y}, loss, epochs=30, lr=0.02)
    r.predict("y_hat(x=2)", y_hat, x=2)
    r.predict("y_hat(x=-1.5)", y_hat, x=-1.5)
    return r.lines


def powers():
    r = Run()
    x = r.data([0.5, 1, 1.5, 2])
    y = r.data([1, 1.5, 3, 6])
    a = r.param("a", 0.2)
    b = r.param("b", 0.5)
    c = r.param("c", 0.1)

    def y_hat(x):
        return (a.t * x ** 3 + (b.t * x) ** 2 + (x + c.t) ** -1 - x ** -1 * c.t
                + (a.t + b.t) ** -2)

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=3)", y_hat, x=3)
    r.train([a, b, c], {"x": x, "y": y}, loss, epochs=40, lr=0.005)
    r.predict("y_hat(x=3)", y_hat, x=3)
    return r.lines


def pow4():
    r = Run()
    x = r.data([0.3, 0.7, 1.1, 1.3])
    y = r.data([0.1, 0.4, 1.9, 3.1])
    w = r.param("w", 0.9)
    v = r.param("v", 0.8)

    def y_hat(x):
        return w.t * x ** 4 + (v.t * x) ** 5

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=1.7)", y_hat, x=1.7)
    r.train([w, v], {"x": x, "y": y}, loss, epochs=30, lr=0.01)
    r.predict("y_hat(x=1.7)", y_hat, x=1.7)
    return r.lines


def unary_fns():
    r = Run()
    x = r.data([0.5, 1.0, 1.5, 2.0])
    y = r.data([1.2, 0.9, 1.4, 2.1])
    a = r.param("a", 0.3)
    b = r.param("b", -0.2)
    c = r.param("c", 0.8)

    def y_hat(x):
        h = (torch.sigmoid(a.t * x + b.t) + torch.tanh(c.t * x)
             - torch.relu(c.t * x - 1) + torch.pow(x, a.t) * 0.1)
        g = (torch.exp(b.t * x) * 0.5 + torch.log(x + c.t) * 0.25
             - torch.sqrt(torch.abs(a.t - x)) * 0.1)
        return h + g

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=1.25)", y_hat, x=1.25)
    r.train([a, b, c], {"x": x, "y": y}, loss, epochs=50, lr=0.01)
    r.predict("y_hat(x=1.25)", y_hat, x=1.25)
    return r.lines


def vector():
    r = Run()
    x = r.data([[1, 2], [2, 1], [3, 0.5], [0.5, 3]])
    y = r.data([5, 4, 4, 6.5])
    w = r.param("w", [0.1, 0.2])
    b = r.param("b", 0.0)

    def y_hat(x):
        return (x * w.t).sum() + b.t

    def dot(x):
        return x @ w.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2 + (w.t ** 2).mean() * 0.01

    r.predict("y_hat(x=[1, 1])", y_hat, x=[1, 1])
    r.train([w, b], {"x": x, "y": y}, loss, epochs=50, lr=0.02)
    r.predict("y_hat(x=[1, 1])", y_hat, x=[1, 1])
    r.predict("dot(x=[1, 1])", dot, x=[1, 1])
    return r.lines


def two_layer():
    r = Run()
    x = r.data([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = r.data([0.1, 0.8, 0.6, 0.3])
    W = r.param("W", [[0.5, 0.2], [-0.4, 0.6], [0.3, -0.7]])
    b = r.param("b", [0.1, -0.1, 0.05])
    v = r.param("v", [0.7, -0.5, 0.4])
    c = r.param("c", 0.0)

    def h(x):
        return torch.tanh(x @ W.t.T + b.t)

    def out(x):
        return h(x) @ v.t + c.t

    def loss(x, y):
        return F.mse_loss(out(x), y)

    r.predict("out(x=[1, 0])", out, x=[1, 0])
    r.train([W, b, v, c], {"x": x, "y": y}, loss, epochs=60, lr=0.2, batch=2)
    r.predict("out(x=[1, 0])", out, x=[1, 0])
    r.predict("out(x=[[0, 0], [0, 1], [1, 0], [1, 1]])", out,
              x=[[0, 0], [0, 1], [1, 0], [1, 1]])
    r.predict("h(x=[0, 1])", h, x=[0, 1])
    return r.lines


def batch_mse():
    r = Run()
    x = r.data([1, 2, 3, 4, 5])
    y = r.data([3.1, 4.9, 7.2, 8.8, 10.4])
    w = r.param("w", 0.5)
    b = r.param("b", 0.0)

    def y_hat(x):
        return x * w.t + b.t

    def loss(x, y):
        return F.mse_loss(y_hat(x), y)

    r.predict("y_hat(x=6)", y_hat, x=6)
    r.train([w, b], {"x": x, "y": y}, loss, epochs=40, lr=0.02, batch=2)
    r.predict("y_hat(x=6)", y_hat, x=6)
    r.predict("y_hat(x=[6, 7])", y_hat, x=[6, 7])
    return r.lines


def batch_all():
    r = Run()
    x = r.data([[1, 0.5], [2, 1.5], [3, -1], [4, 2]])
    y = r.data([2.5, 5.5, 4, 9])
    w = r.param("w", [0.0, 0.0])
    b = r.param("b", 0.5)

    def y_hat(x):
        return x @ w.t + b.t

    def cost(x, y):
        return ((y_hat(x) - y) ** 2).mean()

    r.train([w, b], {"x": x, "y": y}, cost, epochs=60, lr=0.05, batch="all")
    r.predict("y_hat(x=[1, 1])", y_hat, x=[1, 1])
    return r.lines


def bce():
    r = Run()
    x = r.data([-2, -1, -0.5, 0.5, 1, 2, 3])
    y = r.data([0, 0, 1, 0, 1, 1, 1])
    w = r.param("w", 0.1)
    b = r.param("b", 0.0)

    def p(x):
        return torch.sigmoid(x * w.t + b.t)

    def loss(x, y):
        return F.binary_cross_entropy(p(x), y)

    r.predict("p(x=1.5)", p, x=1.5)
    r.train([w, b], {"x": x, "y": y}, loss, epochs=50, lr=0.1)
    r.predict("p(x=1.5)", p, x=1.5)
    return r.lines


def cross_entropy():
    r = Run()
    x = r.data([[1, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [1, 0.8]])
    y = r.data([0, 1, 2, 0, 1, 2])
    W = r.param("W", [[0.2, -0.1, 0.0], [0.1, 0.3, -0.2]])
    b = r.param("b", [0.0, 0.0, 0.0])

    def logits(x):
        return x @ W.t + b.t

    def probs(x):
        return torch.softmax(logits(x), dim=-1)

    def logp(x):
        return torch.log_softmax(logits(x), dim=-1)

    def loss(x, y):
        return F.cross_entropy(logits(x), y.long())

    r.predict("probs(x=[1, 1])", probs, x=[1, 1])
    r.train([W, b], {"x": x, "y": y}, loss, epochs=30, lr=0.5, batch=2)
    r.predict("probs(x=[1, 1])", probs, x=[1, 1])
    r.predict("logp(x=[[1, 0], [0, 1]])", logp, x=[[1, 0], [0, 1]])
    return r.lines


def momentum():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([3.2, 4.8, 7.3, 8.6])
    w = r.param("w", 0.0)
    b = r.param("b", 0.0, lr=0.02)

    def y_hat(x):
        return x * w.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.train([w, b], {"x": x, "y": y}, loss, epochs=20, lr=0.01, momentum=0.9)
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def adam():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([2.3, 3.8, 6.4, 7.7])
    w1 = r.param("w1", 0.05)
    w2 = r.param("w2", 1.5)
    b = r.param("b", 0.05)

    def y_hat(x):
        return x ** 2 * w1.t + x * w2.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.train([w1, w2, b], {"x": x, "y": y}, loss, epochs=30, lr=0.01, optimizer="adam")
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def adam_opts():
    r = Run()
    x = r.data([[1, 2], [2, 1], [3, 0.5], [0.5, 3]])
    y = r.data([5, 4, 4, 6.5])
    w = r.param("w", [0.1, 0.2])
    b = r.param("b", 0.0)

    def y_hat(x):
        return x @ w.t + b.t

    def loss(x, y):
        return F.mse_loss(y_hat(x), y)

    r.train([w, b], {"x": x, "y": y}, loss, epochs=40, lr=0.05, batch=2,
            optimizer="adam", betas=(0.8, 0.99), eps=1e-6)
    r.predict("y_hat(x=[1, 1])", y_hat, x=[1, 1])
    return r.lines


def no_zero_grad():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([2, 4, 6, 8])
    w = r.param("w", 1.0)
    b = r.param("b", 0.0)

    def y_hat(x):
        return x * w.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.train([w, b], {"x": x, "y": y}, loss, epochs=8, lr=0.002, zero_grad=False)
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def two_trains():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([2, 4, 6, 8])
    w1 = r.param("w1", 0.05)
    w2 = r.param("w2", 1.5)
    b = r.param("b", 0.05)

    def y_hat(x):
        return x ** 2 * w1.t + x * w2.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    data = {"x": x, "y": y}
    r.train([w1, w2, b], data, loss, epochs=3, lr=0.004)
    r.predict("y_hat(x=5)", y_hat, x=5)
    r.train([w1, w2, b], data, loss, epochs=4, lr=0.002)
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def f64():
    r = Run(torch.float64)
    x = r.data([1, 2, 3, 4])
    y = r.data([2, 4, 6, 8])
    w1 = r.param("w1", 0.05, lr=0.001)
    w2 = r.param("w2", 1.5, lr=0.05)
    b = r.param("b", 0.05, lr=0.001)

    def y_hat(x):
        return x ** 2 * w1.t + x * w2.t + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=5)", y_hat, x=5)
    r.train([w1, w2, b], {"x": x, "y": y}, loss, epochs=50, lr=0.001)
    r.predict("y_hat(x=5)", y_hat, x=5)
    return r.lines


def named_twice():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([1, 3, 7, 13])
    w = r.param("w", 0.5)
    b = r.param("b", 0.1)
    c = r.param("c", 0.3)

    def h(x):
        return w.t * x + b.t

    def y_hat(x):
        hx = h(x)
        return hx * c.t + hx / (x + 1)

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("h(x=2)", h, x=2)
    r.train([w, b, c], {"x": x, "y": y}, loss, epochs=20, lr=0.01)
    r.predict("y_hat(x=2)", y_hat, x=2)
    return r.lines


def grad_order():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([0.7, 1.9, 4.1, 6.2])
    w = r.param("w", 0.3)
    b = r.param("b", 0.2)
    c = r.param("c", 0.7)

    def y_hat(x):
        h = w.t * x + b.t
        return c.t * h + h * h

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.train([w, b, c], {"x": x, "y": y}, loss, epochs=20, lr=0.003)
    r.predict("y_hat(x=2)", y_hat, x=2)
    return r.lines


def fn():
    r = Run()
    x = r.data([1, 2, 3, 4])
    y = r.data([2, 5, 10, 17])
    w = r.param("w", 0.5)
    b = r.param("b", 0.5)

    def sq(u):
        return u * u

    def affine(u, m, k):
        return u * m + k

    def y_hat(x):
        return affine(sq(x), w.t, b.t)

    def loss(x, y):
        return sq(y_hat(x) - y)

    r.predict("y_hat(x=3)", y_hat, x=3)
    r.train([w, b], {"x": x, "y": y}, loss, epochs=30, lr=0.002)
    r.predict("y_hat(x=3)", y_hat, x=3)
    return r.lines


def nonfinite():
    r = Run()
    x = r.data([1, 2, 0, 4])
    y = r.data([1, 1, 1, 1])
    w = r.param("w", 2.0)

    def y_hat(x):
        return w.t / x

    def z(x):
        return -(x * w.t)

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=0)", y_hat, x=0)
    r.predict("y_hat(x=-0.0)", y_hat, x=-0.0)
    r.predict("z(x=0)", z, x=0)
    r.train([w], {"x": x, "y": y}, loss, epochs=2, lr=0.1)
    r.predict("y_hat(x=1)", y_hat, x=1)
    return r.lines


def matmul_exact():
    r = Run()
    X = [
        [-0.529, -1.047, 0.453, -1.283, 0.108, -0.403, -1.326, 0.022, -1.388],
        [-0.199, -1.29, -1.228, -0.226, 0.981, -1.129, -0.83, 0.382, 1.343],
        [0.231, -0.31, 1.429, -1.36, 1.075, -0.631, -1.067, -1.147, -0.575],
        [0.948, -0.958, 0.245, 0.417, -0.383, 0.143, -1.312, -1.321, -0.882],
        [0.541, -0.217, -0.558, 0.257, -0.14, -0.601, 0.883, 0.597, -0.768],
        [0.223, 0.076, 1.125, 0.688, -0.636, 1.441, -1.146, -0.246, 0.771],
    ]
    Y = [
        [-1.044, -0.033],
        [-1.382, 0.505],
        [0.794, 0.219],
        [1.126, -0.559],
        [0.586, 0.283],
        [0.24, -0.131],
    ]
    Wv = [
        [0.272, 0.356, -0.021, 0.131, -0.351, 0.161, 0.118, 0.394, 0.258],
        [-0.172, -0.091, 0.135, -0.382, -0.031, -0.266, -0.306, -0.353, 0.215],
        [-0.297, -0.202, -0.087, 0.297, -0.336, -0.041, 0.04, 0.307, 0.255],
    ]
    x = r.data(X)
    y = r.data(Y)
    W = r.param("W", Wv)
    b = r.param("b", [0.146, -0.089, -0.034])
    V = r.param("V", [[[-1.1852, 0.2146, -1.9406, -0.0134, 0.0369, 0.0572, -3.7791, 0.028, 1.6696, 0.0676, -1.049, -0.0578, -1.8669, 0.8669, 0.101, -0.0327, -0.0936, -1.0973, 0.0166], [-0.4029, 1.7081, -0.0704, 1.0923, 0.3497, 0.3791, 0.6182, -0.0179, -0.1284, -0.2398, 0.1063, -0.2403, 0.2312, -0.0281, 0.0117, -6.8063, 2.2587, -0.0168, 1.7246], [1.6577, 0.3295, -2.3091, 0.2469, -0.3233, -0.1861, 0.9217, 0.0069, -0.0291, 1.221, -0.0541, -0.1179, -5.1011, -4.7816, 0.0035, 0.0975, 1.3431, 0.0169, 0.3775], [1.6979, -0.0942, -0.3945, -0.1304, 0.0999, 0.0297, 0.2518, 0.0141, -0.3461, 6.5057, 0.0244, 0.1177, 6.4527, 2.5893, 0.0774, 0.5632, 4.5399, 0.0024, -0.5912]], [[-0.0416, 1.4036, 0.8794, 0.0173, 0.4631, 0.6482, -0.9182, 0.338, -0.1079, 6.0672, 0.1486, 0.6277, 0.27, 0.0581, 0.1193, 0.0248, -0.3797, 0.156, 0.0878], [2.8387, -0.5579, 0.0104, 0.8514, -0.4913, -0.5816, -0.8761, -0.0228, -5.5156, -3.9951, 5.8588, 0.2281, -0.4121, -0.1881, -1.2306, -0.074, 0.0067, -0.0234, 3.3479], [5.6933, 0.0585, 1.4602, 0.1572, 0.0565, 1.9821, -0.089, -0.3062, -0.2478, 1.946, -7.9879, 0.9674, 1.845, -3.1831, -0.022, 0.176, 6.4573, -0.006, -0.418], [-0.0674, -0.0459, -5.8798, -0.0417, -0.0619, -0.0179, -0.0264, 0.1016, 0.0156, 0.0, 0.0517, -0.1065, -0.0117, -1.5301, -3.9434, 0.4362, 0.0753, -0.0811, 0.0899]], [[0.1723, -0.21, 0.0547, -3.2585, 0.0906, 0.9236, 0.0493, 0.7164, 1.0745, -0.3981, 0.1555, 0.1158, 2.6697, 0.0249, 2.38, 1.1028, 2.8191, -1.9093, -3.6074], [6.4199, 0.0683, -1.6148, -0.0079, -0.0831, 3.3113, -0.4991, 0.0482, 0.4325, -0.0377, 0.1597, 0.2101, 0.0685, -0.9061, -0.057, -0.2438, 0.222, 0.201, -4.7616], [0.2324, 0.2053, -0.6258, 1.3743, 0.5136, -7.2737, -2.1622, -0.0552, -0.8551, -0.0333, -0.6194, -0.0147, 0.1233, 0.9485, -0.2178, -2.3622, -0.0274, -0.0508, 0.0131], [-0.2489, 0.5169, 0.4165, -0.0209, 1.3841, -0.6982, 0.0988, -0.0599, 0.0136, -0.0581, -1.8649, -0.6181, 3.5283, 0.0013, 0.7733, 0.2029, -7.1675, -0.1464, 0.439]]])
    c = r.param("c", [0.7, -0.45])

    def h(x):
        return x @ W.t.T + b.t

    def r_(x, y):
        return (h(x) @ V.t - y) @ c.t

    def loss(x, y):
        e = r_(x, y)
        return e @ e

    r.predict(f"h(x={X[0]})", h, x=X[0])
    r.train([W, b, V, c], {"x": x, "y": y}, loss, epochs=25, lr=0.01, batch=2)
    r.predict(f"h(x={X[1]})", h, x=X[1])
    r.predict(f"r(x={X[:2]}, y={Y[:2]})", r_, x=X[:2], y=Y[:2])
    return r.lines


def activations_exact():
    r = Run()
    X = [-0.381, 0.478, 3.394, -0.275, 0.063, 0.699, -2.523, 0.095, 1.039, 2.344, -3.247, -1.573, -3.275, 2.477, 1.548, -3.665, 3.858, 3.718, 1.231, 0.925, -2.74, -3.88, 0.227, -3.524, -2.478, -2.064, -3.759, -0.289, -0.476, 2.739, 0.153, 1.122, -0.002, 1.3, -0.341, -1.775, 3.981]
    x = r.data([X])
    u = r.data([[-0.738, 0.287, -0.767, -0.158, -0.574, -0.46, 0.942, 0.607, -0.392, 0.77, -0.579, -0.211, 0.709, 0.284, -0.799, 0.979, -0.574, -0.483, 0.545, -0.342, -0.407, -0.853, -0.82, 0.165, -0.514, 0.203, -0.257, -0.094, 0.918, -0.033, 0.149, 0.733, -0.634, -0.692, 0.817, 0.636, -0.501]])
    a = r.param("a", [1.487, 1.021, 0.623, -0.554, -0.811, -0.633, -1.289, 0.799, -0.299, 1.04, -0.34, 1.374, 1.042, -1.498, -0.871, 1.231, -0.09, 1.441, -0.308, -1.281, 0.388, 0.836, -0.691, -1.239, -0.502, 1.392, 0.774, -1.146, -0.761, -1.197, -1.32, 0.891, -0.967, 0.178, -0.158, -0.928, 0.696])

    def h(x):
        return (torch.tanh(a.t * x) + torch.sigmoid(a.t - x) * 0.5
                + torch.exp(a.t * 0.25) * 0.125 + torch.log(a.t * a.t + 1) * 0.25)

    def loss(x, u):
        return h(x) @ u

    r.predict(f"h(x={X})", h, x=X)
    r.train([a], {"x": x, "u": u}, loss, epochs=20, lr=0.05)
    r.predict(f"h(x={X})", h, x=X)
    return r.lines


def softmax_exact():
    r = Run()
    X = [[1.7, 1.79, 1.57], [-1.67, 0.37, -0.31], [0.12, -1.48, -1.23], [-0.22, -1.12, -0.18], [-1.9, -1.66, 0.84], [-0.32, 0.05, 0.94], [-0.56, -1.77, 1.13], [0.36, 0.63, 0.48], [1.88, -0.55, 1.04], [-0.53, 0.29, 0.64], [-0.74, -1.66, -0.1], [0.87, 0.36, -0.21], [0.57, -1.27, -1.29], [-0.71, 1.26, -1.22], [-1.54, -1.61, -1.84], [-0.9, 0.29, 1.28], [-0.68, -0.52, -0.85], [-0.78, 1.11, 0.2], [-0.97, -1.57, 1.14], [0.83, 1.31, -1.05]]
    x = r.data(X)
    y = r.data([8, 2, 9, 1, 6, 2, 7, 0, 0, 10, 6, 6, 0, 2, 3, 10, 0, 3, 0, 8])
    u = r.data([[0.89, -0.11, -0.81, -0.97, 0.58, -0.02, -0.93, -0.47, 0.1, 0.51, -0.08], [-0.41, -0.82, 0.11, 0.3, 0.38, 0.12, -0.52, -0.8, -0.67, -0.98, 0.52], [0.31, -0.17, -0.67, 0.23, 0.62, -0.86, 0.92, 0.8, 0.49, 0.09, -0.15], [-0.4, 0.72, 0.22, -0.9, -0.43, -0.95, -0.72, 0.93, 0.46, -0.14, -0.67], [0.32, -0.32, 0.38, -0.77, 0.77, 0.92, 0.6, 0.98, -0.46, -0.32, -0.95], [0.91, 0.5, -0.2, 0.59, -0.94, 0.31, 0.49, 0.91, -0.16, -0.45, 0.19], [0.98, 0.44, -0.64, 0.06, -0.47, 0.99, -0.55, -0.88, 0.78, -0.25, -0.96], [-0.09, -0.18, 0.36, -0.19, 0.61, -0.45, 0.86, -0.68, -0.91, 0.77, 0.34], [0.51, 0.77, 0.08, 0.38, -0.23, 0.79, 0.98, -0.71, -0.26, 0.24, 0.98], [-0.44, 0.54, -0.98, -0.93, 0.57, -0.78, 0.52, 0.13, -0.06, -0.19, -0.84], [-0.6, 0.13, 0.24, 0.56, -0.64, 0.02, 0.22, -0.28, 0.97, 0.25, 0.39], [0.21, -0.92, -0.76, 0.49, 0.97, -0.73, 0.37, 0.86, -0.41, 0.79, -0.41], [0.59, -0.91, -0.91, 0.52, -0.8, -0.94, -0.3, -0.68, -0.57, 0.93, 0.98], [0.52, -0.56, 0.17, 0.88, 0.33, 0.06, -0.56, 0.12, 0.48, -0.09, 0.32], [0.91, 0.28, -0.29, 0.96, -0.38, 0.84, -0.02, -0.3, -0.58, 0.3, -0.68], [-0.37, -0.15, -0.92, 0.47, -0.05, -0.68, 0.86, -0.27, 0.91, -0.93, -0.41], [0.64, -0.2, -0.27, -0.0, -0.97, 0.8, 0.26, 0.63, -0.64, -0.12, -0.62], [0.55, 0.96, -0.09, -0.99, 0.27, -0.49, 0.47, -0.16, -0.3, 0.89, 0.34], [0.96, 0.75, 0.44, -0.71, 0.97, 0.5, 0.62, -0.07, 0.5, 0.86, -0.15], [0.37, 0.96, 0.6, -0.77, -0.96, 0.04, -0.58, 0.29, 0.7, 0.57, -0.38]])
    W = r.param("W", [[0.204, -0.07, 0.412, 0.438, 0.042, -0.162, 0.239, -0.28, 0.169, 0.288, 0.062], [-0.437, 0.281, -0.36, 0.427, 0.197, -0.19, -0.249, 0.455, 0.082, 0.329, 0.462], [-0.466, -0.023, 0.436, -0.465, -0.236, 0.045, -0.078, 0.135, -0.493, 0.42, 0.421]])
    b = r.param("b", [0.064, 0.071, 0.063, -0.147, 0.134, -0.005, 0.095, 0.159, -0.096, 0.171, 0.04])

    def logits(x):
        return x @ W.t + b.t

    def p(x):
        return torch.softmax(logits(x), dim=-1)

    def lp(x):
        return torch.log_softmax(logits(x) * 0.5, dim=-1)

    def loss(x, y, u):  # logits, p and lp are computed once, in the .bp's order
        lg = logits(x)
        pp = torch.softmax(lg, dim=-1)
        lpp = torch.log_softmax(lg * 0.5, dim=-1)
        return F.cross_entropy(lg, y.long()) + (pp * u).sum() * 0.1 + lpp.mean() * 0.01

    r.predict(f"p(x={X[0]})", p, x=X[0])
    r.train([W, b], {"x": x, "y": y, "u": u}, loss, epochs=15, lr=0.3, batch="all")
    r.predict(f"p(x={X[1]})", p, x=X[1])
    r.predict(f"lp(x={X[:3]})", lp, x=X[:3])
    return r.lines


def pow_exact():
    r = Run()
    X = [0.234, 0.515, 1.3, 2.115, 0.588, 0.515, 0.849, 2.321, 0.613, 2.274, 2.054, 0.582, 1.7, 1.454, 1.355, 2.99, 0.461, 0.257, 2.831, 1.328, 0.756, 1.125, 1.222, 2.874, 0.789, 0.807, 1.838, 1.733, 2.87, 2.548, 1.195, 0.771, 2.542, 2.969, 0.285, 2.258, 2.631]
    x = r.data([X])
    u = r.data([[0.302, -0.563, 0.593, 0.46, -0.612, 0.282, -0.562, -0.917, -0.328, -0.331, -0.208, 0.294, 0.672, 0.923, 0.953, 0.987, 0.58, -0.387, -0.647, 0.248, 0.092, 0.349, -0.813, -0.614, 0.842, 0.203, 0.391, -0.809, -0.202, 0.82, 0.299, 0.983, -0.606, -0.09, 0.601, -0.111, 0.578]])
    a = r.param("a", [1.23, 0.653, 0.629, 1.778, 0.655, 0.752, 0.936, 1.427, 1.61, 1.118, 1.148, 1.525, 0.861, 0.984, 1.297, 1.327, 0.549, 0.646, 0.679, 1.443, 1.401, 1.765, 1.498, 0.831, 1.495, 1.781, 0.953, 0.515, 0.988, 0.867, 0.729, 0.559, 0.662, 1.625, 0.565, 1.298, 0.768])
    k = r.param("k", [-0.727, 1.783, -0.305, -0.765, 0.319, 1.28, 0.598, 1.939, 0.106, 0.596, 1.368, 0.346, 1.368, 0.368, -0.965, -1.006, 1.632, 1.479, 2.271, 1.261, 0.819, -0.835, 1.913, -1.025, 0.199, -0.937, 0.023, -0.271, 0.202, 1.344, 0.666, -0.529, 1.615, 1.44, 1.809, -1.368, 0.959])

    def h(x):
        return (a.t ** 1.7 + torch.pow(a.t, k.t) * 0.5 + torch.pow(x, k.t) * 0.25
                - a.t ** 2.5 * 0.125)

    def loss(x, u):
        return h(x) @ u

    r.predict(f"h(x={X})", h, x=X)
    r.train([a, k], {"x": x, "u": u}, loss, epochs=12, lr=0.02)
    r.predict(f"h(x={X})", h, x=X)
    return r.lines


def rows_exact():
    r = Run()
    W = r.param("W", [[-0.238, -0.539, -0.668, 0.828, 0.156, 0.38, 0.106, -0.233, 0.463, 0.153, 0.562, 0.323, 0.679, -0.121, -0.69, -0.7, 0.446, -0.665, 0.309], [0.242, -0.881, 0.569, -0.934, 0.734, 0.682, -0.568, 0.452, 0.465, -0.75, 0.34, -0.752, 0.826, 0.378, 0.96, -0.893, -0.364, 0.24, 0.216], [-0.636, 0.776, 0.693, -0.397, -0.708, 0.335, -0.186, 0.327, -0.013, -0.21, -0.957, -0.73, -0.083, 0.456, -0.149, 0.489, 0.08, 0.761, 0.31], [-0.356, -0.722, -0.869, -0.921, 0.725, 0.749, 0.503, -0.781, 0.321, -0.745, 0.778, 0.311, 0.499, 0.218, -0.163, 0.697, 0.923, -0.516, -0.125]])
    s = r.param("s", [[1.2], [1.04], [0.23], [0.35]])
    c = r.param("c", [[0.47], [-0.22], [-0.29], [0.19]])
    b = r.param("b", [-0.13, 0.24, -0.1, 0.25, -0.07, 0.23, 0.15, 0.14, -0.17, -0.2, -0.28, -0.19, 0.1, -0.26, -0.16, 0.04, -0.21, -0.1, -0.16])
    V = r.param("V", [[[-1.1852, 0.2146, -1.9406, -0.0134, 0.0369, 0.0572, -3.7791, 0.028, 1.6696, 0.0676, -1.049, -0.0578, -1.8669, 0.8669, 0.101, -0.0327, -0.0936, -1.0973, 0.0166], [-0.4029, 1.7081, -0.0704, 1.0923, 0.3497, 0.3791, 0.6182, -0.0179, -0.1284, -0.2398, 0.1063, -0.2403, 0.2312, -0.0281, 0.0117, -6.8063, 2.2587, -0.0168, 1.7246], [1.6577, 0.3295, -2.3091, 0.2469, -0.3233, -0.1861, 0.9217, 0.0069, -0.0291, 1.221, -0.0541, -0.1179, -5.1011, -4.7816, 0.0035, 0.0975, 1.3431, 0.0169, 0.3775], [1.6979, -0.0942, -0.3945, -0.1304, 0.0999, 0.0297, 0.2518, 0.0141, -0.3461, 6.5057, 0.0244, 0.1177, 6.4527, 2.5893, 0.0774, 0.5632, 4.5399, 0.0024, -0.5912]], [[-0.0416, 1.4036, 0.8794, 0.0173, 0.4631, 0.6482, -0.9182, 0.338, -0.1079, 6.0672, 0.1486, 0.6277, 0.27, 0.0581, 0.1193, 0.0248, -0.3797, 0.156, 0.0878], [2.8387, -0.5579, 0.0104, 0.8514, -0.4913, -0.5816, -0.8761, -0.0228, -5.5156, -3.9951, 5.8588, 0.2281, -0.4121, -0.1881, -1.2306, -0.074, 0.0067, -0.0234, 3.3479], [5.6933, 0.0585, 1.4602, 0.1572, 0.0565, 1.9821, -0.089, -0.3062, -0.2478, 1.946, -7.9879, 0.9674, 1.845, -3.1831, -0.022, 0.176, 6.4573, -0.006, -0.418], [-0.0674, -0.0459, -5.8798, -0.0417, -0.0619, -0.0179, -0.0264, 0.1016, 0.0156, 0.0, 0.0517, -0.1065, -0.0117, -1.5301, -3.9434, 0.4362, 0.0753, -0.0811, 0.0899]], [[0.1723, -0.21, 0.0547, -3.2585, 0.0906, 0.9236, 0.0493, 0.7164, 1.0745, -0.3981, 0.1555, 0.1158, 2.6697, 0.0249, 2.38, 1.1028, 2.8191, -1.9093, -3.6074], [6.4199, 0.0683, -1.6148, -0.0079, -0.0831, 3.3113, -0.4991, 0.0482, 0.4325, -0.0377, 0.1597, 0.2101, 0.0685, -0.9061, -0.057, -0.2438, 0.222, 0.201, -4.7616], [0.2324, 0.2053, -0.6258, 1.3743, 0.5136, -7.2737, -2.1622, -0.0552, -0.8551, -0.0333, -0.6194, -0.0147, 0.1233, 0.9485, -0.2178, -2.3622, -0.0274, -0.0508, 0.0131], [-0.2489, 0.5169, 0.4165, -0.0209, 1.3841, -0.6982, 0.0988, -0.0599, 0.0136, -0.0581, -1.8649, -0.6181, 3.5283, 0.0013, 0.7733, 0.2029, -7.1675, -0.1464, 0.439]]])
    Y = r.param("Y", [[[-2.207, 0.111, -0.364, 1.715, 0.243, -0.487, -0.101, 0.229, 0.244, 1.876, 0.102, -0.032, 0.346, -0.206, 0.993, 0.028, -0.062, 1.336, 0.037]], [[1.475, -0.745, -0.122, -0.19, 0.008, 0.035, 0.982, 0.048, 1.701, -0.227, 0.104, 1.551, -0.123, 0.076, 0.026, 0.063, 0.054, -2.125, 0.103]], [[0.105, -0.032, -1.491, -0.281, 0.046, 0.019, -0.506, -0.912, -0.021, 0.922, -1.339, 0.236, -0.868, 0.061, 0.207, 0.238, -1.075, -0.096, 0.317]]])
    z = r.param("z", [[[0.51], [-0.49], [-0.69], [0.39]]])

    def loss():
        h = W.t * s.t + c.t - torch.tanh(W.t) * s.t + b.t
        return (h * h).sum() + (V.t * z.t * h).sum() + (V.t * Y.t * h).sum()

    r.train([W, s, c, b, V, Y, z], {}, loss, epochs=10, lr=0.01)
    return r.lines


class _Act(torch.autograd.Function):
    """fn_grad_exact's act(u): the body forward, the written partial backward."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return torch.sigmoid(u) * u ** 1.7

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * (torch.sigmoid(u) * (1 - torch.sigmoid(u)) * u ** 1.7
                    + torch.sigmoid(u) * 1.7 * u ** 0.7)


def fn_grad_exact():
    r = Run()
    X = [1.619, 2.247, 1.25, 1.836, 2.355, 1.397, 1.888, 1.874, 2.174, 0.285, 0.589, 2.493, 1.918, 0.8, 1.908, 0.589, 1.029, 1.214, 0.726, 0.518, 1.367, 1.688, 0.932, 1.719, 2.459, 0.327, 0.84, 0.408, 1.758, 1.149, 1.211, 0.768, 1.987, 1.945, 1.229, 2.097, 0.732]
    x = r.data([X])
    t = r.data([[-0.312, 0.915, -0.544, -0.712, -0.936, 0.345, 0.641, -0.897, -0.044, -0.207, -0.344, -0.53, -0.231, -0.717, 0.844, -0.602, 0.07, 0.282, 0.315, -0.051, 0.046, 0.873, -0.653, -0.599, -0.396, 0.48, -0.153, -0.22, -0.845, -0.748, 0.303, -0.542, -0.079, -0.525, -0.378, -0.617, 0.816]])
    w = r.param("w", [1.074, 0.992, 0.837, 1.202, 1.037, 0.78, 0.808, 1.27, 0.893, 0.947, 0.758, 1.224, 0.847, 1.038, 1.134, 1.023, 0.926, 0.856, 1.116, 0.854, 1.07, 1.274, 1.254, 1.103, 1.057, 0.795, 1.188, 1.246, 0.908, 0.737, 1.019, 0.959, 1.21, 1.152, 0.959, 1.019, 0.988])

    def h(x):
        return _Act.apply(x * w.t)

    def loss(x, t):
        return h(x) @ t

    r.predict(f"h(x={X})", h, x=X)
    r.train([w], {"x": x, "t": t}, loss, epochs=10, lr=0.01)
    r.predict(f"h(x={X})", h, x=X)
    return r.lines

MODELS = {f.__name__: f for f in [
    linear, quadratic, divsub, powers, pow4, unary_fns, vector, two_layer,
    batch_mse, batch_all, bce, cross_entropy, momentum, adam, adam_opts,
    no_zero_grad, two_trains, f64, named_twice, grad_order, fn, nonfinite, matmul_exact,
    activations_exact, softmax_exact, pow_exact, rows_exact, fn_grad_exact,
]}


def csv_data():
    import csv
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "golden", "csv_data.csv")
    with open(path) as f:
        rows = [[float(v) for v in row] for row in list(csv.reader(f))[1:]]
    r = Run()
    x = r.data([row[0:2] for row in rows])
    y = r.data([row[2] for row in rows])
    w = r.param("w", [0.1, 0.1])
    b = r.param("b", 0.0)

    def y_hat(x):
        return (x * w.t).sum() + b.t

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.train([w, b], {"x": x, "y": y}, loss, epochs=20, lr=0.02)
    r.predict("y_hat(x=[1, 1])", y_hat, x=[1, 1])
    return r.lines


def precedence():
    r = Run()
    x = r.data([0.5, 1, 1.5, 2])
    y = r.data([-0.2, 1.1, 2.9, 5.2])
    w = r.param("w", 0.3)
    b = r.param("b", 0.1)

    def y_hat(x):
        # 2^3^2 = 2^(3^2) = 512, a number in the expression
        return -x ** 2 * w.t + 512 / 256 * b.t * x ** 2 - -w.t * x ** 3 / 4

    def loss(x, y):
        return (y_hat(x) - y) ** 2

    r.predict("y_hat(x=1.5)", y_hat, x=1.5)
    r.train([w, b], {"x": x, "y": y}, loss, epochs=15, lr=0.01)
    r.predict("y_hat(x=1.5)", y_hat, x=1.5)
    return r.lines


def maxmin():
    r = Run()
    x = r.data([[1, -2, 0.5], [0.25, 3, -1], [2, 0, -0.5], [-1.5, 1, 0.75]])
    y = r.data([0.5, -1, 1.5, 0])
    W = r.param("W", [[0.5, -0.25, 1], [0.75, 0.5, -0.5]])
    b = r.param("b", [0.25, -0.125])
    c = r.param("c", [1.75, -0.625])
    v = r.param("v", [0.5, -0.75])
    top = torch.tensor(2.5)

    def leaky(u):
        return torch.maximum(u, 0.1 * u)

    def h(x):
        return x @ W.t.T + b.t

    def rr(x):
        return torch.minimum(torch.maximum(h(x), c.t), top)

    def out(x):
        return leaky(rr(x)) @ v.t + torch.minimum(c.t, h(x)) @ v.t

    def loss(x, y):
        return F.mse_loss(out(x), y)

    r.predict("out(x=[1, -2, 0.5])", out, x=[1, -2, 0.5])
    r.train([W, b, c, v], {"x": x, "y": y}, loss, epochs=25, lr=0.1, batch=2)
    r.predict("out(x=[[1, -2, 0.5], [2, 0, -0.5]])", out, x=[[1, -2, 0.5], [2, 0, -0.5]])
    r.predict("r(x=[0.25, 3, -1])", rr, x=[0.25, 3, -1])
    return r.lines


def maxmin_scalar():
    r = Run()
    x = r.data([1, 2, -1, 3])
    y = r.data([2, 3, 0.5, 4])
    w = r.param("w", 1.0)
    b = r.param("b", 1.0)
    u = r.param("u", 0.5)
    top = torch.tensor(0.75)

    def loss(x, y):
        return (torch.maximum(x * w.t, b.t) + torch.minimum(u.t * x, top) - y) ** 2

    r.train([w, b, u], {"x": x, "y": y}, loss, epochs=20, lr=0.05)
    return r.lines


def clamp():
    r = Run()
    x = r.data([[0.5, -1, 2], [0.25, 0, 1], [-0.5, 1.5, 0.75]])
    y = r.data([0.25, 0.5, -0.25])
    w = r.param("w", [0.5, 1, -0.25])
    s = r.param("s", 1.0)
    u = torch.tensor([0.5, 0.5, 0.5])

    def z(x):
        return torch.clamp(x * w.t * s.t, -0.25, 0.5)

    def loss(x, y):
        return F.mse_loss(z(x) @ u + torch.clamp(s.t, min=0.5, max=0.9), y)

    r.predict("z(x=[0.5, -1, 2])", z, x=[0.5, -1, 2])
    r.train([w, s], {"x": x, "y": y}, loss, epochs=20, lr=0.1, batch=3)
    r.predict("z(x=[[0.5, -1, 2], [0.25, 0, 1]])", z, x=[[0.5, -1, 2], [0.25, 0, 1]])
    return r.lines


MODELS.update({f.__name__: f for f in [csv_data, precedence, maxmin, maxmin_scalar, clamp]})


def rnn_cell():
    r = Run()
    x = r.data([[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])
    y = r.data([[3, 0, 2, 3, 2]])
    W_ih = r.param("W_ih", [[0.3, -0.2, 0.1, 0.4], [-0.1, 0.25, -0.3, 0.2],
                            [0.2, 0.1, 0.35, -0.25], [-0.4, 0.15, 0.05, 0.3]])
    W_hh = r.param("W_hh", [[0.1, 0.2, -0.1, 0.05], [-0.2, 0.1, 0.3, -0.15],
                            [0.25, -0.05, 0.1, 0.2], [0.05, 0.3, -0.2, 0.1]])
    b_ih = r.param("b_ih", [0.01, -0.02, 0.03, 0.0])
    b_hh = r.param("b_hh", [0.0, 0.05, -0.01, 0.02])

    def hs(x):
        h = [torch.zeros(4)]
        for t in range(1, 6):
            h.append(torch.tanh(W_ih.t @ x[t - 1] + b_ih.t + W_hh.t @ h[t - 1] + b_hh.t))
        return h

    def loss(x, y):
        h = hs(x)
        ls = [F.cross_entropy(h[t], y[t - 1].long()) for t in range(1, 6)]
        return torch.stack(ls).sum()

    r.predict("h[2](x=[[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]])",
              lambda x: hs(x)[2],
              x=[[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]])
    r.train([W_ih, W_hh, b_ih, b_hh], {"x": x, "y": y}, loss, epochs=15, lr=0.1)
    return r.lines


MODELS.update({f.__name__: f for f in [rnn_cell]})


def shapes():
    r = Run()
    x = r.data([[[1, 2, 3], [4, 5, 6]], [[0.5, -1, 2], [3, 0, -2]], [[1, 1, 0], [0, -1, 1]]])
    y = r.data([1.0, -0.5, 2.0])
    w = r.param("w", [0.1, -0.2, 0.3, 0.05, -0.1, 0.2])
    V = r.param("V", [[0.5, -0.25], [0.1, 0.3], [-0.2, 0.4]])
    u = r.param("u", [0.3, -0.1, 0.2, 0.1, 0.05, -0.3])
    k = torch.tensor([0.5, 1, -1])

    def s(x):  # a sample is x[-2:]: batch dims stay in front
        return torch.stack([x[..., 1, :], x[..., 0, :]], dim=x.dim() - 1)

    def z(x):
        b = x.dim() - 2  # 1 with a batch dimension
        f = torch.flatten(x, start_dim=b)
        rr = x.reshape(x.shape[:b] + (3, -1))
        c = torch.cat([x[..., 1, :], x[..., 0, :]], dim=b)
        q = torch.sum(torch.sum(rr * V.t, dim=b + 1), dim=b) + torch.mean(s(x), dim=b + 1) @ k
        return f @ w.t + q + c @ u.t + torch.sum(torch.mean(s(x) * 0.5, dim=-1), dim=b)

    def loss(x, y):
        return torch.mean((z(x) - y) ** 2)

    r.predict("z(x=[[1, 0, 0], [0, 1, 0]])", z, x=[[1, 0, 0], [0, 1, 0]])
    r.train([w, V, u], {"x": x, "y": y}, loss, epochs=8, lr=0.05, batch=2)
    r.train([w, V, u], {"x": x, "y": y}, loss, epochs=2, lr=0.05)
    r.predict("s(x=[[1, 2, 3], [4, 5, 6]])", s, x=[[1, 2, 3], [4, 5, 6]])
    return r.lines


MODELS.update({f.__name__: f for f in [shapes]})


def cnn(name="cnn", dtype=torch.float32):
    import json
    import os
    # the numbers are the .bp file's lists, read from it
    src = open(os.path.join(os.path.dirname(__file__), "..", "golden", name + ".bp")).read()
    vals = {}
    for line in src.splitlines():
        for name in ("x", "k1", "d1", "k2", "W"):
            for kw in ("data ", "param "):
                if line.startswith(kw + name + " = "):
                    vals[name] = json.loads(line.split(" = ", 1)[1])
    r = Run(dtype)
    x = r.data(vals["x"])
    y = r.data([0, 2, 1, 2])
    k1 = r.param("k1", vals["k1"])
    d1 = r.param("d1", vals["d1"])
    k2 = r.param("k2", vals["k2"])
    W = r.param("W", vals["W"])

    def c2_of(x):
        c1 = F.relu(F.conv2d(x, k1.t, d1.t, padding=1))
        p1 = F.max_pool2d(c1, 2)
        return c1, p1, F.conv2d(F.avg_pool2d(p1, 3, stride=1, padding=1), k2.t, stride=2)

    def loss(x, y):
        b = x.dim() - 3  # 1 with a batch dimension
        c1, p1, c2 = c2_of(x)
        a = torch.cat([torch.flatten(c2, start_dim=b),
                       torch.flatten(F.max_pool2d(c1, 3, stride=3), start_dim=b)], dim=b)
        logits = a @ W.t + torch.sum(p1.reshape(p1.shape[:b] + (9, 3)), dim=b)
        return F.cross_entropy(logits, y.long())

    with torch.backends.mkldnn.flags(enabled=False):
        r.predict("c2(x=%s)" % json.dumps(vals["x"][1]), lambda x: c2_of(x)[2], x=vals["x"][1])
        r.train([k1, d1, k2, W], {"x": x, "y": y}, loss, epochs=3, lr=0.1)
        r.train([k1, d1, k2, W], {"x": x, "y": y}, loss, epochs=3, lr=0.1, batch=2)
    return r.lines


def cnn_f64():
    return cnn("cnn_f64", torch.float64)


MODELS.update({f.__name__: f for f in [cnn, cnn_f64]})


# -- the course's models: copies of samples/*.bp (course_NAME.bp) -------------
def _npy(name):
    import os
    import numpy as np
    path = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "data", name)
    return np.load(path).tolist()


def _param(r, name, value):
    """A param whose initial value is bpviz's seeded initialiser's."""
    return r.param(name, value)


def course_lenet():
    from bpref import randn
    r = Run()
    x = r.data(_npy("digits_x.npy"))
    y = r.data(_npy("digits_y.npy"))
    c1 = r.param("c1", randn([10, 1, 5, 5], seed=1, std=0.2))
    d1 = r.param("d1", [0.0] * 10)
    c2 = r.param("c2", randn([20, 10, 5, 5], seed=2, std=0.06))
    d2 = r.param("d2", [0.0] * 20)
    W = r.param("W", randn([320, 10], seed=3, std=0.05))
    b = r.param("b", [0.0] * 10)

    def loss(x, y):
        a1 = F.relu(F.max_pool2d(F.conv2d(x, c1.t, d1.t), 2))
        a2 = F.relu(F.max_pool2d(F.conv2d(a1, c2.t, d2.t), 2))
        logits = torch.flatten(a2, start_dim=1) @ W.t + b.t
        return F.cross_entropy(logits, y.long())

    with torch.backends.mkldnn.flags(enabled=False):
        r.train([c1, d1, c2, d2, W, b], {"x": x, "y": y}, loss, epochs=10, lr=0.1, batch=8)
    return r.lines


def course_residual():
    from bpref import randn
    r = Run()
    x = r.data(_npy("blocks_x.npy"))
    y = r.data(_npy("blocks_y.npy"))
    k0 = r.param("k0", randn([4, 2, 3, 3], seed=1, std=0.3))
    k1 = r.param("k1", randn([4, 4, 3, 3], seed=2, std=0.2))
    k2 = r.param("k2", randn([4, 4, 3, 3], seed=3, std=0.2))
    W = r.param("W", randn([64, 4], seed=4, std=0.1))
    b = r.param("b", [0.0] * 4)

    def loss(x, y):
        h = F.relu(F.conv2d(x, k0.t, padding=1))
        f = F.conv2d(F.relu(F.conv2d(h, k1.t, padding=1)), k2.t, padding=1)
        p = F.max_pool2d(F.relu(h + f), 2)
        logits = torch.flatten(p, start_dim=1) @ W.t + b.t
        return F.cross_entropy(logits, y.long())

    with torch.backends.mkldnn.flags(enabled=False):
        r.train([k0, k1, k2, W, b], {"x": x, "y": y}, loss, epochs=10, lr=0.1, batch=4)
    return r.lines


def course_inception():
    from bpref import randn
    r = Run()
    x = r.data(_npy("blocks_x.npy"))
    y = r.data(_npy("blocks_y.npy"))
    k1 = r.param("k1", randn([2, 2, 1, 1], seed=1, std=0.5))
    k5a = r.param("k5a", randn([2, 2, 1, 1], seed=2, std=0.5))
    k5b = r.param("k5b", randn([2, 2, 5, 5], seed=3, std=0.1))
    k3a = r.param("k3a", randn([2, 2, 1, 1], seed=4, std=0.5))
    k3b = r.param("k3b", randn([2, 2, 3, 3], seed=5, std=0.2))
    k3c = r.param("k3c", randn([2, 2, 3, 3], seed=6, std=0.2))
    kp = r.param("kp", randn([2, 2, 1, 1], seed=7, std=0.5))
    W = r.param("W", randn([128, 4], seed=8, std=0.05))
    b = r.param("b", [0.0] * 4)

    def loss(x, y):
        b1 = F.conv2d(x, k1.t)
        b2 = F.conv2d(F.conv2d(x, k5a.t), k5b.t, padding=2)
        b3 = F.conv2d(F.conv2d(F.conv2d(x, k3a.t), k3b.t, padding=1), k3c.t, padding=1)
        b4 = F.conv2d(F.avg_pool2d(x, 3, stride=1, padding=1), kp.t)
        block = F.relu(torch.cat([b1, b2, b3, b4], dim=1))
        logits = torch.flatten(F.max_pool2d(block, 2), start_dim=1) @ W.t + b.t
        return F.cross_entropy(logits, y.long())

    with torch.backends.mkldnn.flags(enabled=False):
        r.train([k1, k5a, k5b, k3a, k3b, k3c, kp, W, b], {"x": x, "y": y}, loss, epochs=10,
                lr=0.05, batch=4)
    return r.lines


def course_rnn_hello():
    from bpref import uniform
    r = Run()
    seq = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    x = r.data([seq])
    y = r.data([[3, 1, 2, 3, 2]])
    W_ih = r.param("W_ih", uniform([4, 4], -0.5, 0.5, seed=12))
    W_hh = r.param("W_hh", uniform([4, 4], -0.5, 0.5, seed=13))
    b_ih = r.param("b_ih", [0.0] * 4)
    b_hh = r.param("b_hh", [0.0] * 4)

    def hs(x):
        h = [torch.zeros(4)]
        for t in range(1, 6):
            h.append(torch.tanh(W_ih.t @ x[t - 1] + b_ih.t + W_hh.t @ h[t - 1] + b_hh.t))
        return h

    def loss(x, y):
        h = hs(x)
        return torch.stack([F.cross_entropy(h[t], y[t - 1].long()) for t in range(1, 6)]).sum()

    r.train([W_ih, W_hh, b_ih, b_hh], {"x": x, "y": y}, loss, epochs=15, lr=0.1,
            optimizer="adam")
    r.predict("scores(x=%s)" % str(seq), lambda x: torch.stack(hs(x)[1:]), x=seq)
    return r.lines


def course_bptt():
    r = Run()
    x = r.data([[1, 0.5, -0.5, 1, 0, -1, 0.5, 1]])
    y = r.data([0.5])
    w = r.param("w", 0.8)
    u = r.param("u", 0.6)

    def loss(x, y):
        h = torch.tensor(0.0)
        for t in range(1, 9):
            h = torch.tanh(w.t * h + u.t * x[t - 1])
        return (h - y) ** 2

    r.train([w, u], {"x": x, "y": y}, loss, epochs=20, lr=0.1)
    return r.lines


MODELS.update({f.__name__: f for f in [course_lenet, course_residual, course_inception,
                                       course_rnn_hello, course_bptt]})
