"""The ``mets-fast`` command (also ``python -m mets_fast``): the package's commands as
subcommands.

    mets-fast prepare synthetic --n 10000 --out stores/synthetic
    mets-fast train [--data ...]
    mets-fast zeroshot --model RUN --data ptbxl:/data/ptb-xl
    mets-fast linear-probe --model RUN --data ptbxl:/data/ptb-xl
    mets-fast index build --model RUN --store stores/ptbxl --out indexes/reports
    mets-fast retrieve --model RUN --index indexes/reports rec1 -k 5
    mets-fast embed --model RUN --store stores/ptbxl --out ecgs.npy
    mets-fast serve --model RUN --index reports=indexes/reports
    mets-fast info                 # version and the kernels in use

Each subcommand takes the arguments, and prints the ``--help``, of its module
(``python -m mets_fast.prepare``, ``python -m mets_fast.train``, ...).
"""

from __future__ import annotations

import sys
from importlib import import_module

# subcommand -> (module with main(argv), one line of help)
COMMANDS = {
    "prepare": ("mets_fast.prepare", "ECGs and their reports into an ECG store"),
    "train": ("mets_fast.train", "train a METS model (the synthetic default with no arguments)"),
    "zeroshot": ("mets_fast.zeroshot", "zero-shot classification: built-in tasks or any classes"),
    "linear-probe": ("mets_fast.linear_probe", "linear probe of a trained encoder, beside a "
                                               "random one"),
    "index": ("mets_fast.index", "index build: FAISS index of a model's report or ECG embeddings"),
    "retrieve": ("mets_fast.retrieve", "the reports or ECGs nearest to records or reports"),
    "embed": ("mets_fast.embed", "a model's embeddings of a store, reports or records to .npy"),
    "serve": ("mets_fast.serve", "a model and its indexes over HTTP, with a page to try it"),
    "info": (None, "version, kernel back ends and the arithmetic (bfloat16 or float32)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    # the module's spelling (linear_probe) names the same command as the CLI's (linear-probe)
    command, rest = argv[0].replace("_", "-"), argv[1:]
    if command not in COMMANDS:
        print(f"mets-fast: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, _ = COMMANDS[command]
    if module is None:
        from . import __version__
        from .jsonio import dumps
        from .loss import backends
        from .precision import choose

        cpu = choose("cpu", preset=True)
        print(dumps({"version": __version__, "backends": backends(),
                     "precision": {"cpu_bf16_native": cpu.native, "cpu": cpu.reason}}))
        return 0
    return import_module(module).main(rest)


def _usage() -> str:
    lines = ["usage: mets-fast COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`mets-fast COMMAND --help` shows a command's arguments."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
