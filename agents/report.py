"""Result files of an evaluation: summary.json, summary.md, CSV curves, PNG plots and a W&B table.

Files written to the results directory:

- ``summary.json``: settings, per-run metrics, statistics over seeds per method and learning rate,
  the controller's comparison with each baseline and, with a grid, the learning-rate robustness.
  Non-finite numbers (the test loss of a diverged run) are written as null.
- ``summary.md``: the same as tables and sentences.
- ``runs.csv``: one row of metrics per run.
- ``curves.csv``: the test curve of every run, one row per test evaluation.
- ``learning_rates.csv``: every group's learning rate per decision interval of every run.
- ``test_accuracy.png``, ``learning_rates.png`` (controller runs only) and, with a grid,
  ``final_accuracy_vs_lr.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents.evaluation import (
    CLOSE_TO_BEST,
    METHODS,
    Comparison,
    Evaluation,
    GridRobustness,
    MethodSummary,
    RunResult,
    Stats,
    compare_to_baselines,
    grid_robustness,
    summarize_methods,
)
from agents.tracking import finish_wandb, init_wandb
from lr_env.config import config_to_dict

logger = logging.getLogger(__name__)

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
RUNS_CSV = "runs.csv"
CURVES_CSV = "curves.csv"
LEARNING_RATES_CSV = "learning_rates.csv"
ACCURACY_PLOT = "test_accuracy.png"
LEARNING_RATE_PLOT = "learning_rates.png"
GRID_PLOT = "final_accuracy_vs_lr.png"

CURVE_COLUMNS = ["run_id", "method", "seed", "base_lr", "sgd_step", "wall_time_s", "test_loss", "test_accuracy"]
METHOD_COLORS = {"controller": "tab:blue", "sgd": "tab:orange", "cosine": "tab:green"}
METHOD_DESCRIPTIONS = {
    "controller": "controller (the policy)",
    "sgd": "sgd (fixed learning rate)",
    "cosine": "cosine (cosine schedule to zero)",
}


@dataclasses.dataclass
class EvaluationReport:
    """Everything the report files contain, computed once from the runs."""

    evaluation: Evaluation
    results: list[RunResult]
    summaries: list[MethodSummary]
    comparisons: list[Comparison]
    robustness: list[GridRobustness] | None
    """None unless the evaluation ran a learning-rate grid."""

    @classmethod
    def build(cls, evaluation: Evaluation, results: Sequence[RunResult]) -> EvaluationReport:
        summaries = summarize_methods(results)
        robustness = grid_robustness(summaries) if evaluation.settings.lr_grid else None
        return cls(evaluation, list(results), summaries, compare_to_baselines(results), robustness)


# ---------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------


def _json_ready(value):
    """Return ``value`` with non-finite floats as None and numpy values as Python ones."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _mean_std(stats: Stats, digits: int = 4) -> str:
    if stats.mean is None:
        return "n/a"
    if stats.std is None or math.isnan(stats.std):
        return _number(stats.mean, digits)
    return f"{_number(stats.mean, digits)} ± {_number(stats.std, digits)}"


def _percent(stats: Stats) -> str:
    if stats.mean is None:
        return "n/a"
    return f"{100 * stats.mean:.1f}%"


def _lr(value: float) -> str:
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

TABLE_HEADERS = [
    "lr",
    "method",
    "final test accuracy",
    "final test loss",
    "reached target",
    "SGD steps to target",
    "wall time to target (s)",
    "wall time (s)",
    "controller overhead",
    "validation share",
    "diverged",
]


def summary_rows(summaries: Sequence[MethodSummary]) -> list[list[str]]:
    """Return one row of :data:`TABLE_HEADERS` per method and learning rate."""
    rows = []
    for s in summaries:
        n_runs = len(s.seeds)
        rows.append(
            [
                _lr(s.base_lr),
                s.method,
                _mean_std(s.final_test_accuracy),
                _mean_std(s.final_test_loss),
                f"{s.reached_target}/{n_runs}",
                _mean_std(s.steps_to_target, 0),
                _mean_std(s.seconds_to_target, 1),
                _mean_std(s.wall_time_s, 1),
                _percent(s.controller_overhead_share) if s.method == "controller" else "-",
                _percent(s.validation_share),
                f"{s.diverged}/{n_runs}",
            ]
        )
    return rows


