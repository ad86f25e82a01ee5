#!/usr/bin/env python
"""Train a per-layer learning-rate controller on CIFAR-10 ResNet-18 training.

With no arguments, trains PPO with an MLP policy on the ``resnet18`` preset when CUDA is available
and on the ``cpu`` preset otherwise, prints the run's cost first and writes ``ckpt.zip``.

Exit codes:

- 0: training finished.
- 1: the policy became NaN or infinite; the last good checkpoint is kept.
- 2: invalid options, missing data or an unusable --resume checkpoint (one line on stderr).
- 130: interrupted by SIGINT (Ctrl-C); a checkpoint is saved if training had started.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import typing

from agents.algorithms import BudgetError
from agents.checkpoint import CheckpointError
from agents.cli import OneLineErrorParser
from agents.training import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    TrainConfig,
    UsageError,
    describe_plan,
    plan_run,
    train,
)
from lr_env.data import DataError


def _argument_type(hint, parse):
    """Return the argparse ``type`` of a TrainConfig field: its ``parse`` metadata or base type."""
    if parse is None:
        parse = next(arg for arg in typing.get_args(hint) or (hint,) if arg is not type(None))

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def build_parser(suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """Return the parser of every :class:`TrainConfig` option plus ``--verbose``.

    With ``suppress_defaults`` the parsed namespace contains only the options given on the
    command line, which is how conflicts with ``--resume`` are found.
    """
    parser = OneLineErrorParser(
        prog="train_controller.py",
        description="Train a per-layer learning-rate controller (SB3 PPO or SAC with an MLP "
        "policy) on CIFAR-10 ResNet-18 training. Prints the run's cost, then trains and writes "
        "a self-describing checkpoint that evaluate.py can load on its own.",
        epilog="Exit codes: 0 finished; 1 the policy became NaN (the last good checkpoint is "
        "kept); 2 invalid options, missing data or bad --resume checkpoint; 130 interrupted by "
        "Ctrl-C after saving a checkpoint.",
        argument_default=argparse.SUPPRESS if suppress_defaults else None,
    )
    hints = typing.get_type_hints(TrainConfig)
    for config_field in dataclasses.fields(TrainConfig):
        metadata = config_field.metadata
        flag = "--" + config_field.name.replace("_", "-")
        kwargs = {"dest": config_field.name, "help": metadata["help"]}
        if not suppress_defaults:
            kwargs["default"] = config_field.default
        if hints[config_field.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _argument_type(hints[config_field.name], metadata.get("parse"))
            for key in ("choices", "metavar"):
                if key in metadata:
                    kwargs[key] = metadata[key]
        parser.add_argument(flag, **kwargs)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details at INFO level")
    return parser


def _fail(message: str) -> int:
    print(f"train_controller.py: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = vars(build_parser().parse_args(argv))
    explicit = set(vars(build_parser(suppress_defaults=True).parse_args(argv)))
    verbose = args.pop("verbose")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    config = TrainConfig(**args)
    # A background job of a non-interactive shell starts with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt. Restore the default handler so that Ctrl-C or `kill -INT` stops the
    # run, saving a checkpoint once training has started.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        plan = plan_run(config, explicit)
    except (UsageError, BudgetError, CheckpointError, ValueError) as error:
        return _fail(str(error))

    for note in plan.notes:
        print(note)
    print(describe_plan(plan), flush=True)

    try:
        result = train(plan)
    except (DataError, CheckpointError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        print("Interrupted before training started; no checkpoint written", file=sys.stderr)
        return EXIT_INTERRUPTED

    stream = sys.stdout if result.status == "completed" else sys.stderr
    print(result.message, file=stream)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
