"""Record a PyTorch forward and backward pass as a bpviz JSON trace.

    import bpviz_torch
    with bpviz_torch.record() as rec:
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
    rec.save("trace.json")      # then: bpviz trace.json -o fig.svg
    rec                         # in Jupyter: the figure, drawn by the bpviz program

Every autograd node of the backward() call becomes a node of the trace, with the
forward value PyTorch computed and the gradients PyTorch passed along each edge.
Nothing is recomputed: the values are copies of PyTorch's own tensors, caught with
a TorchDispatchMode (each aten op's output), a TorchFunctionMode (the call of
Tensor.backward, and the tensors each Python-level call takes), global nn.Module
forward hooks (which module made a node, the parameters' names) and hooks on the
graph's nodes (Node.register_hook: the gradients). All of them are removed when
the `with` block ends, also on an exception. docs/torch.md has the details.

Standard library and torch (1.13 or later) only.
"""

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._mode_utils import no_dispatch
from torch.nn.modules.module import (register_module_forward_hook,
                                     register_module_forward_pre_hook)

__all__ = ["record", "Recorder", "BPVIZ", "MAX_TENSOR_ELEMS"]
__version__ = "1"

# The bpviz program that draws the figure in Jupyter: this path, else the
# environment variable BPVIZ, else `bpviz` on PATH.
BPVIZ = None

# bpviz refuses a tensor of more elements than this (BPV_MAX_TENSOR_ELEMS, 2^26):
# the recorder writes null for such a value or gradient rather than a trace
# that cannot be read back.
MAX_TENSOR_ELEMS = 1 << 26

# grad_fn class -> bpviz op name, where the operation is the same one.
_OPS = {
    "AddBackward0": "add", "SubBackward0": "sub", "MulBackward0": "mul",
    "DivBackward0": "div", "NegBackward0": "neg", "PowBackward0": "pow",
    "PowBackward1": "pow", "MmBackward0": "matmul", "SigmoidBackward0": "sigmoid",
    "ReluBackward0": "relu", "TanhBackward0": "tanh", "ExpBackward0": "exp",
    "LogBackward0": "log", "SqrtBackward0": "sqrt", "AbsBackward0": "abs",
    "SumBackward0": "sum", "MeanBackward0": "mean", "TBackward0": "transpose",
    "MseLossBackward0": "mse", "BinaryCrossEntropyBackward0": "bce",
    "MaximumBackward0": "max", "MinimumBackward0": "min",
}
# bpviz's op names: a PyTorch name equal to one of them but not the same
# operation keeps its number (SumBackward1 -> "sum1") so it is not mistaken.
_BPV_NAMES = set("""add sub mul div neg pow matmul sigmoid relu tanh exp log sqrt abs
sum mean transpose mse bce softmax log_softmax cross_entropy identity custom max min
clamp sum_dim mean_dim conv2d max_pool2d avg_pool2d flatten reshape cat stack index
""".split())
_HALF = (torch.float16, torch.bfloat16)


def _last_dim(fn, ndim):
    d = getattr(fn, "_saved_dim", None)
    return isinstance(d, int) and ndim is not None and d in (-1, ndim - 1)


def _square(v):
    """A pair of equal ints as one int, else None."""
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return v[0] if v and all(isinstance(e, int) and e == v[0] for e in v) else None


def _op_of(fn, ndim):
    """(bpviz op name, attrs or None, custom fn name or None) of a grad_fn."""
    try:
        found = _bpv_op(fn, ndim)
    except (AttributeError, TypeError, RuntimeError):  # saved attrs another torch lacks
        found = None
    return found or (_torch_name(type(fn).__name__), None, None)


