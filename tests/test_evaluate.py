"""Tests of evaluate.py and agents.evaluation, agents.controllers and agents.report.

Every test trains real components on the synthetic CIFAR-10 copy with the smoke preset, shortened to
two decisions of 2 SGD steps per run so that each training run takes about a second on a CPU.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import evaluate
from agents.checkpoint import METADATA_MEMBER, load_checkpoint, save_checkpoint
from agents.controllers import ConstantController, PolicyController, zero_controller
from agents.evaluation import (
    METHODS,
    Evaluation,
    EvaluationConfig,
    RunResult,
    RunSpec,
    compare_to_baselines,
    default_eval_every,
    evaluation_env_config,
    grid_robustness,
    method_env_config,
    run_episode,
    summarize_methods,
)
from agents.report import EvaluationReport, comparison_sentence
from agents.tracking import WANDB_MODES
from lr_env.config import PRESETS, make_config
from lr_env.env import LrControlEnv, load_test_split
from lr_env.model import GRANULARITIES

ROOT = Path(__file__).resolve().parents[1]
# One intra-op thread: on a 2-core machine shared with other jobs, 2 torch threads ran the smoke model's
# forward pass about 18 times slower than 1 thread did (0.85 s against 0.047 s for 100 images).
TEST_THREADS = 1
SMOKE_STEPS = 4
SMOKE_INTERVAL = 2
WANDB_BLOCK_SIZE = 32768


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(count: int):
    """Run the block with ``count`` torch intra-op threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def few_torch_threads():
    with torch_threads(TEST_THREADS):
        yield


