"""The sweep's command line: which cases, running them, the summary."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import List, Optional

from . import __doc__ as _package_doc
from . import cases as _cases
from .cases import CASES, Case
from .cli import _add_cli_cases
from .network import _add_network_cases
from .outcome import Outcome
from .pickles import _add_pickle_cases
from .running import _finish_child, _rmtree, build_fixtures, child_entry, run_case
from .runs import _add_run_cases
from .saved import _add_saved_cases


def all_cases() -> List[Case]:
    if not CASES:
        _add_pickle_cases()
        _add_saved_cases()
        _add_cli_cases()
        _add_run_cases()
        _add_network_cases()
        names = [c.name for c in CASES]
        dup = {n for n in names if names.count(n) > 1}
        assert not dup, dup
    return CASES


def _preimport() -> None:
    """The heavy third-party modules the children would import anyway (torch, numpy, safetensors, yaml); never
    the project's packages, nor modules that read the environment when imported (huggingface_hub)."""
    import numpy  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import yaml  # noqa: F401

    os.environ.setdefault("MPLBACKEND", "Agg")
    import hostile  # noqa: F401  (tests/zoo: torch and the standard library only)
    import matplotlib.pyplot  # noqa: F401  (the harness's command line imports both: seconds each)
    import scipy.stats  # noqa: F401


def summarize(outcomes: List[Outcome]) -> str:
    cats = ("clean", "moderate", "severe", "error")
    areas = sorted({o.area for o in outcomes})
    lines = [f"{'area':<10} {'total':>6} " + " ".join(f"{c:>9}" for c in cats)]
    for a in areas + ["all"]:
        sel = [o for o in outcomes if a == "all" or o.area == a]
        lines.append(f"{a:<10} {len(sel):>6} " + " ".join(f"{sum(o.category == c for o in sel):>9}" for c in cats))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=_package_doc.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[], help="run only cases whose name starts with this (repeat)")
    p.add_argument("--name", action="append", default=[], help="run only the case of this exact name (repeat)")
    p.add_argument("--json", type=Path, help="write every outcome to this JSON file")
    p.add_argument("--fresh", action="store_true", help="a new interpreter per case instead of the fork server")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", type=Path, help="copy the directories of non-clean cases here")
    p.add_argument("--fixtures", type=Path, help="directory for the shared fixtures (kept between sweeps)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        _finish_child(child_entry(spec["argv"], spec["lib"]), spec["peak"])
    cases = [c for c in all_cases() if (not args.only and not args.name) or c.name in args.name
             or (args.only and c.name.startswith(tuple(args.only)))]
    if args.list:
        for c in cases:
            print(c.name)
        print(f"{len(cases)} cases")
        return 0
    work = Path(tempfile.mkdtemp(prefix="hostile-sweep-"))
    _cases.FIXTURES = fixtures = (args.fixtures or work / "fixtures").resolve()
    fixtures.mkdir(parents=True, exist_ok=True)
    need_run = any("run" in c.needs for c in cases)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            build_fixtures(fixtures, need_run)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        print("could not build the fixtures", file=sys.stderr)
        return 2
    if not args.fresh:
        os.environ["MPLCONFIGDIR"] = str(work / "mpl")
        _preimport()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    outcomes = []
    t0 = time.monotonic()
    print(f"{len(cases)} cases, {'a fresh interpreter' if args.fresh else 'a fork'} each; work dir {work}",
          flush=True)
    for i, c in enumerate(cases, 1):
        o = run_case(c, work, args.fresh, args.keep)
        outcomes.append(o)
        flag = "" if o.category == "clean" else f"  <-- {o.category}: {'; '.join(o.reasons)[:300]}"
        print(f"[{i:>3}/{len(cases)} {time.monotonic() - t0:6.0f}s] {o.seconds:5.1f}s {o.peak_mb or 0:6.0f}MB "
              f"rc={o.rc} {c.name}{flag}",
              flush=True)
    elapsed = time.monotonic() - t0
    print()
    print(summarize(outcomes))
    peak = max((o.peak_mb or 0) for o in outcomes)
    print(f"\n{len(outcomes)} cases in {elapsed:.0f} s; peak RSS of any case {peak:.0f} MB; slowest "
          f"{max(o.seconds for o in outcomes):.1f} s")
    bad = [o for o in outcomes if o.category != "clean"]
    for o in bad:
        print(f"\n{o.category.upper()} {o.name} (rc={o.rc}, {o.seconds:.1f} s, {o.peak_mb or 0:.0f} MB)")
        for r in o.reasons:
            print(f"  - {r}")
        print("  argv: " + " ".join(o.argv)[:400])
        if o.stderr_tail:
            print("  stderr: " + o.stderr_tail.replace("\n", "\n          "))
    if args.json:
        args.json.write_text(json.dumps({"elapsed_s": elapsed, "outcomes": [o.__dict__ for o in outcomes]}, indent=1))
    if not args.fixtures:
        _rmtree(work)
    else:
        _rmtree(work)
    return 1 if any(o.category in ("severe", "error") for o in outcomes) else 0


