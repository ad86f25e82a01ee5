"""Self-describing controller checkpoints: one SB3 ``.zip`` that also carries its environment.

A checkpoint is the zip archive that ``model.save`` writes, plus two extra members:

- ``lr_controller.json``: metadata (algorithm, environment config, layer-group names, observation
  layout, package versions, timesteps, creation time, command line, caller's extra values);
- ``vec_normalize.json``: the ``VecNormalize`` settings and running statistics, if training used it.

The statistics are stored as JSON rather than as a pickled ``VecNormalize``, so that reading a
checkpoint's normalisation never unpickles code. ``load_from_zip_file`` in stable-baselines3 2.x
reads only the ``data`` member and the ``*.pth`` members, so it ignores both extra members.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import math
import os
import shlex
import sys
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from lr_env.config import PRESETS, EnvConfig, config_from_dict, config_to_dict
from lr_env.model import group_names

logger = logging.getLogger(__name__)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}

METADATA_MEMBER = "lr_controller.json"
VEC_NORMALIZE_MEMBER = "vec_normalize.json"
FORMAT_VERSION = 1
# Members that every model written by ``BaseAlgorithm.save`` contains.
_SB3_MEMBERS = ("data", "policy.pth")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, read or used; the message names the path and problem."""


@dataclass
class Checkpoint:
    """A loaded controller checkpoint: the SB3 model and what rebuilds its environment."""

    model: BaseAlgorithm
    """The loaded SB3 model (PPO or SAC), on the device passed to :func:`load_checkpoint`."""
    algorithm: str
    """Key of the algorithm in :data:`ALGORITHMS`: ``ppo`` or ``sac``."""
    env_config: EnvConfig
    """The environment configuration the model was trained on, rebuilt from the stored dict."""
    obs_rms: RunningMeanStd | None
    """Observation statistics from ``VecNormalize``; None if training did not normalise."""
    clip_obs: float
    """Bound on the absolute value of a normalised observation (``VecNormalize.clip_obs``)."""
    epsilon: float
    """Added to the variance before the square root (``VecNormalize.epsilon``)."""
    metadata: dict
    """Every stored metadata value; see :func:`build_metadata` for the keys."""
    path: Path | None = None
    """File the checkpoint was read from."""
    vec_normalize_state: dict | None = field(default=None, repr=False)
    """Stored ``VecNormalize`` settings and statistics, for :func:`restore_vec_normalize`."""

    @property
    def num_timesteps(self) -> int:
        """Environment steps the model was trained for, summed over all parallel environments."""
        return int(self.model.num_timesteps)

    @property
    def group_names(self) -> list[str]:
        """Layer-group names, in the order of the action and observation entries."""
        return list(self.metadata["group_names"])

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """Apply the training-time ``VecNormalize`` transform to raw observations (or none)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.obs_rms is None:
            return obs
        scaled = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Return the action, shape (n_groups,), for the raw observation of one environment."""
        action, _ = self.model.predict(self.normalize_obs(obs), deterministic=deterministic)
        return np.asarray(action, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def group_names_for(config: EnvConfig) -> list[str]:
    """Return the layer-group names of ``config.granularity`` without building the environment."""
    return group_names(config.granularity)


def observation_layout(group_names: list[str]) -> list[dict[str, Any]]:
    """Return the observation's index ranges, as ``LrControlEnv`` documents them.

    Each entry has ``name``, ``start``, ``stop`` (exclusive), ``transform`` and ``description``.
    """
    n_groups = len(group_names)
    return [
        {
            "name": "log_grad_norm",
            "start": 0,
            "stop": n_groups,
            "transform": "natural log (floor 1e-12)",
            "description": "gradient L2 norm per group, mean over the last interval, before weight decay and momentum",
        },
        {
            "name": "log_learning_rate",
            "start": n_groups,
            "stop": 2 * n_groups,
            "transform": "natural log",
            "description": "learning rate each group trains with next",
        },
        {
            "name": "log_train_loss",
            "start": 2 * n_groups,
            "stop": 2 * n_groups + 1,
            "transform": "natural log (floor 1e-12)",
            "description": "mean training loss over the last interval",
        },
        {
            "name": "val_loss",
            "start": 2 * n_groups + 1,
            "stop": 2 * n_groups + 2,
            "transform": "none",
            "description": "validation loss on the reward subset",
        },
        {
            "name": "budget_fraction",
            "start": 2 * n_groups + 2,
            "stop": 2 * n_groups + 3,
            "transform": "none, in [0, 1]",
            "description": "fraction of the SGD budget used",
        },
    ]


def observation_names(group_names: list[str]) -> list[str]:
    """Return one name per observation entry, e.g. ``log_grad_norm/stem``."""
    return [
        *(f"log_grad_norm/{name}" for name in group_names),
        *(f"log_learning_rate/{name}" for name in group_names),
        "log_train_loss",
        "val_loss",
        "budget_fraction",
    ]


def package_versions() -> dict[str, str]:
    """Return the versions of the packages that define the model, environment and file format."""
    import gymnasium
    import stable_baselines3
    import torch

    import lr_env

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "lr_env": lr_env.__version__,
    }


