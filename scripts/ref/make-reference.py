#!/usr/bin/python3
"""Write PyTorch reference files for the engine's model-level tests.

For LeNet and a ConvNet with batch norm (batch-statistics mode) this computes,
in float64 and stored as float32, for a soft-label loss
    l(x, y, theta) = -(1/n) sum_i sum_c softmax(y_i)_c log softmax(f(x_i; theta))_c
the loss, its gradient with respect to theta, and by double backward
(create_graph=True) along a tangent v:
    H v,  d/dx <v, grad_theta l>,  d/dy <v, grad_theta l>.
Parameters are written flat in named_parameters() order, which is the order
the C engine uses.  Run:  /usr/bin/python3 scripts/ref/make-reference.py tests/data
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


def meta_reference(seed):
    """Meta-gradient of a whole unrolled run: ConvNet-BN (depth 1, width 4) on
    1x8x8 inputs, K=3, S=2 steps of n=2 images, E=2 epochs (T=4 inner steps),
    soft labels q = softmax(y), step sizes softplus(rho), inner BN with the
    distilled batch's statistics, outer hard-label loss on 6 real samples."""
    g = torch.Generator().manual_seed(seed)
    r32 = lambda t: t.to(torch.float32).to(torch.float64)
    dt = torch.float64
    S, n, E, K, T = 2, 2, 2, 3, 4
    W = r32(torch.randn(4, 1, 3, 3, generator=g, dtype=dt) * 0.5)
    b = r32(torch.randn(4, generator=g, dtype=dt) * 0.1)
    gam = r32(1 + 0.1 * torch.randn(4, generator=g, dtype=dt))
    bet = r32(0.1 * torch.randn(4, generator=g, dtype=dt))
    L = r32(torch.randn(K, 4 * 4 * 4, generator=g, dtype=dt) * 0.3)
    lb = r32(torch.randn(K, generator=g, dtype=dt) * 0.1)
    theta0 = [W, b, gam, bet, L, lb]
    x = r32(torch.randn(S * n, 1, 8, 8, generator=g, dtype=dt)).requires_grad_()
    y = r32(2 * torch.randn(S * n, K, generator=g, dtype=dt)).requires_grad_()
    rho = r32(torch.log(torch.expm1(torch.full((T,), 0.05, dtype=dt)))
              + 0.1 * torch.randn(T, generator=g, dtype=dt)).requires_grad_()
    xr = r32(torch.randn(6, 1, 8, 8, generator=g, dtype=dt))
    lr_ = torch.tensor([0, 1, 2, 2, 1, 0])

    def f(th, inp):
        h = F.conv2d(inp, th[0], th[1], padding=1)
        h = F.batch_norm(h, None, None, th[2], th[3], training=True, eps=1e-5)
        h = F.avg_pool2d(F.relu(h), 2)
        return F.linear(h.flatten(1), th[4], th[5])

    th = [t.clone().requires_grad_() for t in theta0]
    for t in range(T):
        s = t % S
        xs, ys = x[s * n:(s + 1) * n], y[s * n:(s + 1) * n]
        l = -(F.softmax(ys, 1) * F.log_softmax(f(th, xs), 1)).sum() / n
        gr = torch.autograd.grad(l, th, create_graph=True)
        a = F.softplus(rho[t])
        th = [p - a * gp for p, gp in zip(th, gr)]
    loss = F.cross_entropy(f(th, xr), lr_)
    gx, gy, grho = torch.autograd.grad(loss, [x, y, rho])
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    return [("theta0", flat(theta0)), ("x", x.detach()), ("y", y.detach()),
            ("rho", rho.detach()), ("xr", xr), ("lr", lr_.to(dt)),
            ("loss", loss.detach().reshape(1)), ("gx", gx), ("gy", gy), ("grho", grho)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    torch.manual_seed(0)
    # 9 samples: the CPU executor runs them as two batch shards (4 + 5)
    write(f"{out}/ref_lenet.bin", reference(LeNet(1, 28, 10), 9, 1, 28, 10, 1))
    torch.manual_seed(0)
    write(f"{out}/ref_convnet_bn.bin",
          reference(ConvNet(1, 16, 3, 2, 8), 6, 1, 16, 3, 2))
    write(f"{out}/ref_meta.bin", meta_reference(3))
    print("wrote", out)


if __name__ == "__main__":
    main()
