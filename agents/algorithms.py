"""The meta-learner: algorithm choice, policy network, hyperparameters and the training budget.

The policy is SB3's feed-forward ``MlpPolicy`` trained with PPO (default) or SAC and Adam.
Gamma defaults to 1.0 because an episode's return is the total decrease of validation loss over
the whole inner training run. The loss at the end of training is what matters, so late rewards
must count as much as early ones. Episodes are finite (the SGD budget ends them), so the
undiscounted return is well defined.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.checkpoint import ALGORITHMS, CheckpointError
from lr_env.config import EnvConfig

logger = logging.getLogger(__name__)

POLICY = "MlpPolicy"
# Replay buffer capacity for SAC, in transitions. An observation is 2G + 3 float32 values, so even
# 100,000 transitions at layer granularity (45 values, stored twice) take about 40 MB.
SAC_BUFFER_SIZE = 100_000


class BudgetError(ValueError):
    """A training budget or hyperparameter combination that cannot run; names the minimum or fix."""


@dataclass(frozen=True)
class Hyperparameters:
    """Resolved settings of the meta-learner (no None left)."""

    algorithm: str
    """``ppo`` or ``sac``."""
    learning_rate: float
    """Adam learning rate of the policy and value networks."""
    batch_size: int
    """Minibatch size, in transitions."""
    gamma: float
    """Discount factor; 1.0 counts the end of inner training as much as its start."""
    net_arch: tuple[int, ...]
    """Hidden layer widths of the policy network (and, separately, of the value or Q networks)."""
    n_steps: int = 0
    """PPO: environment steps per environment and rollout (0 for SAC)."""
    n_epochs: int = 0
    """PPO: passes over each rollout (0 for SAC)."""
    gae_lambda: float = 0.0
    """PPO: GAE lambda (0 for SAC)."""
    log_std_init: float = 0.0
    """PPO: initial log standard deviation of the Gaussian policy (0 for SAC)."""
    learning_starts: int = 0
    """SAC: environment steps of random actions before the first gradient step (0 for PPO)."""
    buffer_size: int = 0
    """SAC: replay buffer capacity, in transitions (0 for PPO)."""

    def to_dict(self) -> dict:
        """Return the fields of the chosen algorithm as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["net_arch"] = list(self.net_arch)
        if self.algorithm == "ppo":
            for name in ("learning_starts", "buffer_size"):
                values.pop(name)
        else:
            for name in ("n_steps", "n_epochs", "gae_lambda", "log_std_init"):
                values.pop(name)
        return values


def default_n_steps(batch_size: int, n_envs: int) -> int:
    """Return the smallest PPO ``n_steps`` whose rollout (``n_steps * n_envs``) is a whole number of
    minibatches and at least one minibatch."""
    return math.lcm(batch_size, n_envs) // n_envs