def preset_overrides(config: EnvConfig) -> dict[str, Any]:
    """Return the fields of ``config`` that differ from its preset (all fields if it has none)."""
    values = config_to_dict(config)
    if config.preset not in PRESETS:
        return values
    preset_values = config_to_dict(PRESETS[config.preset])
    return {key: value for key, value in values.items() if preset_values.get(key) != value}


def algorithm_name(model: BaseAlgorithm) -> str:
    """Return the :data:`ALGORITHMS` key of ``model``'s class; raise CheckpointError otherwise."""
    for name, algorithm_class in ALGORITHMS.items():
        if type(model) is algorithm_class:
            return name
    raise CheckpointError(f"cannot save a {type(model).__name__} model; supported algorithms: {sorted(ALGORITHMS)}")


def build_metadata(model: BaseAlgorithm, env_config: EnvConfig, extra: dict | None = None) -> dict:
    """Return the metadata dict stored in a checkpoint.

    Keys: ``format_version``, ``algorithm``, ``num_timesteps``, ``env_config`` (every field),
    ``env_preset``, ``env_overrides`` (fields that differ from the preset), ``granularity``,
    ``group_names``, ``observation_layout``, ``observation_names``, ``observation_shape``,
    ``action_shape``, ``versions``, ``created`` (ISO 8601, UTC), ``command_line`` and ``extra``.
    """
    group_names = group_names_for(env_config)
    return {
        "format_version": FORMAT_VERSION,
        "algorithm": algorithm_name(model),
        "num_timesteps": int(model.num_timesteps),
        "env_config": config_to_dict(env_config),
        "env_preset": env_config.preset,
        "env_overrides": preset_overrides(env_config),
        "granularity": env_config.granularity,
        "group_names": group_names,
        "observation_layout": observation_layout(group_names),
        "observation_names": observation_names(group_names),
        "observation_shape": list(model.observation_space.shape),
        "action_shape": list(model.action_space.shape),
        "versions": package_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command_line": shlex.join(sys.argv),
        "extra": dict(extra or {}),
    }


# ---------------------------------------------------------------------------------------------
# VecNormalize statistics
# ---------------------------------------------------------------------------------------------


def _rms_to_dict(rms: RunningMeanStd) -> dict[str, Any]:
    return {
        "mean": np.asarray(rms.mean, dtype=np.float64).tolist(),
        "var": np.asarray(rms.var, dtype=np.float64).tolist(),
        "count": float(rms.count),
    }


def _rms_from_dict(values: dict[str, Any]) -> RunningMeanStd:
    mean = np.asarray(values["mean"], dtype=np.float64)
    rms = RunningMeanStd(shape=mean.shape)
    rms.mean = mean
    rms.var = np.asarray(values["var"], dtype=np.float64)
    rms.count = float(values["count"])
    return rms


