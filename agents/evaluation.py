"""Evaluation of a trained learning-rate controller against SGD baselines on the CIFAR-10 test split.

Every method trains through the same :class:`lr_env.LrControlEnv` loop, so all of them are measured
identically: ``controller`` acts with the checkpoint's policy, ``sgd`` sends the all-zero action in an
environment with the constant schedule (plain SGD at ``base_lr``), and ``cosine`` sends the all-zero
action with the cosine schedule. A seed fixes the weight initialisation, data order and augmentation
of a run, and every method trains once per seed with the same seeds.

The test split is read only here, for the test curve and the final accuracy. Test evaluations are
timed separately and left out of each run's wall time.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agents.checkpoint import Checkpoint, CheckpointError, check_spaces
from agents.controllers import Controller, PolicyController, zero_controller
from agents.tracking import WANDB_MODES, finish_wandb, init_wandb
from lr_env.config import PRESETS, EnvConfig, config_to_dict, make_config
from lr_env.env import LrControlEnv, load_test_split
from lr_env.trainer import resolve_device

logger = logging.getLogger(__name__)

METHODS = ("controller", "sgd", "cosine")
"""Methods an evaluation can run, in report order."""
BASELINES = ("sgd", "cosine")
BASELINE_SCHEDULES = {"sgd": "constant", "cosine": "cosine"}

# Fields that define what an action means. They keep the checkpoint's values when --preset replaces
# the rest of the environment, so the policy's actions keep their meaning.
CONTROL_FIELDS = ("granularity", "decision_interval", "max_step_factor", "min_multiplier", "max_multiplier")

# Default target test accuracy per preset, for the SGD steps and wall time to reach it.
# NOTE: these are estimates, not measured values. Each is meant to lie below what the fixed-learning-rate
# SGD baseline reaches within the preset's budget: 10 epochs of the full recipe for resnet18, 120 steps of
# width 8 on 10,000 images for cpu, and synthetic images for smoke. Pass --target-accuracy to set one.
DEFAULT_TARGET_ACCURACY = {"resnet18": 0.80, "cpu": 0.30, "smoke": 0.20}
FALLBACK_TARGET_ACCURACY = 0.5
"""Target for a configuration whose preset is not in :data:`DEFAULT_TARGET_ACCURACY`."""

CURVE_POINTS = 20
"""Test evaluations per run (besides the one at step 0) when no interval is given."""
CLOSE_TO_BEST = 0.01
"""Accuracy margin (1 point) within which a grid point counts as close to a method's best."""

TestPointCallback = Callable[["CurvePoint"], None]
DecisionCallback = Callable[[int, np.ndarray], None]