@pytest.fixture(scope="session")
def data_environment(synthetic_cifar_dir, synthetic_cache_dir) -> dict[str, str]:
    """The variables of the ``synthetic_data`` fixture, for session- and module-scoped fixtures."""
    return {
        "LR_ENV_DATA_DIR": str(synthetic_cifar_dir),
        "LR_ENV_CACHE_DIR": str(synthetic_cache_dir),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


@pytest.fixture(scope="session")
def smoke_checkpoint(tmp_path_factory, data_environment) -> Path:
    """A real PPO checkpoint, trained for one episode on the shortened smoke environment."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    with pytest.MonkeyPatch.context() as patch, torch_threads(TEST_THREADS):
        for name, value in data_environment.items():
            patch.setenv(name, value)
        env = LrControlEnv("smoke", total_steps=SMOKE_STEPS, decision_interval=SMOKE_INTERVAL, device="cpu")
        venv = VecNormalize(DummyVecEnv([lambda: env]))
        model = PPO("MlpPolicy", venv, n_steps=2, batch_size=2, n_epochs=1, seed=0, device="cpu")
        model.learn(2)
        path = tmp_path_factory.mktemp("checkpoint") / "smoke.zip"
        return save_checkpoint(path, model, env.config, venv)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, smoke_checkpoint, data_environment):
    """One evaluate.py subprocess over every method with seeds 0 and 1: (process, results dir)."""
    out_dir = tmp_path_factory.mktemp("evaluation") / "results"
    process = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            "--policy",
            str(smoke_checkpoint),
            "--seeds",
            "0,1",
            "--out",
            str(out_dir),
            "--device",
            "cpu",
            "--eval-every",
            str(SMOKE_INTERVAL),
            "--torch-threads",
            str(TEST_THREADS),
        ],
        env={**os.environ, **data_environment},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return process, out_dir


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``evaluate.main`` in this process and return its exit status, stdout and stderr."""
    try:
        code = evaluate.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def wandb_run_record(path: Path):
    """Return the run record (group, job type, config) of an offline ``.wandb`` file.

    The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then records of
    a 7-byte header (CRC32, little-endian length, type) and a serialised ``Record`` protobuf, in
    32 KiB blocks. Type 1 is a whole record; 2, 3 and 4 are the first, middle and last pieces.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    position, pending = 7, b""
    while position + 7 <= len(data):
        room = WANDB_BLOCK_SIZE - position % WANDB_BLOCK_SIZE
        if room < 7:
            position += room
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        if kind == 2:
            pending = chunk
            continue
        if kind == 3:
            pending += chunk
            continue
        payload = pending + chunk if kind == 4 else chunk
        pending = b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"no run record in {path}")


def fake_result(method: str, seed: int, base_lr: float, accuracy: float) -> RunResult:
    """A run result with the given final accuracy and fixed timings, for aggregation tests."""
    return RunResult(
        run_id=RunSpec(method, seed, base_lr).run_id,
        method=method,
        seed=seed,
        base_lr=base_lr,
        schedule="cosine" if method == "cosine" else "constant",
        deterministic=True,
        final_test_accuracy=accuracy,
        final_test_loss=1.0,
        sgd_steps=10,
        diverged=False,
        wall_time_s=2.0,
        steps_to_target=10 if accuracy >= 0.5 else None,
        seconds_to_target=2.0 if accuracy >= 0.5 else None,
        train_seconds=1.5,
        validation_seconds=0.3,
        observation_seconds=0.1,
        inference_seconds=0.1,
        test_eval_seconds=0.5,
    )


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


def test_cli_writes_all_outputs(cli_run):
    process, out_dir = cli_run
    assert process.returncode == 0, process.stderr[-3000:]
    for name in (
        "summary.json",
        "summary.md",
        "runs.csv",
        "curves.csv",
        "learning_rates.csv",
        "test_accuracy.png",
        "learning_rates.png",
    ):
        assert (out_dir / name).is_file(), f"{name} missing"
    for name in ("test_accuracy.png", "learning_rates.png"):
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out_dir / "final_accuracy_vs_lr.png").exists()

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert summary["settings"]["torch_threads"] == TEST_THREADS
    assert summary["methods"] == list(METHODS)
    assert len(summary["runs"]) == 6
    assert summary["lr_robustness"] is None
    assert {c["baseline"] for c in summary["comparisons"]} == {"sgd", "cosine"}

    markdown = (out_dir / "summary.md").read_text()
    assert "Seeds: 0, 1" in markdown
    assert "| 0.1 | controller |" in markdown
    assert "Controller against the baselines" in markdown

    assert "final test accuracy" in process.stdout
    assert "cosine" in process.stdout


def test_cli_run_metrics_are_consistent(cli_run):
    process, out_dir = cli_run
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads((out_dir / "summary.json").read_text())
    for run in summary["runs"]:
        assert run["sgd_steps"] == SMOKE_STEPS
        assert not run["diverged"]
        assert 0 <= run["final_test_accuracy"] <= 1
        assert run["wall_time_s"] > 0
        assert run["train_seconds"] <= run["wall_time_s"]
        assert 0 <= run["controller_overhead_share"] < 1
        if run["method"] == "controller":
            assert run["inference_seconds"] > 0
        else:
            assert run["inference_seconds"] == 0


def test_summary_matches_curve_csv(cli_run):
    process, out_dir = cli_run
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads((out_dir / "summary.json").read_text())
    curves = read_csv(out_dir / "curves.csv")
    runs = read_csv(out_dir / "runs.csv")

    final_by_run = {}
    for row in curves:
        final_by_run[row["run_id"]] = row  # rows of a run are in step order, so the last one stays
    assert len(final_by_run) == 6
    assert {row["sgd_step"] for row in curves} == {"0", "2", "4"}

    for method_summary in summary["summaries"]:
        method = method_summary["method"]
        rows = [row for run_id, row in final_by_run.items() if run_id.startswith(f"{method}-")]
        accuracies = [float(row["test_accuracy"]) for row in rows]
        assert sorted(int(row["seed"]) for row in rows) == method_summary["seeds"]
        assert method_summary["final_test_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
        assert method_summary["final_test_accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
        run_rows = [row for row in runs if row["method"] == method]
        assert [float(row["final_test_accuracy"]) for row in run_rows] == pytest.approx(accuracies)


def test_wandb_runs_share_group(cli_run):
    process, out_dir = cli_run
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads((out_dir / "summary.json").read_text())
    files = sorted((out_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 7  # 6 training runs and the summary run

    records = [wandb_run_record(path) for path in files]
    assert {record.run_group for record in records} == {summary["wandb_group"]}
    job_types = sorted(record.job_type for record in records)
    assert job_types == sorted(["controller"] * 2 + ["sgd"] * 2 + ["cosine"] * 2 + ["summary"])

    config_keys = {frozenset(item.key for item in record.config.update) for record in records}
    assert len(config_keys) == 1, "every run must have the same config keys"
    names = sorted(record.display_name for record in records if record.job_type != "summary")
    assert names == sorted(run["run_id"] for run in summary["runs"])


def test_zero_controller_matches_sgd_method(cli_run, smoke_checkpoint, synthetic_data):
    process, out_dir = cli_run
    assert process.returncode == 0, process.stderr[-3000:]
    sgd_seed0 = next(row for row in read_csv(out_dir / "runs.csv") if row["run_id"] == "sgd-lr0.1-seed0")

    env = LrControlEnv(
        "smoke", total_steps=SMOKE_STEPS, decision_interval=SMOKE_INTERVAL, schedule="constant", device="cpu"
    )
    test_split = load_test_split(env.config, env.device)
    controller = zero_controller(env.n_groups)
    result = run_episode(env, controller, RunSpec("zero", 0, 0.1), test_split, eval_every=2, target_accuracy=0.2)
    assert result.final_test_accuracy == float(sgd_seed0["final_test_accuracy"])
    assert result.final_test_loss == pytest.approx(float(sgd_seed0["final_test_loss"]), rel=1e-5)
    assert all(np.allclose(lrs, 0.1) for _, lrs in result.learning_rates)


def test_lr_grid_reports_robustness(smoke_checkpoint, synthetic_data, tmp_path, capsys):
    out_dir = tmp_path / "grid"
    argv = [
        "--policy",
        str(smoke_checkpoint),
        "--lr-grid",
        "0.05,0.1",
        "--seeds",
        "0",
        "--methods",
        "controller,sgd",
        "--out",
        str(out_dir),
        "--device",
        "cpu",
        "--wandb",
        "disabled",
    ]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err[-3000:]

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["learning_rates"] == [0.05, 0.1]
    assert sorted({run["base_lr"] for run in summary["runs"]}) == [0.05, 0.1]
    robustness = {r["method"]: r for r in summary["lr_robustness"]}
    assert set(robustness) == {"controller", "sgd"}
    for entry in robustness.values():
        assert entry["learning_rates"] == [0.05, 0.1]
        assert entry["spread"] == pytest.approx(max(entry["mean_accuracies"]) - min(entry["mean_accuracies"]))
        assert 1 <= entry["within_one_point"] <= 2
    assert (out_dir / "final_accuracy_vs_lr.png").is_file()
    markdown = (out_dir / "summary.md").read_text()
    assert "Robustness to the initial learning rate" in markdown
    assert "- Methods: controller (the policy), sgd (fixed learning rate), all" in markdown
    assert "- W&B: disabled." in markdown
    assert not (out_dir / "wandb").exists()


# ---------------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------------


class _SpacesOnlyEnv(gym.Env):
    """An environment that only carries spaces, for building an SB3 model without training."""

    def __init__(self, observation_space, action_space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space


def write_unknown_algorithm_checkpoint(smoke_checkpoint: Path, path: Path) -> Path:
    """Write a real A2C model with the smoke checkpoint's metadata, naming algorithm ``a2c``."""
    from stable_baselines3 import A2C

    checkpoint = load_checkpoint(smoke_checkpoint)
    env = _SpacesOnlyEnv(checkpoint.model.observation_space, checkpoint.model.action_space)
    model = A2C("MlpPolicy", env, device="cpu")
    buffer = io.BytesIO()
    model.save(buffer)
    metadata = dict(checkpoint.metadata, algorithm="a2c")
    with zipfile.ZipFile(buffer, mode="a") as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(metadata))
    path.write_bytes(buffer.getvalue())
    return path


