"""CIFAR ResNet-18 and its named layer groups.

The network is the CIFAR variant of ResNet-18: a 3x3 stride-1 stem with no max-pool, then four stages of
two torchvision ``BasicBlock`` each, global average pooling and a linear head. ``width=64`` gives the
standard 11.17M parameters; smaller widths keep the same depth for CPU presets.

Layer groups are the unit of learning-rate control. Two granularities exist:

- ``block``: the stem, each of the 8 residual blocks, and the head (10 groups).
- ``layer``: each convolution or linear layer together with its batch norm (21 groups: the stem, two
  convolutions per block, the three projection shortcuts, and the head).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock

GRANULARITIES = ("block", "layer")
NUM_CLASSES = 10


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs, with ``width`` channels in the first stage."""

    def __init__(self, width: int = 64, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        self.width = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.in_planes = width
        self.layer1 = self._make_stage(width, stride=1)
        self.layer2 = self._make_stage(2 * width, stride=2)
        self.layer3 = self._make_stage(4 * width, stride=2)
        self.layer4 = self._make_stage(8 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_stage(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        first = BasicBlock(self.in_planes, planes, stride=stride, downsample=downsample)
        self.in_planes = planes
        return nn.Sequential(first, BasicBlock(planes, planes))

    def blocks(self) -> list[tuple[str, BasicBlock]]:
        """Return the 8 residual blocks with their dotted names, in forward order."""
        named = []
        for stage_name in ("layer1", "layer2", "layer3", "layer4"):
            stage = getattr(self, stage_name)
            for index, block in enumerate(stage):
                named.append((f"{stage_name}.{index}", block))
        return named

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


def _block_groups(model: CifarResNet18) -> list[tuple[str, list[nn.Parameter]]]:
    groups = [("stem", [*model.conv1.parameters(), *model.bn1.parameters()])]
    groups += [(name, list(block.parameters())) for name, block in model.blocks()]
    groups.append(("head", list(model.fc.parameters())))
    return groups


def _layer_groups(model: CifarResNet18) -> list[tuple[str, list[nn.Parameter]]]:
    groups = [("stem", [*model.conv1.parameters(), *model.bn1.parameters()])]
    for name, block in model.blocks():
        groups.append((f"{name}.conv1", [*block.conv1.parameters(), *block.bn1.parameters()]))
        groups.append((f"{name}.conv2", [*block.conv2.parameters(), *block.bn2.parameters()]))
        if block.downsample is not None:
            groups.append((f"{name}.shortcut", list(block.downsample.parameters())))
    groups.append(("head", list(model.fc.parameters())))
    return groups


def layer_groups(model: CifarResNet18, granularity: str = "block") -> list[tuple[str, list[nn.Parameter]]]:
    """Split the model's parameters into named groups at ``granularity`` (``block`` or ``layer``).

    Raises ``AssertionError`` if the groups do not cover every parameter exactly once.
    """
    if granularity == "block":
        groups = _block_groups(model)
    elif granularity == "layer":
        groups = _layer_groups(model)
    else:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")

    grouped = [id(p) for _, params in groups for p in params]
    every = [id(p) for p in model.parameters()]
    assert len(grouped) == len(set(grouped)), f"a parameter is in more than one {granularity} group"
    assert set(grouped) == set(every), f"{granularity} groups miss {len(set(every) - set(grouped))} parameters"
    return groups


def group_names(granularity: str = "block") -> list[str]:
    """Return the layer-group names at ``granularity``, from a width-1 model that costs nothing to build."""
    return [name for name, _ in layer_groups(CifarResNet18(width=1), granularity)]


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
