"""A repeatable sweep of hostile inputs through the zoo and the harness: each case in its own child process,
bounded in wall time and memory, its outcome classified.

    python tests/hostile_sweep.py [--only PREFIX] [--name NAME] [--json OUT] [--fresh] [--list] [--keep DIR]

A case builds its hostile input in a fresh temporary directory (files, a config, a run directory, a saved
model) and runs one command on it: the zoo's or the harness's command line (``python -m zoo ...``,
``python -m reproduce ...``) or a few lines of Python calling the library (``zoo.load(path)``); some check
files afterwards. Areas: ``pickles`` (legacy and zip checkpoints), ``saved`` (saved-model folders), ``cli``
(flags and config files of the harness), ``runs`` (run directories and records), ``network`` (a local HTTP
server misbehaving; offline pushes).

How a case runs. By default a fork server: this process imports torch (and numpy, safetensors, yaml) once,
then forks one child per case; the child imports the project's packages itself, so nothing of theirs is
shared, and runs the command as ``python -m`` would (``runpy.run_module(..., run_name="__main__")``; an
uncaught exception prints its traceback and exits 1). ``--fresh`` runs each case in a new interpreter
instead (``python tests/hostile_sweep.py --child ...``): slower (torch is imported each time), otherwise the
same. Each child gets its own session (process group), ``RLIMIT_DATA`` of 3 GB (``RLIMIT_AS`` cannot be
~3 GB: importing torch alone maps 3.2 GB of address space; it is set to 16 GB), stdin from /dev/null,
``HOME``, ``XDG_CACHE_HOME``, ``DARTS_ZOO_HOME`` and ``MPLCONFIGDIR`` inside the case directory, and the
case directory as working directory. The parent polls the process group every 0.2 s: a case still running
after its timeout (30 s) is killed with its group, and so is a group whose resident memory together passes
6 GB. The peak RSS of a case is the child's own ``VmHWM`` (written by the child at exit; ru_maxrss of
children is contaminated by the forking parent) and the highest ``VmHWM`` seen in its process group.

Classification:
- severe: killed at the timeout (a hang); peak RSS above 1.2 GB; a Python traceback on stderr (for library
  snippets: an exception that is not a ValueError/OSError or one of the project's own); death by a signal;
  the sentinel file of a code-carrying pickle created; a file of the case directory outside the named
  outputs changed or deleted; a case that must be refused exiting 0; a case's own check failing.
- moderate: the refusal's message (stderr without log lines) longer than 1000 characters or over 4 lines
  (the "no weights ... tried:" report of a registry name, one line per source: 4000 characters, 20 lines,
  600 a line); a Python object's repr (``<... object at 0x...>``) in the message;
  a message naming neither the offending file nor the flag/field; a valid input refused; files written
  outside the named outputs.
- clean: anything else (refused with exit code != 0 and a short message, or accepted where acceptance is right).

Exit status 1 if any case is severe. ``--only`` takes a prefix of case names (``pickles``, ``cli.train``...).
"""
