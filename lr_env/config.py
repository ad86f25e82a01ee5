"""Environment configuration and its named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lr_env.model import GRANULARITIES
from lr_env.trainer import SCHEDULES, TrainerConfig

REWARDS = ("val_loss", "val_accuracy")


@dataclass
class EnvConfig:
    """Settings of one :class:`lr_env.LrControlEnv`. Every field can be overridden by keyword."""

    preset: str = "custom"
    """Name of the preset these settings came from, for logs and checkpoints."""
    width: int = 64
    """Channels in the first ResNet stage (64 is the standard ResNet-18 with 11.17M parameters)."""
    train_subset: int | None = None
    """Training images, class-balanced; None trains on all of train minus the validation split."""
    val_size: int = 5000
    """Images carved out of train, class-balanced, for validation (never trained on)."""
    reward_val_size: int = 2000
    """First images of the validation split on which each decision's validation loss is measured."""
    batch_size: int = 128
    """Training images per SGD step."""
    total_steps: int = 3520
    """SGD steps per episode (the training budget)."""
    decision_interval: int = 10
    """SGD steps between two decisions of the controller."""
    granularity: str = "block"
    """Layer groups: ``block`` (10 groups) or ``layer`` (21 groups)."""
    base_lr: float = 0.1
    """Initial learning rate when neither ``base_lr_choices`` nor ``base_lr_range`` is set."""
    base_lr_choices: tuple[float, ...] = ()
    """If set, each episode draws its base learning rate uniformly from these values."""
    base_lr_range: tuple[float, float] | None = None
    """If set (and no choices are), each episode draws its base learning rate log-uniformly in this range."""
    schedule: str = "constant"
    """Schedule on the base learning rate under the multipliers: ``constant`` or ``cosine``."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay, applied to every parameter."""
    max_step_factor: float = 2.0
    """Largest change of a multiplier per decision: action ``a`` multiplies it by ``max_step_factor ** a``."""
    min_multiplier: float = 0.01
    """Lower clip of each group's cumulative multiplier on the base learning rate."""
    max_multiplier: float = 10.0
    """Upper clip of each group's cumulative multiplier on the base learning rate."""
    reward: str = "val_loss"
    """``val_loss``: decrease of validation loss per decision; ``val_accuracy``: increase of accuracy."""
    divergence_penalty: float = 10.0
    """Reward (negated) of the step on which training diverges; the episode then ends."""
    data_dir: str | None = None
    """Directory of CIFAR-10 parquet shards; None falls back to $LR_ENV_DATA_DIR, then the hub."""
    cache_dir: str | None = None
    """Directory for decoded arrays; None uses $LR_ENV_CACHE_DIR or ~/.cache/lr_env."""
    split_seed: int = 0
    """Seed of the validation split and the training subset; fixed so every episode uses the same split."""
    device: str = "auto"
    """Training device: ``auto`` (first CUDA device, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    compile: bool = False
    """Wrap the model in ``torch.compile`` (CUDA only)."""
    augment: bool = True
    """Random crop and horizontal flip on training batches."""
    eval_batch_size: int = 1000
    """Images per forward pass in evaluation."""

    @property
    def n_decisions(self) -> int:
        """Decisions (environment steps) per episode."""
        return -(-self.total_steps // self.decision_interval)

    def replace(self, **overrides) -> EnvConfig:
        """Return a copy with ``overrides`` applied, rejecting unknown field names."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown EnvConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its valid range."""
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        for name in ("width", "batch_size", "total_steps", "decision_interval", "reward_val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.reward_val_size > self.val_size:
            raise ValueError(
                f"reward_val_size ({self.reward_val_size}) must not exceed val_size ({self.val_size})"
            )
        if not 0 < self.min_multiplier <= 1 <= self.max_multiplier:
            raise ValueError(
                "multiplier bounds must satisfy 0 < min_multiplier <= 1 <= max_multiplier, got "
                f"{self.min_multiplier} and {self.max_multiplier}"
            )
        if self.max_step_factor < 1:
            raise ValueError(f"max_step_factor must be at least 1, got {self.max_step_factor}")
        lrs = [self.base_lr, *self.base_lr_choices, *(self.base_lr_range or ())]
        if any(not lr > 0 for lr in lrs):
            raise ValueError(f"learning rates must be positive, got {lrs}")
        if self.base_lr_range is not None and self.base_lr_range[0] > self.base_lr_range[1]:
            raise ValueError(f"base_lr_range must be (low, high) with low <= high, got {self.base_lr_range}")

    def trainer_config(self, base_lr: float, schedule: str | None = None) -> TrainerConfig:
        """Return the inner-loop settings of one episode with ``base_lr``."""
        return TrainerConfig(
            width=self.width,
            batch_size=self.batch_size,
            base_lr=base_lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=schedule or self.schedule,
            total_steps=self.total_steps,
            granularity=self.granularity,
            augment=self.augment,
            eval_batch_size=self.eval_batch_size,
            compile=self.compile,
        )


PRESETS: dict[str, EnvConfig] = {
    # The GPU configuration: full width, 45,000 training images, 10 epochs of 352 steps per episode.
    "resnet18": EnvConfig(preset="resnet18"),
    # A 2-core CPU episode in about 40 s: width 8, a 10,000-image subset, 120 SGD steps.
    "cpu": EnvConfig(
        preset="cpu",
        width=8,
        train_subset=10_000,
        reward_val_size=500,
        total_steps=120,
    ),
    # A few seconds per episode, for tests: width 4, batch 32, 30 SGD steps on 200 images.
    "smoke": EnvConfig(
        preset="smoke",
        width=4,
        train_subset=200,
        val_size=100,
        reward_val_size=100,
        batch_size=32,
        total_steps=30,
        eval_batch_size=100,
    ),
}


def make_config(preset: str | EnvConfig = "resnet18", /, **overrides) -> EnvConfig:
    """Return the named preset (or a copy of ``preset``) with ``overrides`` applied and validated."""
    if isinstance(preset, EnvConfig):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    config = base.replace(**overrides)
    config.validate()
    return config


def config_to_dict(config: EnvConfig) -> dict:
    """Return the config as a JSON-serialisable dict (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(values: dict) -> EnvConfig:
    """Rebuild a config from :func:`config_to_dict` output."""
    values = dict(values)
    if values.get("base_lr_choices") is not None:
        values["base_lr_choices"] = tuple(values["base_lr_choices"])
    if values.get("base_lr_range") is not None:
        values["base_lr_range"] = tuple(values["base_lr_range"])
    return make_config(EnvConfig(), **values)


__all__ = ["EnvConfig", "PRESETS", "REWARDS", "config_from_dict", "config_to_dict", "make_config"]
