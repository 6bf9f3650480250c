"""How the command-line programs fail: one line ``error: <message>`` on standard error, never a
traceback, and an exit code that says whose mistake it was: 2 for arguments the user got wrong
(:class:`UsageError`, as argparse itself exits), 1 for data or files that cannot be used."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable


class UsageError(ValueError):
    """A flag or argument the user got wrong (exit code 2)."""


# What a command may raise on bad input or bad files; anything else is a bug and keeps its
# traceback.
EXPECTED = (ValueError, TypeError, OSError)


def run_cli(body: Callable[[], int | None], expected: tuple = EXPECTED,
            interrupted: str | None = None) -> int:
    """Runs a command's `body` and returns its exit code: 0 (or what it returns), 2 after a
    :class:`UsageError`, 1 after another `expected` error; each printed as one line, as are
    warnings (``warning: ...``).  With
    `interrupted`, Ctrl-C prints that line and returns 130 (else it propagates)."""
    previous, warnings.formatwarning = warnings.formatwarning, _one_line
    try:
        return body() or 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"\n{interrupted}", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous


def each(items, work: Callable, expected: tuple = EXPECTED) -> tuple:
    """``work(item)`` for each of `items` (the records of one command line), a failure of one
    not stopping the others.  Returns ``(done, failed)``: lists of ``(item, result)`` and of
    ``(item, message)``; each failure is printed as an ``error:`` line as it happens.  The
    command then exits 1 if anything failed (its output holds the rest)."""
    done, failed = [], []
    for item in items:
        try:
            done.append((item, work(item)))
        except expected as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            failed.append((item, str(exc)))
    return done, failed


def _one_line(message, category, filename, lineno, line=None) -> str:
    """A warning as a command prints it: ``warning: <message>``, without the source line a
    user has no use for."""
    return f"warning: {message}\n"


def command(build_parser: Callable[[], argparse.ArgumentParser],
            run: Callable[[argparse.Namespace], int | None],
            **options) -> Callable[[list | None], int]:
    """A command's ``main(argv=None)``: the arguments parsed by ``build_parser()``, then
    ``run(args)`` through :func:`run_cli` (with its `options`)."""

    def main(argv: list | None = None) -> int:
        args = build_parser().parse_args(argv)
        return run_cli(lambda: run(args), **options)

    return main


def add_run_flags(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    """The flags every command shares: ``--threads`` (:func:`~mets_fast.threads.set_threads`)
    and, with `quiet`, ``--quiet``."""
    parser.add_argument("--threads", type=positive_int, help="threads (default: all cores)")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress output")


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (``--threads``, ``--workers``)."""
    return _whole(text, 1, "a positive integer")


def seed(text: str) -> int:
    """An argparse ``type``: a whole number of at least 0 (``--seed``: NumPy's generators take
    no negative seed)."""
    return _whole(text, 0, "a non-negative integer")


def _whole(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value
