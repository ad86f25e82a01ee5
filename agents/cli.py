"""Pieces shared by the two command-line tools."""

from __future__ import annotations

import argparse
import typing

EXIT_USAGE = 2
"""Exit code of a user error: an invalid option, missing data or an unusable checkpoint."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser that reports an invalid option in one line, without the usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