@dataclass
class EvaluationConfig:
    """Settings of one evaluation; :mod:`evaluate` fills it from the command line."""

    policy: str
    """Path of the checkpoint ``.zip`` written by train_controller.py."""
    preset: str | None = None
    """Preset that replaces the checkpoint's environment (its control fields stay); None keeps it."""
    total_steps: int | None = None
    """SGD steps per run; None keeps the value of the checkpoint's (or ``preset``'s) config."""
    granularity: str | None = None
    """Layer-group granularity override; it must match the policy's action space."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the runs; every method trains once per seed."""
    methods: tuple[str, ...] = METHODS
    """Methods to run, a subset of :data:`METHODS`."""
    lr_grid: tuple[float, ...] = ()
    """Initial learning rates to repeat the comparison at (run in ascending order); empty uses ``base_lr``."""
    stochastic: bool = False
    """Sample the controller's actions instead of taking the policy's mean (deterministic) action."""
    target_accuracy: float | None = None
    """Test accuracy (a fraction) that defines convergence speed; None uses the preset's default."""
    eval_every: int | None = None
    """SGD steps between two test evaluations; None spreads :data:`CURVE_POINTS` over the run."""
    data_dir: str | None = None
    """CIFAR-10 parquet directory; None uses $LR_ENV_DATA_DIR, then the Hugging Face Hub."""
    device: str = "auto"
    """Training device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. The policy always runs on the CPU."""
    torch_threads: int | None = None
    """Intra-op CPU threads of torch, which :mod:`evaluate` sets; None keeps torch's default."""
    out: str | None = None
    """Results directory; None uses ``results/<timestamp>``."""
    wandb: str = "offline"
    """W&B mode: ``offline``, ``online`` or ``disabled``."""
    wandb_project: str = "lr-env"
    """W&B project of the runs."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if not self.seeds:
            raise ValueError("at least one seed is required")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        if any(seed < 0 for seed in self.seeds):
            raise ValueError(f"seeds must be non-negative, got {list(self.seeds)}")

        if not self.methods:
            raise ValueError(f"at least one method is required; choose from {list(METHODS)}")
        unknown = [method for method in self.methods if method not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct, got {list(self.methods)}")

        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise ValueError(f"learning rates must be positive and finite, got {list(self.lr_grid)}")
        if len(set(self.lr_grid)) != len(self.lr_grid):
            raise ValueError(f"grid learning rates must be distinct, got {list(self.lr_grid)}")

        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {self.total_steps}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be a positive integer, got {self.torch_threads}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive number of SGD steps, got {self.eval_every}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError(f"target accuracy must be a fraction in (0, 1], got {self.target_accuracy}")

        if self.wandb not in WANDB_MODES:
            raise ValueError(f"W&B mode must be one of {list(WANDB_MODES)}, got {self.wandb!r}")
        try:
            resolve_device(self.device)
        except RuntimeError as error:  # torch.device raises RuntimeError for an unknown device string
            raise ValueError(f"invalid device {self.device!r}: {error}") from error


# ---------------------------------------------------------------------------------------------
# Environment configuration
# ---------------------------------------------------------------------------------------------


def evaluation_env_config(checkpoint_config: EnvConfig, settings: EvaluationConfig) -> EnvConfig:
    """Return the environment of the evaluation before the per-method schedule and learning rate.

    Starts from the checkpoint's config, or from ``settings.preset`` with the checkpoint's
    :data:`CONTROL_FIELDS`. The training-time draw of the base learning rate is switched off, so
    every run starts at ``base_lr``. The data directory, cache directory and device stored in the
    checkpoint belong to the training machine, so ``settings.data_dir`` and ``settings.device``
    replace them and the cache falls back to $LR_ENV_CACHE_DIR (else ~/.cache/lr_env).
    """
    if settings.preset is None:
        config = checkpoint_config
    else:
        control = {name: getattr(checkpoint_config, name) for name in CONTROL_FIELDS}
        config = PRESETS[settings.preset].replace(**control)

    overrides: dict = {
        "base_lr_choices": (),
        "base_lr_range": None,
        "data_dir": settings.data_dir,
        "cache_dir": None,
        "device": settings.device,
    }
    if settings.total_steps is not None:
        overrides["total_steps"] = settings.total_steps
    if settings.granularity is not None:
        overrides["granularity"] = settings.granularity
    return make_config(config, **overrides)


def method_env_config(
    base: EnvConfig, method: str, base_lr: float, controller_schedule: str
) -> EnvConfig:
    """Return the environment of ``method`` at initial learning rate ``base_lr``.

    The controller keeps the schedule it was trained under; ``sgd`` is constant, ``cosine`` cosine.
    """
    schedule = controller_schedule if method == "controller" else BASELINE_SCHEDULES[method]
    return make_config(base, base_lr=base_lr, schedule=schedule)


def default_target_accuracy(preset: str) -> float:
    """Return the default target test accuracy of ``preset`` (see :data:`DEFAULT_TARGET_ACCURACY`)."""
    return DEFAULT_TARGET_ACCURACY.get(preset, FALLBACK_TARGET_ACCURACY)


def default_eval_every(config: EnvConfig) -> int:
    """Return an interval that gives about :data:`CURVE_POINTS` test points, in whole decisions."""
    interval = config.decision_interval
    decisions = math.ceil(config.total_steps / CURVE_POINTS / interval)
    return max(1, decisions) * interval


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One training run of an evaluation."""

    method: str
    seed: int
    base_lr: float

    @property
    def run_id(self) -> str:
        return f"{self.method}-lr{self.base_lr:g}-seed{self.seed}"


@dataclass
class CurvePoint:
    """One test evaluation during a run."""

    sgd_step: int
    """SGD steps trained before the evaluation."""
    wall_time_s: float
    """Wall time of the run up to this point, without test evaluations, in seconds."""
    test_loss: float
    """Mean cross-entropy on the test split (``inf`` when non-finite)."""
    test_accuracy: float
    """Fraction of test images classified correctly."""