def bad_input_case(name: str, smoke_checkpoint: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Return the arguments of one invalid-input case and words its error line must contain."""
    if name == "missing file":
        missing = tmp_path / "missing.zip"
        return ["--policy", str(missing)], ["not found", str(missing)]
    if name == "not a zip":
        path = tmp_path / "notes.zip"
        path.write_text("not a zip archive")
        return ["--policy", str(path)], ["not a zip", str(path)]
    if name == "zip without SB3 model":
        path = tmp_path / "other.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
        return ["--policy", str(path)], ["not a stable-baselines3 model", str(path)]
    if name == "unknown algorithm":
        path = write_unknown_algorithm_checkpoint(smoke_checkpoint, tmp_path / "a2c.zip")
        return ["--policy", str(path)], ["unknown algorithm", "a2c"]
    if name == "granularity mismatch":
        argv = ["--policy", str(smoke_checkpoint), "--granularity", "layer"]
        return argv, ["--granularity layer does not match", "block granularity"]
    if name == "missing data":
        empty = tmp_path / "empty"
        empty.mkdir()
        return ["--policy", str(smoke_checkpoint), "--data-dir", str(empty)], ["CIFAR-10", str(empty)]
    if name == "unknown device":
        return ["--policy", str(smoke_checkpoint), "--device", "tpu"], ["tpu"]
    raise ValueError(name)


BAD_INPUT_CASES = [
    "missing file",
    "not a zip",
    "zip without SB3 model",
    "unknown algorithm",
    "granularity mismatch",
    "missing data",
    "unknown device",
]


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_exits_2_with_one_line(case, smoke_checkpoint, synthetic_data, tmp_path, capsys):
    argv, words = bad_input_case(case, smoke_checkpoint, tmp_path)
    code, out, err = run_main([*argv, "--out", str(tmp_path / "out"), "--seeds", "0"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evaluate.py: error: ")
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option",
    [
        ["--seeds", "a,b"],
        ["--seeds", "0,0"],
        ["--seeds", "-1"],
        ["--methods", "controller,adam"],
        ["--lr-grid", "0.1,-0.1"],
        ["--lr-grid", "nan"],
        ["--target-accuracy", "1.5"],
        ["--eval-every", "0"],
        ["--total-steps", "ten"],
        ["--torch-threads", "0"],
        ["--wandb", "cloud"],
        ["--preset", "huge"],
    ],
)
def test_bad_option_value_exits_2(option, tmp_path, capsys):
    code, out, err = run_main(["--policy", str(tmp_path / "any.zip"), *option], capsys)
    assert code == 2
    assert "evaluate.py: error: argument" in err
    assert "Traceback" not in err


def test_bad_input_subprocess_has_no_traceback(smoke_checkpoint, data_environment, tmp_path):
    argv, words = bad_input_case("granularity mismatch", smoke_checkpoint, tmp_path)
    process = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *argv, "--out", str(tmp_path / "out")],
        env={**os.environ, **data_environment},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert "Traceback" not in process.stderr
    for word in words:
        assert word in lines[0]


def test_cli_constants_match_library():
    assert evaluate.METHODS == METHODS
    assert evaluate.WANDB_MODES == WANDB_MODES
    assert set(evaluate.PRESET_NAMES) == set(PRESETS)
    assert evaluate.GRANULARITIES == GRANULARITIES


# ---------------------------------------------------------------------------------------------
# Controllers
# ---------------------------------------------------------------------------------------------


def test_constant_controller_returns_its_action():
    controller = ConstantController(3, 0.5)
    action = controller.act(np.zeros(9, dtype=np.float32))
    assert action.dtype == np.float32
    assert action.tolist() == [0.5, 0.5, 0.5]
    assert zero_controller(4).act(np.zeros(11)).tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="must lie in"):
        ConstantController(3, 2.0)


def test_policy_controller_times_inference(smoke_checkpoint):
    checkpoint = load_checkpoint(smoke_checkpoint)
    observation = np.linspace(-1, 1, checkpoint.model.observation_space.shape[0]).astype(np.float32)
    controller = PolicyController(checkpoint)
    controller.reset(0)
    first = controller.act(observation)
    second = controller.act(observation)
    assert first.shape == checkpoint.model.action_space.shape
    assert np.array_equal(first, second)
    assert controller.decisions == 2
    assert controller.inference_seconds > 0
    controller.reset(1)
    assert controller.inference_seconds == 0


def test_stochastic_controller_repeats_with_seed(smoke_checkpoint):
    checkpoint = load_checkpoint(smoke_checkpoint)
    observation = np.zeros(checkpoint.model.observation_space.shape, dtype=np.float32)
    controller = PolicyController(checkpoint, deterministic=False)

    def actions(seed: int) -> np.ndarray:
        controller.reset(seed)
        return np.stack([controller.act(observation) for _ in range(3)])

    first = actions(7)
    assert np.array_equal(first, actions(7))
    assert not np.array_equal(first, actions(8))
    assert not np.array_equal(first[0], first[1])


# ---------------------------------------------------------------------------------------------
# Configuration and aggregation
# ---------------------------------------------------------------------------------------------


def test_env_config_keeps_control_fields_under_preset(smoke_checkpoint):
    checkpoint = load_checkpoint(smoke_checkpoint)
    trained = make_config(
        checkpoint.env_config, decision_interval=5, base_lr_choices=(0.01, 1.0), data_dir="/train/machine"
    )
    settings = EvaluationConfig(policy=str(smoke_checkpoint), preset="cpu", total_steps=50, data_dir=None)
    config = evaluation_env_config(trained, settings)
    assert config.preset == "cpu"
    assert config.width == PRESETS["cpu"].width
    assert config.decision_interval == 5
    assert config.total_steps == 50
    assert config.base_lr_choices == ()
    assert config.base_lr_range is None
    assert config.data_dir is None

    sgd = method_env_config(config, "sgd", 0.3, controller_schedule="cosine")
    cosine = method_env_config(config, "cosine", 0.3, controller_schedule="constant")
    controller = method_env_config(config, "controller", 0.3, controller_schedule="cosine")
    assert (sgd.schedule, sgd.base_lr) == ("constant", 0.3)
    assert cosine.schedule == "cosine"
    assert controller.schedule == "cosine"


def test_default_eval_every_rounds_to_decisions():
    assert default_eval_every(make_config("resnet18")) == 180
    assert default_eval_every(make_config("smoke")) == 10
    assert default_eval_every(make_config("smoke", total_steps=1000, decision_interval=7)) == 56


def test_evaluation_plan_order(smoke_checkpoint):
    checkpoint = load_checkpoint(smoke_checkpoint)
    settings = EvaluationConfig(
        policy=str(smoke_checkpoint), seeds=(3, 1), methods=("cosine", "controller"), lr_grid=(0.3, 0.01)
    )
    evaluation = Evaluation(settings, checkpoint)
    assert [spec.run_id for spec in evaluation.plan] == [
        "controller-lr0.01-seed3",
        "cosine-lr0.01-seed3",
        "controller-lr0.01-seed1",
        "cosine-lr0.01-seed1",
        "controller-lr0.3-seed3",
        "cosine-lr0.3-seed3",
        "controller-lr0.3-seed1",
        "cosine-lr0.3-seed1",
    ]
    assert evaluation.target_accuracy == 0.20
    assert evaluation.wandb_group.startswith("eval-")


def test_comparison_reports_loss_beyond_spread():
    results = [
        fake_result("controller", 0, 0.1, 0.50),
        fake_result("controller", 1, 0.1, 0.52),
        fake_result("sgd", 0, 0.1, 0.60),
        fake_result("sgd", 1, 0.1, 0.62),
        fake_result("cosine", 0, 0.1, 0.49),
        fake_result("cosine", 1, 0.1, 0.55),
    ]
    comparisons = {c.baseline: c for c in compare_to_baselines(results)}

    sgd = comparisons["sgd"]
    assert sgd.outcome == "lower"
    assert sgd.difference == pytest.approx(-0.10)
    assert sgd.exceeds_spread is True
    assert sgd.seeds_higher == 0
    assert "loses to sgd" in comparison_sentence(sgd)

    cosine = comparisons["cosine"]
    assert cosine.outcome == "lower"
    assert cosine.exceeds_spread is False
    assert cosine.seeds_higher == 1
    assert "does not beat" in comparison_sentence(cosine)


def test_comparison_with_one_seed_has_no_spread():
    results = [fake_result("controller", 0, 0.1, 0.7), fake_result("sgd", 0, 0.1, 0.6)]
    (comparison,) = compare_to_baselines(results)
    assert comparison.outcome == "higher"
    assert comparison.seed_spread is None
    assert comparison.exceeds_spread is None
    assert "no seed spread" in comparison_sentence(comparison)


def test_grid_robustness_counts_points_near_best():
    accuracies = {0.01: 0.50, 0.1: 0.705, 1.0: 0.71}
    results = [fake_result("sgd", seed, lr, acc) for lr, acc in accuracies.items() for seed in (0, 1)]
    results += [fake_result("controller", seed, lr, 0.70) for lr in accuracies for seed in (0, 1)]
    robustness = {r.method: r for r in grid_robustness(summarize_methods(results))}

    sgd = robustness["sgd"]
    assert sgd.best_lr == 1.0
    assert sgd.spread == pytest.approx(0.21)
    assert sgd.std == pytest.approx(np.std([0.50, 0.705, 0.71]))
    assert sgd.within_one_point == 2
    assert robustness["controller"].spread == pytest.approx(0.0)
    assert robustness["controller"].within_one_point == 3


def test_summaries_count_target_and_stats():
    results = [fake_result("sgd", 0, 0.1, 0.4), fake_result("sgd", 1, 0.1, 0.6), fake_result("sgd", 2, 0.1, 0.8)]
    (summary,) = summarize_methods(results)
    assert summary.seeds == [0, 1, 2]
    assert summary.reached_target == 2
    assert summary.steps_to_target.n == 2
    assert summary.final_test_accuracy.mean == pytest.approx(0.6)
    assert summary.final_test_accuracy.std == pytest.approx(0.2)
    assert summary.controller_overhead_share.mean == pytest.approx(0.1)


def test_report_builds_without_grid(smoke_checkpoint):
    checkpoint = load_checkpoint(smoke_checkpoint)
    evaluation = Evaluation(EvaluationConfig(policy=str(smoke_checkpoint), seeds=(0,)), checkpoint)
    report = EvaluationReport.build(evaluation, [fake_result("sgd", 0, 0.1, 0.6)])
    assert report.robustness is None
    assert report.comparisons == []
