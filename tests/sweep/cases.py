"""The sweep's cases: Case, case(), the registry, constants and small helpers shared by the case families."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

HERE = Path(__file__).resolve().parent.parent  # tests/
REPO = HERE.parent
for _p in (str(REPO), str(HERE), str(HERE / "zoo"), str(HERE / "reproduce")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TIMEOUT_S = 30.0
MAX_RSS_MB = 1200.0
GROUP_KILL_MB = 6000.0
DATA_LIMIT = 3000 << 20
AS_LIMIT = 16 << 30
MAX_MESSAGE_CHARS = 1000
MAX_MESSAGE_LINES = 4
SENTINEL = "PWNED"
CLEAN_EXCEPTION_ROOTS = ("zoo", "reproduce", "genotypes")
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d )?(INFO|DEBUG)[: ]")
ARGPARSE_ERROR = re.compile(r"^\S.*: error: ")
PROGRESS = re.compile(r"(\d+%\||B/s\]|it/s\]|\[\d\d:\d\d<)")


# ============================================================================================ cases


@dataclass
class Case:
    name: str                                # area.family.variant
    make: Callable[[Path, Path], List[str]]  # (case dir, fixtures dir) -> argv: ["-m", MOD, ...] or ["-c", CODE]
    expect: str = "refuse"                   # refuse | accept | either
    names: Tuple[str, ...] = ()              # a refusal must name one of these ("{d}" = the case dir)
    outputs: Tuple[str, ...] = ("out",)      # paths (relative to the case dir) the command may write
    lib: bool = False                        # a library snippet: a clean exception is a refusal (exit 2)
    check: Optional[Callable[[Path], Optional[str]]] = None  # after the run: a severe finding, or None
    timeout: float = TIMEOUT_S
    needs: Tuple[str, ...] = ()              # fixtures beyond the default ones ("run")

    @property
    def area(self) -> str:
        return self.name.split(".", 1)[0]


CASES: List[Case] = []


def case(name, make, **kw) -> None:
    CASES.append(Case(name, make, **kw))


def zoo_cli(*args) -> List[str]:
    return ["-m", "zoo", *map(str, args)]


def repro(*args) -> List[str]:
    return ["-m", "reproduce", *map(str, args)]


def snippet(code: str) -> List[str]:
    return ["-c", code]


def lib_load(path) -> List[str]:
    return snippet(f"import zoo\nzoo.load({str(path)!r})")


def sentinel_absent(d: Path) -> Optional[str]:
    if (d / SENTINEL).exists():
        return f"code from the input ran: {SENTINEL} was created"
    if (d / "user").is_dir() and not (d / "user" / "notes.txt").is_file():
        return "code from the input ran: user/notes.txt was deleted"
    return None


def user_files(d: Path) -> None:
    """A directory of a user's files: must be left as it is (the snapshot checks it)."""
    (d / "user").mkdir(exist_ok=True)
    (d / "user" / "notes.txt").write_text("my notes\n")
    (d / "user" / "data.bin").write_bytes(os.urandom(1000))


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path



FIXTURES = Path()  # the shared fixtures' directory: set by main (read when a case is built)