def resolve_hyperparameters(
    algorithm: str,
    n_envs: int,
    *,
    learning_rate: float = 1e-3,
    batch_size: int = 128,
    gamma: float = 1.0,
    net_arch: tuple[int, ...] = (64, 64),
    n_steps: int | None = None,
    n_epochs: int = 10,
    gae_lambda: float = 0.95,
    log_std_init: float = -1.0,
    learning_starts: int | None = None,
) -> Hyperparameters:
    """Fill in the defaults that depend on ``n_envs`` and validate the values.

    Raises ValueError for an invalid value and BudgetError for a PPO rollout that is not whole
    minibatches.

    PPO's ``n_steps`` defaults to :func:`default_n_steps`; SAC's ``learning_starts`` defaults to
    ``batch_size``, so the first gradient step samples a full batch of distinct transitions.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning rate must be a positive number, got {learning_rate}")
    if batch_size < 2:
        raise ValueError(f"batch size must be at least 2, got {batch_size}")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not net_arch or any(width < 1 for width in net_arch):
        raise ValueError(f"network layer widths must be positive integers, got {list(net_arch)}")

    if algorithm == "sac":
        starts = batch_size if learning_starts is None else learning_starts
        if starts < 0:
            raise ValueError(f"learning starts must be non-negative, got {starts}")
        return Hyperparameters(
            algorithm=algorithm,
            learning_rate=learning_rate,
            batch_size=batch_size,
            gamma=gamma,
            net_arch=tuple(net_arch),
            learning_starts=starts,
            buffer_size=SAC_BUFFER_SIZE,
        )

    steps = default_n_steps(batch_size, n_envs) if n_steps is None else n_steps
    if steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {steps}")
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be a positive integer, got {n_epochs}")
    if not 0 <= gae_lambda <= 1:
        raise ValueError(f"GAE lambda must be in [0, 1], got {gae_lambda}")
    check_rollout(steps, n_envs, batch_size)
    return Hyperparameters(
        algorithm=algorithm,
        learning_rate=learning_rate,
        batch_size=batch_size,
        gamma=gamma,
        net_arch=tuple(net_arch),
        n_steps=steps,
        n_epochs=n_epochs,
        gae_lambda=gae_lambda,
        log_std_init=log_std_init,
    )


def check_rollout(n_steps: int, n_envs: int, batch_size: int) -> None:
    """Raise BudgetError unless a PPO rollout of ``n_steps * n_envs`` is whole minibatches."""
    rollout = n_steps * n_envs
    if rollout < batch_size or rollout % batch_size:
        raise BudgetError(
            f"a PPO rollout of n_steps {n_steps} x {n_envs} environment(s) = {rollout} transitions "
            f"is not a whole number of minibatches of {batch_size}; use --n-steps "
            f"{default_n_steps(batch_size, n_envs)} or another multiple of it"
        )


def hyperparameters_from_model(model: BaseAlgorithm, algorithm: str) -> Hyperparameters:
    """Return the hyperparameters stored in a loaded model."""
    policy_kwargs = dict(model.policy_kwargs or {})
    net_arch = policy_kwargs.get("net_arch", [64, 64])
    if isinstance(net_arch, dict):
        net_arch = net_arch.get("pi", [64, 64])
    common = {
        "algorithm": algorithm,
        "learning_rate": float(model.learning_rate),
        "batch_size": int(model.batch_size),
        "gamma": float(model.gamma),
        "net_arch": tuple(int(width) for width in net_arch),
    }
    if algorithm == "ppo":
        return Hyperparameters(
            **common,
            n_steps=int(model.n_steps),
            n_epochs=int(model.n_epochs),
            gae_lambda=float(model.gae_lambda),
            log_std_init=float(policy_kwargs.get("log_std_init", 0.0)),
        )
    return Hyperparameters(**common, learning_starts=int(model.learning_starts), buffer_size=int(model.buffer_size))


# ---------------------------------------------------------------------------------------------
# Budget
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunBudget:
    """Cost of a training run, derived from the requested environment steps."""

    env_steps: int
    """Environment steps (controller decisions) the run takes, summed over environments; SB3
    rounds the request up to whole PPO rollouts or whole vectorised steps."""
    sgd_steps: int
    """SGD steps of the inner ResNet training if no episode diverges (divergence ends one early)."""
    episodes: float
    """Inner training runs, if none diverges; the last one may be cut off by the budget."""
    policy_updates: int
    """PPO: rollouts, each followed by one update; SAC: gradient steps."""
    gradient_steps: int
    """Adam steps on the policy and value networks."""
    minimum_env_steps: int
    """Smallest request that allows one policy update."""


def minimum_timesteps(hyperparameters: Hyperparameters, n_envs: int) -> int:
    """Return the smallest environment-step budget that allows one policy update.

    PPO updates after each rollout of ``n_steps * n_envs`` steps. SAC's first gradient step needs
    more than ``learning_starts + batch_size`` steps.
    """
    if hyperparameters.algorithm == "ppo":
        return hyperparameters.n_steps * n_envs
    return hyperparameters.learning_starts + hyperparameters.batch_size + 1


def plan_budget(
    hyperparameters: Hyperparameters, n_envs: int, requested_steps: int, env_config: EnvConfig
) -> RunBudget:
    """Return the cost of a run of ``requested_steps`` environment steps.

    Raises BudgetError, naming the minimum, if the request is too small for one policy update.
    """
    minimum = minimum_timesteps(hyperparameters, n_envs)
    if requested_steps < minimum:
        if hyperparameters.algorithm == "ppo":
            reason = (
                f"one rollout of n_steps {hyperparameters.n_steps} x {n_envs} environment(s); "
                "raise --total-timesteps or lower --n-steps"
            )
        else:
            reason = (
                f"learning_starts {hyperparameters.learning_starts} + batch size "
                f"{hyperparameters.batch_size} + 1; raise --total-timesteps or lower "
                "--learning-starts"
            )
        raise BudgetError(
            f"--total-timesteps {requested_steps} is too small for one "
            f"{hyperparameters.algorithm.upper()} update: the minimum is {minimum} ({reason})"
        )

    if hyperparameters.algorithm == "ppo":
        rollout = hyperparameters.n_steps * n_envs
        updates = -(-requested_steps // rollout)
        env_steps = updates * rollout
        minibatches = rollout // hyperparameters.batch_size
        gradient_steps = updates * hyperparameters.n_epochs * minibatches
    else:
        vector_steps = -(-requested_steps // n_envs)
        env_steps = vector_steps * n_envs
        updates = vector_steps - hyperparameters.learning_starts // n_envs
        gradient_steps = updates

    decisions = env_config.n_decisions
    return RunBudget(
        env_steps=env_steps,
        sgd_steps=round(env_steps * env_config.total_steps / decisions),
        episodes=env_steps / decisions,
        policy_updates=updates,
        gradient_steps=gradient_steps,
        minimum_env_steps=minimum,
    )


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def build_model(hyperparameters: Hyperparameters, venv: VecEnv, seed: int, device: str = "cpu") -> BaseAlgorithm:
    """Return a new PPO or SAC model with an ``MlpPolicy`` on ``venv``.

    ``seed`` seeds Python, NumPy and torch, and SB3 seeds environment ``rank`` with ``seed + rank``.
    """
    hp = hyperparameters
    policy_kwargs: dict = {"net_arch": list(hp.net_arch)}
    if hp.algorithm == "ppo":
        policy_kwargs["log_std_init"] = hp.log_std_init
        return PPO(
            POLICY,
            venv,
            learning_rate=hp.learning_rate,
            n_steps=hp.n_steps,
            batch_size=hp.batch_size,
            n_epochs=hp.n_epochs,
            gamma=hp.gamma,
            gae_lambda=hp.gae_lambda,
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
        )
    return SAC(
        POLICY,
        venv,
        learning_rate=hp.learning_rate,
        buffer_size=hp.buffer_size,
        learning_starts=hp.learning_starts,
        batch_size=hp.batch_size,
        gamma=hp.gamma,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device=device,
    )


def load_model_for_training(
    path: str | Path,
    algorithm: str,
    venv: VecEnv,
    seed: int,
    device: str = "cpu",
    learning_rate: float | None = None,
) -> BaseAlgorithm:
    """Load the model of checkpoint ``path`` onto ``venv`` to continue training.

    ``learning_rate`` replaces the stored one if given. The model is reseeded with
    ``seed + num_timesteps``, so resumed episodes differ from the first run's. SAC's replay buffer
    is not part of a checkpoint, so a resumed SAC run starts with an empty buffer.
    """
    overrides = {} if learning_rate is None else {"learning_rate": learning_rate}
    try:
        model = ALGORITHMS[algorithm].load(path, env=venv, device=device, **overrides)
    except (ValueError, KeyError, AssertionError, RuntimeError) as error:
        raise CheckpointError(f"{path}: failed to load the {algorithm} model for training: {error}") from error
    model.set_random_seed(seed + model.num_timesteps)
    return model


__all__ = [
    "BudgetError",
    "Hyperparameters",
    "RunBudget",
    "build_model",
    "check_rollout",
    "default_n_steps",
    "hyperparameters_from_model",
    "load_model_for_training",
    "minimum_timesteps",
    "plan_budget",
    "resolve_hyperparameters",
]
