#!/usr/bin/python3
"""Write PyTorch reference files for the engine's model-level tests.

For LeNet and a ConvNet with batch norm (batch-statistics mode) this computes,
in float64 and stored as float32, for a soft-label loss
    l(x, y, theta) = -(1/n) sum_i sum_c softmax(y_i)_c log softmax(f(x_i; theta))_c
the loss, its gradient with respect to theta, and by double backward
(create_graph=True) along a tangent v:
    H v,  d/dx <v, grad_theta l>,  d/dy <v, grad_theta l>.
Parameters are written flat in named_parameters() order, which is the order
the C engine uses.  Run:  /usr/bin/python3 scripts/make-reference.py tests/data
File format (little-endian): b"SLDDREF1", u32 count, then per tensor:
u32 name length, name bytes, u32 ndim, u32 dims[ndim], float32 data.
"""
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self, c, size, k):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2 if size == 28 else 0)
        self.conv2 = nn.Conv2d(6, 16, 5)
        s = (size + (4 if size == 28 else 0) - 4) // 2
        s = (s - 4) // 2
        self.fc1 = nn.Linear(16 * s * s, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, k)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class ConvNet(nn.Module):
    def __init__(self, c, size, k, depth, width):
        super().__init__()
        layers = []
        for d in range(depth):
            layers += [nn.Conv2d(c if d == 0 else width, width, 3, padding=1),
                       nn.BatchNorm2d(width), nn.ReLU(), nn.AvgPool2d(2)]
            size //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, k)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def write(path, tensors):
    with open(path, "wb") as f:
        f.write(b"SLDDREF1")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors:
            t = t.detach().to(torch.float32).contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(t.numpy().tobytes())


def reference(model, n, c, size, k, seed):
    g = torch.Generator().manual_seed(seed)
    model = model.double().train()
    params = [p for _, p in model.named_parameters()]
    with torch.no_grad():
        for p in params:  # perturb so biases and BN affine terms are not trivial
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    # round everything to float32 first so the C engine sees the same inputs
    r32 = lambda t: t.to(torch.float32).to(torch.float64)
    with torch.no_grad():
        for p in params:
            p.copy_(r32(p))
    x = r32(torch.randn(n, c, size, size, generator=g, dtype=torch.float64)).requires_grad_()
    y = r32(2 * torch.randn(n, k, generator=g, dtype=torch.float64)).requires_grad_()
    v = [r32(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)) for p in params]
    q = F.softmax(y, dim=1)
    loss = -(q * F.log_softmax(model(x), dim=1)).sum() / n
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gv = sum((gi * vi).sum() for gi, vi in zip(grads, v))
    hv = torch.autograd.grad(gv, params + [x, y])
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    return [
        ("theta", flat([p.detach() for p in params])),
        ("x", x.detach()), ("y", y.detach()), ("v", flat(v)),
        ("loss", loss.detach().reshape(1)),
        ("grad_theta", flat([t.detach() for t in grads])),
        ("hv", flat(hv[:len(params)])),
        ("dgx", hv[len(params)]), ("dgy", hv[len(params) + 1]),
    ]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    torch.manual_seed(0)
    write(f"{out}/ref_lenet.bin", reference(LeNet(1, 28, 10), 4, 1, 28, 10, 1))
    torch.manual_seed(0)
    write(f"{out}/ref_convnet_bn.bin",
          reference(ConvNet(1, 16, 3, 2, 8), 6, 1, 16, 3, 2))
    print("wrote", out)


if __name__ == "__main__":
    main()