def format_text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a fixed-width plain-text table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def format_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def format_results_table(report: EvaluationReport) -> str:
    """Return the per-method table (mean ± std over seeds) as plain text, for the terminal."""
    return format_text_table(TABLE_HEADERS, summary_rows(report.summaries))


# ---------------------------------------------------------------------------------------------
# Verdict sentences
# ---------------------------------------------------------------------------------------------


def comparison_sentence(comparison: Comparison) -> str:
    """Return a one-line verdict on the controller against one baseline, stating a loss as a loss."""
    numbers = (
        f"mean final test accuracy {comparison.controller_mean:.4f} against {comparison.baseline_mean:.4f} "
        f"(difference {comparison.difference:+.4f})"
    )
    seeds = f"The controller was higher on {comparison.seeds_higher} of {comparison.seeds_paired} seeds."
    if comparison.seed_spread is None:
        spread = "With one seed there is no seed spread, so the difference cannot be judged against noise."
    elif comparison.exceeds_spread:
        spread = f"The difference is larger than the seed spread ({comparison.seed_spread:.4f})."
    else:
        spread = f"The difference is within the seed spread ({comparison.seed_spread:.4f})."

    baseline = comparison.baseline
    within_noise = comparison.exceeds_spread is False
    if comparison.outcome == "higher" and within_noise:
        verdict = f"The controller is ahead of {baseline} by less than the seed noise, not a clear win"
    elif comparison.outcome == "higher":
        verdict = f"The controller beats {baseline}"
    elif comparison.outcome == "lower" and within_noise:
        verdict = f"The controller is behind {baseline} by less than the seed noise, so it does not beat it"
    elif comparison.outcome == "lower":
        verdict = f"The controller loses to {baseline}"
    else:
        verdict = f"The controller ties with {baseline}"
    return f"- lr {_lr(comparison.base_lr)}: {verdict}: {numbers}. {spread} {seeds}"


def speed_sentence(summaries: Sequence[MethodSummary], base_lr: float, target: float) -> str:
    """Return which methods reached the target accuracy at ``base_lr``, and how fast on average."""
    parts = []
    for s in summaries:
        if s.base_lr != base_lr:
            continue
        runs = len(s.seeds)
        if s.reached_target == 0:
            parts.append(f"{s.method} in 0 of {runs} runs")
        else:
            parts.append(
                f"{s.method} in {s.reached_target} of {runs} runs (mean SGD step "
                f"{s.steps_to_target.mean:.0f}, {s.seconds_to_target.mean:.1f} s)"
            )
    return f"- lr {_lr(base_lr)}: target test accuracy {target:g} reached by " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def summary_dict(report: EvaluationReport) -> dict:
    """Return the content of summary.json."""
    evaluation = report.evaluation
    checkpoint = evaluation.checkpoint
    config = evaluation.base_config
    return _json_ready(
        {
            "policy": str(evaluation.settings.policy),
            "algorithm": checkpoint.algorithm,
            "policy_timesteps": checkpoint.num_timesteps,
            "controller_actions": "stochastic" if evaluation.settings.stochastic else "deterministic",
            "controller_schedule": evaluation.controller_schedule,
            "settings": dataclasses.asdict(evaluation.settings),
            "environment": config_to_dict(config),
            "device": evaluation.device,
            "group_names": evaluation.group_names,
            "seeds": list(evaluation.settings.seeds),
            "methods": [m for m in METHODS if m in evaluation.settings.methods],
            "learning_rates": list(evaluation.learning_rates),
            "target_accuracy": evaluation.target_accuracy,
            "eval_every": evaluation.eval_every,
            "test_images": len(evaluation.test_split) if evaluation.test_split is not None else None,
            "wandb_group": evaluation.wandb_group,
            "runs": [run.scalars() for run in report.results],
            "summaries": [dataclasses.asdict(s) for s in report.summaries],
            "comparisons": [
                {**dataclasses.asdict(c), "outcome": c.outcome} for c in report.comparisons
            ],
            "lr_robustness": (
                None if report.robustness is None else [dataclasses.asdict(r) for r in report.robustness]
            ),
        }
    )


