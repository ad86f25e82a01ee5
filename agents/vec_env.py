"""Vectorised ``LrControlEnv`` instances: devices, seeds, threads and per-episode summaries.

One environment runs in this process (``DummyVecEnv``). Several run in worker processes
(``SubprocVecEnv``) started with ``forkserver``, or ``spawn`` where forkserver is missing, because
forking a process that already initialised CUDA or OpenMP is unsafe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from lr_env.config import EnvConfig

logger = logging.getLogger(__name__)


def available_cpus() -> int:
    """Return the number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def validate_device(device: str) -> None:
    """Raise ValueError unless ``device`` is ``auto``, ``cpu``, ``cuda`` or a visible ``cuda:N``."""
    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r}: use auto, cpu, cuda or cuda:N") from error
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )


def env_devices(device: str, n_envs: int) -> list[str]:
    """Return the training device of each environment.

    ``auto`` and ``cuda`` assign the visible GPUs round robin (``auto`` without CUDA gives ``cpu``);
    ``cpu`` and ``cuda:N`` put every environment on that device.
    """
    validate_device(device)
    if device in ("auto", "cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        return [f"cuda:{rank % count}" for rank in range(n_envs)]
    if device == "auto":
        return ["cpu"] * n_envs
    return [device] * n_envs


def env_seeds(seed: int, n_envs: int) -> list[int]:
    """Return one distinct seed per environment: ``seed + rank``, as SB3's ``VecEnv.seed`` does."""
    return [seed + rank for rank in range(n_envs)]


def default_torch_threads(n_envs: int) -> int:
    """Return intra-op threads per CPU environment, so that the environments share the cores."""
    return max(1, available_cpus() // n_envs)


class EpisodeSummary(gym.Wrapper):
    """Adds ``info["episode_summary"]`` on the last step of each episode.

    The summary is a dict of plain Python values: ``return``, ``length`` (environment steps),
    ``final_val_accuracy``, ``final_val_loss``, ``final_train_loss``, ``diverged``, ``base_lr``,
    ``sgd_steps``, ``mean_learning_rates`` and ``final_learning_rates`` (one per group, the rates
    the actions set), ``mean_multipliers``, ``final_multipliers`` and the wall seconds
    ``seconds``, ``train_seconds`` and ``validation_seconds``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._reset_totals()

    def _reset_totals(self) -> None:
        self._return = 0.0
        self._length = 0
        self._lr_sum: np.ndarray | None = None
        self._multiplier_sum: np.ndarray | None = None
        self._seconds = [0.0, 0.0, 0.0]

    def reset(self, **kwargs):
        self._reset_totals()
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        learning_rates = np.asarray(info["learning_rates"], dtype=np.float64)
        multipliers = np.asarray(info["multipliers"], dtype=np.float64)
        if self._lr_sum is None:
            self._lr_sum = np.zeros_like(learning_rates)
            self._multiplier_sum = np.zeros_like(multipliers)
        self._lr_sum += learning_rates
        self._multiplier_sum += multipliers
        timing = info["timing"]
        self._seconds[0] += timing.total
        self._seconds[1] += timing.train
        self._seconds[2] += timing.validation

        if terminated or truncated:
            info["episode_summary"] = {
                "return": self._return,
                "length": self._length,
                "final_val_accuracy": float(info["val_accuracy"]),
                "final_val_loss": float(info["val_loss"]),
                "final_train_loss": float(info["train_loss"]),
                "diverged": bool(info["diverged"]),
                "base_lr": float(info["base_lr"]),
                "sgd_steps": int(info["sgd_step"]),
                "mean_learning_rates": (self._lr_sum / self._length).tolist(),
                "final_learning_rates": learning_rates.tolist(),
                "mean_multipliers": (self._multiplier_sum / self._length).tolist(),
                "final_multipliers": multipliers.tolist(),
                "seconds": self._seconds[0],
                "train_seconds": self._seconds[1],
                "validation_seconds": self._seconds[2],
            }
        return obs, reward, terminated, truncated, info


def make_env_factory(config: EnvConfig, torch_threads: int | None) -> Callable[[], gym.Env]:
    """Return a picklable function that builds one wrapped environment from ``config``.

    In a worker process the function also makes the worker ignore SIGINT, so that Ctrl-C in a
    terminal (which signals the whole process group) reaches only the main process, which then
    saves a checkpoint and closes the workers in order.
    """

    def build() -> gym.Env:
        if multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if torch_threads is not None and config.device == "cpu":
            torch.set_num_threads(torch_threads)
        from lr_env.env import LrControlEnv

        return Monitor(EpisodeSummary(LrControlEnv(config)))

    return build


def preload_data(config: EnvConfig) -> None:
    """Load CIFAR-10 as ``config`` would, filling the decoded cache; raises ``DataError``."""
    from lr_env.data import load_cifar10

    load_cifar10(config.data_dir, config.cache_dir)


def subprocess_start_method() -> str:
    """Return ``forkserver`` where the platform has it, else ``spawn``."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def make_vec_env(config: EnvConfig, n_envs: int, device: str, torch_threads: int | None = None) -> VecEnv:
    """Build ``n_envs`` environments of ``config``, each on its own device from :func:`env_devices`.

    ``torch_threads`` sets the intra-op threads of each CPU environment (None keeps torch's default
    for one environment and divides the cores among several). Seeds are applied by the algorithm,
    which seeds environment ``rank`` with ``seed + rank`` (see :func:`env_seeds`).
    """
    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}")
    devices = env_devices(device, n_envs)
    if torch_threads is None and n_envs > 1:
        torch_threads = default_torch_threads(n_envs)
    factories = [make_env_factory(config.replace(device=env_device), torch_threads) for env_device in devices]
    logger.info("building %d environment(s) on %s", n_envs, ", ".join(devices))
    if n_envs == 1:
        return DummyVecEnv(factories)
    return SubprocVecEnv(factories, start_method=subprocess_start_method())


__all__ = [
    "EpisodeSummary",
    "default_torch_threads",
    "env_devices",
    "env_seeds",
    "make_env_factory",
    "make_vec_env",
    "preload_data",
    "subprocess_start_method",
    "validate_device",
]
