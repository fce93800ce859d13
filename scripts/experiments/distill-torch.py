#!/usr/bin/python3
"""The same soft-label distillation algorithm (docs/algorithm.md) in PyTorch, as an
independent reference for `sldd distill` on Fashion-MNIST with LeNet (or, with
--arch convnet-bn --depth D --width W, the ConvNet with batch norm in batch
mode; its test accuracy then uses the test batches' own statistics, where
sldd uses running ones, so only its timing compares).

It starts from the theta_0 and the initial images, labels and step parameters
that `sldd distill --export-init FILE` wrote, draws the same real batches in
the same order (sldd's Philox shuffle, reimplemented here; --seed must match
sldd's), runs Algorithm 1 with the same
hyper-parameters (exact meta-gradient by double backward through all T
steps; Adam lr 0.01, betas (0.5, 0.999) on images, labels and rho), then
replays the T steps and reports the test accuracy.

    /usr/bin/python3 scripts/experiments/distill-torch.py --init FILE --steps 10 \
        --images-per-step 10 --epochs-inner 3 --iterations 1000 [--seed 0] \
        [--decay-epochs 40]

With --data random --size 32 --classes 3 (ConvNet-BN only) the real batches
are drawn from random tensors of the gastric pipeline's shape (one channel,
32x32, three classes; docs/experiments.md): a timing reference for
`sldd distill` on a prepared gastric set, whose patches this script cannot
read; test_acc is then null.

Prints one JSON line: {"test_acc": ..., "sec_per_iter": ..., "sec_first_iter": ...}
(seconds per outer iteration over the run, and the first iteration's, which
carries PyTorch's one-time start-up costs; `sldd distill`'s result.json has
the same two keys).
"""
import argparse
import gzip
import json
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

FMNIST = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_fmnist():
    xtr = read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz").astype(np.float32) / 255
    ytr = read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    yte = read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    norm = lambda x: torch.from_numpy((x - MEAN) / STD).unsqueeze(1)
    # the first 55,000 training images train, the last 5,000 validate
    return (norm(xtr[:55000]), torch.from_numpy(ytr[:55000]), norm(xte), torch.from_numpy(yte))


M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox_word0(seed, stream, ctr):
    """Word 0 of Philox4x32-10 at counter (ctr lo, ctr hi, stream, 0) with key
    (seed lo, seed hi), vectorised over the uint64 array ctr (sd_init.c)."""
    c0 = (ctr & MASK).astype(np.uint64)
    c1 = (ctr >> np.uint64(32)).astype(np.uint64)
    c2 = np.full_like(c0, stream)
    c3 = np.zeros_like(c0)
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    for _ in range(10):
        p0 = c0 * np.uint64(M0)
        p1 = c2 * np.uint64(M1)
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return c0


def sldd_shuffle(count, seed, epoch):
    """The batch order sldd uses in epoch `epoch` (sd_distill.c shuffle())."""
    i = np.arange(count - 1, 0, -1, dtype=np.uint64)
    ctr = (np.uint64(epoch) << np.uint64(32)) | i
    r = (philox_word0(seed, 2, ctr) << np.uint64(32)) | philox_word0(seed ^ 0x5BD1E995, 2, ctr)
    j = (r % (i + np.uint64(1))).astype(np.int64)
    perm = np.arange(count)
    for k, ii in enumerate(range(count - 1, 0, -1)):
        jj = j[k]
        perm[ii], perm[jj] = perm[jj], perm[ii]
    return torch.from_numpy(perm)


def read_ref(path):
    out = {}
    with open(path, "rb") as f:
        assert f.read(8) == b"SLDDREF1"
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            (n,) = struct.unpack("<I", f.read(4))
            name = f.read(n).decode()
            (nd,) = struct.unpack("<I", f.read(4))
            dims = struct.unpack("<" + "I" * nd, f.read(4 * nd))
            size = int(np.prod(dims))
            out[name] = torch.from_numpy(np.frombuffer(f.read(4 * size), dtype="<f4").copy())
    return out


SHAPES = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
          (10, 84), (10,)]
MODEL = None  # lenet, or convnet_bn with --arch convnet-bn (set in main)


def convnet_bn_shapes(depth, width, size=28, classes=10):
    """theta layout of sldd's convnet-bn: per block conv weight, conv bias,
    batch-norm gamma, beta; then the classifier's weight and bias."""
    shapes, c = [], 1
    for _ in range(depth):
        shapes += [(width, c, 3, 3), (width,), (width,), (width,)]
        c, size = width, size // 2
    return shapes + [(classes, c * size * size), (classes,)]


