"""Runs side by side on one machine's CPU cores: a pool of worker processes, each running one run at a time.

The small runs of the demo (and of quick experiments) cannot use two cores from inside one run: their steps are
hundreds of tiny kernels, each dominated by its launch, and a second intra-op thread only adds synchronisation
(measured on a 2-core AMD EPYC: one recurrent search epoch took 10.9 s with 2 torch threads, 10.1 s with 1).
Two runs side by side, one thread each, take the time of one. So the pool starts ``workers`` processes and
every run gets one of them with its own ``num_threads`` (the demo's: 1). A run's numbers then depend neither on
the pool nor on the number of workers.

Several experiments may share the pool (the demo runs its four from threads of the parent process). A run
directory submitted while it is already running or done in this pool is not run again: the second caller gets
the first caller's future (the demo's two search orders share their random baseline this way), provided it
asks for the same config (else it is refused: two configs never share a run directory). Workers log as the
parent does (its root logger's level), each line naming the run directory.

Worker processes are *spawned* (not forked): the parent holds torch's thread pools and locks, which a fork
would copy in an unusable state.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from tqdm.auto import tqdm

from .config import diff as config_diff
from .rundir import RUNTIME_FIELDS
from .tasks import run_task

log = logging.getLogger(__name__)

WINDOWS_MAX_WORKERS = 61


# How often a worker checks that its parent is alive: a worker outliving it (kill -9 of the parent) would hold
# its ~750 MB and the resource tracker forever.
PARENT_CHECK_S = 1.0


def _start_worker(level: int, parent: int) -> None:
    """In each worker: log as the parent does (a spawned process starts without any logging set up), and exit
    when the parent process ``parent`` is gone."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """Exit this process once it is orphaned (its parent id changes). Polling, not Linux's PR_SET_PDEATHSIG:
    that signal follows the parent *thread* that started the worker, and the demo's experiment threads start
    workers and end while the pool goes on; polling also works on every platform."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            log.error("the parent process %d is gone: this worker exits (rerun the command to resume)", parent)
            os._exit(1)


class RunPool:
    """``with RunPool(workers) as pool: pool.submit(job)`` (a :class:`reproduce.scheduler.Job`) -> Future of its
    record. Thread-safe. Leaving the ``with`` block waits for the runs still going; leaving it on an error
    drops the queued runs and stops the running ones."""

    def __init__(self, workers: int, progress: bool = True, desc: str = "runs", run: Optional[Callable] = None):
        """``run(kind, dataset, config, out, progress)`` does one run in a worker (default
        :func:`reproduce.tasks.run_task`; a module-level function, as workers import it by name)."""
        if int(workers) < 1:
            raise ValueError(f"the pool needs at least one worker, got {workers}")
        # Windows' process pools wait on at most 61 workers (ProcessPoolExecutor refuses more there)
        self.workers = min(int(workers), WINDOWS_MAX_WORKERS) if sys.platform == "win32" else int(workers)
        self._run = run or run_task
        self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker,
                                             initargs=(logging.getLogger().level, os.getpid()))
        self._lock = threading.Lock()
        self._futures: Dict[str, Tuple[dict, Future]] = {}
        self._bar = tqdm(total=0, desc=f"{desc} ({self.workers} at a time)", unit="run",
                                         disable=not progress)

    def submit(self, job) -> Future:
        key = str(Path(job.out).resolve())
        with self._lock:
            if key in self._futures:
                config, future = self._futures[key]
                differ = config_diff(config, job.config, ignore=RUNTIME_FIELDS)
                if differ:
                    raise ValueError(f"{job.out} is already a run of this pool with another config (differs in "
                                     f"{', '.join(sorted(differ))}): use another directory for the new config")
                return future
            log.info("%s -> %s (queued)", job.name, job.out)
            # the plan's built config travels pickled with its mark of validation: the worker does not validate it again
            future = self._executor.submit(self._run, job.kind, job.dataset, job.task_config, job.out, False)
            self._futures[key] = (dict(job.config), future)
            self._bar.total += 1
            self._bar.refresh()
        future.add_done_callback(lambda f, name=job.name, out=job.out: self._finished(name, out, f))
        return future

    def _finished(self, name: str, out: str, future: Future) -> None:
        with self._lock:
            self._bar.update(1)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("%s (%s) failed: %s", name, out, error)
        else:
            log.info("%s finished (%s)", name, out)

    def close(self, cancel: bool = False) -> None:
        """Wait for the runs; ``cancel``: drop the queued ones and stop the running ones (they resume from their
        last checkpoint when the command is run again)."""
        if cancel:
            terminate = getattr(self._executor, "terminate_workers", None)  # Python >= 3.14
            if terminate is not None:
                terminate()
            else:  # older Pythons have no public way: the executor's own table of its workers, taken before
                # shutdown clears it
                workers = list((getattr(self._executor, "_processes", None) or {}).values())
                self._executor.shutdown(wait=False, cancel_futures=True)
                for process in workers:
                    process.terminate()
                for process in workers:
                    process.join()
            # the executor marks the runs of stopped workers as failed from its own thread: wait for that
            with self._lock:
                futures = [future for _, future in self._futures.values()]
            wait(futures, timeout=60)
        self._executor.shutdown(wait=True, cancel_futures=cancel)
        self._bar.close()

    def __enter__(self) -> "RunPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
