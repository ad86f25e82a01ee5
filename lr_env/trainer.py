"""SGD training of the CIFAR ResNet-18 with one learning-rate multiplier per layer group.

The learning rate of group ``g`` at SGD step ``t`` is ``base_lr * schedule(t) * multiplier[g]``. It is
written into the optimizer's parameter group before each step as a Python float, so changing a
multiplier allocates nothing and never triggers a recompilation.

Weight decay is applied to every parameter, batch-norm scales and shifts and the head's bias included,
because that is the baseline recipe (plain ``torch.optim.SGD(model.parameters(), weight_decay=5e-4)``).
The same rule holds for every run, controlled or not.

Statistics (per-group gradient norms and the training loss) are accumulated on the training device and
copied to the host once per :meth:`Trainer.train_steps` call.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lr_env.data import DeviceSplit, TrainBatcher, eval_batches, normalize
from lr_env.model import CifarResNet18, layer_groups

logger = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")


@dataclass
class TrainerConfig:
    """Inner-loop settings. Defaults are the baseline recipe at full width."""

    width: int = 64
    """Channels in the first ResNet stage (64 is the standard ResNet-18)."""
    batch_size: int = 128
    """Training images per SGD step."""
    base_lr: float = 0.1
    """Learning rate before the schedule and the per-group multipliers."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay, applied to every parameter."""
    schedule: str = "constant"
    """Learning-rate schedule over ``total_steps``: ``constant`` or ``cosine`` (to zero at the end)."""
    total_steps: int = 3520
    """SGD steps of the whole run; the cosine schedule reaches zero here."""
    granularity: str = "block"
    """Layer groups: ``block`` (10 groups) or ``layer`` (21 groups)."""
    augment: bool = True
    """Random crop with 4-pixel padding and horizontal flip on training batches."""
    eval_batch_size: int = 1000
    """Images per forward pass in evaluation."""
    compile: bool = False
    """Wrap the model in ``torch.compile`` (CUDA only; learning-rate changes do not recompile)."""
    channels_last: bool | None = None
    """Use the channels_last memory format; None picks it on CUDA only."""
    amp: bool | None = None
    """bf16 autocast for forward and backward; None enables it on CUDA only."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("width", "batch_size", "total_steps", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.base_lr > 0 or not math.isfinite(self.base_lr):
            raise ValueError(f"base_lr must be a positive finite number, got {self.base_lr}")


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient norm."""

    def __init__(self, step: int, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class StepStats:
    """Statistics of one :meth:`Trainer.train_steps` call, averaged over its SGD steps."""

    grad_norms: np.ndarray
    """Per-group L2 norm of the raw gradient (before weight decay and momentum), float64 (n_groups,)."""
    loss: float
    """Mean training loss."""
    steps: int
    """SGD steps run in this call."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return ``device``, or the first CUDA device when ``auto`` and one is visible, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
    return resolved


def schedule_factor(schedule: str, step: int, total_steps: int) -> float:
    """Return the schedule's factor on ``base_lr`` at SGD step ``step`` (0-based)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(step, total_steps) / total_steps
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


class Trainer:
    """Trains one seeded CIFAR ResNet-18 with SGD and per-group learning-rate multipliers.

    Args:
        config: inner-loop settings.
        train: training images on the training device.
        seed: fixes weight initialisation, data order and augmentation.
        device: where the model trains; must be the device ``train`` lives on.
    """

    def __init__(
        self,
        config: TrainerConfig,
        train: DeviceSplit,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        config.validate()
        self.config = config
        self.device = torch.device(device)
        self.seed = seed
        cuda = self.device.type == "cuda"
        self.channels_last = cuda if config.channels_last is None else config.channels_last
        self.amp = cuda if config.amp is None else config.amp
        if cuda:
            torch.backends.cudnn.benchmark = True

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CifarResNet18(width=config.width)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = torch.compile(model) if config.compile else model

        groups = layer_groups(model, config.granularity)
        self.group_names = [name for name, _ in groups]
        self.multipliers = np.ones(len(groups), dtype=np.float64)
        self.optimizer = torch.optim.SGD(
            [{"params": params, "lr": config.base_lr} for _, params in groups],
            lr=config.base_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **({"fused": True} if cuda else {"foreach": True}),
        )

        # Gradients of all parameters, flattened in group order, and the group index of each tensor: the
        # per-group norm is a segment sum of per-tensor squared norms.
        self._params = [p for _, params in groups for p in params]
        group_index = [g for g, (_, params) in enumerate(groups) for _ in params]
        self._group_index = torch.tensor(group_index, device=self.device)
        self._step_sq_norms = torch.zeros(len(groups), device=self.device, dtype=torch.float32)
        self._norm_sum = torch.zeros(len(groups), device=self.device, dtype=torch.float32)
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)

        self.train_split = train
        self.batcher = TrainBatcher(
            train, config.batch_size, seed=seed, augment=config.augment, channels_last=self.channels_last
        )
        self.step = 0
        self.diverged = False

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def learning_rates(self) -> np.ndarray:
        """Return the learning rate each group gets at the next SGD step, float64 (n_groups,)."""
        factor = schedule_factor(self.config.schedule, self.step, self.config.total_steps)
        return self.config.base_lr * factor * self.multipliers

    def set_multipliers(self, multipliers: np.ndarray) -> None:
        """Set the per-group multipliers on ``base_lr`` for the following steps."""
        multipliers = np.asarray(multipliers, dtype=np.float64)
        if multipliers.shape != (self.n_groups,):
            raise ValueError(f"expected {self.n_groups} multipliers, got shape {multipliers.shape}")
        if not np.all(np.isfinite(multipliers)) or np.any(multipliers < 0):
            raise ValueError(f"multipliers must be finite and non-negative, got {multipliers}")
        self.multipliers = multipliers.copy()

    def _apply_learning_rates(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.learning_rates(), strict=True):
            group["lr"] = float(lr)

    def _group_grad_norms(self) -> torch.Tensor:
        """Return the L2 norm of each group's current gradients, on the device, without a host sync."""
        tensor_norms = torch.stack(torch._foreach_norm([p.grad for p in self._params])).float()
        self._step_sq_norms.zero_().index_add_(0, self._group_index, tensor_norms.square())
        return self._step_sq_norms.sqrt()

    def _sgd_step(self) -> None:
        images, labels = self.batcher.next_batch()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self._forward(images)
            loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()

        self._norm_sum += self._group_grad_norms()
        self._loss_sum += loss.detach()

        self._apply_learning_rates()
        self.optimizer.step()
        self.step += 1

    def train_steps(self, n: int) -> StepStats:
        """Run ``n`` SGD steps and return their mean per-group gradient norms and training loss.

        Raises :class:`DivergenceError` if a loss or gradient norm was non-finite.
        """
        if self.diverged:
            raise DivergenceError(self.step, f"training already diverged at step {self.step}")
        if n < 1:
            raise ValueError(f"n must be a positive number of steps, got {n}")
        self.model.train()
        self._norm_sum.zero_()
        self._loss_sum.zero_()
        for _ in range(n):
            self._sgd_step()

        # Host sync: the one copy of this call's statistics to the host.
        sums = torch.cat([self._norm_sum, self._loss_sum.reshape(1)]).double().cpu().numpy()
        grad_norms = sums[:-1] / n
        loss = sums[-1] / n
        if not (np.isfinite(loss) and np.all(np.isfinite(grad_norms))):
            self.diverged = True
            raise DivergenceError(
                self.step,
                f"non-finite training loss or gradient norm within SGD steps {self.step - n}-{self.step}",
            )
        return StepStats(grad_norms=grad_norms, loss=float(loss), steps=n)

    def probe_gradients(self) -> StepStats:
        """Return gradient norms and loss of one unapplied step on the first training images.

        Runs forward and backward in train mode on the first ``batch_size`` training images without
        augmentation, then restores the batch-norm running statistics and drops the gradients. The
        parameters, optimizer state and data order are untouched, so training continues exactly as if
        the probe had not run.
        """
        buffers = [b.clone() for b in self.model.buffers()]
        split = self.train_split
        images = normalize(split.images[: self.config.batch_size])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = split.labels[: self.config.batch_size]
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = F.cross_entropy(self._forward(images).float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        group_norms = self._group_grad_norms()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        # Host sync: one copy of the probe's statistics.
        values = torch.cat([group_norms, loss.detach().reshape(1)]).double().cpu().numpy()
        if not np.all(np.isfinite(values)):
            raise DivergenceError(self.step, "non-finite loss or gradient norm before training")
        return StepStats(grad_norms=values[:-1], loss=float(values[-1]), steps=0)

    @torch.no_grad()
    def evaluate(self, split: DeviceSplit, limit: int | None = None) -> tuple[float, float]:
        """Return mean cross-entropy loss and accuracy on the first ``limit`` images of ``split``.

        Runs in eval mode without gradients. A non-finite loss is returned as ``inf`` so the caller can
        compare it. Accuracy is a fraction in [0, 1].
        """
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        count = 0
        for images, labels in eval_batches(split, self.config.eval_batch_size, limit):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self._forward(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.numel()
        self.model.train()
        # Host sync: one copy of the summed loss and correct count.
        loss = loss_sum.item() / count
        accuracy = correct.item() / count
        if not math.isfinite(loss):
            loss = math.inf
        return loss, accuracy