def _bpv_op(fn, ndim):
    cls = type(fn).__name__
    if isinstance(fn, torch.autograd.function.BackwardCFunction):
        fwd = getattr(type(fn), "_forward_cls", None)
        return "custom", None, fwd.__name__ if fwd is not None else cls
    if cls in _OPS:
        return _OPS[cls], None, None
    if cls in ("SoftmaxBackward0", "LogSoftmaxBackward0") and _last_dim(fn, ndim):
        return ("softmax" if cls == "SoftmaxBackward0" else "log_softmax"), None, None
    if cls == "ConvolutionBackward0" and ndim == 4:
        st, pad = _square(fn._saved_stride), _square(fn._saved_padding)
        dil = _square(fn._saved_dilation)
        if (not fn._saved_transposed and fn._saved_groups == 1 and dil == 1
                and st is not None and pad is not None):
            return "conv2d", {"stride": st, "padding": pad}, None
    if cls == "MaxPool2DWithIndicesBackward0":
        k, st = _square(fn._saved_kernel_size), _square(fn._saved_stride)
        pad, dil = _square(fn._saved_padding), _square(fn._saved_dilation)
        if None not in (k, st, pad) and dil == 1 and not fn._saved_ceil_mode:
            return "max_pool2d", {"kernel": k, "stride": st, "padding": pad}, None
    if cls == "ClampBackward1":
        lo, hi = fn._saved_min, fn._saved_max
        if lo is not None and hi is not None:
            return "clamp", {"lo": _num(float(lo)), "hi": _num(float(hi))}, None
    return None


def _torch_name(cls):
    """PyTorch's name of a grad_fn class, in the trace's form."""
    name = cls
    digit = ""
    i = name.rfind("Backward")
    if i > 0:
        name, digit = name[:i], name[i + len("Backward"):]
    # NllLoss -> nll_loss, MaxPool2DWithIndices -> max_pool2d_with_indices
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name).lower()
    if name in _BPV_NAMES:
        name += digit or "_"
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)[:64]
    if not name or name[0].isdigit():
        name = "op_" + name
    return name[:64]


def _num(x):
    if x != x:
        return "nan"
    if x in (math.inf, -math.inf):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _nested(v):
    if isinstance(v, list):
        return [_nested(e) for e in v]
    return _num(float(v))


def _json_value(t):
    """A tensor as the schema's number or nested lists, or None."""
    if t is None or t.numel() > MAX_TENSOR_ELEMS:
        return None
    if t.is_complex():
        return None
    if t.dtype not in (torch.float32, torch.float64):
        t = t.double() if t.dtype != torch.bool else t.to(torch.float64)
    return _nested(t.detach().cpu().tolist())


def _nonfinite(t):
    return t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all())


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            if isinstance(o, torch.Tensor):
                yield o
    elif isinstance(obj, dict):
        for o in obj.values():
            if isinstance(o, torch.Tensor):
                yield o


def _refuse_half(t, what):
    if t.dtype in _HALF or t.is_complex():
        raise TypeError(
            f"bpviz_torch: {what} is {t.dtype}: bpviz traces hold float32 or float64 "
            "numbers only; record the model in float32 (model.float(), no autocast)")


_ACTIVE = []  # the recorder inside its `with` block, at most one


@contextlib.contextmanager
def _internal(rec):
    """The recorder's own tensor work: seen by neither mode (a wrapped number
    such as the 2 of `x * 2` cannot even be copied under a dispatch mode)."""
    busy, rec._busy = rec._busy, True
    try:
        with no_dispatch():
            yield
    finally:
        rec._busy = busy


class _FunctionMode(TorchFunctionMode):
    def __init__(self, rec):
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rec = self.rec
        if rec._busy:
            return func(*args, **kwargs)
        if func is torch.Tensor.backward:
            return rec._backward(func, args, kwargs)
        grad = torch.is_grad_enabled()
        if grad and rec._recording():
            with _internal(rec):
                rec._resolve_pending()
                for t in _tensors(args):
                    rec._value_of_input(t)
        out = func(*args, **kwargs)
        if grad and (rec._after_pending or rec._recording()):
            with _internal(rec):
                if rec._after_pending and any(t.grad_fn is not None for t in _tensors(out)):
                    # a new graph: the optimizer is done with the last step
                    rec._fill_after()
                if rec._recording():
                    rec._after_call(args, kwargs, out)
        return out


