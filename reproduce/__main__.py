"""Command line of the harness: ``python -m reproduce <command> --help``.

Each module in ``reproduce.commands`` adds its subcommand through ``register(subparsers)``;
the handler it sets (``func``) returns an exit code. Errors a user can cause are turned into
one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import logging
import pkgutil
import sys

from zoo.extras import HARNESS, MissingExtraError, install_hint, missing

if __name__ == "__main__" and missing(HARNESS):  # before the harness's modules import them
    print(f"error: the harness needs {', '.join(missing(HARNESS))}: {install_hint(HARNESS)}", file=sys.stderr)
    sys.exit(2)

from . import commands  # noqa: E402
from .config import ConfigError  # noqa: E402
from .distributed import RanksDivergedError  # noqa: E402
from .rundir import RunInUseError  # noqa: E402

# PermissionError: a read-only results or run directory (its message names the path).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError, ConfigError,
               FloatingPointError, RunInUseError, MissingExtraError,
               RanksDivergedError)


# How torch words a failed allocation: torch.OutOfMemoryError's "CUDA out of memory", the CPU allocator's "can't
# allocate memory" (Linux) or "not enough memory" (Windows); a RuntimeError saying anything else is a bug to show.
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says that memory ran out (MemoryError, torch.OutOfMemoryError, the allocators' words)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in _OUT_OF_MEMORY_WORDS)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The error's first line, cut to ``limit`` characters (torch's OOM message runs over several)."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reproduce",
        description="Rerun DARTS (Liu et al., arXiv:1806.09055): search, train from scratch, aggregate, report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as e:  # the filesystem: a path through a file, a directory where a file should be, a full disk
        logging.getLogger(__name__).debug("traceback", exc_info=True)  # shown with -v
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}; nothing finished was lost: fix it, "
              "then rerun the same command to resume", file=sys.stderr)
        return 2
    except concurrent.futures.BrokenExecutor as e:  # a worker process killed (the OOM killer, a signal)
        logging.getLogger(__name__).debug("traceback", exc_info=True)
        print(f"error: a worker process died ({e}); killed for memory? Rerun the same command to resume",
              file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # after BrokenExecutor, a RuntimeError too
        if not out_of_memory(e):
            raise
        logging.getLogger(__name__).debug("traceback", exc_info=True)  # shown with -v
        print(f"error: out of memory: the run needs more memory than there is ({first_line(e)}); lower C, layers, "
              "batch_size or image_size (nhid for a recurrent search), or free memory, then rerun the same command "
              "to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
