"""The reference for the torchvision/timm family: torchvision's ResNet, in plain PyTorch.

torchvision itself is not installed (it does not import beside torch 2.13 on
these machines), so its network is written out here, layer by layer, after
``torchvision/models/resnet.py`` at pytorch/vision commit ``f50e776b`` (the
torchvision 0.5 code, whose ``Bottleneck``, stem and ``_make_layer`` are the
ones current releases still use):

* ``Bottleneck``: conv1x1 -> BN -> ReLU -> conv3x3(stride, padding 1) -> BN ->
  ReLU -> conv1x1 -> BN, plus the identity or ``downsample``, then ReLU; the
  stride sits on the 3x3 conv ("ResNet v1.5");
* ``downsample`` = ``Sequential(conv1x1(stride), BN)`` on the first unit of a
  stage whose stride or width changes;
* stem: conv7x7/2 (padding 3, no bias) -> BN -> ReLU -> MaxPool 3/2 (padding 1);
  head: adaptive average pool -> ``fc``.

Module names are torchvision's, so ``state_dict()`` has exactly the keys of its
published ``.pth`` files (``num_batches_tracked`` included). Inputs are NCHW,
normalised ``(x / 255 - mean) / std`` as torchvision's transforms do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: torchvision's ``resnet50/101/152``: ``_resnet(Bottleneck, [3, 4, 6, 3], ...)`` etc.
LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Returns ``(layer4 feature map, logits)``: the two outputs a conversion must match."""

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        units = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        units += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits = self.fc(torch.flatten(self.avgpool(features), 1))
        return features, logits


@dataclass
class TorchReference:
    """Saved state dicts of one randomised network and its outputs."""

    depth: int
    files: dict[str, Path]  # "pth", "safetensors"
    state: dict[str, np.ndarray]
    images: dict[int, np.ndarray]  # size -> raw RGB [0, 255], NHWC
    features: dict[int, np.ndarray]  # size -> layer4 output, NHWC
    logits: dict[int, np.ndarray]


def normalise(images: np.ndarray) -> torch.Tensor:
    """Raw NHWC RGB [0, 255] -> torchvision's normalised NCHW input."""
    x = (images / 255.0 - np.array(MEAN)) / np.array(STD)
    return torch.from_numpy(x.astype(np.float32).transpose(0, 3, 1, 2).copy())


def randomise_and_calibrate(model: ResNet, batch: torch.Tensor, seed: int) -> None:
    """Random gamma/beta; running statistics from one training-mode pass, then perturbed.

    ``momentum=None`` makes BatchNorm keep the cumulative average, so after a
    single pass the running statistics are that batch's: non-trivial, and of
    the scale that keeps activations sane through 100 layers.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():
        for name, norm in norms.items():
            shrink = 0.2 if name.endswith("bn3") else 1.0
            norm.weight.copy_(uniform(norm.weight.shape, 0.5, 1.5) * shrink)
            norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=generator))
            norm.momentum = None
            norm.reset_running_stats()
        model.train()
        model(batch)
        for norm in norms.values():
            std = norm.running_var.sqrt()
            noise = torch.randn(norm.running_mean.shape, generator=generator)
            norm.running_mean.add_(0.1 * noise * std)
            norm.running_var.mul_(uniform(norm.running_var.shape, 0.8, 1.25)).add_(1e-3)
            norm.momentum = 0.1
    model.eval()


def make_reference(
    directory: Path, depth: int, sizes: tuple[int, ...], seed: int = 0
) -> TorchReference:
    """Build, randomise, save as ``.pth`` and ``.safetensors``, and run the reference."""
    from safetensors.numpy import save_file

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ResNet(LAYERS[depth])
    noise = rng.uniform(0, 255, (4, 128, 128, 3))
    randomise_and_calibrate(model, normalise(noise), seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    features, logits = {}, {}
    with torch.no_grad():
        for size, batch in images.items():
            feats, out = model(normalise(batch))
            features[size] = feats.numpy().transpose(0, 2, 3, 1)
            logits[size] = out.numpy()
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.numpy().copy() for key, value in model.state_dict().items()}
    files = {"pth": directory / f"resnet{depth}.pth",
             "safetensors": directory / f"resnet{depth}.safetensors"}
    torch.save(model.state_dict(), files["pth"])
    save_file(state, str(files["safetensors"]))
    return TorchReference(depth, files, state, images, features, logits)
