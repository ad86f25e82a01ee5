"""The inner SGD loop: learning rates, statistics, determinism and divergence."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lr_env.data import DeviceSplit, TrainBatcher, split_indices
from lr_env.model import CifarResNet18
from lr_env.trainer import DivergenceError, Trainer, TrainerConfig, schedule_factor

SMALL = TrainerConfig(width=4, batch_size=16, total_steps=40, eval_batch_size=64)


@pytest.fixture(scope="module")
def splits():
    """Learnable synthetic images: class-coloured with noise, 320 train and 64 validation."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(40)[torch.randperm(400, generator=generator)]
    colours = torch.linspace(20, 230, 10)
    images = colours[labels].view(-1, 1, 1, 1) + 25 * torch.randn(400, 3, 32, 32, generator=generator)
    images = images.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = labels.numpy()
    train_idx, val_idx = split_indices(labels, val_size=80, seed=0)
    return (
        DeviceSplit(images[train_idx], labels[train_idx]),
        DeviceSplit(images[val_idx], labels[val_idx]),
    )


def make_trainer(splits, seed=0, **overrides):
    config = TrainerConfig(**{**SMALL.__dict__, **overrides})
    return Trainer(config, splits[0], seed=seed)


def same_batches(trainer, n):
    """Return the next ``n`` batches ``trainer`` will draw, from a batcher with the same seed."""
    batcher = TrainBatcher(trainer.train_split, trainer.config.batch_size, trainer.seed, trainer.config.augment)
    return [batcher.next_batch() for _ in range(n)]


def test_learning_rates_follow_multipliers(splits):
    trainer = make_trainer(splits, granularity="layer")
    multipliers = np.linspace(0.5, 2.0, trainer.n_groups)
    trainer.set_multipliers(multipliers)
    trainer.train_steps(1)
    applied = [group["lr"] for group in trainer.optimizer.param_groups]
    np.testing.assert_allclose(applied, 0.1 * multipliers)

    trainer.set_multipliers(np.ones(trainer.n_groups))
    trainer.train_steps(1)
    applied = [group["lr"] for group in trainer.optimizer.param_groups]
    np.testing.assert_allclose(applied, 0.1)


def test_cosine_schedule_times_multiplier(splits):
    trainer = make_trainer(splits, schedule="cosine", total_steps=20)
    trainer.set_multipliers(np.full(trainer.n_groups, 3.0))
    trainer.train_steps(5)
    # The fifth step (step index 4) was the last applied.
    expected = 0.1 * 3.0 * 0.5 * (1 + math.cos(math.pi * 4 / 20))
    np.testing.assert_allclose([g["lr"] for g in trainer.optimizer.param_groups], expected)
    np.testing.assert_allclose(trainer.learning_rates(), 0.1 * 3.0 * schedule_factor("cosine", 5, 20))


def test_schedule_factor_endpoints():
    assert schedule_factor("cosine", 0, 100) == 1.0
    assert schedule_factor("cosine", 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert schedule_factor("constant", 50, 100) == 1.0


def test_multiplier_validation(splits):
    trainer = make_trainer(splits)
    with pytest.raises(ValueError, match="expected 10 multipliers"):
        trainer.set_multipliers(np.ones(3))
    with pytest.raises(ValueError, match="finite and non-negative"):
        trainer.set_multipliers(np.full(10, np.nan))


def test_grad_norms_match_direct_computation(splits):
    trainer = make_trainer(splits, augment=False)
    reference = CifarResNet18(width=4)
    reference.load_state_dict(trainer.model.state_dict())
    images, labels = same_batches(trainer, 1)[0]

    stats = trainer.train_steps(1)
    reference.train()
    loss = F.cross_entropy(reference(images), labels)
    loss.backward()
    groups = [
        [*reference.conv1.parameters(), *reference.bn1.parameters()],
        *[list(block.parameters()) for _, block in reference.blocks()],
        list(reference.fc.parameters()),
    ]
    expected = [torch.sqrt(sum((p.grad**2).sum() for p in params)).item() for params in groups]
    np.testing.assert_allclose(stats.grad_norms, expected, rtol=1e-4)
    assert stats.loss == pytest.approx(loss.item(), rel=1e-5)


def test_same_seed_same_weights(splits):
    first, second = make_trainer(splits, seed=3), make_trainer(splits, seed=3)
    losses_first = [first.train_steps(5).loss for _ in range(3)]
    losses_second = [second.train_steps(5).loss for _ in range(3)]
    # Bitwise: the same ops run in the same order on the CPU, with no nondeterministic kernels.
    assert losses_first == losses_second
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_different_seed_different_weights(splits):
    first, second = make_trainer(splits, seed=3), make_trainer(splits, seed=4)
    assert not torch.equal(first.model.conv1.weight, second.model.conv1.weight)


def test_absurd_learning_rate_diverges(splits):
    trainer = make_trainer(splits, base_lr=1e6)
    with pytest.raises(DivergenceError, match="non-finite") as excinfo:
        for _ in range(5):
            trainer.train_steps(5)
    assert excinfo.value.step > 0
    assert trainer.diverged
    with pytest.raises(DivergenceError, match="already diverged"):
        trainer.train_steps(1)


def test_short_run_lowers_training_loss(splits):
    trainer = make_trainer(splits, base_lr=0.05)
    first = trainer.train_steps(5).loss
    for _ in range(4):
        last = trainer.train_steps(5).loss
    assert last < first


def test_evaluate_returns_loss_and_accuracy(splits):
    trainer = make_trainer(splits)
    before_weights = trainer.model.conv1.weight.clone()
    loss, accuracy = trainer.evaluate(splits[1], limit=50)
    assert math.isfinite(loss)
    assert 0.0 <= accuracy <= 1.0
    assert torch.equal(before_weights, trainer.model.conv1.weight)


def test_probe_leaves_training_unchanged(splits):
    probed, plain = make_trainer(splits, seed=1), make_trainer(splits, seed=1)
    stats = probed.probe_gradients()
    assert stats.grad_norms.shape == (10,)
    assert np.all(stats.grad_norms > 0)
    probed.train_steps(3)
    plain.train_steps(3)
    for a, b in zip(probed.model.state_dict().values(), plain.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def plain_sgd_step(model, optimizer, images, labels):
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def test_fast_step_matches_plain_reference(splits):
    """The trainer's foreach SGD with per-group learning rates equals a plain single-group SGD loop."""
    trainer = make_trainer(splits, augment=False)
    reference = CifarResNet18(width=4)
    reference.load_state_dict(trainer.model.state_dict())
    optimizer = torch.optim.SGD(
        reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False
    )
    batches = same_batches(trainer, 4)

    trainer.train_steps(4)
    for images, labels in batches:
        plain_sgd_step(reference, optimizer, images, labels)
    for (name, a), b in zip(trainer.model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_config_validation():
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainerConfig(schedule="step").validate()
    with pytest.raises(ValueError, match="base_lr must be a positive"):
        TrainerConfig(base_lr=0).validate()
