"""The Gymnasium environment for per-layer learning-rate control."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lr_env.config import EnvConfig, make_config
from lr_env.data import DeviceSplit, load_cifar10, split_indices
from lr_env.model import group_names
from lr_env.trainer import DivergenceError, StepStats, Trainer, resolve_device

logger = logging.getLogger(__name__)

ENV_ID = "lr_env/CifarResNet18-v0"

# Floor under gradient norms and learning rates before the log, so a zero never becomes -inf.
LOG_FLOOR = 1e-12
# Magnitude cap of every observation entry, far outside anything training produces (log values stay
# within about +-30 and losses diverge to inf, which this cap turns into a finite number).
OBS_LIMIT = 1e6


@dataclass(frozen=True)
class StepTiming:
    """Wall time of one environment step, in seconds.

    The fields are excluded from equality, so two ``info`` dicts from identically seeded runs compare
    equal (as Gymnasium's determinism check requires) even though their timings differ.
    """

    total: float = field(compare=False)
    """The whole step: action, SGD steps, validation pass and observation."""
    train: float = field(compare=False)
    """The ``decision_interval`` SGD steps, including the host sync of their statistics."""
    validation: float = field(compare=False)
    """The validation pass that defines the reward."""


def load_splits(config: EnvConfig, device) -> tuple[DeviceSplit, DeviceSplit]:
    """Load CIFAR-10 and return the training and validation splits of ``config`` on ``device``."""
    arrays = load_cifar10(config.data_dir, config.cache_dir)
    train_idx, val_idx = split_indices(
        arrays.train_labels, val_size=config.val_size, subset=config.train_subset, seed=config.split_seed
    )
    train = DeviceSplit(arrays.train_images[train_idx], arrays.train_labels[train_idx], device)
    val = DeviceSplit(arrays.train_images[val_idx], arrays.train_labels[val_idx], device)
    return train, val


class LrControlEnv(gym.Env):
    """Per-layer learning-rate control of CIFAR-10 ResNet-18 training with SGD.

    Each episode trains a fresh, seeded CIFAR ResNet-18 for ``total_steps`` SGD steps (momentum 0.9,
    weight decay 5e-4 on every parameter). The model's parameters are split into ``G`` layer groups
    (``granularity="block"``: stem, 8 residual blocks, head, so G = 10; ``"layer"``: each convolution or
    linear layer with its batch norm, G = 21). Every ``decision_interval`` SGD steps (default 10) the
    agent sets one learning-rate multiplier per group.

    ## Action space

    ``Box(-1, 1, (G,), float32)``. Entry ``a[g]`` (clipped to [-1, 1]) updates the cumulative multiplier
    of group ``g``::

        m[g] <- clip(m[g] * max_step_factor ** a[g], min_multiplier, max_multiplier)
        lr[g] = base_lr * schedule(t) * m[g]

    Defaults: ``max_step_factor = 2`` (each decision at most halves or doubles), multipliers within
    [0.01, 10], ``schedule`` constant. Multipliers start at 1, so an all-zero action leaves every learning
    rate unchanged and an all-zero policy is exactly SGD with the fixed learning rate ``base_lr``.

    ## Observation space

    ``Box(-1e6, 1e6, (2G + 3,), float32)``. Every entry is finite: non-finite values are replaced and
    everything is clipped to +-1e6, far outside what training produces, so a spike never leaves the space.

    ===========  ===============================================  ==========================
    index        meaning                                          transform
    ===========  ===============================================  ==========================
    0 .. G-1     gradient L2 norm of group g, mean over the last  natural log (floor 1e-12)
                 interval, before weight decay and momentum
    G .. 2G-1    learning rate group g trains with next           natural log
    2G           mean training loss over the last interval        natural log (floor 1e-12)
    2G + 1       validation loss on the reward subset             none
    2G + 2       fraction of the SGD budget used                  none, in [0, 1]
    ===========  ===============================================  ==========================

    After ``reset()`` no SGD step has run yet: the gradient norms and training loss are those of one
    forward and backward pass that is not applied (no parameter changes), so the first observation has
    the same meaning as later ones.

    ## Reward

    With ``reward="val_loss"`` (default): ``r_k = L_val(k-1) - L_val(k)``, the decrease of cross-entropy
    on the first ``reward_val_size`` images of the validation split since the previous decision.
    ``reset()`` measures ``L_val(0)``, so an episode's return is the total decrease of validation loss:
    it rewards where training ends, not greedy progress over the next few steps. With
    ``reward="val_accuracy"`` the reward is the increase of validation accuracy (a fraction) instead.
    The test split is never read here.

    ## Episode end

    - Divergence (a non-finite training loss, gradient norm or validation loss): ``terminated=True``,
      reward ``-divergence_penalty``, ``info["diverged"] = True`` and a finite observation.
    - End of the SGD budget: ``terminated=True``. Training is over, and the observation already holds the
      fraction of the budget used, so the end is part of the state rather than a time limit;
      ``truncated`` is always False here and left to time-limit wrappers.

    ## Info

    ``learning_rates`` (float64, (G,), applied during the last interval), ``multipliers``,
    ``train_loss``, ``val_loss``, ``val_accuracy``, ``sgd_step``, ``base_lr`` (the value drawn for this
    episode), ``diverged``, and ``timing`` (:class:`StepTiming`, wall seconds of the step). ``reset()``
    returns the same keys.

    ## Arguments

    ``LrControlEnv(preset="resnet18", **overrides)``: ``preset`` is a name from ``lr_env.PRESETS``
    (``resnet18``, ``cpu``, ``smoke``) or an :class:`~lr_env.config.EnvConfig`; keyword overrides replace
    single fields (see ``EnvConfig`` for each one's meaning). ``reset(seed=...)`` fixes the drawn base
    learning rate, weight initialisation, data order and augmentation.

    ## Version history

    - v0: first version.
    """

    metadata = {"render_modes": []}

    def __init__(self, preset: str | EnvConfig = "resnet18", **overrides) -> None:
        super().__init__()
        self.config = make_config(preset, **overrides)
        self.device = resolve_device(self.config.device)
        self.train_split, self.val_split = load_splits(self.config, self.device)

        self.group_names = group_names(self.config.granularity)
        n_groups = len(self.group_names)
        self.action_space = spaces.Box(-1.0, 1.0, (n_groups,), np.float32)
        self.observation_space = spaces.Box(-OBS_LIMIT, OBS_LIMIT, (2 * n_groups + 3,), np.float32)

        self.trainer: Trainer | None = None
        self.base_lr = self.config.base_lr
        self._val_loss = math.nan
        self._val_accuracy = math.nan
        self._last_obs: np.ndarray | None = None
        logger.info(
            "LrControlEnv: preset %s, %d groups, %d SGD steps per episode, device %s",
            self.config.preset,
            n_groups,
            self.config.total_steps,
            self.device,
        )

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def _draw_base_lr(self) -> float:
        config = self.config
        if config.base_lr_choices:
            return float(self.np_random.choice(config.base_lr_choices))
        if config.base_lr_range is not None:
            low, high = np.log(config.base_lr_range)
            return float(np.exp(self.np_random.uniform(low, high)))
        return float(config.base_lr)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.base_lr = self._draw_base_lr()
        trainer_seed = int(self.np_random.integers(2**31 - 1))
        self.trainer = Trainer(
            self.config.trainer_config(self.base_lr), self.train_split, seed=trainer_seed, device=self.device
        )
        start = time.perf_counter()
        stats = self.trainer.probe_gradients()
        self._val_loss, self._val_accuracy = self._validate()
        elapsed = time.perf_counter() - start
        obs = self._observation(stats, self._val_loss)
        info = self._info(False, StepTiming(total=elapsed, train=0.0, validation=elapsed), train_loss=stats.loss)
        return obs, info

    def step(self, action):
        if self.trainer is None:
            raise RuntimeError("call reset() before step()")
        start = time.perf_counter()
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.n_groups), -1.0, 1.0)
        config = self.config
        multipliers = self.trainer.multipliers * config.max_step_factor**action
        self.trainer.set_multipliers(np.clip(multipliers, config.min_multiplier, config.max_multiplier))
        learning_rates = self.trainer.learning_rates()

        remaining = config.total_steps - self.trainer.step
        n_steps = min(config.decision_interval, remaining)
        try:
            stats = self.trainer.train_steps(n_steps)
        except DivergenceError as error:
            logger.info("episode diverged: %s (base_lr %.4g)", error, self.base_lr)
            return self._diverged_step(start, learning_rates)
        train_done = time.perf_counter()

        val_loss, val_accuracy = self._validate()
        validation_done = time.perf_counter()
        if not math.isfinite(val_loss):
            logger.info("episode diverged: non-finite validation loss at SGD step %d", self.trainer.step)
            return self._diverged_step(start, learning_rates)

        if config.reward == "val_loss":
            reward = self._val_loss - val_loss
        else:
            reward = val_accuracy - self._val_accuracy
        self._val_loss, self._val_accuracy = val_loss, val_accuracy

        obs = self._observation(stats, val_loss, learning_rates)
        terminated = self.trainer.step >= config.total_steps
        timing = StepTiming(
            total=time.perf_counter() - start,
            train=train_done - start,
            validation=validation_done - train_done,
        )
        info = self._info(False, timing, learning_rates, stats.loss)
        return obs, float(reward), terminated, False, info

    def _diverged_step(self, start: float, learning_rates: np.ndarray):
        obs = self._last_obs.copy()
        obs[-1] = self.trainer.step / self.config.total_steps
        self._last_obs = obs
        elapsed = time.perf_counter() - start
        timing = StepTiming(total=elapsed, train=elapsed, validation=0.0)
        info = self._info(True, timing, learning_rates, train_loss=math.inf)
        return obs.copy(), -float(self.config.divergence_penalty), True, False, info

    def _validate(self) -> tuple[float, float]:
        return self.trainer.evaluate(self.val_split, limit=self.config.reward_val_size)

    def _observation(
        self, stats: StepStats, val_loss: float, learning_rates: np.ndarray | None = None
    ) -> np.ndarray:
        if learning_rates is None:
            learning_rates = self.trainer.learning_rates()
        values = np.concatenate(
            [
                np.log(np.maximum(stats.grad_norms, LOG_FLOOR)),
                np.log(np.maximum(learning_rates, LOG_FLOOR)),
                [math.log(max(stats.loss, LOG_FLOOR)), val_loss, self.trainer.step / self.config.total_steps],
            ]
        )
        values = np.nan_to_num(values, nan=OBS_LIMIT, posinf=OBS_LIMIT, neginf=-OBS_LIMIT)
        obs = np.clip(values, -OBS_LIMIT, OBS_LIMIT).astype(np.float32)
        self._last_obs = obs
        return obs.copy()

    def _info(
        self,
        diverged: bool,
        timing: StepTiming,
        learning_rates: np.ndarray | None = None,
        train_loss: float = math.inf,
    ) -> dict:
        if learning_rates is None:
            learning_rates = self.trainer.learning_rates()
        return {
            "learning_rates": np.asarray(learning_rates, dtype=np.float64).copy(),
            "multipliers": self.trainer.multipliers.copy(),
            "train_loss": float(train_loss),
            "val_loss": float(self._val_loss),
            "val_accuracy": float(self._val_accuracy),
            "sgd_step": int(self.trainer.step),
            "base_lr": float(self.base_lr),
            "diverged": bool(diverged),
            "timing": timing,
        }


def load_test_split(config: EnvConfig, device) -> DeviceSplit:
    """Load the CIFAR-10 test split on ``device``; only final evaluation may use it."""
    arrays = load_cifar10(config.data_dir, config.cache_dir)
    return DeviceSplit(arrays.test_images, arrays.test_labels, device)