def summary_markdown(report: EvaluationReport) -> str:
    """Return the content of summary.md."""
    evaluation = report.evaluation
    settings = evaluation.settings
    config = evaluation.base_config
    checkpoint = evaluation.checkpoint
    actions = "sampled (--stochastic)" if settings.stochastic else "deterministic"
    test_images = len(evaluation.test_split) if evaluation.test_split is not None else "?"
    lines = [
        "# Controller evaluation",
        "",
        f"- Policy: `{settings.policy}` ({checkpoint.algorithm}, {checkpoint.num_timesteps} training "
        f"timesteps), actions {actions}, trained under the {evaluation.controller_schedule} schedule.",
        f"- Environment: preset {config.preset}, width {config.width}, {config.total_steps} SGD steps "
        f"per run, batch {config.batch_size}, momentum {config.momentum}, weight decay "
        f"{config.weight_decay}, {config.granularity} granularity ({len(evaluation.group_names)} "
        f"groups), a decision every {config.decision_interval} SGD steps, training on {evaluation.device}.",
        f"- Methods: {', '.join(METHOD_DESCRIPTIONS[m] for m in METHODS if m in settings.methods)}, "
        "all through the same environment loop.",
        f"- Seeds: {', '.join(str(s) for s in settings.seeds)} (shared across methods).",
        f"- Initial learning rates: {', '.join(_lr(lr) for lr in evaluation.learning_rates)}.",
        f"- Test split: {test_images} images, evaluated every {evaluation.eval_every} SGD steps and at "
        f"the end. Target test accuracy: {evaluation.target_accuracy:g}.",
        (
            "- W&B: disabled."
            if settings.wandb == "disabled"
            else f"- W&B group: `{evaluation.wandb_group}` ({settings.wandb})."
        ),
        "",
        "## Results (mean ± standard deviation over seeds)",
        "",
        format_markdown_table(TABLE_HEADERS, summary_rows(report.summaries)),
        "",
    ]

    lines += ["## Controller against the baselines (final test accuracy)", ""]
    if report.comparisons:
        lines += [comparison_sentence(c) for c in report.comparisons]
    else:
        lines.append("Not compared: the evaluation ran the controller or no baseline, not both.")
    lines += ["", "## Convergence speed", ""]
    lines += [
        speed_sentence(report.summaries, lr, evaluation.target_accuracy) for lr in evaluation.learning_rates
    ]
    lines.append("")

    if report.robustness is not None:
        headers = ["method", *(f"lr {_lr(lr)}" for lr in evaluation.learning_rates)]
        headers += ["best lr", "spread (max-min)", "std", f"lr within {CLOSE_TO_BEST:g} of best"]
        rows = []
        for r in report.robustness:
            by_lr = dict(zip(r.learning_rates, r.mean_accuracies, strict=True))
            rows.append(
                [
                    r.method,
                    *(_number(by_lr.get(lr)) for lr in evaluation.learning_rates),
                    _lr(r.best_lr),
                    _number(r.spread),
                    _number(r.std),
                    f"{r.within_one_point}/{len(r.learning_rates)}",
                ]
            )
        lines += [
            "## Robustness to the initial learning rate (mean final test accuracy per lr)",
            "",
            format_markdown_table(headers, rows),
            "",
            "A smaller spread and more grid points near the best mean less tuning of the initial "
            "learning rate.",
            "",
        ]

    lines += [
        "## Definitions",
        "",
        "- Wall time covers the reset and every decision with its SGD steps, validation pass and "
        "observation, and leaves out test evaluations. Every method runs the validation pass, "
        "which only the controller needs (its observation includes the validation loss), so a plain "
        "SGD loop without it would be faster by about the validation share.",
        "- Controller overhead: observation building and action handling in the environment plus "
        "policy inference, as a share of the controller runs' wall time.",
        "- SGD steps and wall time to target: the first test evaluation at or above the target; "
        "the mean is over the runs that reached it.",
        "- Seed spread: the larger of the two methods' standard deviations over seeds. Exceeding it "
        "is a rough signal, not a significance test.",
        "- Wall times include any load from other processes on the machine. Methods alternate within "
        "each seed so such load spreads over all of them, but compare wall times only from an "
        "otherwise idle machine.",
    ]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, headers: Sequence[str], rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)


