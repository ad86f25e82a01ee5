"""A controller training run: options, the resolved plan with its cost, and the training loop.

:class:`TrainConfig` contains every option of ``train_controller.py`` (each field's ``help`` metadata
is its documentation and its ``--help`` text). :func:`plan_run` resolves defaults, validates and
computes the budget without building an environment; :func:`train` builds the environments,
trains, writes checkpoints and returns how the run ended.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecNormalize

from agents.algorithms import (
    Hyperparameters,
    RunBudget,
    build_model,
    check_rollout,
    hyperparameters_from_model,
    load_model_for_training,
    minimum_timesteps,
    plan_budget,
    resolve_hyperparameters,
)
from agents.callbacks import (
    EpisodeStats,
    FlushLogger,
    NonFiniteGuard,
    NonFinitePolicyError,
    PeriodicCheckpoint,
    ProgressBar,
)
from agents.checkpoint import (
    ALGORITHMS,
    Checkpoint,
    group_names_for,
    load_checkpoint,
    non_finite_parameters,
    restore_vec_normalize,
    save_checkpoint,
)
from agents.tracking import WANDB_MODES, WandbOutputFormat, finish_wandb, init_wandb
from agents.vec_env import env_devices, make_vec_env, preload_data, validate_device
from lr_env.config import PRESETS, EnvConfig, config_to_dict, make_config
from lr_env.model import GRANULARITIES

logger = logging.getLogger(__name__)

# Default environment steps per preset, before rounding up to whole PPO rollouts.
# NOTE: the wall times below are estimates from the presets' episode times, not measurements of a
# full run. cpu: at about 40 s per 12-step episode on 2 cores, 512 steps (4 PPO updates of 128,
# about 43 episodes) take roughly 30 minutes. resnet18: at about 0.1 s per step on one H100-class
# GPU, 16,384 steps (128 updates, about 47 episodes of 352 steps) take roughly 30 minutes.
DEFAULT_TIMESTEPS = {"resnet18": 16_384, "cpu": 512, "smoke": 128}
FALLBACK_TIMESTEPS = 512

# Options whose value the checkpoint fixes; --resume rejects them. --learning-rate stays allowed,
# so a run can continue from its last good checkpoint with a lower learning rate.
RESUME_FIXED_OPTIONS = (
    "preset",
    "algorithm",
    "granularity",
    "batch_size",
    "gamma",
    "n_steps",
    "n_epochs",
    "gae_lambda",
    "log_std_init",
    "learning_starts",
    "net_arch",
)

EXIT_OK = 0
EXIT_NON_FINITE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _option(default, help: str, **cli):
    """Return a dataclass field whose metadata contains the help text and argparse settings."""
    return field(default=default, metadata={"help": help, **cli})


def parse_net_arch(text: str) -> tuple[int, ...]:
    """Parse ``"64,64"`` into ``(64, 64)``; raises ValueError for anything else."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated layer widths such as 64,64, got {text!r}") from None
    if not widths or any(width < 1 for width in widths):
        raise ValueError(f"layer widths must be positive integers, got {text!r}")
    return widths


