"""Weights & Biases runs that cannot fail training and wait at most ``INIT_TIMEOUT_S`` to start.

The mode is decided before the first ``wandb.init``. ``disabled`` never imports or starts W&B and
writes no files. ``online`` without credentials falls back to ``offline``. An exception from
``wandb.init`` falls back to ``offline`` and then to no run at all. Each fallback logs one warning.
Run files go under ``<directory>/wandb``.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from stable_baselines3.common.logger import KVWriter

logger = logging.getLogger(__name__)

WANDB_MODES = ("offline", "online", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"
# Seconds wandb.init waits for its service and the server before it raises (wandb 0.31: 90 s).
INIT_TIMEOUT_S = 30.0


def has_wandb_credentials() -> bool:
    """Return whether a W&B API key is configured, without contacting any server.

    Checks ``$WANDB_API_KEY``, ``$WANDB_IDENTITY_TOKEN_FILE`` and the netrc file (``$NETRC`` or
    ``~/.netrc``) entry for the host of ``$WANDB_BASE_URL`` (default api.wandb.ai), the sources
    that wandb 0.31 reads at ``wandb.init``.
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).hostname
    netrc_path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    if not host or not netrc_path.is_file():
        return False
    try:
        return netrc.netrc(str(netrc_path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError) as error:
        logger.warning("could not read %s for W&B credentials: %s", netrc_path, error)
        return False


def init_wandb(
    mode: str,
    project: str,
    config: dict[str, Any],
    *,
    group: str | None = None,
    job_type: str | None = None,
    name: str | None = None,
    directory: str | os.PathLike = ".",
):
    """Start a W&B run in ``mode`` and return it, or return None when W&B is off or cannot start.

    ``mode`` is one of :data:`WANDB_MODES`; anything else raises ``ValueError``. The run's files
    go under ``directory``/wandb (``directory`` is created if needed). A missing API key, a
    missing network or a failing W&B service raises nothing: each logs one warning and falls back
    to ``offline``, then to None.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"W&B mode must be one of {WANDB_MODES}, got {mode!r}")
    if mode == "disabled":
        logger.info("W&B disabled: no run is recorded")
        return None
    if mode == "online" and not has_wandb_credentials():
        logger.warning(
            "W&B online mode requested but no API key is configured (set WANDB_API_KEY or run "
            "`wandb login`); recording the run offline instead"
        )
        mode = "offline"

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    attempts = ["online", "offline"] if mode == "online" else ["offline"]
    for attempt in attempts:
        run = _start_run(attempt, project, config, group, job_type, name, directory)
        if run is not None:
            logger.info("W&B %s run %s in %s", attempt, run.id, run.dir)
            return run
    logger.warning("W&B could not start a run; training continues without W&B")
    return None


def _start_run(mode, project, config, group, job_type, name, directory: Path):
    """Return a started run in ``mode``, or None after logging the exception as a warning."""
    try:
        import wandb

        settings = wandb.Settings(
            init_timeout=INIT_TIMEOUT_S,
            # The tqdm progress bar redraws the terminal line many times per second; capturing the
            # console would fill the run's output log with those redraws.
            console="off",
            # W&B's banner and run summary would break up the progress bar; the run directory is
            # logged instead, and README.md explains `wandb sync`.
            quiet=True,
        )
        return wandb.init(
            project=project,
            config=config,
            group=group,
            job_type=job_type,
            name=name,
            dir=str(directory),
            mode=mode,
            settings=settings,
        )
    except Exception as error:  # wandb raises its own errors, timeouts and OS errors here.
        logger.warning("W&B %s init failed: %s: %s", mode, type(error).__name__, error)
        return None


def finish_wandb(run, exit_code: int | None = None) -> None:
    """Finish ``run`` (no effect for None), logging instead of raising if W&B fails."""
    if run is None:
        return
    try:
        run.finish(exit_code=exit_code)
    # A failing W&B service must not turn a finished training into an error.
    except Exception as error:
        logger.warning("W&B run %s failed to finish: %s: %s", run.id, type(error).__name__, error)


class WandbOutputFormat(KVWriter):
    """An SB3 logger output that sends each ``dump`` to a W&B run at step ``num_timesteps``.

    SB3 keys are already namespaced (``train/…``, ``rollout/…``, ``time/…``). Values that are not
    real numbers (SB3 ``Video``, ``Figure`` and ``Image`` records) and keys excluded for
    ``wandb`` are skipped.
    """

    def __init__(self, run) -> None:
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict, step: int = 0) -> None:
        metrics = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "wandb" in excluded:
                continue
            if hasattr(value, "item") and np.ndim(value) == 0:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = value
        if metrics:
            self.run.log(metrics, step=int(step))

    def close(self) -> None:
        """Leave the run open: :func:`finish_wandb` finishes it."""


__all__ = [
    "WANDB_MODES",
    "WandbOutputFormat",
    "finish_wandb",
    "has_wandb_credentials",
    "init_wandb",
]
