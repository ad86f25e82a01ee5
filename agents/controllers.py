"""Controllers that choose the environment's action during evaluation.

A controller maps one raw observation of :class:`lr_env.LrControlEnv` to one action. The scripted
:class:`ConstantController` returns the same action at every decision: with the all-zero action every
learning rate stays at ``base_lr * schedule(t)``, so it turns the environment into the plain SGD
(``schedule="constant"``) or cosine (``schedule="cosine"``) baseline. :class:`PolicyController` wraps
a trained checkpoint and measures the wall time of its own inference.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np
import torch

from agents.checkpoint import Checkpoint


class Controller(Protocol):
    """Interface of a controller, as the evaluation loop uses it."""

    inference_seconds: float
    """Wall time spent choosing actions since the last :meth:`reset`, in seconds."""

    def reset(self, seed: int | None = None) -> None:
        """Prepare for a new run; ``seed`` fixes any sampling the controller does."""

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Return the action, float32 of shape (n_groups,), for one raw observation."""


class ConstantController:
    """A controller that returns the same action at every decision.

    The default all-zero action keeps every layer group's multiplier at 1. Its inference time is
    not measured and stays 0, because returning a stored array costs nothing worth reporting.
    """

    def __init__(self, n_groups: int, value: float | np.ndarray = 0.0) -> None:
        if n_groups < 1:
            raise ValueError(f"n_groups must be a positive integer, got {n_groups}")
        action = np.broadcast_to(np.asarray(value, dtype=np.float32), (n_groups,)).copy()
        if not np.all(np.isfinite(action)) or np.any(np.abs(action) > 1):
            raise ValueError(f"constant action entries must lie in [-1, 1], got {action}")
        self.action = action
        self.inference_seconds = 0.0

    def reset(self, seed: int | None = None) -> None:
        self.inference_seconds = 0.0

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self.action.copy()


def zero_controller(n_groups: int) -> ConstantController:
    """Return the controller whose all-zero action leaves every learning rate unchanged."""
    return ConstantController(n_groups, 0.0)


class PolicyController:
    """A trained checkpoint's policy, deterministic by default, that times its own inference.

    ``inference_seconds`` covers the observation normalisation and the policy's forward pass (and
    the sampling when ``deterministic`` is False), measured with ``time.perf_counter``.
    """

    def __init__(self, checkpoint: Checkpoint, deterministic: bool = True) -> None:
        self.checkpoint = checkpoint
        self.deterministic = deterministic
        self.inference_seconds = 0.0
        self.decisions = 0

    def reset(self, seed: int | None = None) -> None:
        """Zero the timers; with sampled actions, also seed the global torch generator with ``seed``.

        SB3 samples actions from the global torch generator, so seeding it makes stochastic runs
        repeatable. Training is not affected: the trainer seeds its weights in a forked generator
        and draws batches from its own ``torch.Generator``.
        """
        self.inference_seconds = 0.0
        self.decisions = 0
        if not self.deterministic and seed is not None:
            torch.manual_seed(seed)

    def act(self, observation: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        action = self.checkpoint.predict(observation, deterministic=self.deterministic)
        self.inference_seconds += time.perf_counter() - start
        self.decisions += 1
        return action


__all__ = ["ConstantController", "Controller", "PolicyController", "zero_controller"]
