"""Records one training step of a small PyTorch MLP as a bpviz trace.

    PYTHONPATH=python python3 samples/torch_mlp.py mlp.json && bpviz mlp.json -o mlp.svg

docs/render.sh draws docs/torch_mlp.svg from it (docs/torch.md).
"""
import sys

import torch

import bpviz_torch

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
x = torch.tensor([[0.5, -1.0], [1.5, 2.0]])
y = torch.tensor([[1.0], [-1.0]])
opt = torch.optim.SGD(net.parameters(), lr=0.1)

with bpviz_torch.record(model="torch_mlp.py") as rec:
    opt.zero_grad()
    out = net(x)
    loss = torch.nn.functional.mse_loss(out, y)
    loss.backward()
    opt.step()
rec.save(sys.argv[1] if len(sys.argv) > 1 else "torch_mlp.json")
