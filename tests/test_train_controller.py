"""Tests of train_controller.py and agents.training, agents.algorithms, agents.callbacks,
agents.tracking and agents.vec_env.

Training tests run real PPO on the smoke preset with the synthetic CIFAR-10 copy, with rollouts of
4 environment steps (minibatch 4), so a run of 8 steps takes about 10 s on a 2-core CPU. Command
line tests start the script in a subprocess, which adds about 7 s of imports each.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import train_controller
from agents.algorithms import BudgetError, default_n_steps, resolve_hyperparameters
from agents.checkpoint import METADATA_MEMBER, load_checkpoint, non_finite_parameters
from agents.tracking import init_wandb
from agents.training import (
    EXIT_INTERRUPTED,
    EXIT_NON_FINITE,
    TrainConfig,
    UsageError,
    describe_plan,
    plan_run,
    train,
)
from agents.vec_env import env_devices, env_seeds

SCRIPT = Path(__file__).resolve().parents[1] / "train_controller.py"
SMOKE_ARGS = ["--preset", "smoke", "--n-steps", "4", "--batch-size", "4", "--n-epochs", "2", "--torch-threads", "1"]
SMOKE_OPTIONS = {"preset": "smoke", "n_steps": 4, "batch_size": 4, "n_epochs": 2, "torch_threads": 1}


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """In-process training sets torch's thread count; later tests get the original back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def smoke_config(tmp_path: Path, **overrides) -> TrainConfig:
    """Return a smoke-preset config that writes into ``tmp_path``, without W&B or progress bar."""
    values = {
        **SMOKE_OPTIONS,
        "output": str(tmp_path / "ckpt.zip"),
        "wandb": "disabled",
        "progress": False,
        "checkpoint_interval": 4,
        **overrides,
    }
    return TrainConfig(**values)


def run_cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def checkpoint_status(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(METADATA_MEMBER))["extra"]["status"]


# ---------------------------------------------------------------------------------------------
# Options, plan and budget (no environment)
# ---------------------------------------------------------------------------------------------


def test_help_lists_every_option(tmp_path):
    result = run_cli(["--help"], tmp_path, timeout=60)

    assert result.returncode == 0
    for config_field in dataclasses.fields(TrainConfig):
        assert "--" + config_field.name.replace("_", "-") in result.stdout
    for text in ("default: ppo", "default: ckpt.zip", "default: 0.001", "default: 128", "default: 1.0"):
        assert text in result.stdout
    assert "default: offline" in result.stdout