@dataclass
class RunResult:
    """Metrics of one training run. Times are wall seconds; accuracies are fractions."""

    run_id: str
    method: str
    seed: int
    base_lr: float
    schedule: str
    deterministic: bool
    """Whether the controller took deterministic actions (always True for the baselines)."""
    final_test_accuracy: float
    final_test_loss: float
    sgd_steps: int
    """SGD steps trained; fewer than the budget when training diverged."""
    diverged: bool
    wall_time_s: float
    """Reset plus every decision and its training, without test evaluations."""
    steps_to_target: int | None
    """SGD step of the first test point at or above the target accuracy; None if never reached."""
    seconds_to_target: float | None
    """Wall time of the run at that test point; None if never reached."""
    train_seconds: float
    """SGD steps, from the environment's timing."""
    validation_seconds: float
    """Validation passes that feed the reward and the observation, from the environment's timing."""
    observation_seconds: float
    """Action handling and observation building: ``timing.total - timing.train - timing.validation``."""
    inference_seconds: float
    """Policy inference (observation normalisation and forward pass); 0 for the baselines."""
    test_eval_seconds: float
    """Test evaluations, excluded from ``wall_time_s``."""
    curve: list[CurvePoint] = field(default_factory=list)
    learning_rates: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(first SGD step of a decision interval, learning rate of each group during it)."""

    @property
    def controller_overhead_share(self) -> float:
        """Observation building plus policy inference as a fraction of the wall time."""
        if self.wall_time_s <= 0:
            return 0.0
        return (self.observation_seconds + self.inference_seconds) / self.wall_time_s

    @property
    def validation_share(self) -> float:
        """Validation passes as a fraction of the wall time."""
        if self.wall_time_s <= 0:
            return 0.0
        return self.validation_seconds / self.wall_time_s

    def scalars(self) -> dict:
        """Return every metric except the curves, as plain Python values."""
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("curve", "learning_rates")
        }
        values["controller_overhead_share"] = self.controller_overhead_share
        values["validation_share"] = self.validation_share
        return values


def first_reaching(curve: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """Return the first curve point whose test accuracy is at least ``target``, or None."""
    for point in curve:
        if point.test_accuracy >= target:
            return point
    return None


def run_episode(
    env: LrControlEnv,
    controller: Controller,
    spec: RunSpec,
    test_split,
    eval_every: int,
    target_accuracy: float,
    deterministic: bool = True,
    on_test_point: TestPointCallback | None = None,
    on_decision: DecisionCallback | None = None,
) -> RunResult:
    """Train one run to the end of the budget (or divergence) and return its metrics.

    The test split is evaluated after ``reset`` (step 0), at the first decision at or after each
    multiple of ``eval_every`` SGD steps, and at the end. ``on_test_point`` receives each test point
    and ``on_decision`` the first SGD step and learning rates of each decision interval.
    """
    wall_time = 0.0
    test_eval_seconds = 0.0
    curve: list[CurvePoint] = []
    learning_rates: list[tuple[int, np.ndarray]] = []

    def evaluate_test() -> None:
        nonlocal test_eval_seconds
        start = time.perf_counter()
        loss, accuracy = env.trainer.evaluate(test_split)
        test_eval_seconds += time.perf_counter() - start
        point = CurvePoint(int(env.trainer.step), wall_time, float(loss), float(accuracy))
        curve.append(point)
        if on_test_point is not None:
            on_test_point(point)

    start = time.perf_counter()
    controller.reset(spec.seed)
    observation, info = env.reset(seed=spec.seed)
    wall_time += time.perf_counter() - start
    timings = [info["timing"]]
    evaluate_test()

    next_eval = eval_every
    done = False
    while not done:
        step_before = int(env.trainer.step)
        start = time.perf_counter()
        action = controller.act(observation)
        observation, _, terminated, truncated, info = env.step(action)
        wall_time += time.perf_counter() - start
        timings.append(info["timing"])
        learning_rates.append((step_before, info["learning_rates"].copy()))
        if on_decision is not None:
            on_decision(step_before, info["learning_rates"])

        done = terminated or truncated
        sgd_step = info["sgd_step"]
        if done or sgd_step >= next_eval:
            evaluate_test()
            next_eval = (sgd_step // eval_every + 1) * eval_every

    reached = first_reaching(curve, target_accuracy)
    train_seconds = sum(timing.train for timing in timings)
    validation_seconds = sum(timing.validation for timing in timings)
    observation_seconds = sum(
        max(0.0, timing.total - timing.train - timing.validation) for timing in timings
    )
    return RunResult(
        run_id=spec.run_id,
        method=spec.method,
        seed=spec.seed,
        base_lr=spec.base_lr,
        schedule=env.config.schedule,
        deterministic=deterministic,
        final_test_accuracy=curve[-1].test_accuracy,
        final_test_loss=curve[-1].test_loss,
        sgd_steps=int(info["sgd_step"]),
        diverged=bool(info["diverged"]),
        wall_time_s=wall_time,
        steps_to_target=None if reached is None else reached.sgd_step,
        seconds_to_target=None if reached is None else reached.wall_time_s,
        train_seconds=train_seconds,
        validation_seconds=validation_seconds,
        observation_seconds=observation_seconds,
        inference_seconds=controller.inference_seconds,
        test_eval_seconds=test_eval_seconds,
        curve=curve,
        learning_rates=learning_rates,
    )


# ---------------------------------------------------------------------------------------------
# The whole evaluation
# ---------------------------------------------------------------------------------------------


class _WandbRun:
    """One W&B run of an evaluation run; every method writes the same config keys."""

    def __init__(self, run, group_names: list[str]) -> None:
        self.run = run
        self.group_names = group_names
        if run is not None:
            run.define_metric("sgd_step")
            for prefix in ("test/*", "lr/*", "wall_time_s"):
                run.define_metric(prefix, step_metric="sgd_step")

    def log_test_point(self, point: CurvePoint) -> None:
        if self.run is None:
            return
        self.run.log(
            {
                "sgd_step": point.sgd_step,
                "wall_time_s": point.wall_time_s,
                "test/accuracy": point.test_accuracy,
                "test/loss": point.test_loss,
            }
        )

    def log_learning_rates(self, sgd_step: int, learning_rates: np.ndarray) -> None:
        if self.run is None:
            return
        values = {f"lr/{name}": float(lr) for name, lr in zip(self.group_names, learning_rates, strict=True)}
        self.run.log({"sgd_step": sgd_step, **values})

    def finish(self, result: RunResult | None) -> None:
        if self.run is None:
            return
        if result is not None:
            self.run.summary.update(_finite_or_none(result.scalars()))
        finish_wandb(self.run, exit_code=0 if result is not None else 1)


class Evaluation:
    """Runs every (learning rate, method, seed) combination of an :class:`EvaluationConfig`.

    Call :meth:`prepare` first: it builds the first environment, checks the policy's spaces against
    it and loads the test split, so every input problem surfaces before any training starts.
    """

    def __init__(self, settings: EvaluationConfig, checkpoint: Checkpoint, now: datetime.datetime | None = None):
        settings.validate()
        self.settings = settings
        self.checkpoint = checkpoint
        self.base_config = evaluation_env_config(checkpoint.env_config, settings)
        self.controller_schedule = checkpoint.env_config.schedule
        self.learning_rates = tuple(sorted(settings.lr_grid)) or (self.base_config.base_lr,)
        self.target_accuracy = (
            settings.target_accuracy
            if settings.target_accuracy is not None
            else default_target_accuracy(self.base_config.preset)
        )
        self.eval_every = settings.eval_every or default_eval_every(self.base_config)

        timestamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        self.out_dir = Path(settings.out) if settings.out else Path("results") / timestamp
        self.wandb_group = f"eval-{timestamp}"
        # Methods alternate within each seed, so a slow spell of a shared machine affects all of them.
        self.plan = [
            RunSpec(method, seed, base_lr)
            for base_lr in self.learning_rates
            for seed in settings.seeds
            for method in METHODS
            if method in settings.methods
        ]
        self.test_split = None
        self.device = ""
        self.group_names: list[str] = []
        self._envs: dict[tuple[str, float], LrControlEnv] = {}

    # Environments --------------------------------------------------------------------------

    def environment(self, method: str, base_lr: float) -> LrControlEnv:
        """Return the environment of ``method`` at ``base_lr``, building it on first use.

        Only the environments of one learning rate are kept, so at most two copies of the training
        data (constant and cosine schedule) live on the device at a time.
        """
        config = method_env_config(self.base_config, method, base_lr, self.controller_schedule)
        key = (config.schedule, base_lr)
        if key not in self._envs:
            for old_key in [k for k in self._envs if k[1] != base_lr]:
                self._envs.pop(old_key).close()
            self._envs[key] = LrControlEnv(config)
        return self._envs[key]

    def prepare(self) -> None:
        """Build the first environment, check the policy against it and load the test split.

        Raises CheckpointError for a space mismatch, ``lr_env.data.DataError`` for missing or bad
        data and ``ValueError`` for an invalid configuration or device.
        """
        trained_granularity = self.checkpoint.env_config.granularity
        if self.settings.granularity not in (None, trained_granularity):
            raise CheckpointError(
                f"--granularity {self.settings.granularity} does not match the policy, which was trained with "
                f"{trained_granularity} granularity; drop --granularity"
            )
        first = self.plan[0]
        env = self.environment(first.method, first.base_lr)
        check_spaces(self.checkpoint, env)
        self.group_names = list(env.group_names)
        self.device = str(env.device)
        self.test_split = load_test_split(env.config, env.device)
        self._warm_up(env)
        logger.info(
            "evaluating %s: %d runs, %d test images, target accuracy %.3f, test every %d SGD steps",
            self.settings.policy,
            len(self.plan),
            len(self.test_split),
            self.target_accuracy,
            self.eval_every,
        )

    def _warm_up(self, env: LrControlEnv) -> None:
        """Run one untimed decision and test batch, so one-time costs miss the first measured run.

        The first forward and backward passes pay for memory allocation and kernel selection (cuDNN
        autotuning on CUDA), and the first policy call for its own setup. The next ``reset`` builds
        a fresh trainer, so nothing of this decision carries over into a run.
        """
        observation, _ = env.reset(seed=0)
        if "controller" in self.settings.methods:
            self.checkpoint.predict(observation)
        env.step(np.zeros(env.n_groups, dtype=np.float32))
        env.trainer.evaluate(self.test_split, limit=env.config.eval_batch_size)

    def close(self) -> None:
        """Drop every environment and the test split."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self.test_split = None

    # Runs ----------------------------------------------------------------------------------

    def controller_for(self, method: str) -> Controller:
        if method == "controller":
            return PolicyController(self.checkpoint, deterministic=not self.settings.stochastic)
        return zero_controller(len(self.group_names))

    def wandb_config(self, spec: RunSpec, env: LrControlEnv) -> dict:
        """Return the W&B config of a run; the keys are the same for every method."""
        return {
            "evaluation": self.wandb_group,
            "method": spec.method,
            "seed": spec.seed,
            "base_lr": spec.base_lr,
            "schedule": env.config.schedule,
            "deterministic": spec.method != "controller" or not self.settings.stochastic,
            "policy": str(self.settings.policy),
            "algorithm": self.checkpoint.algorithm,
            "target_accuracy": self.target_accuracy,
            "eval_every": self.eval_every,
            "preset": env.config.preset,
            "total_steps": env.config.total_steps,
            "granularity": env.config.granularity,
            "env": config_to_dict(env.config),
        }

    def summary_wandb_config(self) -> dict:
        """Return the config of the group's ``summary`` run: the run keys, with no run's values."""
        config = self.base_config
        return {
            "evaluation": self.wandb_group,
            "method": "summary",
            "seed": None,
            "base_lr": None,
            "schedule": None,
            "deterministic": not self.settings.stochastic,
            "policy": str(self.settings.policy),
            "algorithm": self.checkpoint.algorithm,
            "target_accuracy": self.target_accuracy,
            "eval_every": self.eval_every,
            "preset": config.preset,
            "total_steps": config.total_steps,
            "granularity": config.granularity,
            "env": config_to_dict(config),
        }

    def run(self, spec: RunSpec) -> RunResult:
        """Train one run, recording it as one W&B run of the evaluation's group."""
        if self.test_split is None:
            raise RuntimeError("call prepare() before run()")
        env = self.environment(spec.method, spec.base_lr)
        controller = self.controller_for(spec.method)
        deterministic = spec.method != "controller" or not self.settings.stochastic
        wandb_run = _WandbRun(
            init_wandb(
                self.settings.wandb,
                self.settings.wandb_project,
                self.wandb_config(spec, env),
                group=self.wandb_group,
                job_type=spec.method,
                name=spec.run_id,
                directory=self.out_dir,
            ),
            self.group_names,
        )
        result = None
        try:
            result = run_episode(
                env,
                controller,
                spec,
                self.test_split,
                self.eval_every,
                self.target_accuracy,
                deterministic=deterministic,
                on_test_point=wandb_run.log_test_point,
                on_decision=wandb_run.log_learning_rates,
            )
        finally:
            wandb_run.finish(result)
        logger.info(
            "%s: final test accuracy %.4f, %d SGD steps in %.1f s%s",
            spec.run_id,
            result.final_test_accuracy,
            result.sgd_steps,
            result.wall_time_s,
            ", diverged" if result.diverged else "",
        )
        return result

    def run_all(self, progress: bool = True) -> list[RunResult]:
        """Run the whole plan in order, with a tqdm progress bar over runs when ``progress``."""
        results = []
        with tqdm(total=len(self.plan), desc="runs", unit="run", disable=not progress) as bar:
            for spec in self.plan:
                bar.set_postfix_str(spec.run_id)
                results.append(self.run(spec))
                bar.update(1)
        return results


