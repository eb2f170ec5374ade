"""Running a case: fixtures, the child process (fork server or fresh interpreter), its limits and polling."""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import cases as _cases
from .cases import AS_LIMIT, CLEAN_EXCEPTION_ROOTS, DATA_LIMIT, GROUP_KILL_MB, HERE, REPO, Case
from .cli import TRAIN_TINY
from .outcome import Outcome, classify

# ============================================================================================ running



def build_fixtures(fix: Path, need_run: bool) -> None:
    import torch
    from train_helpers import make_cifar
    from zoo_testutil import write_legacy

    import zoo
    torch.manual_seed(0)
    if not (fix / "cifar").is_dir():
        make_cifar(fix / "cifar")
    if not (fix / "saved").is_dir():
        model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2")
        zoo.save_pretrained(model, fix / "saved", card=False)
        sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        torch.save(sd, fix / "sd_zip.pt")
        write_legacy(sd, fix / "sd_legacy.pt")
    if need_run and not (fix / "run" / "record.json").is_file():
        args = ["train", "cifar10", "--out", str(fix / "run"), "--data", str(fix / "cifar"), *TRAIN_TINY]
        r = subprocess.run([sys.executable, "-m", "reproduce", *args], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(fix))
        if r.returncode != 0:
            raise RuntimeError(f"could not train the fixture run: {r.stderr[-2000:]}")


def _clean_exception(e: BaseException) -> bool:
    roots = {c.__module__.split(".")[0] for c in type(e).__mro__}
    return isinstance(e, (ValueError, OSError)) or bool(roots & set(CLEAN_EXCEPTION_ROOTS))


def child_entry(argv: List[str], lib: bool) -> int:
    """Run one case's command in this (child) process as `python -m` or `python -c` would; returns the exit code."""
    import runpy
    mode, target, *rest = argv
    code = 0
    try:
        if mode == "-m":
            sys.argv = [target, *rest]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *rest]
            try:
                exec(compile(target, "<case>", "exec"), {"__name__": "__main__"})
            except Exception as e:  # noqa: BLE001 - classified: a clean refusal or an internal error
                if lib and _clean_exception(e):
                    print(f"REFUSED {type(e).__name__}: {e}", file=sys.stderr)
                    code = 2
                else:
                    raise
    except SystemExit as e:
        c = e.code
        if c is None:
            code = 0
        elif isinstance(c, int):
            code = c
        else:
            print(c, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - as the interpreter does: print it, exit 1
        traceback.print_exc()
        code = 1
    return code


def _finish_child(code: int, peak_file: str) -> None:
    import atexit
    import threading
    for t in threading.enumerate():  # as the interpreter's exit: wait for the non-daemon threads
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        Path(peak_file).write_text(str(kb))
    except (OSError, StopIteration, ValueError):
        pass
    os._exit(code & 0xFF if code >= 0 else 1)


def _limits() -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _case_env(d: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DARTS_ZOO", "HF_", "XDG_"))}
    home = d / "home"
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / "mpl"),
               DARTS_ZOO_HOME=str(home / "zoo"), HF_HOME=str(home / "hf"), PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), str(HERE / "zoo"), str(HERE / "reproduce")]),
               OMP_NUM_THREADS="1", TQDM_DISABLE="1", WANDB_MODE="disabled")
    return env