def test_small_budget_exits_2_in_one_line(tmp_path):
    result = run_cli([*SMOKE_ARGS, "--total-timesteps", "3"], tmp_path, timeout=60)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "too small for one PPO update: the minimum is 4" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ckpt.zip").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SMOKE_ARGS, "--n-envs", "0"], "--n-envs must be a positive integer, got 0"),
        ([*SMOKE_ARGS, "--net-arch", "64,x"], "expected comma-separated layer widths"),
        ([*SMOKE_ARGS, "--wandb", "sometimes"], "invalid choice: 'sometimes'"),
        ([*SMOKE_ARGS, "--device", "tpu"], "device 'tpu'"),
        ([*SMOKE_ARGS, "--n-steps", "3"], "not a whole number of minibatches of 4"),
        ([*SMOKE_ARGS, "--algorithm", "sac", "--total-timesteps", "8"], "SAC update: the minimum is 9"),
        (["--resume", "missing.zip"], "checkpoint not found: missing.zip"),
        (["--resume", "missing.zip", "--gamma", "0.9"], "checkpoint not found: missing.zip"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    argv = [*args, "--output", str(tmp_path / "ckpt.zip")]
    try:
        code = train_controller.main(argv)
    except SystemExit as exit_:
        code = exit_.code

    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr
    assert stderr.count("\n") == 1


def test_missing_data_dir_exits_2(tmp_path, capsys):
    missing = tmp_path / "no-such-dir"
    code = train_controller.main([*SMOKE_ARGS, "--output", str(tmp_path / "ckpt.zip"), "--data-dir", str(missing)])

    stderr = capsys.readouterr().err
    assert code == 2
    assert "CIFAR-10 data directory not found" in stderr
    assert str(missing) in stderr
    assert stderr.count("\n") == 1
    assert not (tmp_path / "wandb").exists()


def test_bad_resume_checkpoint_exits_2(tmp_path, capsys):
    not_a_zip = tmp_path / "ckpt.zip"
    not_a_zip.write_text("not a checkpoint")

    code = train_controller.main(["--resume", str(not_a_zip)])

    assert code == 2
    assert f"checkpoint is not a zip file: {not_a_zip}" in capsys.readouterr().err


def test_default_preset_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    plan = plan_run(TrainConfig())

    assert plan.env_config.preset == "cpu"
    assert plan.notes == ["CUDA is not available: using the cpu preset (pass --preset to change)"]
    assert plan.n_envs == 1
    assert plan.env_devices == ["cpu"]
    assert plan.hyperparameters.n_steps == 128
    assert plan.hyperparameters.learning_rate == 1e-3
    assert plan.hyperparameters.gamma == 1.0
    assert plan.budget.env_steps == 512
    assert plan.budget.policy_updates == 4
    assert plan.budget.episodes == pytest.approx(512 / 12)
    assert plan.budget.sgd_steps == 5120


def test_default_preset_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    plan = plan_run(TrainConfig())

    assert plan.env_config.preset == "resnet18"
    assert plan.notes == []
    assert plan.n_envs == 2
    assert plan.env_devices == ["cuda:0", "cuda:1"]
    assert plan.hyperparameters.n_steps == 64
    assert plan.budget.env_steps == 16_384
    assert plan.config.policy_device == "cpu"


def test_env_devices_round_robin(monkeypatch):
    assert env_devices("cpu", 3) == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert env_devices("auto", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert env_devices("cuda", 2) == ["cuda:0", "cuda:1"]
    assert env_devices("cuda:1", 2) == ["cuda:1", "cuda:1"]
    assert len(set(env_seeds(7, 4))) == 4


@pytest.mark.parametrize("n_envs", [1, 2, 3, 5, 8, 12])
def test_default_n_steps_whole_minibatches(n_envs):
    n_steps = default_n_steps(128, n_envs)
    rollout = n_steps * n_envs

    assert rollout >= 128
    assert rollout % 128 == 0


def test_sac_budget_minimum():
    hyperparameters = resolve_hyperparameters("sac", 1, batch_size=128)
    assert hyperparameters.learning_starts == 128

    with pytest.raises(BudgetError, match="the minimum is 257"):
        plan_run(TrainConfig(preset="smoke", algorithm="sac", total_timesteps=256))
    plan = plan_run(TrainConfig(preset="smoke", algorithm="sac", total_timesteps=257))
    assert plan.budget.policy_updates == 257 - 128


def test_plan_prints_costs(tmp_path):
    plan = plan_run(smoke_config(tmp_path, total_timesteps=10))
    text = describe_plan(plan)

    assert plan.budget.env_steps == 12  # rounded up to whole rollouts of 4
    assert "environment steps: 12 (3 rollouts of 4 = n_steps 4 x 1 environment)" in text
    assert "SGD steps:         about 120" in text
    assert "episodes:          about 4.0 (3 environment steps each" in text
    assert "policy updates:    3 PPO updates (2 epochs x 1 minibatch of 4 = 6 Adam steps)" in text


def test_wandb_disabled_returns_none(tmp_path):
    assert init_wandb("disabled", "project", {"a": 1}, directory=tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_wandb_online_without_key_falls_back(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")

    run = init_wandb("online", "project", {"a": 1}, directory=tmp_path)
    try:
        assert run is not None
        assert run.settings.mode == "offline"
    finally:
        run.finish()
    assert "no API key is configured" in caplog.text
    assert list((tmp_path / "wandb").glob("offline-run-*"))


# ---------------------------------------------------------------------------------------------
# Training on the smoke preset
# ---------------------------------------------------------------------------------------------


def test_cli_end_to_end(tmp_path, synthetic_data):
    args = [*SMOKE_ARGS, "--total-timesteps", "8", "--checkpoint-interval", "4", "--wandb", "offline"]
    result = run_cli(args, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Run plan: preset smoke" in result.stdout
    assert "policy updates:    2 PPO updates" in result.stdout
    assert "Training finished at environment step 8" in result.stdout
    checkpoint = load_checkpoint(tmp_path / "ckpt.zip")
    assert checkpoint.num_timesteps == 8
    assert checkpoint.metadata["extra"]["status"] == "completed"
    assert checkpoint.metadata["extra"]["hyperparameters"]["n_steps"] == 4
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_resume_continues_timesteps(tmp_path, synthetic_data):
    first = train(plan_run(smoke_config(tmp_path, total_timesteps=8)))
    assert first.status == "completed"
    first_checkpoint = load_checkpoint(first.checkpoint)
    assert first_checkpoint.num_timesteps == 8

    resumed_config = smoke_config(
        tmp_path,
        total_timesteps=4,
        resume=str(first.checkpoint),
        output=str(tmp_path / "resumed.zip"),
        learning_rate=5e-4,
    )
    # Repeating the checkpoint's own settings is accepted; changing one is rejected with the fix.
    plan = plan_run(resumed_config, explicit={"learning_rate", "preset", "batch_size"})
    changed = dataclasses.replace(resumed_config, batch_size=8)
    with pytest.raises(UsageError, match="--batch-size 8 differs from the checkpoint's 4; .* drop --batch-size"):
        plan_run(changed, explicit={"batch_size"})
    assert plan.start_timesteps == 8
    assert "continuing from step 8" in describe_plan(plan)
    second = train(plan)

    assert second.status == "completed"
    resumed = load_checkpoint(tmp_path / "resumed.zip")
    assert resumed.num_timesteps == 12
    assert resumed.model.learning_rate == 5e-4
    # The statistics continued from the checkpoint's rather than starting over.
    assert resumed.obs_rms.count > first_checkpoint.obs_rms.count + 4 - 1e-6
    assert resumed.metadata["extra"]["resumed_from"] == str(first.checkpoint)
    # W&B was disabled: no W&B files anywhere.
    assert not any(path.name == "wandb" for path in tmp_path.rglob("*"))


class RecordingRun:
    """Stands in for a W&B run and keeps what was logged."""

    id = "recording"

    def __init__(self, config):
        self.config = config
        self.logged: list[tuple[int, dict]] = []
        self.finished = None

    def log(self, metrics, step=None):
        self.logged.append((step, dict(metrics)))

    def finish(self, exit_code=None):
        self.finished = exit_code


def test_wandb_receives_metrics(tmp_path, synthetic_data, monkeypatch):
    runs = []

    def fake_init(mode, project, config, **kwargs):
        runs.append(RecordingRun(config))
        return runs[-1]

    monkeypatch.setattr("agents.training.init_wandb", fake_init)
    result = train(plan_run(smoke_config(tmp_path, total_timesteps=8, wandb="offline")))

    assert result.status == "completed"
    run = runs[0]
    assert run.finished == 0
    assert run.config["train"]["total_timesteps"] == 8
    assert run.config["env"]["preset"] == "smoke"
    assert run.config["hyperparameters"]["batch_size"] == 4
    keys = {key for _, metrics in run.logged for key in metrics}
    for key in (
        "env/episode_return",
        "env/final_val_accuracy",
        "env/final_val_loss",
        "env/mean_lr/stem",
        "env/final_lr/head",
        "env/mean_multiplier/layer1.0",
        "time/episode_seconds",
        "train/loss",
        "train/policy_gradient_loss",
        "rollout/ep_rew_mean",
        "time/fps",
    ):
        assert key in keys
    steps = [step for step, _ in run.logged]
    assert steps == sorted(steps)
    assert steps[-1] == 8


class PoisonPolicy(BaseCallback):
    """Fills one policy parameter with NaN once ``at_step`` environment steps have run.

    ``hook="step"`` poisons inside a rollout, so the next forward pass meets the NaN;
    ``hook="rollout_end"`` poisons right before a PPO update.
    """

    def __init__(self, at_step: int, hook: str) -> None:
        super().__init__()
        self.at_step = at_step
        self.hook = hook

    def _poison(self) -> None:
        if self.num_timesteps >= self.at_step:
            with torch.no_grad():
                next(self.model.policy.parameters()).fill_(float("nan"))

    def _on_step(self) -> bool:
        if self.hook == "step":
            self._poison()
        return True

    def _on_rollout_end(self) -> None:
        if self.hook == "rollout_end":
            self._poison()


@pytest.mark.parametrize(("hook", "at_step"), [("step", 6), ("rollout_end", 4)])
def test_non_finite_policy_keeps_checkpoint(tmp_path, synthetic_data, hook, at_step):
    # Rollouts and checkpoints both come every 4 steps, so the last good checkpoint is at step 4.
    config = smoke_config(tmp_path, total_timesteps=16)

    result = train(plan_run(config), extra_callbacks=[PoisonPolicy(at_step, hook)])

    assert result.status == "non_finite"
    assert result.exit_code == EXIT_NON_FINITE
    assert result.checkpoint_timesteps == 4
    assert "--learning-rate" in result.message
    assert f"kept the last good checkpoint {tmp_path / 'ckpt.zip'} (step 4)" in result.message
    checkpoint = load_checkpoint(tmp_path / "ckpt.zip")
    assert checkpoint.num_timesteps == 4
    assert non_finite_parameters(checkpoint.model) == []
    assert np.isfinite(checkpoint.predict(np.zeros(23, dtype=np.float32))).all()


def test_sigint_saves_checkpoint(tmp_path, synthetic_data):
    stderr_path = tmp_path / "stderr.txt"
    args = [*SMOKE_ARGS, "--total-timesteps", "10000", "--checkpoint-interval", "10000", "--wandb", "disabled"]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=os.environ.copy(),
        )
        try:
            deadline = time.monotonic() + 60
            while "env steps" not in stderr_path.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, stderr_path.read_text()
                time.sleep(0.5)
            time.sleep(2)  # a few environment steps into training
            process.send_signal(signal.SIGINT)
            stdout, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()

    error_text = stderr_path.read_text()
    assert process.returncode == EXIT_INTERRUPTED, error_text
    assert "Interrupted at environment step" in error_text
    assert "Traceback" not in error_text
    assert "Run plan" in stdout
    checkpoint = load_checkpoint(tmp_path / "ckpt.zip")
    assert checkpoint_status(tmp_path / "ckpt.zip") == "interrupted"
    assert checkpoint.num_timesteps < 10000


def test_two_environments_in_subprocesses(tmp_path, synthetic_data):
    config = smoke_config(tmp_path, total_timesteps=8, n_envs=2, seed=3)
    plan = plan_run(config)
    assert plan.hyperparameters.n_steps == 4
    assert plan.budget.env_steps == 8

    result = train(plan)

    assert result.status == "completed"
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.num_timesteps == 8
    assert checkpoint.metadata["extra"]["n_envs"] == 2
    assert checkpoint.metadata["extra"]["env_devices"] == ["cpu", "cpu"]


def test_sac_trains_and_saves(tmp_path, synthetic_data):
    plan = plan_run(smoke_config(tmp_path, algorithm="sac", total_timesteps=10, learning_starts=4))
    assert plan.budget.policy_updates == 6

    result = train(plan)

    assert result.status == "completed"
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.algorithm == "sac"
    assert checkpoint.num_timesteps == 10
    assert checkpoint.metadata["extra"]["hyperparameters"]["learning_starts"] == 4