def convnet_bn(th, x):
    """conv 3x3 (padding 1) + batch norm (batch statistics) + ReLU + 2x2
    average pool per block, then a linear classifier (sd_models.c)."""
    nb = (len(th) - 2) // 4
    for d in range(nb):
        w, b, g, be = th[4 * d:4 * d + 4]
        x = F.conv2d(x, w, b, padding=1)
        x = F.batch_norm(x, None, None, g, be, training=True, eps=1e-5)
        x = F.avg_pool2d(F.relu(x), 2)
    return F.linear(x.flatten(1), th[-2], th[-1])


def unflatten(theta):
    out, at = [], 0
    for s in SHAPES:
        n = int(np.prod(s))
        out.append(theta[at:at + n].view(s))
        at += n
    assert at == theta.numel()
    return out


def lenet(th, x):
    x = F.max_pool2d(F.relu(F.conv2d(x, th[0], th[1], padding=2)), 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, th[2], th[3])), 2)
    x = x.flatten(1)
    x = F.relu(F.linear(x, th[4], th[5]))
    x = F.relu(F.linear(x, th[6], th[7]))
    return F.linear(x, th[8], th[9])


def inner(theta0, x, y, rho, S, n, T, create_graph):
    th = [t.clone().requires_grad_(True) for t in theta0]
    for t in range(T):
        s = t % S
        xs, ys = x[s * n:(s + 1) * n], y[s * n:(s + 1) * n]
        loss = -(F.softmax(ys, 1) * F.log_softmax(MODEL(th, xs), 1)).sum() / n
        g = torch.autograd.grad(loss, th, create_graph=create_graph)
        a = F.softplus(rho[t])
        th = [p - a * gp for p, gp in zip(th, g)]
        if not create_graph:
            th = [p.detach().requires_grad_(True) for p in th]
    return th


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--images-per-step", type=int, default=10)
    ap.add_argument("--epochs-inner", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--real-batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--decay-epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--arch", choices=["lenet", "convnet-bn"], default="lenet")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--data", choices=["fashion-mnist", "random"], default="fashion-mnist")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--torch-order", action="store_true",
                    help="draw batches with torch.randperm instead of sldd's order")
    a = ap.parse_args()
    global SHAPES, MODEL
    MODEL = lenet
    if a.arch == "convnet-bn":
        SHAPES, MODEL = convnet_bn_shapes(a.depth, a.width, a.size, a.classes), convnet_bn
    elif a.data != "fashion-mnist" or a.size != 28 or a.classes != 10:
        ap.error("lenet runs on Fashion-MNIST only")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.data == "random":  # timing only: the gastric shape, random values
        xtr = torch.randn(26000, 1, a.size, a.size)
        ytr = torch.randint(0, a.classes, (26000,))
        xte = yte = None
    else:
        xtr, ytr, xte, yte = load_fmnist()
    ref = read_ref(a.init)
    S, n, T = a.steps, a.images_per_step, a.steps * a.epochs_inner
    theta0 = unflatten(ref["theta0"])
    x = ref["x"].view(S * n, 1, a.size, a.size).clone().requires_grad_(True)
    y = ref["y"].view(S * n, a.classes).clone().requires_grad_(True)
    rho = ref["rho"].clone().requires_grad_(True)
    opt = torch.optim.Adam([x, y, rho], lr=a.lr, betas=(0.5, 0.999), eps=1e-8)
    per_epoch = xtr.shape[0] // a.real_batch
    perm = None
    t0 = time.time()
    t1 = None
    for it in range(a.iterations):
        if it % per_epoch == 0:
            # the same batches as sldd (same seed), unless asked otherwise
            perm = (torch.randperm(xtr.shape[0]) if a.torch_order else
                    sldd_shuffle(xtr.shape[0], a.seed, it // per_epoch))
        b = it % per_epoch
        idx = perm[b * a.real_batch:(b + 1) * a.real_batch]
        th = inner(theta0, x, y, rho, S, n, T, True)
        loss = F.cross_entropy(MODEL(th, xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        # halve the learning rate every --decay-epochs epochs, as sldd does
        for g in opt.param_groups:
            g["lr"] = a.lr * 0.5 ** ((it // per_epoch) // a.decay_epochs)
        opt.step()
        if t1 is None:
            t1 = time.time()
    sec = (time.time() - t0) / max(a.iterations, 1)
    acc = None
    if xte is not None:
        th = inner(theta0, x.detach(), y.detach(), rho.detach(), S, n, T, False)
        with torch.no_grad():
            pred = torch.cat([MODEL(th, xte[i:i + 1000]).argmax(1)
                              for i in range(0, 10000, 1000)])
        acc = (pred == yte).float().mean().item()
    print(json.dumps({"test_acc": acc, "sec_per_iter": sec,
                      "sec_first_iter": (t1 - t0) if t1 is not None else None,
                      "iterations": a.iterations,
                      "torch_threads": torch.get_num_threads(),
                      "batch_order": "torch" if a.torch_order else "sldd"}))


if __name__ == "__main__":
    main()
