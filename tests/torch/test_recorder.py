"""Tests of python/bpviz_torch.py, run by ctest (tests/CMakeLists.txt).

    python3 tests/torch/test_recorder.py            # the recorder: values, gradients, structure
    python3 tests/torch/test_recorder.py --draw     # bpviz draws each recorded trace

Each test records a small real PyTorch program and compares every number of the
trace, read back from its JSON as float32 (float64 for f64 models), bit for bit
with PyTorch's own tensors: the parameters' .grad, and the outputs and .grad
(retain_grad) of the same forward pass written out op by op in a second,
unrecorded copy of the model. Exit 77 (skip) when torch cannot be imported, or,
with --draw, when this bpviz cannot read traces.
"""

import copy
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    # CI installs python3-torch and sets BPV_REQUIRE_TORCH=1: there it must run
    print(f"{'FAIL' if os.environ.get('BPV_REQUIRE_TORCH') else 'SKIP'}: no torch ({e})")
    sys.exit(1 if os.environ.get("BPV_REQUIRE_TORCH") else 77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import bpviz_torch  # noqa: E402

DRAW = "--draw" in sys.argv
if DRAW:
    sys.argv.remove("--draw")
BPVIZ = os.environ.get("BPVIZ", "bpviz")
TRACES = []  # (name, text) of every trace the tests wrote, for --draw


def graph(root_fn):
    """grad_fn nodes behind root_fn, inputs first, in the order a depth-first
    walk of next_functions finds them (the order the trace must have)."""
    order, seen = [], set()

    def visit(fn):
        seen.add(fn)
        for nf, _ in fn.next_functions:
            if nf is not None and nf not in seen:
                visit(nf)
        order.append(fn)
    visit(root_fn)
    return order


def floats(v, dtype):
    """The trace's numbers (nested lists, "nan" strings) as a flat list of
    the bit patterns of dtype."""
    out = []

    def walk(x):
        if isinstance(x, list):
            for e in x:
                walk(e)
        else:
            f = float(x)  # "nan", "inf", "-inf" too
            if dtype == torch.float32:
                out.append(struct.unpack("<I", struct.pack("<f", f))[0])
            else:
                out.append(struct.unpack("<Q", struct.pack("<d", f))[0])
    walk(v)
    return out


def bits(t):
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.float32:
        return [struct.unpack("<I", struct.pack("<f", f))[0] for f in t.tolist()]
    if t.dtype == torch.float64:
        return [struct.unpack("<Q", struct.pack("<d", f))[0] for f in t.tolist()]
    return floats(t.double().tolist(), torch.float32)


def canon_nan(bitlist, dtype):
    # every NaN the same: the JSON writes "nan", whatever its sign and payload
    if dtype == torch.float32:
        return [0x7FC00000 if (b & 0x7F800000) == 0x7F800000 and b & 0x7FFFFF else b
                for b in bitlist]
    return [0x7FF8000000000000 if (b >> 52) & 0x7FF == 0x7FF and b & ((1 << 52) - 1) else b
            for b in bitlist]


class RecorderCase(unittest.TestCase):
    def save(self, rec, name):
        buf = io.StringIO()
        rec.save(buf)
        text = buf.getvalue()
        TRACES.append((name, text))
        return json.loads(text)

    def same(self, got, tensor, what):
        self.assertIsNotNone(got, f"{what}: null in the trace")
        dt = tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32
        self.assertEqual(canon_nan(floats(got, dt), dt), canon_nan(bits(tensor.to(dt)), dt),
                         f"{what}: the trace's numbers differ from PyTorch's")

    def check_step(self, step, loss, expected, params, grads=None):
        """step: the trace's step; loss: the reference's loss tensor; expected:
        reference tensors (retain_grad) of the ops; params: name -> the
        reference's parameter (value before the update; .grad)."""
        order = graph(loss.grad_fn)
        self.assertIsNotNone(loss.grad, "retain_grad() the reference loss")
        ops = [n for n in step["nodes"] if n["kind"] in ("op", "param")]
        # structure: every grad_fn, in order, the same kinds and edges
        self.assertEqual([n.get("torch") or "AccumulateGrad" for n in ops],
                         [type(f).__name__ for f in order])
        pos = {f: i for i, f in enumerate(order)}
        for i, (n, f) in enumerate(zip(ops, order)):
            want = [(s, ops[pos[nf]]["id"]) for s, (nf, _) in enumerate(f.next_functions)
                    if nf is not None]
            got = [(e["slot"], e["from"]) for e in step["edges"] if e["to"] == n["id"]
                   and step["nodes"][e["from"]]["kind"] in ("op", "param")]
            self.assertEqual(sorted(got), want, f"edges into node {n['id']} {n.get('torch')}")
        self.assertEqual(step["objective"], ops[pos[loss.grad_fn]]["id"])
        if loss.numel() == 1:
            self.same(step["loss"], loss, "loss")
        # values and gradients of the ops
        covered = set()
        for t in expected:
            n = ops[pos[t.grad_fn]]
            covered.add(n["id"])
            self.same(n["value"], t, f"value of {n['torch']} (node {n['id']})")
            if t.grad is not None:
                self.same(n["grad"], t.grad, f"grad of {n['torch']} (node {n['id']})")
            else:
                self.assertIsNone(n["grad"])
        for n in ops:
            if n["kind"] == "op":
                self.assertIn(n["id"], covered, f"no reference for {n['torch']} (node {n['id']})")
        # parameters: value before the update, gradient as .grad
        by_name = {p["name"]: p for p in step["params"]}
        self.assertEqual(sorted(by_name), sorted(params))
        for name, (value, grad) in params.items():
            n = step["nodes"][by_name[name]["node"]]
            self.assertEqual(n["kind"], "param")
            self.assertEqual(n["name"], name)
            self.same(n["value"], value, f"value of {name}")
            self.same(n["grad"], grad, f"grad of {name}")
        # each edge's chained gradient: the input's gradient where the input
        # has one use (a parameter used at several steps: the sum is .grad)
        uses = {}
        for e in step["edges"]:
            uses.setdefault(e["from"], []).append(e)
        for nid, es in uses.items():
            src = step["nodes"][nid]
            if src["kind"] in ("data", "const"):
                for e in es:
                    self.assertIsNone(e["chained"])
            elif len(es) == 1:
                self.assertEqual(es[0]["chained"], src["grad"], f"chained from node {nid}")

    # -- models ---------------------------------------------------------------
    def test_mlp_mse(self):
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        ref = copy.deepcopy(net)
        x, y = torch.randn(5, 3), torch.randn(5, 2)
        with bpviz_torch.record() as rec:
            out = net(x)
            loss = F.mse_loss(out, y)
            loss.backward()
        trace = self.save(rec, "mlp")
        self.assertEqual(trace["dtype"], "f32")
        self.assertEqual(len(trace["steps"]), 1)
        step = trace["steps"][0]
        w0t = ref[0].weight.t()
        h = torch.addmm(ref[0].bias, x, w0t)
        a = torch.tanh(h)
        w2t = ref[2].weight.t()
        o = torch.addmm(ref[2].bias, a, w2t)
        lo = F.mse_loss(o, y)
        for t in (w0t, h, a, w2t, o, lo):
            t.retain_grad()
        lo.backward()
        self.check_step(step, lo, [w0t, h, a, w2t, o, lo],
                        {f"{i}.{k}": (getattr(ref[i], k), getattr(net[i], k).grad)
                         for i in (0, 2) for k in ("weight", "bias")})
        for i in (0, 2):  # the recorder changed nothing
            self.assertEqual(bits(net[i].weight.grad), bits(ref[i].weight.grad))
        names = {n["name"] for n in step["nodes"]}
        self.assertTrue({"0.weight", "0.bias", "2.weight", "2.bias", "x", "y", "out",
                         "loss"} <= names)
        ops = {n["torch"]: n for n in step["nodes"] if n["kind"] == "op"}
        self.assertEqual(ops["MseLossBackward0"]["op"], "mse")
        self.assertEqual(ops["TanhBackward0"]["op"], "tanh")
        self.assertEqual(ops["TanhBackward0"]["module"], "1")
        self.assertEqual(ops["TanhBackward0"]["module_class"], "Tanh")
        self.assertEqual(ops["AddmmBackward0"]["op"], "addmm")
        mse = ops["MseLossBackward0"]
        ydata = step["nodes"][mse["inputs"][1]]
        self.assertEqual((ydata["kind"], ydata["name"]), ("data", "y"))
        self.same(ydata["value"], y, "y")

    def test_cnn_block(self):
        torch.manual_seed(2)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                  torch.nn.Linear(2 * 3 * 3, 4))
        ref = copy.deepcopy(net)
        images, labels = torch.randn(3, 1, 6, 6), torch.tensor([0, 3, 1])
        with bpviz_torch.record() as rec:
            loss = F.cross_entropy(net(images), labels)
            loss.backward()
        step = self.save(rec, "cnn")["steps"][0]
        c = F.conv2d(images, ref[0].weight, ref[0].bias, padding=1)
        r = F.relu(c)
        p = F.max_pool2d(r, 2)
        f = p.flatten(1)
        wt = ref[4].weight.t()
        lin = torch.addmm(ref[4].bias, f, wt)
        ls = F.log_softmax(lin, 1)
        lo = F.nll_loss(ls, labels)
        for t in (c, r, p, f, wt, lin, ls, lo):
            t.retain_grad()
        lo.backward()
        self.check_step(step, lo, [c, r, p, f, wt, lin, ls, lo],
                        {f"{i}.{k}": (getattr(ref[i], k), getattr(net[i], k).grad)
                         for i in (0, 4) for k in ("weight", "bias")})
        ops = {n["torch"]: n for n in step["nodes"] if n["kind"] == "op"}
        self.assertEqual(ops["ConvolutionBackward0"]["op"], "conv2d")
        self.assertEqual(ops["ConvolutionBackward0"]["attrs"], {"stride": 1, "padding": 1})
        self.assertEqual(ops["MaxPool2DWithIndicesBackward0"]["op"], "max_pool2d")
        self.assertEqual(ops["MaxPool2DWithIndicesBackward0"]["attrs"],
                         {"kernel": 2, "stride": 2, "padding": 0})
        self.assertEqual(ops["ReluBackward0"]["op"], "relu")
        self.assertEqual(ops["LogSoftmaxBackward0"]["op"], "log_softmax")
        self.assertEqual(ops["NllLossBackward0"]["op"], "nll_loss")
        self.assertEqual(ops["ConvolutionBackward0"]["module"], "0")
        # the images feed the convolution, the labels the loss
        conv_in = [step["nodes"][i] for i in ops["ConvolutionBackward0"]["inputs"]]
        self.assertEqual(conv_in[0]["name"], "images")
        nll_in = [step["nodes"][i]["name"] for i in ops["NllLossBackward0"]["inputs"]]
        self.assertIn("labels", nll_in)

    def test_rnn_cell(self):
        torch.manual_seed(3)
        cell = torch.nn.RNNCell(3, 4)
        ref = copy.deepcopy(cell)
        xs = torch.randn(3, 2, 3)
        with bpviz_torch.record() as rec:
            h = None
            for t in range(3):
                h = cell(xs[t], h)
            loss = h.sum()
            loss.backward()
        step = self.save(rec, "rnn")["steps"][0]
        expected = []
        hr = torch.zeros(2, 4)
        for t in range(3):
            wi, wh = ref.weight_ih.t(), ref.weight_hh.t()
            a = torch.addmm(ref.bias_ih, xs[t], wi)
            b = torch.addmm(ref.bias_hh, hr, wh)
            s = b + a  # torch.rnn_tanh_cell: hh.add_(ih)
            hr = torch.tanh(s)
            expected += [wi, a, wh, b, s, hr]
        lo = hr.sum()
        for e in expected + [lo]:
            e.retain_grad()
        lo.backward()
        self.check_step(step, lo, expected + [lo],
                        {k: (getattr(ref, k), getattr(cell, k).grad)
                         for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        # the cell groups its nodes; the parameters are named after it
        for n in step["nodes"]:
            if n["kind"] == "op" and n["torch"] != "SumBackward0":
                self.assertEqual(n["module"], "")
        self.assertEqual(step["nodes"][step["objective"]]["op"], "sum")

    def test_lstm_cell_outputs(self):
        """An op with several outputs (the gates' unsafe_split): one getitem
        node per output, with that output's value and gradient."""
        torch.manual_seed(6)
        cell = torch.nn.LSTMCell(3, 2)
        ref = copy.deepcopy(cell)
        x = torch.randn(4, 3)
        with bpviz_torch.record() as rec:
            h, c = cell(x)
            loss = h.sum() + c.sum()
            loss.backward()
        step = self.save(rec, "lstm")["steps"][0]
        gates = F.linear(x, ref.weight_ih, ref.bias_ih) + F.linear(
            torch.zeros(4, 2), ref.weight_hh, ref.bias_hh)
        chunks = gates.chunk(4, 1)
        for t in chunks:
            t.retain_grad()
        i, f, g, o = chunks
        c1 = torch.sigmoid(f) * torch.zeros(4, 2) + torch.sigmoid(i) * torch.tanh(g)
        h1 = torch.sigmoid(o) * torch.tanh(c1)
        (h1.sum() + c1.sum()).backward()
        split = [n for n in step["nodes"] if n.get("outputs")]
        self.assertEqual([(n["torch"], n["outputs"], n["value"]) for n in split],
                         [("UnsafeSplitBackward0", 4, None)])
        items = [n for n in step["nodes"] if n["op"] == "getitem"]
        self.assertEqual(sorted(n["output"] for n in items), [0, 1, 2, 3])
        for n in items:
            self.assertEqual(n["inputs"], [split[0]["id"]])
            self.same(n["value"], chunks[n["output"]], f"output {n['output']}")
            self.same(n["grad"], chunks[n["output"]].grad, f"grad of output {n['output']}")
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = next(n for n in step["nodes"] if n["name"] == k)
            self.same(p["grad"], getattr(cell, k).grad, k)

    def test_nan(self):
        torch.manual_seed(4)
        w = torch.tensor([[1.0, -2.0], [0.5, 0.25]], requires_grad=True)
        x = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
        with bpviz_torch.record() as rec:
            z = x @ w
            y = torch.log(z)
            loss = y.mean()
            loss.backward()
        step = self.save(rec, "nan")["steps"][0]
        w2 = w.detach().clone().requires_grad_()
        z2 = x @ w2
        y2 = torch.log(z2)
        lo = y2.mean()
        for t in (z2, y2, lo):
            t.retain_grad()
        lo.backward()
        self.check_step(step, lo, [z2, y2, lo], {"w": (w2, w.grad)})
        log = next(n for n in step["nodes"] if n.get("torch") == "LogBackward0")
        self.assertTrue(log["nonfinite"])
        self.assertIn("nan", json.dumps(log["value"]))
        self.assertEqual(step["loss"], "nan")
        self.assertEqual(log["name"], "y")

    def test_steps_and_after(self):
        torch.manual_seed(5)
        net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        x, y = torch.randn(4, 2), torch.randn(4, 1)
        seen = []
        with bpviz_torch.record(steps=2) as rec:
            for _ in range(3):
                seen.append({k: v.detach().clone() for k, v in net.named_parameters()})
                opt.zero_grad()
                F.mse_loss(net(x), y).backward()
                seen[-1]["grads"] = {k: v.grad.clone() for k, v in net.named_parameters()}
                opt.step()
        trace = self.save(rec, "steps")
        self.assertEqual([s["step"] for s in trace["steps"]], [1, 2])
        for k, st in enumerate(trace["steps"]):
            for p in st["params"]:
                n = st["nodes"][p["node"]]
                self.same(n["value"], seen[k][p["name"]], f"step {k + 1} {p['name']}")
                self.same(n["grad"], seen[k]["grads"][p["name"]], f"step {k + 1} grad")
                # after the optimizer: the value the next step started from
                self.same(p["after"], seen[k + 1][p["name"]], f"step {k + 1} after")

    def test_unlimited_steps_after_on_exit(self):
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        with bpviz_torch.record(steps=None) as rec:
            for _ in range(4):
                (w * w).sum().backward()
                with torch.no_grad():
                    w -= 0.5 * w.grad
                w.grad = None
        trace = self.save(rec, "unlimited")
        self.assertEqual(len(trace["steps"]), 4)
        self.same(trace["steps"][3]["params"][0]["after"], w, "after on exit")
        mul = trace["steps"][0]["nodes"][1]
        self.assertEqual((mul["op"], mul["inputs"]), ("mul", [0, 0]))

    def test_custom_function(self):
        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                ctx.save_for_backward(a)
                return a * a

            @staticmethod
            def backward(ctx, g):
                (a,) = ctx.saved_tensors
                return 2 * a * g

        w = torch.tensor([3.0, -1.0], requires_grad=True)
        with bpviz_torch.record() as rec:
            s = Square.apply(w)
            loss = s.sum()
            loss.backward()
        step = self.save(rec, "custom")["steps"][0]
        node = next(n for n in step["nodes"] if n.get("op") == "custom")
        self.assertEqual(node["fn"], "Square")
        self.same(node["value"], torch.tensor([9.0, 1.0]), "custom value")
        self.same(node["grad"], torch.ones(2), "custom grad")
        self.same(step["nodes"][0]["grad"], w.grad, "w grad")

    def test_inplace(self):
        w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        with bpviz_torch.record() as rec:
            h = w * 2
            h.relu_()
            loss = h.sum()
            loss.backward()
        step = self.save(rec, "inplace")["steps"][0]
        ops = {n["torch"]: n for n in step["nodes"] if n["kind"] == "op"}
        # each version of h is its own node, with the value it had then
        self.same(ops["MulBackward0"]["value"], torch.tensor([2.0, -4.0, 6.0]), "before relu_")
        self.same(ops["ReluBackward0"]["value"], torch.tensor([2.0, 0.0, 6.0]), "after relu_")
        self.same(step["nodes"][0]["grad"], w.grad, "w grad")
        const = [n for n in step["nodes"] if n["kind"] == "const"]
        self.assertEqual([c["value"] for c in const], [2.0])

    def test_f64(self):
        w = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
        with bpviz_torch.record() as rec:
            loss = torch.sigmoid(w).sum()
            loss.backward()
        trace = self.save(rec, "f64")
        self.assertEqual(trace["dtype"], "f64")
        sig = next(n for n in trace["steps"][0]["nodes"] if n.get("op") == "sigmoid")
        self.same(sig["value"], torch.sigmoid(w.detach()), "f64 sigmoid")
        self.same(trace["steps"][0]["nodes"][0]["grad"], w.grad, "f64 grad")

    def test_half_refused(self):
        net = torch.nn.Linear(2, 2).to(torch.bfloat16)
        with self.assertRaisesRegex(TypeError, "bfloat16.*float32 or float64"):
            with bpviz_torch.record():
                net(torch.ones(1, 2, dtype=torch.bfloat16)).sum().backward()
        self.assertNoHooksLeft()

    def assertNoHooksLeft(self):
        from torch.nn.modules import module
        self.assertEqual(len(module._global_forward_hooks), 0)
        self.assertEqual(len(module._global_forward_pre_hooks), 0)
        self.assertEqual(torch._C._len_torch_function_stack(), 0)
        from torch.utils._python_dispatch import _get_current_dispatch_mode
        self.assertIsNone(_get_current_dispatch_mode())
        self.assertEqual(bpviz_torch._ACTIVE, [])

    def test_cleanup_on_exception(self):
        w = torch.ones(2, requires_grad=True)
        with self.assertRaises(ZeroDivisionError):
            with bpviz_torch.record() as rec:
                (w * 3).sum().backward()
                1 / 0
        self.assertNoHooksLeft()
        self.assertEqual(len(rec.steps), 1)
        # outside the block nothing is recorded any more
        (w * 3).sum().backward()
        self.assertEqual(len(rec.steps), 1)
        with self.assertRaisesRegex(RuntimeError, "do not nest"):
            with bpviz_torch.record():
                with bpviz_torch.record():
                    pass
        self.assertNoHooksLeft()

    def test_sample(self):
        """samples/torch_mlp.py, the figure of docs/torch.md, records a step."""
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "mlp.json")
            env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
            subprocess.run([sys.executable, os.path.join(root, "samples", "torch_mlp.py"), out],
                           env=env, check=True)
            with open(out) as f:
                text = f.read()
        TRACES.append(("torch_mlp", text))
        trace = json.loads(text)
        self.assertEqual(trace["model"], "torch_mlp.py")
        names = [n["name"] for n in trace["steps"][0]["nodes"]]
        self.assertTrue({"0.weight", "2.bias", "x", "y", "out", "loss"} <= set(names))
        self.assertTrue(all(p["after"] is not None for p in trace["steps"][0]["params"]))

    def test_repr_without_bpviz(self):
        """In Jupyter without a bpviz to run: the cell says why, no exception."""
        w = torch.ones(2, requires_grad=True)
        with bpviz_torch.record() as rec:
            (w * 3).sum().backward()
        old = bpviz_torch.BPVIZ
        bpviz_torch.BPVIZ = "/nonexistent/bpviz"
        try:
            self.assertIsNone(rec._repr_svg_())
            self.assertIn("/nonexistent/bpviz", rec._repr_html_())
        finally:
            bpviz_torch.BPVIZ = old

    def test_no_backward(self):
        with bpviz_torch.record() as rec:
            torch.ones(2, requires_grad=True).sum()
        with self.assertRaisesRegex(RuntimeError, "nothing recorded"):
            rec.save(io.StringIO())


def bpviz_reads_traces(d):
    """Whether this bpviz draws a trace: one it wrote itself."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "samples",
                       "linear.bp")
    own = os.path.join(d, "own.json")
    if subprocess.run([BPVIZ, src, "-T", "json", "-o", own], capture_output=True).returncode:
        return False
    return subprocess.run([BPVIZ, own, "-T", "dot", "-o", os.path.join(d, "own.dot")],
                          capture_output=True).returncode == 0


def draw_all():
    """Draws every trace the tests recorded, as SVG and as DOT."""
    with tempfile.TemporaryDirectory() as d:
        if not bpviz_reads_traces(d):
            print(f"SKIP: {BPVIZ} does not read JSON traces (`bpviz trace.json`)")
            return 77
        failed = 0
        for name, text in TRACES:
            path = os.path.join(d, name + ".json")
            with open(path, "w") as f:
                f.write(text)
            for fmt in ("svg", "dot"):
                out = os.path.join(d, f"{name}.{fmt}")
                r = subprocess.run([BPVIZ, path, "-T", fmt, "-o", out, "--max-nodes", "1000"],
                                   capture_output=True, text=True)
                ok = r.returncode == 0 and os.path.getsize(out) > 0
                print(f"{'ok' if ok else 'FAIL'}: bpviz {name}.json -T {fmt} {r.stderr.strip()}")
                failed += not ok
                if ok and fmt == "dot":
                    # a recorded op bpviz has no row for (addmm, a matrix
                    # product) has no elementwise broadcast to mark
                    with open(out) as f:
                        marked = "summed over" in f.read()
                    if marked and "mlp" in name:
                        print(f"FAIL: {name}.dot marks a broadcast on a recorded op")
                        failed += 1
        # Jupyter's figure: the SVG of one step, the player of several
        bpviz_torch.BPVIZ = BPVIZ
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        with bpviz_torch.record(steps=None) as rec:
            for _ in range(2):
                (w * w).sum().backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                w.grad = None
        one = bpviz_torch.Recorder()
        one.steps = rec.steps[:1]
        checks = [("_repr_svg_ of one step", "</svg>" in (one._repr_svg_() or "")),
                  ("_repr_html_ of one step is None", one._repr_html_() is None),
                  ("_repr_html_ of two steps", "<iframe" in (rec._repr_html_() or ""))]
        for what, ok in checks:
            print(f"{'ok' if ok else 'FAIL'}: {what}")
            failed += not ok
        return 1 if failed else 0


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    if not result.wasSuccessful():
        sys.exit(1)
    if DRAW:
        sys.exit(draw_all())
