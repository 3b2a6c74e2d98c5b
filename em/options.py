"""The command-line options of ``python -m em`` and ``python -m compare``, defined once.

Each option has one flag, one help text and one parser that checks its value and, when it
is bad, raises a ``ValueError`` naming the flag (one line: the command prints it and exits
with status 2). Both commands build their parsers from these definitions, so a flag cannot
mean different things in the two.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from em import _validation as v
from em.fitting import METHODS
from em.selection import parse_components

__all__ = [
    "Option",
    "Parser",
    "UsageError",
    "COMPONENTS",
    "SEED",
    "RESTARTS",
    "TOL",
    "MAX_ITER",
    "METHOD",
    "INIT_WEIGHTS",
    "INIT_P",
    "FIX",
    "PRIOR_WEIGHTS",
    "PRIOR_P",
    "DATA",
    "integer",
    "components",
    "tolerance",
    "prior_weights",
    "prior_p",
    "floats",
]


class UsageError(Exception):
    """A command-line usage error: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (a :class:`UsageError`), never an exit."""

    def error(self, message):  # noqa: D102 - argparse hook
        raise UsageError(f"{self.prog}: {message}")


@dataclass(frozen=True)
class Option:
    """One flag: its name, value name, help and default (the text argparse stores)."""

    flag: str
    metavar: str
    help: str
    default: str | None = None
    required: bool = False
    choices: tuple = field(default=())

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value in."""
        return self.flag.lstrip("-").replace("-", "_")

    def add(self, parser: argparse.ArgumentParser, **changes) -> None:
        """Add the option to ``parser`` (``changes`` override default, help or required)."""
        kwargs = {
            "metavar": self.metavar,
            "help": self.help,
            "default": self.default,
            "required": self.required,
        } | changes
        if self.choices:
            kwargs["choices"] = self.choices
        parser.add_argument(self.flag, **kwargs)


DATA = "'chapter' or a CSV file with the header heads,trials or heads,trials,count"

COMPONENTS = Option(
    "--components",
    "K",
    "number of components, or a range such as 1-4 (model selection)",
    required=True,
)
SEED = Option(
    "--seed", "S", "root of the SeedSequence every random choice comes from (0)", default="0"
)
RESTARTS = Option("--restarts", "R", "seeded random EM starts (10)", default="10")
TOL = Option(
    "--tol",
    "T",
    "a run has converged when its certified gap, the log-likelihood (or log-posterior) "
    "still to gain, is at most T nats; absolute, whatever the number of sequences (1e-9)",
    default="1e-9",
)
MAX_ITER = Option("--max-iter", "M", "most accepted steps of a run (1000)", default="1000")
METHOD = Option(
    "--method",
    "NAME",
    "newton: EM steps, then Newton steps with the exact Hessian (the default); em: plain "
    "EM, step after step",
    default="newton",
    choices=METHODS,
)
INIT_WEIGHTS = Option("--init-weights", "W,...", "your own starting weights (a run of its own)")
INIT_P = Option("--init-p", "P,...", "your own starting biases (a run of its own)")
FIX = Option("--fix", "GROUP", "hold the weights or the biases fixed", choices=("weights", "p"))
PRIOR_WEIGHTS = Option(
    "--prior-weights", "ALPHA", "Dirichlet alpha on the weights, >= 1: one number or K"
)
PRIOR_P = Option("--prior-p", "A,B", "Beta(a, b) prior on every bias, a, b >= 1")


def integer(text, flag: str, minimum: int) -> int:
    """A strict decimal integer >= ``minimum``."""
    return v.parse_int(text, flag, minimum)


def components(text) -> list[int]:
    """``--components``: one K or a range LOW-HIGH."""
    return parse_components(text)


def tolerance(text, flag: str = "--tol") -> float:
    """A finite number >= 0."""
    return v.check_tol(v.parse_float(text, flag), flag)


def floats(text, flag: str) -> list[float]:
    """A comma-separated list of finite numbers."""
    return v.parse_float_list(text, flag)


def prior_weights(text, k: int, flag: str = "--prior-weights"):
    """``--prior-weights`` as a K-vector (one number is broadcast)."""
    alpha = floats(text, flag)
    return v.check_prior_weights(alpha[0] if len(alpha) == 1 else alpha, k, flag)


def prior_p(text, flag: str = "--prior-p") -> tuple[float, float]:
    """``--prior-p`` as (a, b)."""
    return v.check_prior_p(floats(text, flag), flag)