def write_csv_files(report: EvaluationReport, out_dir: Path) -> None:
    """Write runs.csv, curves.csv and learning_rates.csv."""
    results = report.results
    if results:
        scalar_names = list(results[0].scalars())
        _write_csv(out_dir / RUNS_CSV, scalar_names, ([run.scalars()[n] for n in scalar_names] for run in results))

    curve_rows = (
        [run.run_id, run.method, run.seed, run.base_lr, p.sgd_step, p.wall_time_s, p.test_loss, p.test_accuracy]
        for run in results
        for p in run.curve
    )
    _write_csv(out_dir / CURVES_CSV, CURVE_COLUMNS, curve_rows)

    group_names = report.evaluation.group_names
    lr_headers = ["run_id", "method", "seed", "base_lr", "sgd_step", *(f"lr/{g}" for g in group_names)]
    lr_rows = (
        [run.run_id, run.method, run.seed, run.base_lr, step, *np.asarray(lrs).tolist()]
        for run in results
        for step, lrs in run.learning_rates
    )
    _write_csv(out_dir / LEARNING_RATES_CSV, lr_headers, lr_rows)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def _curve_band(runs: Sequence[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the SGD steps and the mean, min and max test accuracy over ``runs`` at each step.

    A run that diverged stops early; later steps average over the runs that reached them.
    """
    steps = sorted({p.sgd_step for run in runs for p in run.curve})
    table = np.full((len(runs), len(steps)), np.nan)
    index = {step: i for i, step in enumerate(steps)}
    for row, run in enumerate(runs):
        for p in run.curve:
            table[row, index[p.sgd_step]] = p.test_accuracy
    return np.asarray(steps), np.nanmean(table, axis=0), np.nanmin(table, axis=0), np.nanmax(table, axis=0)


def plot_test_accuracy(report: EvaluationReport, path: Path) -> None:
    """Plot test accuracy against SGD steps per method: mean over seeds, min-max band."""
    lrs = report.evaluation.learning_rates
    figure = Figure(figsize=(5.5 * len(lrs), 4), layout="constrained")
    axes = figure.subplots(1, len(lrs), squeeze=False)[0]
    for ax, lr in zip(axes, lrs, strict=True):
        for method in METHODS:
            runs = [r for r in report.results if r.method == method and r.base_lr == lr]
            if not runs:
                continue
            steps, mean, low, high = _curve_band(runs)
            color = METHOD_COLORS[method]
            ax.plot(steps, mean, color=color, label=f"{method} (n={len(runs)})")
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.axhline(report.evaluation.target_accuracy, color="grey", linestyle=":", label="target")
        ax.set_title(f"initial lr {_lr(lr)}")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("test accuracy")
        ax.legend(loc="upper left", fontsize="small")
    figure.suptitle("Test accuracy: mean over seeds, band from min to max")
    _save(figure, path)


def plot_learning_rates(report: EvaluationReport, path: Path) -> bool:
    """Plot every group's learning rate chosen by the controller, one panel per lr and seed.

    Returns False (and writes nothing) when the evaluation has no controller runs.
    """
    runs = [r for r in report.results if r.method == "controller"]
    if not runs:
        return False
    lrs = report.evaluation.learning_rates
    seeds = list(report.evaluation.settings.seeds)
    figure = Figure(figsize=(5 * len(seeds), 3.5 * len(lrs)), layout="constrained")
    axes = figure.subplots(len(lrs), len(seeds), squeeze=False)
    names = report.evaluation.group_names
    for run in runs:
        ax = axes[lrs.index(run.base_lr)][seeds.index(run.seed)]
        # Repeat the last interval's rates at the run's final step, so the last interval is drawn.
        steps = [step for step, _ in run.learning_rates] + [run.sgd_steps]
        values = np.asarray([rates for _, rates in run.learning_rates] + [run.learning_rates[-1][1]])
        for g, name in enumerate(names):
            ax.step(steps, values[:, g], where="post", label=name)
        ax.set_yscale("log")
        ax.set_title(f"lr {_lr(run.base_lr)}, seed {run.seed}")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("learning rate")
    axes[0][-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle("Learning rate per layer group chosen by the controller")
    _save(figure, path)
    return True


def plot_grid(report: EvaluationReport, path: Path) -> None:
    """Plot mean final test accuracy (± std over seeds) against the initial learning rate (log x)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for method in METHODS:
        rows = sorted((s for s in report.summaries if s.method == method), key=lambda s: s.base_lr)
        if not rows:
            continue
        x = [s.base_lr for s in rows]
        y = [s.final_test_accuracy.mean for s in rows]
        err = [s.final_test_accuracy.std or 0.0 for s in rows]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=METHOD_COLORS[method], label=method)
    ax.set_xscale("log")
    ax.set_xlabel("initial learning rate")
    ax.set_ylabel("final test accuracy")
    ax.set_title("Final test accuracy: mean ± std over seeds")
    ax.legend()
    _save(figure, path)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def write_report(report: EvaluationReport, out_dir: Path) -> list[Path]:
    """Write every result file into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_JSON).write_text(json.dumps(summary_dict(report), indent=2, allow_nan=False) + "\n")
    (out_dir / SUMMARY_MD).write_text(summary_markdown(report))
    write_csv_files(report, out_dir)
    written = [out_dir / name for name in (SUMMARY_JSON, SUMMARY_MD, RUNS_CSV, CURVES_CSV, LEARNING_RATES_CSV)]

    plot_test_accuracy(report, out_dir / ACCURACY_PLOT)
    written.append(out_dir / ACCURACY_PLOT)
    if plot_learning_rates(report, out_dir / LEARNING_RATE_PLOT):
        written.append(out_dir / LEARNING_RATE_PLOT)
    if report.robustness is not None:
        plot_grid(report, out_dir / GRID_PLOT)
        written.append(out_dir / GRID_PLOT)
    logger.info("wrote %d result files to %s", len(written), out_dir)
    return written


def log_wandb_summary(report: EvaluationReport) -> None:
    """Log the per-method table and the per-run table once, in a ``summary`` run of the group."""
    evaluation = report.evaluation
    run = init_wandb(
        evaluation.settings.wandb,
        evaluation.settings.wandb_project,
        evaluation.summary_wandb_config(),
        group=evaluation.wandb_group,
        job_type="summary",
        name=f"{evaluation.wandb_group}-summary",
        directory=evaluation.out_dir,
    )
    if run is None:
        return
    import wandb

    method_columns = [
        "base_lr",
        "method",
        "seeds",
        "final_test_accuracy_mean",
        "final_test_accuracy_std",
        "final_test_loss_mean",
        "reached_target",
        "steps_to_target_mean",
        "seconds_to_target_mean",
        "wall_time_s_mean",
        "controller_overhead_share_mean",
        "diverged",
    ]
    method_rows = [
        _json_ready(
            [
                s.base_lr,
                s.method,
                len(s.seeds),
                s.final_test_accuracy.mean,
                s.final_test_accuracy.std,
                s.final_test_loss.mean,
                s.reached_target,
                s.steps_to_target.mean,
                s.seconds_to_target.mean,
                s.wall_time_s.mean,
                s.controller_overhead_share.mean,
                s.diverged,
            ]
        )
        for s in report.summaries
    ]
    run_columns = list(report.results[0].scalars()) if report.results else []
    run_rows = [_json_ready(list(r.scalars().values())) for r in report.results]
    try:
        run.log(
            {
                "summary_table": wandb.Table(columns=method_columns, data=method_rows),
                "runs_table": wandb.Table(columns=run_columns, data=run_rows),
            }
        )
    finally:
        finish_wandb(run)


__all__ = [
    "EvaluationReport",
    "format_results_table",
    "log_wandb_summary",
    "summary_dict",
    "summary_markdown",
    "write_report",
]