def _fork_run(argv: List[str], lib: bool, d: Path, env: Dict[str, str], out: Path, err: Path, peak: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _limits()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.chdir(d)
            os.environ.clear()
            os.environ.update(env)
            sys.path[:] = [p for p in sys.path if p not in ("",)] + [str(d)]
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = child_entry(argv, lib)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        _finish_child(code, str(peak))
    return pid


def _fresh_run(argv, lib, d, env, out, err, peak) -> int:
    p = subprocess.Popen([sys.executable, str(HERE / "hostile_sweep.py"), "--child", json.dumps(
        {"argv": argv, "lib": lib, "peak": str(peak)})], stdin=subprocess.DEVNULL, stdout=open(out, "wb"),
        stderr=open(err, "wb"), cwd=d, env=env, preexec_fn=_limits)
    return p.pid


def _group_memory(pgid: int) -> Tuple[float, float]:
    """(sum of VmRSS, max VmHWM) in MB over the processes of group ``pgid``."""
    total, hwm = 0.0, 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
                    elif line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return total, hwm


def _snapshot(d: Path, outputs: Sequence[str]) -> Dict[str, Tuple]:
    skip = [d / o for o in outputs] + [d / "home"]
    snap = {}
    for root, dirs, files in os.walk(d):
        rp = Path(root)
        dirs[:] = [x for x in dirs if not any(rp / x == s or s in (rp / x).parents for s in skip)]
        for name in files + [x for x in dirs]:
            p = rp / name
            if any(p == s or s in p.parents for s in skip):
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            digest = None
            if name in files and not os.path.islink(p) and os.path.isfile(p) and st.st_size < (64 << 20):
                with open(p, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            snap[str(p.relative_to(d))] = (st.st_mode, st.st_size, digest)
    return snap


def run_case(c: Case, work: Path, fresh: bool, keep: Optional[Path]) -> Outcome:
    d = work / re.sub(r"[^\w.-]", "_", c.name)[:150]
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "home").mkdir()
    logs = work / ".logs"
    logs.mkdir(exist_ok=True)
    out, err, peak_file, argv_file = (logs / f"{d.name}.{x}" for x in ("out", "err", "peak", "argv"))
    for p in (out, err, peak_file, argv_file):
        p.unlink(missing_ok=True)
    # the input is built in its own child, so that the builders leave nothing behind in this process
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.chdir(d)
            argv = [str(a) for a in c.make(d, _cases.FIXTURES)]
            argv_file.write_text(json.dumps(argv))
        except BaseException:  # noqa: BLE001
            err.write_text(traceback.format_exc())
            code = 3
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not argv_file.exists():
        return Outcome(c.name, c.area, "error", ["could not build the input: " + err.read_text()[-800:]], None, 0.0,
                       None, "")
    argv = json.loads(argv_file.read_text())
    before = _snapshot(d, c.outputs)
    env = _case_env(d)
    t0 = time.monotonic()
    pid = (_fresh_run if fresh else _fork_run)(argv, c.lib, d, env, out, err, peak_file)
    timeout = c.timeout * (3 if fresh else 1)
    timed_out = killed_mem = False
    group_hwm = 0.0
    status = None
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        total, hwm = _group_memory(pid)
        group_hwm = max(group_hwm, hwm)
        if total > GROUP_KILL_MB:
            killed_mem = True
        if time.monotonic() - t0 > timeout:
            timed_out = True
        if timed_out or killed_mem:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the case left running in its group
    except (ProcessLookupError, PermissionError):
        pass
    rc = os.waitstatus_to_exitcode(status) if status is not None else None
    peak = None
    try:
        peak = int(peak_file.read_text()) / 1024
    except (OSError, ValueError):
        pass
    peak = max(x for x in (peak, group_hwm or None, 0.0) if x is not None)
    stderr = err.read_text(errors="replace") if err.exists() else ""
    after = _snapshot(d, c.outputs)
    category, reasons = classify(c, d, rc, timed_out, killed_mem, peak or None, stderr, before, after)
    tail = "\n".join(stderr.strip().splitlines()[-3:])[-600:]
    if keep is not None and category != "clean":
        try:  # FIFOs and other special files are left out (copying one would block)
            shutil.copytree(d, keep / d.name, symlinks=True, dirs_exist_ok=True, ignore=lambda root, names: [
                n for n in names if not os.path.islink(os.path.join(root, n)) and not os.path.isdir(
                    os.path.join(root, n)) and not os.path.isfile(os.path.join(root, n))])
            for p in (out, err):
                if p.exists():
                    shutil.copy(p, keep / d.name / f"_sweep_{p.suffix[1:]}.txt")
        except (OSError, shutil.Error) as e:
            print(f"could not keep {d}: {e}", file=sys.stderr)
    _rmtree(d)
    shown = [a if len(a) < 200 else a[:120] + f"...<{len(a)} chars>" for a in argv]
    return Outcome(c.name, c.area, category, reasons, rc, seconds, peak, tail, shown)


def _rmtree(d: Path) -> None:
    for root, dirs, _files in os.walk(d):  # a FIFO or a read-only dir must not stop the cleanup
        for x in dirs:
            try:
                os.chmod(Path(root) / x, 0o755)
            except OSError:
                pass
    shutil.rmtree(d, ignore_errors=True)


