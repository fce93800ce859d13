#!/usr/bin/env python3
"""bench-gpu.py - the PyTorch side of the GPU benchmark (see tests/gpu/bench_gpu.c).

Measures with PyTorch, on the same GPU and with the same shapes as bench_gpu:
  - model passes at batch 256: loss + gradient (forward + backward) and the
    Hessian-vector product by double backward (the gradient with
    create_graph=True, then the gradient of <g, v> with respect to the
    parameters, the inputs and the label values), for ConvNet-BN (depth 3,
    width 128, 64x64) and ResNet18-BN (299x299), 1 channel, 3 classes;
  - seconds per SLDD outer iteration: 3 synthetic images with learned label
    logits, T = 9 unrolled inner SGD steps with learned step sizes
    (softplus(rho)), batch-statistics BN, outer cross-entropy on a real batch
    of 256, the exact meta-gradient through the unroll, Adam on images,
    labels and rho (lr 0.01, betas (0.5, 0.999));
  - detection throughput: 299x299 patches (stride 50) cut on the GPU from a
    2048x2048 16-bit image, normalised and classified by ResNet18-BN in eval
    mode, batches of 256.

FP32 throughout with TF32 off (torch.backends.{cuda.matmul,cudnn}.allow_tf32
= False), as in the CUDA backend.  cudnn.benchmark=True (PyTorch's fastest
setting) unless --deterministic.  Prints "RESULT torch.<key> <value> <unit>"
lines with the keys bench_gpu uses.

Runs anywhere PyTorch runs: --device cpu --quick checks the script itself on
a machine without a GPU.
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from torch.func import functional_call
except ImportError:  # PyTorch < 2.0
    from torch.nn.utils.stateless import functional_call


def result(key, value, unit):
    print("  %-44s %12.4f %s" % ("torch." + key, value, unit))
    print("RESULT torch.%s %.6g %s" % (key, value, unit), flush=True)


# ---------------------------------------------------------------- models
# The same architectures as distill/engine/sd_models.c (PyTorch parameter order).

def bn2d(c, track):
    return nn.BatchNorm2d(c, eps=1e-5, track_running_stats=track)


class ConvNet(nn.Module):
    """depth x [conv3x3 (bias) + BN + ReLU + AvgPool2], then a linear layer."""

    def __init__(self, size, width=128, depth=3, classes=3, track=False):
        super().__init__()
        layers, c = [], 1
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=True), bn2d(width, track),
                       nn.ReLU(), nn.AvgPool2d(2)]
            c = width
            size //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, track):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn2d(cout, track)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn2d(cout, track)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            bn2d(cout, track))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class ResNet18(nn.Module):
    """torchvision's resnet18 with a 1-channel stem and 3 classes."""

    def __init__(self, classes=3, track=False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = bn2d(64, track)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, c = [], 64
        for i, w in enumerate((64, 128, 256, 512)):
            blocks = [BasicBlock(c, w, 1 if i == 0 else 2, track), BasicBlock(w, w, 1, track)]
            c = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make(arch, size, track=False):
    return ConvNet(size, track=track) if arch == "convnet" else ResNet18(track=track)


def soft_ce(logits, q):
    return -(q * F.log_softmax(logits, 1)).sum(1).mean()


# ---------------------------------------------------------------- timing

def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, reps, dev):
    fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(dev)
    return (time.perf_counter() - t0) / reps


