"""Evaluate a trained learning-rate controller against fixed-learning-rate SGD and a cosine schedule.

    python evaluate.py --policy checkpoints/ckpt.zip

Rebuilds the environment from the checkpoint, trains one ResNet-18 per seed and method (controller,
sgd, cosine) and measures each on the CIFAR-10 test split. Results go to ``results/<timestamp>``:
summary.json, summary.md, CSV curves and PNG plots. Exit status 2 means invalid input (options,
checkpoint or data), with one line on stderr saying what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys

from agents.cli import OneLineErrorParser

# Copies of agents.evaluation.METHODS, agents.tracking.WANDB_MODES, the names in lr_env.PRESETS and
# lr_env.model.GRANULARITIES, so that --help and option errors return without importing torch.
# tests/test_evaluate.py checks that the copies match.
METHODS = ("controller", "sgd", "cosine")
WANDB_MODES = ("offline", "online", "disabled")
PRESET_NAMES = ("resnet18", "cpu", "smoke")
GRANULARITIES = ("block", "layer")


def _comma_list(convert, what: str):
    def parse(text: str):
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or not all(items):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
        try:
            values = tuple(convert(item) for item in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{what} must be distinct, got {text!r}")
        return values

    return parse


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _method(text: str) -> str:
    if text not in METHODS:
        raise ValueError(text)
    return text


def _learning_rate(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="evaluate.py",
        description=(
            "Train ResNet-18 on CIFAR-10 once per seed with the trained controller, plain SGD at a "
            "fixed learning rate and SGD with a cosine schedule, and compare them on the test split."
        ),
    )
    parser.add_argument(
        "--policy", required=True, metavar="PATH", help="checkpoint .zip written by train_controller.py"
    )

    environment = parser.add_argument_group("environment (rebuilt from the checkpoint)")
    environment.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="environment preset replacing the checkpoint's (the checkpoint's granularity, decision "
        "interval and multiplier bounds stay); default: the checkpoint's environment",
    )
    environment.add_argument(
        "--total-steps",
        type=_positive_int,
        metavar="STEPS",
        help="SGD steps per training run, e.g. longer than the episodes the policy was trained on to "
        "test transfer; default: the checkpoint's (or --preset's) value",
    )
    environment.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        help="layer groups of the rebuilt environment; must match the policy; default: the checkpoint's",
    )
    environment.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory of CIFAR-10 parquet shards (default: $LR_ENV_DATA_DIR, else the Hugging Face "
        "Hub; the training machine's path stored in the checkpoint is ignored)",
    )
    environment.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="training device: auto (first CUDA device, else CPU), cpu, cuda or cuda:N; the policy "
        "runs on the CPU (default: auto)",
    )
    environment.add_argument(
        "--torch-threads",
        type=_positive_int,
        metavar="N",
        help="intra-op CPU threads of torch (default: torch's default, usually the number of cores)",
    )

    runs = parser.add_argument_group("runs")
    runs.add_argument(
        "--seeds",
        metavar="LIST",
        type=_comma_list(_seed, "non-negative integer seeds"),
        default=(0, 1, 2),
        help="comma-separated seeds; every method trains once per seed (default: 0,1,2)",
    )
    runs.add_argument(
        "--methods",
        metavar="LIST",
        type=_comma_list(_method, f"methods from {','.join(METHODS)}"),
        default=METHODS,
        help="comma-separated methods: controller (the policy), sgd (fixed learning rate), cosine "
        "(cosine schedule to zero) (default: all three)",
    )
    runs.add_argument(
        "--lr-grid",
        metavar="LRS",
        type=_comma_list(_learning_rate, "positive learning rates"),
        default=(),
        help="comma-separated initial learning rates, e.g. 0.01,0.03,0.1,0.3,1.0: repeat the "
        "comparison at each and report each method's spread of final accuracy over them "
        "(default: only the environment's base learning rate, 0.1 in every preset)",
    )
    runs.add_argument(
        "--stochastic",
        action="store_true",
        help="sample the controller's actions from the policy (seeded per run) instead of taking its "
        "deterministic action",
    )

    measurement = parser.add_argument_group("measurement")
    measurement.add_argument(
        "--target-accuracy",
        type=_fraction,
        metavar="FRACTION",
        help="test accuracy, as a fraction, whose first crossing defines convergence speed (SGD "
        "steps and wall seconds); default per preset: resnet18 0.80, cpu 0.30, smoke 0.20, "
        "other configurations 0.5",
    )
    measurement.add_argument(
        "--eval-every",
        type=_positive_int,
        metavar="STEPS",
        help="SGD steps between two test evaluations of the test-accuracy curve; a test point is "
        "taken at the first decision at or after each multiple (default: total steps / 20, rounded "
        "up to whole decision intervals)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="DIR",
        help="results directory (default: results/<YYYYmmdd-HHMMSS> under the working directory)",
    )
    output.add_argument(
        "--wandb",
        choices=WANDB_MODES,
        default="offline",
        help="W&B mode; each run is one W&B run in the group eval-<timestamp> (default: offline)",
    )
    output.add_argument("--wandb-project", default="lr-env", metavar="NAME", help="W&B project (default: lr-env)")
    output.add_argument("--verbose", "-v", action="store_true", help="log progress at INFO level")
    return parser


def _fail(message: str) -> int:
    """Print one error line to stderr and return the exit status for invalid input."""
    print(f"evaluate.py: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None, *, setup_logging: bool = False) -> int:
    """Run the evaluation described by ``argv``; return 0 on success and 2 for invalid input.

    Option errors exit with status 2 through ``argparse``. ``setup_logging`` sends WARNING and above
    (INFO and above with ``--verbose``) to stderr; library callers leave logging to themselves.
    """
    args = build_parser().parse_args(argv)
    if setup_logging:
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )

    from agents.checkpoint import CheckpointError, load_checkpoint
    from agents.evaluation import Evaluation, EvaluationConfig
    from agents.report import EvaluationReport, format_results_table, log_wandb_summary, write_report
    from lr_env.data import DataError

    settings = EvaluationConfig(
        policy=args.policy,
        preset=args.preset,
        total_steps=args.total_steps,
        granularity=args.granularity,
        seeds=args.seeds,
        methods=args.methods,
        lr_grid=args.lr_grid,
        stochastic=args.stochastic,
        target_accuracy=args.target_accuracy,
        eval_every=args.eval_every,
        data_dir=args.data_dir,
        device=args.device,
        torch_threads=args.torch_threads,
        out=args.out,
        wandb=args.wandb,
        wandb_project=args.wandb_project,
    )
    if settings.torch_threads is not None:
        import torch

        torch.set_num_threads(settings.torch_threads)
    try:
        checkpoint = load_checkpoint(settings.policy, device="cpu")
        evaluation = Evaluation(settings, checkpoint)
        evaluation.prepare()
    except (CheckpointError, DataError, ValueError) as error:
        return _fail(str(error))

    try:
        results = evaluation.run_all(progress=True)
        report = EvaluationReport.build(evaluation, results)
        write_report(report, evaluation.out_dir)
        log_wandb_summary(report)
    finally:
        evaluation.close()

    print(format_results_table(report))
    print()
    print(f"results: {evaluation.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(setup_logging=True))