class _DispatchMode(TorchDispatchMode):
    def __init__(self, rec):
        super().__init__()
        self.rec = rec

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rec = self.rec
        if rec._busy or not torch.is_grad_enabled() or not rec._recording():
            return func(*args, **kwargs)
        rec._busy = True
        try:
            rec._resolve_pending()
            for t in _tensors(args):
                rec._value_of_input(t)
        finally:
            rec._busy = False
        out = func(*args, **kwargs)
        if any(t.requires_grad for t in _tensors(args)):
            rec._busy = True
            try:
                for t in _tensors(out):
                    if t.is_floating_point() or t.is_complex():
                        _refuse_half(t, f"the output of {func}")
                        # the output's grad_fn is set once this returns: the
                        # copy is matched to it at the next op (_resolve_pending)
                        rec._pending.append((t, t.detach().clone()))
            finally:
                rec._busy = False
        return out


class Recorder:
    """What record() returns: the recorded steps, save(), the figure."""

    def __init__(self, steps=1, model=None):
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError("bpviz_torch.record: steps must be a whole number >= 1 or None")
        self.max_steps = steps
        self.model = model
        self.steps = []          # finished steps, as the trace's dicts
        self.producer = f"bpviz_torch {__version__} (torch {torch.__version__})"
        self._dtype = None
        self._busy = False
        self._handles = []
        self._modes = []
        self._frame = None
        self._after_pending = []
        self._reset_step(keep_values=False)
        self._roots = []         # root modules in the order they ran
        self._module_path = {}   # id(module) -> (root, path in root, module)
        self._stack = []

    # -- state ------------------------------------------------------------
    def _reset_step(self, keep_values):
        if not keep_values:
            self._values = {}     # (grad_fn, output_nr) -> copy of the output
            self._found = {}      # grad_fn -> (root, path) of the module that ran
            self._param_value = {}  # AccumulateGrad -> copy of the variable
            self._data = {}       # id(tensor) -> [tensor, copy, (root, path)]
            self._feeds = {}      # grad_fn -> [id(tensor)], data tensors it takes
        self._pending = []

    def _recording(self):
        return self.max_steps is None or len(self.steps) < self.max_steps

    # -- context manager ----------------------------------------------------
    def __enter__(self):
        if _ACTIVE:
            raise RuntimeError("bpviz_torch.record: already recording (records do not nest)")
        self._frame = sys._getframe(1)
        if self.model is None:
            self.model = os.path.basename(self._frame.f_code.co_filename) or "pytorch"
            if self.model.startswith("<"):
                self.model = "pytorch"
        _ACTIVE.append(self)
        try:
            self._handles.append(register_module_forward_pre_hook(self._module_pre))
            self._handles.append(register_module_forward_hook(self._module_post))
            for mode in (_FunctionMode(self), _DispatchMode(self)):
                mode.__enter__()
                self._modes.append(mode)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close()
        return False

    def _close(self):
        while self._modes:
            self._modes.pop().__exit__(None, None, None)
        while self._handles:
            self._handles.pop().remove()
        if self._after_pending:
            self._fill_after()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        self._reset_step(keep_values=False)
        self._stack = []
        self._roots = []
        self._module_path = {}
        self._frame = None

    # -- modules ------------------------------------------------------------
    def _module_pre(self, module, inputs):
        if self._busy:
            return None
        if id(module) not in self._module_path:
            root = self._stack[-1][0] if self._stack else module
            if root is module or id(module) not in self._module_path:
                root = module
                self._roots.append(module)
                for path, m in module.named_modules():
                    self._module_path.setdefault(id(m), (module, path, m))
        root, path, _ = self._module_path[id(module)]
        self._stack.append((root, path, module))
        return None

    def _module_post(self, module, inputs, output):
        # pop to the module that ends (an exception in a forward skips its post hook)
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][2] is module:
                del self._stack[i:]
                break
        return None

    def _where(self):
        return (self._stack[-1][0], self._stack[-1][1]) if self._stack else (None, "")

    # -- forward ------------------------------------------------------------
    def _resolve_pending(self):
        for t, copy in self._pending:
            fn = t.grad_fn
            if fn is not None:
                self._values.setdefault((fn, t.output_nr), copy)
        self._pending = []

    def _value_of_input(self, t):
        """A tensor an op takes: its producer's value if none was caught yet
        (made outside the dispatch mode: a custom autograd.Function)."""
        fn = t.grad_fn
        if fn is not None:
            key = (fn, t.output_nr)
            if key not in self._values and t.layout == torch.strided:
                _refuse_half(t, f"the output of {type(fn).__name__}")
                self._values[key] = t.detach().clone()

    def _after_call(self, args, kwargs, out):
        self._resolve_pending()
        where = self._where()
        new = []
        for t in _tensors(out):
            if t.grad_fn is not None:
                _refuse_half(t, f"the output of {type(t.grad_fn).__name__}")
                self._value_of_input(t)
                self._discover(t.grad_fn, where, new)
        if not new:
            return
        # data tensors (no requires_grad) an op of this call takes: those
        # PyTorch saved for backward go to the op that saved them; the call's
        # own arguments go to the call's last op when nothing took them
        taken = set()
        for fn in new:
            for name in dir(fn):
                # outputs PyTorch saved are not inputs: result, result1 (max_pool2d's
                # indices, dropout's mask), nll_loss's total_weight
                if not name.startswith("_saved_") or name.startswith("_saved_result") \
                        or name == "_saved_total_weight":
                    continue
                try:
                    v = getattr(fn, name)
                except Exception:
                    continue
                if isinstance(v, torch.Tensor) and not v.requires_grad:
                    self._feed(fn, v, where)
                    taken.add(id(v))
                    if v._base is not None:
                        taken.add(id(v._base))
        top = next((t.grad_fn for t in _tensors(out) if t.grad_fn in new), None)
        if top is not None:
            for a in list(_tensors(args)) + list(_tensors(kwargs)):
                if not a.requires_grad and id(a) not in taken and a.layout == torch.strided:
                    self._feed(top, a, where)
                    taken.add(id(a))

    def _feed(self, fn, t, where):
        if t.is_complex() or t.dtype in _HALF:
            return
        d = self._data.get(id(t))
        if d is None or d[0] is not t:
            self._data[id(t)] = [t, t.detach().clone(), where]
        feeds = self._feeds.setdefault(fn, [])
        if id(t) not in feeds:
            feeds.append(id(t))

    def _discover(self, fn, where, new):
        stack = [fn]
        while stack:
            f = stack.pop()
            if f is None or f in self._found:
                continue
            self._found[f] = where
            new.append(f)
            if hasattr(f, "variable"):
                v = f.variable
                _refuse_half(v, "a leaf tensor")
                self._param_value.setdefault(f, v.detach().clone())
            for nf, _ in f.next_functions:
                if nf is not None and nf not in self._found:
                    stack.append(nf)

    # -- after the optimizer --------------------------------------------------
    def _fill_after(self):
        with _internal(self):
            for entry, p in self._after_pending:
                entry["after"] = _json_value(p.detach())
            self._after_pending = []

    # -- backward -------------------------------------------------------------
    def _backward(self, func, args, kwargs):
        root = args[0] if args else None
        if (not self._recording() or not isinstance(root, torch.Tensor)
                or root.grad_fn is None):
            return func(*args, **kwargs)
        got, handles = {}, []
        try:
            with _internal(self):
                if self._after_pending:
                    self._fill_after()
                self._resolve_pending()
                self._value_of_input(root)
                order = self._graph(root.grad_fn)
                for fn in order:
                    handles.append(fn.register_hook(self._grad_hook(fn, got)))
            result = func(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
        with _internal(self):
            retain = kwargs.get("retain_graph")
            if retain is None:
                retain = kwargs.get("create_graph", False)
            if len(args) > 2 and args[2] is not None:
                retain = args[2]
            self.steps.append(self._build(root, order, got))
            self._reset_step(keep_values=bool(retain))
        return result

    def _grad_hook(self, fn, got):
        def hook(grad_inputs, grad_outputs):
            got[fn] = (tuple(None if g is None else g.detach() for g in grad_inputs),
                       tuple(None if g is None else g.detach() for g in grad_outputs))
        return hook

    @staticmethod
    def _graph(root_fn):
        """The nodes behind root_fn, inputs first (iterative: long unrolled RNNs)."""
        order, seen = [], {root_fn}
        stack = [(root_fn, iter(root_fn.next_functions))]
        while stack:
            fn, it = stack[-1]
            for nf, _ in it:
                if nf is not None and nf not in seen:
                    seen.add(nf)
                    stack.append((nf, iter(nf.next_functions)))
                    break
            else:
                stack.pop()
                order.append(fn)
        return order

    # -- names ----------------------------------------------------------------
    def _user_frames(self):
        """The frames from the caller of backward() out to the `with` block's."""
        frames = []
        f = sys._getframe(1)
        torch_dir = os.path.dirname(torch.__file__)
        while f is not None:
            fname = f.f_code.co_filename
            if fname != __file__ and not fname.startswith(torch_dir):
                frames.append(f)
            if f is self._frame:
                break
            f = f.f_back
        return frames

    def _variables(self):
        """id(object) -> the Python variable holding it, from the user's frames."""
        names = {}
        frames = self._user_frames()
        for scope in [f.f_locals for f in frames] + [frames[-1].f_globals if frames else {}]:
            for k, v in list(scope.items()):
                if k.startswith("_") or k in ("In", "Out"):
                    continue
                if isinstance(v, (torch.Tensor, torch.nn.Module)):
                    names.setdefault(id(v), (k, v))
        return names

    def _prefixes(self, names):
        """root module -> its prefix in names: "" for the model, else its variable."""
        with_params = [r for r in self._roots if any(True for _ in r.parameters())]
        prefixes = {}
        for r in self._roots:
            if len(with_params) == 1 and r is with_params[0]:
                prefixes[id(r)] = ""
            else:
                n = names.get(id(r))
                prefixes[id(r)] = n[0] if n and n[1] is r else type(r).__name__.lower()
        return prefixes

    @staticmethod
    def _join(prefix, path):
        return ".".join(p for p in (prefix, path) if p)

    # -- one step ---------------------------------------------------------------
    def _build(self, root, order, got):
        self._resolve_pending()
        names = self._variables()
        prefixes = self._prefixes(names)
        classes = {id(r): {p: type(m).__name__ for p, m in r.named_modules()} for r in self._roots}
        param_names = {}
        for r in self._roots:
            for qn, p in r.named_parameters():
                mpath, _, _ = qn.rpartition(".")
                param_names.setdefault(id(p), (self._join(prefixes[id(r)], qn),
                                               self._join(prefixes[id(r)], mpath), r, mpath))
        for r in self._roots:  # buffers: batch norm's running_mean
            for qn, b in r.named_buffers():
                names.setdefault(id(b), (self._join(prefixes[id(r)], qn), b))
        out_names = {}
        for oid, (k, v) in names.items():
            if isinstance(v, torch.Tensor) and v.grad_fn is not None:
                out_names.setdefault((v.grad_fn, v.output_nr), k)

        nodes, edges, params, ids = [], [], [], {}
        data_ids = {}
        dtype = None

        def module_of(where):
            r, path = where
            if r is None:
                return "", None
            return self._join(prefixes[id(r)], path), classes[id(r)].get(path)

        def add(node):
            node["id"] = len(nodes)
            nodes.append(node)
            return node["id"]

        # ops with several outputs (unbind, split): one node for the op and one
        # "getitem" node for each output used, with that output's value and grad
        multi = {nf for fn in order for nf, nr in fn.next_functions if nf is not None and nr > 0}
        multi |= {fn for fn in order if len(got.get(fn, ((), ()))[1]) > 1}

        def input_id(nf, nr):
            if nf not in multi:
                return ids[nf]
            if (nf, nr) not in ids:
                m = nodes[ids[nf]]
                go = got.get(nf, ((), ()))[1]
                value = self._values.get((nf, nr))
                grad = go[nr] if nr < len(go) else None
                shape = value.shape if value is not None else (
                    grad.shape if grad is not None else ())
                node = {"name": out_names.get((nf, nr)), "kind": "op", "op": "getitem",
                        "inputs": [m["id"]], "shape": list(shape),
                        "value": _json_value(value), "grad": _json_value(grad),
                        "torch": m["torch"], "output": nr, "module": m["module"]}
                if "module_class" in m:
                    node["module_class"] = m["module_class"]
                if _nonfinite(value) or _nonfinite(grad):
                    node["nonfinite"] = True
                ids[(nf, nr)] = add(node)
                edges.append({"from": m["id"], "to": ids[(nf, nr)], "slot": 0, "formula": None,
                              "local": None, "chained": None})
            return ids[(nf, nr)]

        leaves = 0
        for fn in order:
            gi, go = got.get(fn, ((), ()))
            cls = type(fn).__name__
            inputs, slots = [], []
            for slot, (nf, nr) in enumerate(fn.next_functions):
                if nf is not None:
                    inputs.append(input_id(nf, nr))
                    slots.append(slot)
            # data tensors fill the slots PyTorch left empty, in order
            free = [s for s, (nf, _) in enumerate(fn.next_functions) if nf is None]
            extra = len(fn.next_functions)
            for tid in self._feeds.get(fn, []):
                t, copy, where = self._data[tid]
                if tid not in data_ids:
                    n = names.get(tid)
                    name = n[0] if n and n[1] is t else None
                    kind = "const" if name is None and t.dim() == 0 else "data"
                    mod = "" if name else module_of(self._found.get(fn, (None, "")))[0]
                    data_ids[tid] = add({"name": name, "kind": kind, "op": None, "inputs": [],
                                         "shape": list(t.shape), "value": _json_value(copy),
                                         "grad": None, "module": mod})
                if free:
                    s = free.pop(0)
                else:
                    s, extra = extra, extra + 1
                inputs.append(data_ids[tid])
                slots.append(s)
            pairs = sorted(zip(slots, inputs))
            if hasattr(fn, "variable"):
                v = fn.variable
                value = self._param_value.get(fn, v.detach())
                pn = param_names.get(id(v))
                if pn:
                    name, mod, r, mpath = pn
                    mclass = classes[id(r)].get(mpath)
                else:
                    n = names.get(id(v))
                    name = n[0] if n and n[1] is v else f"leaf{leaves}"
                    mod, mclass = "", None
                leaves += 1
                grad = go[0] if go else None
                node = {"name": name, "kind": "param", "op": None, "inputs": [],
                        "shape": list(v.shape), "value": _json_value(value),
                        "grad": _json_value(grad), "module": mod}
                if mclass:
                    node["module_class"] = mclass
                if _nonfinite(value) or _nonfinite(grad):
                    node["nonfinite"] = True
                ids[fn] = add(node)
                entry = {"name": name, "node": ids[fn], "after": None}
                if grad is not None and v.grad is not None and v.grad.shape == grad.shape \
                        and not bool((v.grad == grad).all()) and not _nonfinite(grad):
                    entry["accumulating"] = True
                params.append(entry)
                self._after_pending.append((entry, v))
                dtype = dtype or v.dtype
                continue
            nouts = max(len(go), 1)
            value = self._values.get((fn, 0)) if fn not in multi else None
            grad = go[0] if fn not in multi and go else None
            shape = value.shape if value is not None else (
                grad.shape if grad is not None else None)
            op, attrs, custom = _op_of(fn, len(shape) if shape is not None else None)
            mod, mclass = module_of(self._found.get(fn, (None, "")))
            node = {"name": out_names.get((fn, 0)), "kind": "op", "op": op,
                    "inputs": [i for _, i in pairs],
                    "shape": list(shape) if shape is not None else [],
                    "value": _json_value(value), "grad": _json_value(grad),
                    "torch": cls, "module": mod}
            if mclass:
                node["module_class"] = mclass
            if attrs:
                node["attrs"] = attrs
            if custom:
                node["fn"] = custom
            if fn in multi:
                node["outputs"] = nouts
            if _nonfinite(value) or _nonfinite(grad):
                node["nonfinite"] = True
            if value is not None and value.is_floating_point():
                dtype = dtype or value.dtype
            ids[fn] = add(node)
            for s, i in pairs:
                chained = gi[s] if s < len(gi) else None
                edges.append({"from": i, "to": ids[fn], "slot": s, "formula": None,
                              "local": None, "chained": _json_value(chained)})
        if dtype == torch.float64 or self._dtype == "f64":
            self._dtype = "f64"
        elif dtype is not None:
            self._dtype = "f32"
        loss = None
        lv = self._values.get((root.grad_fn, root.output_nr))
        if lv is None:
            lv = root.detach()
        if lv.numel() == 1:
            loss = _num(float(lv.reshape(())))
        return {"step": len(self.steps) + 1, "epoch": 0, "samples": [], "loss": loss,
                "objective": ids[root.grad_fn], "nodes": nodes, "edges": edges,
                "params": params}

    # -- output -----------------------------------------------------------------
    def trace(self):
        """The trace as a dict (docs/json-trace.md)."""
        return {"producer": self.producer, "model": self.model or "pytorch",
                "dtype": self._dtype or "f32", "steps": self.steps}

    def save(self, path):
        """Writes the trace as JSON to path (a file name or a text file)."""
        if not self.steps:
            raise RuntimeError("bpviz_torch: nothing recorded: no backward() ran inside record()")
        text = json.dumps(self.trace(), separators=(", ", ": "))
        if hasattr(path, "write"):
            path.write(text + "\n")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")

    def figure(self, fmt="svg", *args):
        """The figure as bpviz draws the trace (text for svg, dot, html; bytes
        otherwise). args: more bpviz options, e.g. "--step", "2"."""
        exe = BPVIZ or os.environ.get("BPVIZ") or shutil.which("bpviz")
        if not exe:
            raise FileNotFoundError(
                "bpviz_torch: the bpviz program is not on PATH: set bpviz_torch.BPVIZ or $BPVIZ")
        with tempfile.TemporaryDirectory(prefix="bpviz_torch") as d:
            src = os.path.join(d, "trace.json")
            out = os.path.join(d, "figure." + fmt)
            self.save(src)
            r = subprocess.run([exe, src, "-T", fmt, "-o", out, *args],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"bpviz_torch: {exe} failed: {r.stderr.strip()}")
            mode = "r" if fmt in ("svg", "dot", "html", "json") else "rb"
            with open(out, mode, **({"encoding": "utf-8"} if mode == "r" else {})) as f:
                return f.read()

    def _repr_svg_(self):
        if not self.steps:
            return None
        try:
            return self.figure("svg", "--step", "last")
        except (OSError, RuntimeError):
            return None

    def _repr_html_(self):
        """The step player for several steps; for one, None (Jupyter shows the
        SVG), or why no figure could be drawn."""
        import html
        if not self.steps:
            return "<p>bpviz_torch: nothing recorded yet</p>"
        try:
            if len(self.steps) > 1:
                # the player is a whole page with its script: in a frame of its own
                page = self.figure("html", "--steps", "all")
                return ('<iframe style="width: 100%; height: 720px; border: 0" srcdoc="'
                        + html.escape(page, quote=True) + '"></iframe>')
            self.figure("svg", "--step", "last")
            return None
        except (OSError, RuntimeError) as e:
            return f"<pre>{html.escape(str(e))}</pre>"

    def __repr__(self):
        return (f"<bpviz_torch.Recorder: {len(self.steps)} step(s), "
                f"{sum(len(s['nodes']) for s in self.steps)} nodes>")


def record(steps=1, model=None):
    """Records the backward() calls in its `with` block: the first `steps` of
    them (None: all), each as one step of the trace. model: the trace's name
    (default: the calling script's file name)."""
    return Recorder(steps=steps, model=model)
