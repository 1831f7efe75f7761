"""Reference for the BiT family: a pre-activation ResNet v2 with GroupNorm and
weight-standardised convolutions, in plain PyTorch (no timm, no resnet-ft).

Written from the BiT paper (Kolesnikov et al. 2019, arXiv:1912.11370) and the
behaviour of google-research/big_transfer and timm's ``resnetv2_*_bit``:

* stem: WS conv 7x7/2 (zero padding 3, no bias), then zero padding 1 and a
  3x3/2 VALID max-pool. No norm and no ReLU in the stem: the pool sees raw,
  possibly negative conv outputs, so the zero padding can win the max.
* stage s (s = 0..3; widths 64/128/256/512, outputs x4): the stride (1, 2, 2, 2)
  sits on the FIRST unit, on its 3x3 conv. The first unit of every stage
  (stage 0 too: 64 -> 256 channels) has a 1x1 WS projection with that stride,
  applied to the PRE-ACTIVATED input; other units add the raw input.
* unit: p = relu(GN(x)); y = conv1x1(p); y = conv3x3(relu(GN(y)), stride);
  y = conv1x1(relu(GN(y))); out = y + (proj(p) or x). GroupNorm: 32 groups, eps 1e-5.
* after the last stage: relu(GN(x)) (the features), global average pool,
  1x1 conv head with bias.
* WS: per output channel, over (in, kh, kw), biased variance,
  ``(w - mean) / sqrt(var + eps)``; eps = 1e-8 in timm, 1e-10 in Google's code.

Independent of resnet-ft. Module names follow timm's, so ``state_dict()`` keys are timm's
(``stem.conv.weight``, ``stages.0.blocks.0.downsample.conv.weight``,
``...norm1.weight``, ``norm.bias``, ``head.fc.weight`` ...).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
WIDTHS = (64, 128, 256, 512)
TIMM_WS_EPS = 1e-8
GOOGLE_WS_EPS = 1e-10


class WSConv(nn.Conv2d):
    """Convolution whose kernel is standardised per output channel at every call."""

    def __init__(self, cin, cout, k, stride=1, eps=TIMM_WS_EPS):
        super().__init__(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.eps = eps

    def standardised(self) -> torch.Tensor:
        w = self.weight
        flat = w.reshape(w.shape[0], -1)
        mean = flat.mean(dim=1, keepdim=True)
        var = ((flat - mean) ** 2).mean(dim=1, keepdim=True)
        return ((flat - mean) / torch.sqrt(var + self.eps)).reshape(w.shape)

    def forward(self, x):
        return F.conv2d(x, self.standardised(), None, self.stride, self.padding)


class GNReLU(nn.GroupNorm):
    """GroupNorm (32 groups) then ReLU."""

    def __init__(self, channels, groups=32, eps=1e-5):
        super().__init__(groups, channels, eps=eps)

    def forward(self, x):
        return F.relu(super().forward(x))


class Projection(nn.Module):
    """The projection shortcut (timm's ``downsample.conv``)."""

    def __init__(self, cin, cout, stride, eps):
        super().__init__()
        self.conv = WSConv(cin, cout, 1, stride, eps)

    def forward(self, x):
        return self.conv(x)


class Unit(nn.Module):
    """One pre-activation bottleneck unit."""

    def __init__(self, cin, width, stride, eps, project):
        super().__init__()
        cout = 4 * width
        self.downsample = Projection(cin, cout, stride, eps) if project else None
        self.norm1 = GNReLU(cin)
        self.conv1 = WSConv(cin, width, 1, 1, eps)
        self.norm2 = GNReLU(width)
        self.conv2 = WSConv(width, width, 3, stride, eps)
        self.norm3 = GNReLU(width)
        self.conv3 = WSConv(width, cout, 1, 1, eps)

    def forward(self, x):
        pre = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(pre)
        y = self.conv1(pre)
        y = self.conv2(self.norm2(y))
        y = self.conv3(self.norm3(y))
        return y + shortcut


class Stage(nn.Module):
    """Units of one stage; the first strides and projects."""

    def __init__(self, cin, width, units, stride, eps):
        super().__init__()
        blocks = []
        for i in range(units):
            blocks.append(Unit(cin, width, stride if i == 0 else 1, eps, project=(i == 0)))
            cin = 4 * width
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class Head(nn.Module):
    """Global average pool, then a 1x1 convolution with bias."""

    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Conv2d(channels, classes, 1, bias=True)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


class BiT(nn.Module):
    """Returns ``(features after the final GN+ReLU, NCHW; logits)``."""

    def __init__(self, depth=50, num_classes=21843, ws_eps=TIMM_WS_EPS):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict([
            ("conv", WSConv(3, 64, 7, 2, ws_eps)),
            ("pad", nn.ConstantPad2d(1, 0.0)),
            ("pool", nn.MaxPool2d(3, 2, padding=0)),
        ]))
        stages, cin = [], 64
        for s, (units, width) in enumerate(zip(UNITS[depth], WIDTHS, strict=True)):
            stages.append(Stage(cin, width, units, 1 if s == 0 else 2, ws_eps))
            cin = 4 * width
        self.stages = nn.Sequential(*stages)
        self.norm = GNReLU(cin)
        self.head = Head(cin, num_classes)

    def forward(self, x):
        features = self.norm(self.stages(self.stem(x)))
        return features, self.head(features)