def bench_model(key, arch, size, n, reps, dev):
    model = make(arch, size).to(dev)
    params = [p for p in model.parameters()]
    x = torch.randn(n, 1, size, size, device=dev, requires_grad=True)
    y = torch.randn(n, 3, device=dev, requires_grad=True)
    v = [torch.randn_like(p) * 0.01 for p in params]

    def fwd_bwd():
        loss = soft_ce(model(x), F.softmax(y, 1))
        return torch.autograd.grad(loss, params)

    def hvp():
        loss = soft_ce(model(x), F.softmax(y, 1))
        g = torch.autograd.grad(loss, params, create_graph=True)
        return torch.autograd.grad(g, params + [x, y], grad_outputs=v)

    try:
        result("model.%s.fwd_bwd_s" % key, timeit(fwd_bwd, reps, dev), "s")
        result("model.%s.hvp_s" % key, timeit(hvp, reps, dev), "s")
    except RuntimeError as e:  # out of memory at batch 256 on a smaller card
        print("torch %s: %s" % (key, str(e).splitlines()[0]), file=sys.stderr)
        print("RESULT torch.model.%s.skipped 1 -" % key)
    del model, params, x, y, v
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def bench_outer(key, arch, size, real_batch, iters, dev):
    """One SLDD outer iteration as sd_distiller does it (docs/algorithm.md)."""
    torch.manual_seed(1)
    model = make(arch, size).to(dev)
    names = [k for k, _ in model.named_parameters()]
    # leaves that require grad, so the first inner step can differentiate them
    theta0 = [p.detach().clone().requires_grad_(True) for _, p in model.named_parameters()]
    T, n = 9, 3
    xs = torch.randn(n, 1, size, size, device=dev, requires_grad=True)
    ys = torch.eye(3, device=dev).clone().requires_grad_(True)  # one-hot label logits
    rho = torch.full((T,), math.log(math.expm1(0.01)), device=dev, requires_grad=True)
    opt = torch.optim.Adam([xs, ys, rho], lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    pool = torch.randn(512, 1, size, size, device=dev)
    labels_pool = torch.arange(512, device=dev) % 3
    gen = torch.Generator(device="cpu").manual_seed(2)

    def step():
        theta = theta0
        q = F.softmax(ys, 1)
        for t in range(T):
            out = functional_call(model, dict(zip(names, theta)), (xs,))
            loss = soft_ce(out, q)
            g = torch.autograd.grad(loss, theta, create_graph=True)
            a = F.softplus(rho[t])
            theta = [p - a * gi for p, gi in zip(theta, g)]
        idx = torch.randint(0, 512, (real_batch,), generator=gen).to(dev)
        out = functional_call(model, dict(zip(names, theta)), (pool[idx],))
        outer = F.cross_entropy(out, labels_pool[idx])
        gx, gy, gr = torch.autograd.grad(outer, [xs, ys, rho])
        xs.grad, ys.grad, rho.grad = gx, gy, gr
        opt.step()
        return outer.item()

    try:
        result("outer.%s.s_per_iter" % key, timeit(step, iters, dev), "s")
    except RuntimeError as e:
        print("torch outer %s: %s" % (key, str(e).splitlines()[0]), file=sys.stderr)
        print("RESULT torch.outer.%s.skipped 1 -" % key)
    del model, pool
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def bench_detect(bsz, images, size, W, dev):
    """Patches cut on the device from a full image, normalised, classified."""
    model = make("resnet18", size, track=True).to(dev).eval()
    stride = 50
    img = torch.randint(0, 65536, (W, W), dtype=torch.int32, device=dev)
    grid = (W - size) // stride + 1
    patches = img.unfold(0, size, stride).unfold(1, size, stride)  # (g, g, size, size) view
    total = grid * grid
    mean, std = 0.5, 0.25

    def one_image():
        done = 0
        with torch.no_grad():
            for s in range(0, total, bsz):
                nb = min(bsz, total - s)
                ids = torch.arange(s, s + nb, device=dev)
                p = patches[ids // grid, ids % grid]  # gather: (nb, size, size)
                x = ((p.float() / 65535.0 - mean) / std).unsqueeze(1)
                model(x).argmax(1)
                done += nb
        return done

    one_image()  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    count = sum(one_image() for _ in range(images))
    sync(dev)
    result("detect.resnet18.patches_per_s", count / (time.perf_counter() - t0), "patches/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true",
                    help="small batches and few repetitions (script check)")
    ap.add_argument("--deterministic", action="store_true",
                    help="cudnn.deterministic=True, benchmark=False")
    ap.add_argument("--only", choices=["model", "outer", "detect"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("bench-gpu.py: no CUDA device", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not args.deterministic
    torch.backends.cudnn.deterministic = args.deterministic
    if dev.type == "cuda":
        print("device: %s, torch %s, cuDNN %s, %s" % (
            torch.cuda.get_device_name(dev), torch.__version__, torch.backends.cudnn.version(),
            "deterministic" if args.deterministic else "cudnn.benchmark"))
    else:
        print("device: cpu, torch %s" % torch.__version__)
    q = args.quick
    n = 4 if q and dev.type == "cpu" else (64 if q else 256)
    reps = 1 if q else 5
    rsize = 96 if q and dev.type == "cpu" else 299
    if args.only in (None, "model"):
        print("model passes (batch %d):" % n)
        bench_model("convnet_bn_64", "convnet", 64, n, reps, dev)
        bench_model("resnet18_bn_299", "resnet18", rsize, n, reps, dev)
    if args.only in (None, "outer"):
        print("SLDD outer iterations (3 images, T = 9, real batch %d):" % n)
        bench_outer("convnet_bn_64", "convnet", 64, n, 2 if q else 4, dev)
        bench_outer("resnet18_bn_299", "resnet18", rsize, n, 2 if q else 4, dev)
    if args.only in (None, "detect"):
        print("detection (ResNet18-BN, %dx%d patches cut on the device):" % (rsize, rsize))
        bench_detect(n if q else 256, 1 if q else 3, rsize, 400 if q and dev.type == "cpu"
                     else 2048, dev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