@dataclass
class TrainConfig:
    """Options of one controller training run; None means the default described in ``help``."""

    preset: str | None = _option(
        None,
        "environment preset: resnet18 (GPU), cpu (about 40 s per episode on 2 cores) or smoke "
        "(seconds, for tests); default: resnet18 when CUDA is available, else cpu",
        choices=sorted(PRESETS),
    )
    algorithm: str = _option(
        "ppo", "RL algorithm of the meta-learner (default: %(default)s)", choices=sorted(ALGORITHMS)
    )
    total_timesteps: int | None = _option(
        None,
        "environment steps (controller decisions, summed over parallel environments) to train "
        "for; PPO rounds up to whole rollouts; with --resume, steps added to the checkpoint's "
        "count; default per preset: " + ", ".join(f"{name} {steps}" for name, steps in DEFAULT_TIMESTEPS.items()),
        metavar="STEPS",
    )
    n_envs: int | None = _option(
        None,
        "parallel environments; 1 runs in this process, more run in worker processes; "
        "default: the number of visible GPUs with CUDA, else 1",
        metavar="N",
    )
    device: str = _option(
        "auto",
        "device of the inner ResNet training: auto, cpu, cuda (environments round robin over "
        "the visible GPUs) or cuda:N (default: %(default)s)",
    )
    policy_device: str = _option("cpu", "device of the policy network (default: %(default)s)")
    seed: int = _option(0, "seed of the policy and of environment i, which gets SEED + i (default: %(default)s)")
    granularity: str | None = _option(
        None,
        "layer groups, one learning-rate multiplier each: block (10) or layer (21); default: the preset's (block)",
        choices=list(GRANULARITIES),
    )
    data_dir: str | None = _option(
        None,
        "directory of CIFAR-10 parquet shards; default: $LR_ENV_DATA_DIR, else the Hugging "
        "Face Hub dataset uoft-cs/cifar10",
        metavar="DIR",
    )
    output: str = _option(
        "ckpt.zip",
        "checkpoint file written during and after training (default: %(default)s)",
        metavar="PATH",
    )
    resume: str | None = _option(
        None,
        "continue training from this checkpoint: its timestep count, normalisation statistics, "
        "environment and hyperparameters (only --learning-rate may change)",
        metavar="PATH",
    )
    checkpoint_interval: int = _option(
        128,
        "environment steps between periodic checkpoints to --output (default: %(default)s)",
        metavar="STEPS",
    )
    learning_rate: float = _option(
        1e-3,
        "Adam learning rate of the policy and value networks (default: %(default)s)",
        metavar="LR",
    )
    batch_size: int = _option(128, "minibatch size, in transitions (default: %(default)s)", metavar="N")
    gamma: float = _option(
        1.0,
        "discount factor; 1.0 because the return is the total decrease of validation loss over "
        "the episode, so the end of inner training counts fully (default: %(default)s)",
    )
    n_steps: int | None = _option(
        None,
        "PPO: environment steps per environment per rollout; default: the smallest value that "
        "makes n_steps x n_envs a whole number of minibatches (128 for one environment)",
        metavar="N",
    )
    n_epochs: int = _option(10, "PPO: passes over each rollout per update (default: %(default)s)", metavar="N")
    gae_lambda: float = _option(0.95, "PPO: GAE lambda (default: %(default)s)", metavar="LAMBDA")
    log_std_init: float = _option(
        -1.0,
        "PPO: initial log standard deviation of the Gaussian policy; -1 gives std 0.37, so few "
        "early actions are clipped at +-1 (default: %(default)s)",
        metavar="LOG_STD",
    )
    learning_starts: int | None = _option(
        None,
        "SAC: environment steps of random actions before the first gradient step; default: --batch-size",
        metavar="STEPS",
    )
    net_arch: tuple[int, ...] = _option(
        (64, 64),
        "hidden layer widths of the MLP policy (and of its value or Q networks), comma-separated (default: 64,64)",
        metavar="WIDTHS",
        parse=parse_net_arch,
    )
    torch_threads: int | None = _option(
        None,
        "intra-op CPU threads per environment training on the CPU; default: torch's default for "
        "one environment, the cores divided among several",
        metavar="N",
    )
    wandb: str = _option(
        "offline",
        "W&B mode: offline (files only), online (falls back to offline without an API key or "
        "network) or disabled (no W&B files) (default: %(default)s)",
        choices=list(WANDB_MODES),
    )
    wandb_project: str = _option("lr-env", "W&B project (default: %(default)s)")
    wandb_dir: str | None = _option(
        None,
        "directory that receives the wandb/ folder; default: the directory of --output",
        metavar="DIR",
    )
    progress: bool = _option(True, "show the progress bar on stderr (default: on)")

    def to_dict(self) -> dict:
        """Return the options as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["net_arch"] = list(self.net_arch)
        return values


class UsageError(ValueError):
    """An invalid option value or combination of options."""


@dataclass
class RunPlan:
    """A validated run: resolved options, environment, hyperparameters and budget."""

    config: TrainConfig
    env_config: EnvConfig
    hyperparameters: Hyperparameters
    budget: RunBudget
    n_envs: int
    env_devices: list[str]
    output: Path
    wandb_dir: Path
    group_names: list[str]
    resume: Checkpoint | None = None
    start_timesteps: int = 0
    notes: list[str] = field(default_factory=list)
    """One-line announcements for the user, such as the preset chosen without CUDA."""


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _check_resume_options(config, explicit, checkpoint, hyperparameters) -> None:
    """Raise UsageError if an option given with --resume differs from the checkpoint's value."""
    stored = {
        "preset": checkpoint.env_config.preset,
        "algorithm": checkpoint.algorithm,
        "granularity": checkpoint.env_config.granularity,
    }
    for name in RESUME_FIXED_OPTIONS:
        if name not in explicit:
            continue
        requested = getattr(config, name)
        checkpoint_value = stored[name] if name in stored else getattr(hyperparameters, name)
        if isinstance(requested, list | tuple):
            requested, checkpoint_value = tuple(requested), tuple(checkpoint_value)
        if requested != checkpoint_value:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} {requested} differs from the checkpoint's {checkpoint_value}; --resume keeps the "
                f"checkpoint's settings, so drop {flag} (only --learning-rate may change)"
            )