# ---------------------------------------------------------------------------------------------
# Aggregation over seeds and over the learning-rate grid
# ---------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Mean, sample standard deviation (ddof=1), min and max of some runs' values."""

    mean: float | None
    std: float | None
    """None with fewer than two values."""
    min: float | None
    max: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stats:
        """Return the statistics of the values that are not None (None when there are none)."""
        present = np.asarray([v for v in values if v is not None], dtype=np.float64)
        if present.size == 0:
            return cls(None, None, None, None, 0)
        with np.errstate(invalid="ignore"):
            std = float(np.std(present, ddof=1)) if present.size > 1 else None
        return cls(float(np.mean(present)), std, float(present.min()), float(present.max()), int(present.size))


@dataclass
class MethodSummary:
    """One method at one initial learning rate, over seeds."""

    method: str
    base_lr: float
    schedule: str
    seeds: list[int]
    final_test_accuracy: Stats
    final_test_loss: Stats
    wall_time_s: Stats
    steps_to_target: Stats
    """Over the runs that reached the target only."""
    seconds_to_target: Stats
    """Over the runs that reached the target only."""
    reached_target: int
    diverged: int
    controller_overhead_share: Stats
    validation_share: Stats


@dataclass
class Comparison:
    """The controller against one baseline at one initial learning rate, on final test accuracy."""

    base_lr: float
    baseline: str
    controller_mean: float
    baseline_mean: float
    difference: float
    """Controller mean minus baseline mean."""
    seed_spread: float | None
    """The larger of the two methods' standard deviations over seeds; None with one seed."""
    exceeds_spread: bool | None
    """Whether ``|difference|`` is larger than ``seed_spread``; None with one seed."""
    seeds_higher: int
    """Seeds on which the controller's final accuracy is higher than the baseline's."""
    seeds_paired: int

    @property
    def outcome(self) -> str:
        """``higher``, ``lower`` or ``equal``: the controller's mean against the baseline's."""
        if self.difference > 0:
            return "higher"
        if self.difference < 0:
            return "lower"
        return "equal"


