"""Layer groups and the CIFAR ResNet-18 itself."""

import pytest
import torch

from lr_env.model import CifarResNet18, count_parameters, layer_groups


def test_standard_width_parameter_count():
    assert count_parameters(CifarResNet18(width=64)) == 11_173_962


def test_forward_shape():
    logits = CifarResNet18(width=4)(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10)


@pytest.mark.parametrize(("granularity", "expected"), [("block", 10), ("layer", 21)])
def test_groups_cover_every_parameter_once(granularity, expected):
    model = CifarResNet18(width=8)
    groups = layer_groups(model, granularity)
    assert len(groups) == expected
    grouped = [id(p) for _, params in groups for p in params]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters()}
    assert groups[0][0] == "stem"
    assert groups[-1][0] == "head"


def test_layer_groups_name_shortcuts():
    names = [name for name, _ in layer_groups(CifarResNet18(width=4), "layer")]
    assert [n for n in names if n.endswith("shortcut")] == [
        "layer2.0.shortcut",
        "layer3.0.shortcut",
        "layer4.0.shortcut",
    ]


def test_unknown_granularity_rejected():
    with pytest.raises(ValueError, match="granularity must be one of"):
        layer_groups(CifarResNet18(width=4), "channel")


def test_missing_parameter_detected():
    model = CifarResNet18(width=4)
    model.extra = torch.nn.Linear(2, 2)
    with pytest.raises(AssertionError, match="miss"):
        layer_groups(model, "block")