def vec_normalize_state(vec_normalize: VecNormalize) -> dict[str, Any]:
    """Return the settings and running statistics of ``vec_normalize`` as a JSON-ready dict."""
    if isinstance(vec_normalize.obs_rms, dict):
        raise CheckpointError("VecNormalize with a Dict observation space is not supported")
    return {
        "norm_obs": bool(vec_normalize.norm_obs),
        "norm_reward": bool(vec_normalize.norm_reward),
        "clip_obs": float(vec_normalize.clip_obs),
        "clip_reward": float(vec_normalize.clip_reward),
        "gamma": float(vec_normalize.gamma),
        "epsilon": float(vec_normalize.epsilon),
        "obs_rms": _rms_to_dict(vec_normalize.obs_rms) if vec_normalize.norm_obs else None,
        "ret_rms": _rms_to_dict(vec_normalize.ret_rms),
    }


def restore_vec_normalize(checkpoint: Checkpoint, venv: VecEnv, training: bool = True) -> VecNormalize:
    """Wrap ``venv`` in a ``VecNormalize`` with the checkpoint's settings and statistics.

    Raises CheckpointError if the checkpoint was trained without observation normalisation.
    """
    state = checkpoint.vec_normalize_state
    if state is None:
        raise CheckpointError(f"{checkpoint.path}: checkpoint has no VecNormalize statistics")
    vec_normalize = VecNormalize(
        venv,
        training=training,
        norm_obs=state["norm_obs"],
        norm_reward=state["norm_reward"],
        clip_obs=state["clip_obs"],
        clip_reward=state["clip_reward"],
        gamma=state["gamma"],
        epsilon=state["epsilon"],
    )
    if state["obs_rms"] is not None:
        obs_rms = _rms_from_dict(state["obs_rms"])
        if obs_rms.mean.shape != venv.observation_space.shape:
            raise CheckpointError(
                f"{checkpoint.path}: stored observation statistics have shape {obs_rms.mean.shape} "
                f"but the environment's observations have shape {venv.observation_space.shape}"
            )
        vec_normalize.obs_rms = obs_rms
    vec_normalize.ret_rms = _rms_from_dict(state["ret_rms"])
    return vec_normalize


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def non_finite_parameters(model: BaseAlgorithm) -> list[str]:
    """Return the names of the policy's parameters that contain NaN or infinity."""
    return [
        name for name, parameter in model.policy.named_parameters() if not bool(parameter.detach().isfinite().all())
    ]