def plan_run(config: TrainConfig, explicit: Sequence[str] = ()) -> RunPlan:
    """Resolve defaults, validate every option and compute the budget; builds no environment.

    ``explicit`` names the options the user set (used to reject conflicts with ``--resume``).
    Raises UsageError, BudgetError, CheckpointError or ValueError, each with a one-line message.
    """
    for name in ("total_timesteps", "n_envs", "checkpoint_interval", "torch_threads", "n_steps"):
        _check_positive(name, getattr(config, name))
    try:
        validate_device(config.device)
        validate_device(config.policy_device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if config.policy_device == "auto":
        raise UsageError("--policy-device must be cpu, cuda or cuda:N, not auto")

    notes: list[str] = []
    cuda = torch.cuda.is_available() and config.device != "cpu"
    n_envs = config.n_envs or (torch.cuda.device_count() if cuda else 1)

    checkpoint = None
    if config.resume is not None:
        checkpoint = load_checkpoint(config.resume, device="cpu")
        env_config = checkpoint.env_config.replace(data_dir=config.data_dir, device=config.device)
        hyperparameters = hyperparameters_from_model(checkpoint.model, checkpoint.algorithm)
        _check_resume_options(config, explicit, checkpoint, hyperparameters)
        if "learning_rate" in explicit:
            hyperparameters = dataclasses.replace(hyperparameters, learning_rate=config.learning_rate)
        if hyperparameters.algorithm == "ppo":
            check_rollout(hyperparameters.n_steps, n_envs, hyperparameters.batch_size)
        start_timesteps = checkpoint.num_timesteps
    else:
        preset = config.preset
        if preset is None:
            preset = "resnet18" if cuda else "cpu"
            if not cuda:
                notes.append("CUDA is not available: using the cpu preset (pass --preset to change)")
        overrides = {"data_dir": config.data_dir, "device": config.device}
        if config.granularity is not None:
            overrides["granularity"] = config.granularity
        env_config = make_config(preset, **overrides)
        hyperparameters = resolve_hyperparameters(
            config.algorithm,
            n_envs,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
            gamma=config.gamma,
            net_arch=tuple(config.net_arch),
            n_steps=config.n_steps,
            n_epochs=config.n_epochs,
            gae_lambda=config.gae_lambda,
            log_std_init=config.log_std_init,
            learning_starts=config.learning_starts,
        )
        start_timesteps = 0

    requested = config.total_timesteps
    if requested is None:
        default = DEFAULT_TIMESTEPS.get(env_config.preset, FALLBACK_TIMESTEPS)
        requested = max(default, minimum_timesteps(hyperparameters, n_envs))
    budget = plan_budget(hyperparameters, n_envs, requested, env_config)

    output = Path(config.output)
    if output.is_dir():
        raise UsageError(f"--output {output} is a directory; give a file path such as {output}/ckpt.zip")
    wandb_dir = Path(config.wandb_dir) if config.wandb_dir is not None else output.parent
    return RunPlan(
        config=config,
        env_config=env_config,
        hyperparameters=hyperparameters,
        budget=budget,
        n_envs=n_envs,
        env_devices=env_devices(config.device, n_envs),
        output=output,
        wandb_dir=wandb_dir,
        group_names=group_names_for(env_config),
        resume=checkpoint,
        start_timesteps=start_timesteps,
        notes=notes,
    )


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def describe_plan(plan: RunPlan) -> str:
    """Return the multi-line cost summary printed before training."""
    hp, budget, env = plan.hyperparameters, plan.budget, plan.env_config
    devices = ", ".join(sorted(set(plan.env_devices)))
    if hp.algorithm == "ppo":
        rollout = hp.n_steps * plan.n_envs
        steps_detail = (
            f"{_count(budget.policy_updates, 'rollout')} of {rollout} = n_steps {hp.n_steps} x "
            f"{_count(plan.n_envs, 'environment')}"
        )
        minibatches = rollout // hp.batch_size
        updates = (
            f"{_count(budget.policy_updates, 'PPO update')} ({hp.n_epochs} epochs x "
            f"{_count(minibatches, 'minibatch', 'minibatches')} of {hp.batch_size} = "
            f"{budget.gradient_steps} Adam steps)"
        )
    else:
        vector_steps = budget.env_steps // plan.n_envs
        steps_detail = f"{_count(vector_steps, 'step')} of {_count(plan.n_envs, 'environment')}"
        updates = (
            f"{_count(budget.policy_updates, 'SAC gradient step')} after {hp.learning_starts} "
            "random environment steps "
            f"(minibatch {hp.batch_size})"
        )
    start = f", continuing from step {plan.start_timesteps}" if plan.resume is not None else ""
    lines = [
        f"Run plan: preset {env.preset}, {env.granularity} granularity ({len(plan.group_names)} "
        f"groups), {hp.algorithm.upper()} with MlpPolicy {list(hp.net_arch)}, "
        f"{_count(plan.n_envs, 'environment')} on {devices}, "
        f"policy on {plan.config.policy_device}{start}",
        f"  environment steps: {budget.env_steps:,} ({steps_detail})",
        f"  SGD steps:         about {budget.sgd_steps:,} ({env.total_steps} per episode, "
        f"{env.decision_interval} per environment step)",
        f"  episodes:          about {budget.episodes:,.1f} ({env.n_decisions} environment steps "
        "each; diverged episodes end early)",
        f"  policy updates:    {updates}",
        f"  checkpoint:        {plan.output}, every {plan.config.checkpoint_interval} environment steps and at the end",
        f"  W&B:               {plan.config.wandb}"
        + ("" if plan.config.wandb == "disabled" else f", files under {plan.wandb_dir / 'wandb'}"),
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """Outcome of a training run."""

    status: str
    """``completed``, ``interrupted`` or ``non_finite``."""
    exit_code: int
    """0 completed, 130 interrupted (SIGINT), 1 non-finite policy."""
    message: str
    """One line for the user."""
    num_timesteps: int
    """Environment steps the model reached (summed over environments)."""
    episodes: int
    """Episodes finished in this run."""
    checkpoint: Path | None
    """Checkpoint written by this run, or None if it wrote none."""
    checkpoint_timesteps: int | None = None
    """Timestep count stored in ``checkpoint``."""


class _Saver:
    """Writes the run's checkpoint and remembers the last successful save."""

    def __init__(self, plan: RunPlan, model: BaseAlgorithm, vec_normalize: VecNormalize, stats):
        self.plan = plan
        self.model = model
        self.vec_normalize = vec_normalize
        self.stats = stats
        self.saved_path: Path | None = None
        self.saved_timesteps: int | None = None

    def __call__(self, status: str = "periodic") -> Path:
        plan = self.plan
        extra = {
            "status": status,
            "train_config": plan.config.to_dict(),
            "hyperparameters": plan.hyperparameters.to_dict(),
            "n_envs": plan.n_envs,
            "env_devices": plan.env_devices,
            "episodes_this_run": self.stats.episodes,
            "resumed_from": plan.config.resume,
        }
        path = save_checkpoint(plan.output, self.model, plan.env_config, self.vec_normalize, extra)
        self.saved_path = path
        self.saved_timesteps = int(self.model.num_timesteps)
        return path


def _wandb_config(plan: RunPlan) -> dict:
    return {
        "train": plan.config.to_dict(),
        "env": config_to_dict(plan.env_config),
        "hyperparameters": plan.hyperparameters.to_dict(),
        "budget": dataclasses.asdict(plan.budget),
        "n_envs": plan.n_envs,
        "env_devices": plan.env_devices,
        "group_names": plan.group_names,
        "start_timesteps": plan.start_timesteps,
    }


def _sb3_logger(run) -> Logger:
    """Return an SB3 logger that writes only to the W&B run (no stdout, no files)."""
    outputs = [WandbOutputFormat(run)] if run is not None else []
    return Logger(folder=None, output_formats=outputs)


def _build_model(plan: RunPlan, venv) -> tuple[BaseAlgorithm, VecNormalize]:
    config = plan.config
    if plan.resume is not None:
        vec_normalize = restore_vec_normalize(plan.resume, venv, training=True)
        model = load_model_for_training(
            plan.resume.path,
            plan.resume.algorithm,
            vec_normalize,
            seed=config.seed,
            device=config.policy_device,
            learning_rate=plan.hyperparameters.learning_rate,
        )
        return model, vec_normalize
    # Observations mix log gradient norms, log learning rates, losses and a fraction, on different
    # scales, so they are normalised. Rewards are not (norm_reward=False): they are already in nats
    # of validation loss (about 0.01 to 1 per decision, -10 on divergence), and VecNormalize would
    # divide them by the spread of a running discounted return that, with gamma = 1, keeps growing
    # over an episode and drifts during training; raw rewards also keep logged returns readable.
    vec_normalize = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=plan.hyperparameters.gamma)
    model = build_model(plan.hyperparameters, vec_normalize, seed=config.seed, device=config.policy_device)
    return model, vec_normalize


def train(plan: RunPlan, extra_callbacks: Sequence[BaseCallback] = ()) -> TrainResult:
    """Train the controller of ``plan`` and write its checkpoint; return how the run ended.

    KeyboardInterrupt (SIGINT) during training saves a checkpoint and returns status
    ``interrupted``. A NaN or infinite policy parameter or output stops training without saving,
    so the last good checkpoint stays, and returns status ``non_finite``. ``extra_callbacks`` run
    after the built-in ones (tests use them to inject faults). Raises DataError from
    ``lr_env.data`` if the dataset cannot be loaded.
    """
    config = plan.config
    venv = None
    run = None
    progress = None
    # Marks the W&B run as failed unless a branch below sets the outcome.
    exit_code = 1
    try:
        if plan.n_envs > 1:
            # Decode (or validate) the dataset once here, so a data problem raises DataError in
            # this process and the workers read the cache instead of decoding concurrently.
            preload_data(plan.env_config)
        venv = make_vec_env(plan.env_config, plan.n_envs, config.device, config.torch_threads)
        model, vec_normalize = _build_model(plan, venv)
        run = init_wandb(
            config.wandb,
            config.wandb_project,
            _wandb_config(plan),
            group=plan.env_config.preset,
            job_type="train",
            directory=plan.wandb_dir,
        )
        model.set_logger(_sb3_logger(run))

        stats = EpisodeStats(plan.group_names, run)
        saver = _Saver(plan, model, vec_normalize, stats)
        progress = ProgressBar(plan.start_timesteps + plan.budget.env_steps, stats, config.progress)
        callbacks = CallbackList(
            [
                NonFiniteGuard(),
                stats,
                PeriodicCheckpoint(saver, config.checkpoint_interval),
                progress,
                FlushLogger(),
                *extra_callbacks,
            ]
        )
        try:
            _learn(model, plan, callbacks)
        except KeyboardInterrupt:
            progress.close()
            exit_code = EXIT_INTERRUPTED
            return _save_after_interrupt(saver, model, stats)
        except NonFinitePolicyError as error:
            progress.close()
            exit_code = EXIT_NON_FINITE
            return _non_finite_result(plan, saver, model, stats, error)

        progress.close()
        path = saver("completed")
        exit_code = EXIT_OK
        return TrainResult(
            status="completed",
            exit_code=EXIT_OK,
            message=f"Training finished at environment step {model.num_timesteps}: "
            f"{_count(stats.episodes, 'episode')}, checkpoint saved to {path}",
            num_timesteps=int(model.num_timesteps),
            episodes=stats.episodes,
            checkpoint=path,
            checkpoint_timesteps=saver.saved_timesteps,
        )
    finally:
        if progress is not None:
            progress.close()
        finish_wandb(run, exit_code=exit_code)
        if venv is not None:
            _close_quietly(venv)


def _learn(model: BaseAlgorithm, plan: RunPlan, callbacks: CallbackList) -> None:
    """Run ``model.learn``; raise NonFinitePolicyError when a NaN parameter breaks the forward pass.

    With a NaN parameter, torch's Normal distribution rejects its NaN scale or mean with a
    ValueError inside SB3's rollout collection, before any callback receives the step.
    """
    try:
        model.learn(
            total_timesteps=plan.budget.env_steps,
            callback=callbacks,
            reset_num_timesteps=plan.resume is None,
            log_interval=1,
        )
    except ValueError as error:
        bad = non_finite_parameters(model)
        if not bad:
            raise
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        detail = f"parameters {bad} contain NaN or infinity; {first_line}"
        raise NonFinitePolicyError(int(model.num_timesteps), detail) from error


def _save_after_interrupt(saver: _Saver, model: BaseAlgorithm, stats: EpisodeStats) -> TrainResult:
    # A second Ctrl-C during this save would leave no checkpoint of the interrupted run, so SIGINT
    # is ignored until the file is written (the write itself is atomic).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        path = saver("interrupted")
    finally:
        signal.signal(signal.SIGINT, previous)
    return TrainResult(
        status="interrupted",
        exit_code=EXIT_INTERRUPTED,
        message=f"Interrupted at environment step {model.num_timesteps}; saved {path}",
        num_timesteps=int(model.num_timesteps),
        episodes=stats.episodes,
        checkpoint=path,
        checkpoint_timesteps=saver.saved_timesteps,
    )


def _non_finite_result(
    plan: RunPlan,
    saver: _Saver,
    model: BaseAlgorithm,
    stats: EpisodeStats,
    error: NonFinitePolicyError,
) -> TrainResult:
    if saver.saved_path is not None:
        kept = f"kept the last good checkpoint {saver.saved_path} (step {saver.saved_timesteps})"
        retry = f"--resume {saver.saved_path} "
    elif plan.resume is not None:
        kept = f"this run wrote no checkpoint; {plan.resume.path} is unchanged"
        retry = f"--resume {plan.resume.path} "
    else:
        kept = "this run wrote no checkpoint"
        retry = ""
    lower = plan.hyperparameters.learning_rate / 3
    message = (
        f"Stopped: the policy became non-finite at environment step {error.step} ({error.detail}); "
        f"{kept}. Try a lower learning rate, e.g. {retry}--learning-rate {lower:.2g}"
    )
    return TrainResult(
        status="non_finite",
        exit_code=EXIT_NON_FINITE,
        message=message,
        num_timesteps=int(model.num_timesteps),
        episodes=stats.episodes,
        checkpoint=saver.saved_path,
        checkpoint_timesteps=saver.saved_timesteps,
    )


def _close_quietly(venv) -> None:
    """Close the environments; after an interrupt a worker may already be gone, which is logged."""
    try:
        venv.close()
    except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as error:
        logger.warning("closing the environments failed: %s: %s", type(error).__name__, error)


__all__ = [
    "DEFAULT_TIMESTEPS",
    "EXIT_INTERRUPTED",
    "EXIT_NON_FINITE",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunPlan",
    "TrainConfig",
    "TrainResult",
    "UsageError",
    "describe_plan",
    "plan_run",
    "train",
]
