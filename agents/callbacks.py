"""SB3 callbacks of a controller training run: NaN guard, episode metrics, checkpoints, progress."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from agents.checkpoint import CheckpointError, non_finite_parameters

logger = logging.getLogger(__name__)


class NonFinitePolicyError(RuntimeError):
    """The policy's parameters or outputs contain NaN or infinity."""

    def __init__(self, step: int, detail: str) -> None:
        super().__init__(f"policy became non-finite at environment step {step}: {detail}")
        self.step = step
        self.detail = detail


class NonFiniteGuard(BaseCallback):
    """Raises :class:`NonFinitePolicyError` as soon as a policy parameter or output is not finite.

    Parameters are checked after every environment step, because SAC updates between steps, and
    at the start of each rollout, because PPO updates between rollouts. Actions and value
    estimates are checked at every step. Raising, rather than returning False, stops ``learn`` before another
    environment step runs and before any later callback in the list can save the model.
    """

    def _check_parameters(self) -> None:
        bad = non_finite_parameters(self.model)
        if bad:
            detail = f"parameters {bad} contain NaN or infinity"
            raise NonFinitePolicyError(self.num_timesteps, detail)

    def _on_rollout_start(self) -> None:
        self._check_parameters()

    def _on_step(self) -> bool:
        for name in ("actions", "values"):
            value = self.locals.get(name)
            if value is None:
                continue
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if not np.isfinite(array).all():
                detail = f"the policy output {name!r} contains NaN or infinity"
                raise NonFinitePolicyError(self.num_timesteps, detail)
        self._check_parameters()
        return True

    def _on_training_end(self) -> None:
        self._check_parameters()


class EpisodeStats(BaseCallback):
    """Counts finished episodes and logs each one's metrics to W&B under ``env/`` and ``time/``.

    Reads ``info["episode_summary"]`` (from :class:`agents.vec_env.EpisodeSummary`) and
    ``info["val_accuracy"]``. ``run`` is a W&B run or None.
    """

    def __init__(self, group_names: list[str], run=None, window: int = 100) -> None:
        super().__init__()
        self.group_names = list(group_names)
        self.run = run
        self.episodes = 0
        self.returns: deque[float] = deque(maxlen=window)
        self.last_val_accuracy = math.nan

    @property
    def mean_return(self) -> float:
        """Mean return of the last ``window`` episodes (NaN before the first one ends)."""
        return float(np.mean(self.returns)) if self.returns else math.nan

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "val_accuracy" in info:
                self.last_val_accuracy = float(info["val_accuracy"])
            summary = info.get("episode_summary")
            if summary is None:
                continue
            self.episodes += 1
            self.returns.append(summary["return"])
            if self.run is not None:
                self.run.log(self.episode_metrics(summary), step=int(self.num_timesteps))
        return True

    def episode_metrics(self, summary: dict) -> dict[str, float]:
        """Return the namespaced W&B metrics of one episode summary."""
        metrics = {
            "env/episodes": self.episodes,
            "env/episode_return": summary["return"],
            "env/episode_length": summary["length"],
            "env/final_val_accuracy": summary["final_val_accuracy"],
            "env/final_val_loss": summary["final_val_loss"],
            "env/final_train_loss": summary["final_train_loss"],
            "env/diverged": float(summary["diverged"]),
            "env/base_lr": summary["base_lr"],
            "env/sgd_steps": summary["sgd_steps"],
            "time/episode_seconds": summary["seconds"],
            "time/episode_train_seconds": summary["train_seconds"],
            "time/episode_validation_seconds": summary["validation_seconds"],
        }
        per_group = {
            "mean_lr": summary["mean_learning_rates"],
            "final_lr": summary["final_learning_rates"],
            "mean_multiplier": summary["mean_multipliers"],
            "final_multiplier": summary["final_multipliers"],
        }
        for kind, values in per_group.items():
            for group, value in zip(self.group_names, values, strict=True):
                metrics[f"env/{kind}/{group}"] = value
        return metrics


class PeriodicCheckpoint(BaseCallback):
    """Calls ``save()`` every ``interval`` environment steps (summed over environments).

    ``save`` writes the checkpoint. An OSError is logged and training continues, because the
    previous checkpoint file is still intact (saves are atomic). A save refused because the policy
    is non-finite raises :class:`NonFinitePolicyError`.
    """

    def __init__(self, save: Callable[[], object], interval: int) -> None:
        super().__init__()
        if interval < 1:
            raise ValueError(f"checkpoint interval must be a positive step count, got {interval}")
        self.save = save
        self.interval = interval
        self.last_saved_step = 0
        self.saves = 0

    def _on_training_start(self) -> None:
        self.last_saved_step = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_saved_step >= self.interval:
            try:
                self.save()
            except CheckpointError as error:
                # save_checkpoint refuses a non-finite model; that is the guard's failure to report.
                bad = non_finite_parameters(self.model)
                if bad:
                    detail = f"parameters {bad} contain NaN or infinity"
                    raise NonFinitePolicyError(self.num_timesteps, detail) from error
                raise
            except OSError as error:
                logger.error("periodic checkpoint at step %d failed: %s", self.num_timesteps, error)
            else:
                self.saves += 1
            self.last_saved_step = self.num_timesteps
        return True


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps with episodes, mean return and last validation accuracy."""

    def __init__(self, total_steps: int, stats: EpisodeStats, enabled: bool = True) -> None:
        super().__init__()
        self.total_steps = total_steps
        self.stats = stats
        self.enabled = enabled
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.total_steps,
            initial=self.num_timesteps,
            unit="step",
            desc="env steps",
            dynamic_ncols=True,
            disable=not self.enabled,
        )

    def _on_step(self) -> bool:
        if self.bar is None:
            return True
        self.bar.set_postfix(
            episodes=self.stats.episodes,
            mean_return=f"{self.stats.mean_return:.3g}",
            val_acc=f"{self.stats.last_val_accuracy:.3f}",
            refresh=False,
        )
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def close(self) -> None:
        """Close the bar; safe to call more than once and when training never started."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _on_training_end(self) -> None:
        self.close()


class FlushLogger(BaseCallback):
    """Writes SB3's pending logger records at the end of training.

    PPO dumps its records before each update, so without this the last update's ``train/``
    metrics would never reach the outputs.
    """

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.model.logger.dump(step=self.num_timesteps)


__all__ = [
    "EpisodeStats",
    "FlushLogger",
    "NonFiniteGuard",
    "NonFinitePolicyError",
    "PeriodicCheckpoint",
    "ProgressBar",
]