@dataclass
class GridRobustness:
    """One method's sensitivity to the initial learning rate, from its mean final accuracy per lr."""

    method: str
    learning_rates: list[float]
    mean_accuracies: list[float]
    best_lr: float
    spread: float
    """Max minus min of the mean final accuracies over the grid."""
    std: float
    """Population standard deviation (ddof=0) of the mean final accuracies over the grid."""
    within_one_point: int
    """Grid points whose mean final accuracy is within :data:`CLOSE_TO_BEST` of the best one."""


def summarize_methods(results: Sequence[RunResult]) -> list[MethodSummary]:
    """Group runs by (initial learning rate, method) and return their statistics over seeds."""
    keys = sorted({(r.base_lr, r.method) for r in results}, key=lambda k: (k[0], METHODS.index(k[1])))
    summaries = []
    for base_lr, method in keys:
        runs = [r for r in results if r.base_lr == base_lr and r.method == method]
        summaries.append(
            MethodSummary(
                method=method,
                base_lr=base_lr,
                schedule=runs[0].schedule,
                seeds=[r.seed for r in runs],
                final_test_accuracy=Stats.of([r.final_test_accuracy for r in runs]),
                final_test_loss=Stats.of([r.final_test_loss for r in runs]),
                wall_time_s=Stats.of([r.wall_time_s for r in runs]),
                steps_to_target=Stats.of([r.steps_to_target for r in runs]),
                seconds_to_target=Stats.of([r.seconds_to_target for r in runs]),
                reached_target=sum(r.steps_to_target is not None for r in runs),
                diverged=sum(r.diverged for r in runs),
                controller_overhead_share=Stats.of([r.controller_overhead_share for r in runs]),
                validation_share=Stats.of([r.validation_share for r in runs]),
            )
        )
    return summaries