def normalise(raw_rgb: np.ndarray) -> torch.Tensor:
    """Raw NHWC RGB [0, 255] -> BiT's input: NCHW in [-1, 1] (mean 0.5, std 0.5 on [0, 1])."""
    x = (raw_rgb.astype(np.float64) / 255.0 - 0.5) / 0.5
    return torch.from_numpy(x.astype(np.float32).transpose(0, 3, 1, 2).copy())


def randomise(model: BiT, seed: int, kernel_std=(1e-4, 1e-2)) -> None:
    """Random weights that make every BiT detail observable, and a well-conditioned network.

    Conv kernels: per output channel a mean and a std (log-uniform in
    ``kernel_std``), so standardisation changes them and the WS epsilon (1e-8
    against 1e-10) visibly matters for the smallest channels. GN gamma in
    [0.5, 1.5], beta normal(0, 0.2); the GN before each unit's conv3 (``norm3``)
    is scaled by 0.2. WS makes every kernel unit-variance per element, so a
    residual branch returns ~sqrt(fan_in) times its normalised input; without the
    0.2 the stream is dominated by the latest branch and the network amplifies
    float32 rounding ~130x (f32 vs f64 features 4.9e-5), with it ~10x (4e-6).
    Half the channels of the first GN after the stem pool get a negative gamma:
    otherwise ReLU(GN(.)) maps a padding zero and a negative pool output both to 0
    and the pool's padding value is unobservable at odd sizes.
    """
    g = torch.Generator().manual_seed(seed)
    lo, hi = np.log(kernel_std[0]), np.log(kernel_std[1])
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, WSConv):
                w = module.weight
                out = w.shape[0]
                std = torch.exp(lo + (hi - lo) * torch.rand(out, 1, 1, 1, generator=g))
                mean = 2.0 * std * torch.randn(out, 1, 1, 1, generator=g)
                w.copy_(mean + std * torch.randn(w.shape, generator=g))
            elif isinstance(module, nn.GroupNorm):
                shrink = 0.2 if name.endswith("norm3") else 1.0
                gamma = shrink * (0.5 + torch.rand(module.weight.shape, generator=g))
                if name == "stages.0.blocks.0.norm1":  # first GN after the stem's pool: half
                    gamma[::2] *= -1.0  # negative, so zero-vs--inf pool padding is observable
                module.weight.copy_(gamma)
                module.bias.copy_(shrink * 0.2 * torch.randn(module.bias.shape, generator=g))
            elif name == "head.fc":
                fan_in = module.weight.shape[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) / fan_in ** 0.5)
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))