def save_checkpoint(
    path: str | os.PathLike,
    model: BaseAlgorithm,
    env_config: EnvConfig,
    vec_normalize: VecNormalize | None,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically and return the path.

    The archive is built in memory, written to a temporary file in the same directory and moved
    over ``path`` with ``os.replace``. An interrupted save therefore leaves no truncated file, and
    an existing checkpoint stays intact until the new one is complete. ``path`` is used as given
    (no ``.zip`` suffix is added). Raises CheckpointError without writing anything if a policy
    parameter is NaN or infinite, so a diverged model never replaces a good checkpoint.
    """
    path = Path(path)
    bad = non_finite_parameters(model)
    if bad:
        raise CheckpointError(f"not saving {path}: policy parameters {bad} contain NaN or infinity")

    metadata = build_metadata(model, env_config, extra)
    buffer = io.BytesIO()
    model.save(buffer)
    with zipfile.ZipFile(buffer, mode="a") as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(metadata, indent=2, allow_nan=False))
        if vec_normalize is not None:
            state = vec_normalize_state(vec_normalize)
            archive.writestr(VEC_NORMALIZE_MEMBER, json.dumps(state, allow_nan=False))

    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file sits in the same directory, so os.replace is an atomic rename within one
    # file system. open(..., "xb") applies the umask, whereas tempfile.mkstemp would force mode 0600.
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp_path, "xb") as temp_file:
            temp_file.write(buffer.getvalue())
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    logger.info("saved checkpoint %s at %d timesteps", path, metadata["num_timesteps"])
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _read_members(path: Path) -> tuple[dict, dict | None]:
    """Return the metadata and the VecNormalize state of the archive at ``path``."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint is not a zip file: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [member for member in _SB3_MEMBERS if member not in names]
            if missing:
                raise CheckpointError(f"{path} is not a stable-baselines3 model: the zip lacks member(s) {missing}")
            if METADATA_MEMBER not in names:
                raise CheckpointError(
                    f"{path} is a stable-baselines3 model without the {METADATA_MEMBER} member; "
                    "only checkpoints written by train_controller.py can be loaded"
                )
            metadata = json.loads(archive.read(METADATA_MEMBER))
            state = None
            if VEC_NORMALIZE_MEMBER in names:
                state = json.loads(archive.read(VEC_NORMALIZE_MEMBER))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from error
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: {METADATA_MEMBER} must contain a JSON object")
    return metadata, state


def _warn_on_version_change(path: Path, stored: dict) -> None:
    current = package_versions()
    for package in ("stable_baselines3", "torch", "gymnasium", "lr_env"):
        if package in stored and stored[package] != current[package]:
            logger.warning(
                "%s was saved with %s %s; this process runs %s",
                path,
                package,
                stored[package],
                current[package],
            )


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`, with its tensors on ``device``.

    A model saved on a GPU loads on a CPU-only machine with the default ``device="cpu"``, because
    stable-baselines3 passes ``device`` to ``torch.load`` as the map location. Raises
    CheckpointError for a missing file, a file that is not a zip, a zip that is not an SB3 model
    or lacks the metadata, an algorithm outside :data:`ALGORITHMS` and an invalid stored config.
    """
    path = Path(path)
    metadata, state = _read_members(path)

    algorithm = metadata.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise CheckpointError(f"{path}: unknown algorithm {algorithm!r}; supported algorithms: {sorted(ALGORITHMS)}")
    try:
        env_config = config_from_dict(metadata["env_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid stored environment config: {error}") from error
    _warn_on_version_change(path, metadata.get("versions", {}))

    try:
        model = ALGORITHMS[algorithm].load(path, device=device)
    except Exception as error:  # SB3 raises assertion, key, value and pickle errors alike.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: failed to load the {algorithm} model: {message}") from error

    obs_rms = None
    clip_obs, epsilon = math.inf, 1e-8
    if state is not None:
        clip_obs, epsilon = float(state["clip_obs"]), float(state["epsilon"])
        if state.get("obs_rms") is not None:
            obs_rms = _rms_from_dict(state["obs_rms"])
    return Checkpoint(
        model=model,
        algorithm=algorithm,
        env_config=env_config,
        obs_rms=obs_rms,
        clip_obs=clip_obs,
        epsilon=epsilon,
        metadata=metadata,
        path=path,
        vec_normalize_state=state,
    )


def _describe_box(space) -> str:
    shape = getattr(space, "shape", None)
    return f"{type(space).__name__} with shape {shape}"


def check_spaces(checkpoint: Checkpoint, env) -> None:
    """Raise CheckpointError if ``env``'s observation or action space differs from the model's.

    ``env`` is a Gymnasium environment or a VecEnv. Shapes and bounds must match exactly.
    """
    pairs = (
        ("observation", checkpoint.model.observation_space, env.observation_space),
        ("action", checkpoint.model.action_space, env.action_space),
    )
    for kind, expected, actual in pairs:
        if type(expected) is not type(actual) or expected.shape != actual.shape:
            raise CheckpointError(
                f"{checkpoint.path}: the model's {kind} space is {_describe_box(expected)} but the "
                f"environment's is {_describe_box(actual)}"
            )
        low_equal = np.array_equal(getattr(expected, "low", None), getattr(actual, "low", None))
        high_equal = np.array_equal(getattr(expected, "high", None), getattr(actual, "high", None))
        if not (low_equal and high_equal):
            raise CheckpointError(
                f"{checkpoint.path}: the model's {kind} bounds [{expected.low.min()}, "
                f"{expected.high.max()}] differ from the environment's [{actual.low.min()}, "
                f"{actual.high.max()}] (shape {expected.shape})"
            )


__all__ = [
    "ALGORITHMS",
    "Checkpoint",
    "CheckpointError",
    "check_spaces",
    "load_checkpoint",
    "non_finite_parameters",
    "restore_vec_normalize",
    "save_checkpoint",
]