def compare_to_baselines(results: Sequence[RunResult]) -> list[Comparison]:
    """Return the controller's comparison with each baseline at each initial learning rate."""
    comparisons = []
    for base_lr in sorted({r.base_lr for r in results}):
        controller = {r.seed: r for r in results if r.base_lr == base_lr and r.method == "controller"}
        if not controller:
            continue
        controller_stats = Stats.of([r.final_test_accuracy for r in controller.values()])
        for baseline in BASELINES:
            runs = {r.seed: r for r in results if r.base_lr == base_lr and r.method == baseline}
            if not runs:
                continue
            baseline_stats = Stats.of([r.final_test_accuracy for r in runs.values()])
            difference = controller_stats.mean - baseline_stats.mean
            if controller_stats.std is None or baseline_stats.std is None:
                spread, exceeds = None, None
            else:
                spread = max(controller_stats.std, baseline_stats.std)
                exceeds = abs(difference) > spread
            paired = sorted(set(controller) & set(runs))
            higher = sum(
                controller[s].final_test_accuracy > runs[s].final_test_accuracy for s in paired
            )
            comparisons.append(
                Comparison(
                    base_lr=base_lr,
                    baseline=baseline,
                    controller_mean=controller_stats.mean,
                    baseline_mean=baseline_stats.mean,
                    difference=difference,
                    seed_spread=spread,
                    exceeds_spread=exceeds,
                    seeds_higher=higher,
                    seeds_paired=len(paired),
                )
            )
    return comparisons