def state_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The state dict as numpy arrays."""
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def save_timm_safetensors(model: BiT, path: Path) -> Path:
    """timm layout: the state dict as is (OIHW kernels, ``head.fc.weight`` (K, C, 1, 1))."""
    from safetensors.numpy import save_file

    save_file(state_numpy(model), str(path))
    return path


def _hwio(oihw: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO."""
    return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))


def google_npz_arrays(model: BiT) -> dict[str, np.ndarray]:
    """Google's BiT ``.npz`` layout (``resnet/...``, HWIO kernels, 1-D GN gamma/beta).

    Unit letters: ``a`` = conv1 and the GN *before* it (timm ``norm1``, the
    pre-activation), ``b`` = conv2 and the GN before it (``norm2``), ``c`` =
    conv3 and ``norm3``; ``a/proj`` = the projection shortcut. Units are
    ``unit01``.. (1-based, two digits), blocks ``block1``..``block4``.
    """
    sd = state_numpy(model)
    out = {
        "resnet/root_block/standardized_conv2d/kernel": _hwio(sd["stem.conv.weight"]),
        "resnet/group_norm/gamma": sd["norm.weight"],
        "resnet/group_norm/beta": sd["norm.bias"],
        "resnet/head/conv2d/kernel": _hwio(sd["head.fc.weight"]),
        "resnet/head/conv2d/bias": sd["head.fc.bias"],
    }
    for s, stage in enumerate(model.stages):
        for u in range(len(stage.blocks)):
            src = f"stages.{s}.blocks.{u}."
            dst = f"resnet/block{s + 1}/unit{u + 1:02d}/"
            for letter, k in (("a", 1), ("b", 2), ("c", 3)):
                out[f"{dst}{letter}/standardized_conv2d/kernel"] = _hwio(
                    sd[f"{src}conv{k}.weight"])
                out[f"{dst}{letter}/group_norm/gamma"] = sd[f"{src}norm{k}.weight"]
                out[f"{dst}{letter}/group_norm/beta"] = sd[f"{src}norm{k}.bias"]
            if f"{src}downsample.conv.weight" in sd:
                out[f"{dst}a/proj/standardized_conv2d/kernel"] = _hwio(
                    sd[f"{src}downsample.conv.weight"])
    assert len(out) == len(sd), (len(out), len(sd))
    return out


def save_google_npz(model: BiT, path: Path) -> Path:
    """Google's layout, written with numpy (what ``np.load`` of the real files returns)."""
    np.savez(path, **google_npz_arrays(model))
    return path


@dataclass
class BiTReference:
    """Both files of one randomised network and its float64 outputs."""

    depth: int
    ws_eps: float
    files: dict[str, Path]
    images: dict[int, np.ndarray]  # raw RGB [0, 255], NHWC
    features: dict[int, np.ndarray]  # after the final GN + ReLU, NHWC
    logits: dict[int, np.ndarray]


def make_reference(directory: Path, depth=50, sizes=(224, 193), seed=0, num_classes=21843,
                   ws_eps=TIMM_WS_EPS) -> tuple[BiTReference, BiT]:
    """Build + randomise; write both layouts; outputs computed with WS epsilon ``ws_eps``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BiT(depth, num_classes, ws_eps).eval()
    randomise(model, seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    feats, logits = {}, {}
    # outputs in float64 from the same (float32-representable) weights: the truth, free of
    # float32 rounding (which alone is ~5e-5 relative in the features, see spec.md)
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        for s, batch in images.items():
            features, top = model64(normalise(batch).double())
            feats[s], logits[s] = features.numpy().transpose(0, 2, 3, 1), top.numpy()
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "safetensors": save_timm_safetensors(
            model, directory / f"resnetv2_{depth}x1_bit.safetensors"),
        "npz": save_google_npz(model, directory / f"BiT-M-R{depth}x1.npz"),
    }
    return BiTReference(depth, ws_eps, files, images, feats, logits), model