def grid_robustness(summaries: Sequence[MethodSummary]) -> list[GridRobustness]:
    """Return each method's spread of mean final accuracy over the learning-rate grid."""
    robustness = []
    for method in METHODS:
        rows = sorted((s for s in summaries if s.method == method), key=lambda s: s.base_lr)
        if not rows:
            continue
        accuracies = np.asarray([s.final_test_accuracy.mean for s in rows], dtype=np.float64)
        best = int(np.argmax(accuracies))
        robustness.append(
            GridRobustness(
                method=method,
                learning_rates=[s.base_lr for s in rows],
                mean_accuracies=accuracies.tolist(),
                best_lr=rows[best].base_lr,
                spread=float(accuracies.max() - accuracies.min()),
                std=float(np.std(accuracies)),
                within_one_point=int(np.sum(accuracies >= accuracies[best] - CLOSE_TO_BEST)),
            )
        )
    return robustness


def _finite_or_none(values: dict) -> dict:
    """Replace non-finite floats by None, because JSON and W&B summaries have no infinity."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in values.items()
    }


__all__ = [
    "CLOSE_TO_BEST",
    "Comparison",
    "CurvePoint",
    "DEFAULT_TARGET_ACCURACY",
    "Evaluation",
    "EvaluationConfig",
    "GridRobustness",
    "METHODS",
    "MethodSummary",
    "RunResult",
    "RunSpec",
    "Stats",
    "compare_to_baselines",
    "default_eval_every",
    "default_target_accuracy",
    "evaluation_env_config",
    "grid_robustness",
    "method_env_config",
    "run_episode",
    "summarize_methods",
]
