"""Config dataclasses <-> command line.

Every field of a config dataclass becomes ``--field-name`` (booleans: ``--name`` / ``--no-name``), with
the field's default (the paper's value) and its ``metadata["help"]`` shown in ``--help``. The
CLI overrides fields by name; the resolved config is saved with the run.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import re
import typing
from pathlib import Path
from typing import Any, Dict, Type, TypeVar

import yaml

from genotypes.quoting import quote

from .device import max_threads
from .jsonfile import BadFileError, check_regular, read_bytes_checked, read_json

T = TypeVar("T")

# The original's flag names: every config names these fields the same way (the right-hand side), and
# the original's names are accepted for them in overrides, on the command line and in saved configs.
ALIASES = {"lr": "learning_rate", "wdecay": "weight_decay", "clip": "grad_clip",
           "arch_lr": "arch_learning_rate", "arch_wdecay": "arch_weight_decay"}


class ConfigError(ValueError):
    """An impossible or unknown config value."""


def canonical(data: Dict[str, Any]) -> Dict[str, Any]:
    """``data`` with the original's field names (:data:`ALIASES`) replaced by ours; both at once is an error."""
    out: Dict[str, Any] = {}
    for key, value in data.items():
        name = ALIASES.get(key, key)
        if name in out and out[name] != value:
            raise ConfigError(f"{key} and {name} are the same field, given twice with different values "
                              f"({quote(out[name])} and {quote(value)}); give one of them")
        out[name] = value
    return out


@functools.lru_cache(maxsize=None)
def _type_hints(cls) -> Dict[str, Any]:
    """The resolved annotations of a config class (resolving them is slow; configs are checked often)."""
    return typing.get_type_hints(cls)


def field_type(cls, field: dataclasses.Field):
    tp = _type_hints(cls).get(field.name, str)
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if args else str
    return tp


def add_config_arguments(parser: argparse.ArgumentParser, cls: Type, skip=(), prefix: str = "",
                         title: str = "") -> None:
    """Add one ``--name`` option per field of ``cls``; defaults stay None so only given ones override.

    Booleans work bare (``--compile``, ``--no-compile``). Fields with one of the original's names
    (:data:`ALIASES`) take it too (``--lr`` for ``--learning-rate``). With ``prefix`` the options are
    ``--<prefix>-<field>`` (the experiment commands' search fields); without, ``--config FILE`` loads
    a JSON config (a run directory's config.json, or one written by hand) that the options override.
    """
    if not prefix:
        parser.add_argument("--config", metavar="FILE", dest="config_file", default=None,
                            help="JSON or YAML (.yaml, .yml) config to start from (e.g. a run directory's "
                                 "config.json: rerunning with it reproduces that run's config); options given here "
                                 "override its fields")
    group = parser.add_argument_group(title or f"{cls.__name__} fields (defaults: the paper's values)")
    original_names = {ours: theirs for theirs, ours in ALIASES.items()}
    start = f"--{prefix}-" if prefix else "--"
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp = field_type(cls, f)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        options = [start + name.replace("_", "-") for name in (f.name, original_names.get(f.name)) if name]
        kwargs: Dict[str, Any] = dict(dest=f"{prefix}cfg_{f.name}", default=None, help=help_text)
        if tp is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif tp in (int, float, str):
            kwargs.update(type=tp, metavar=tp.__name__.upper())
        else:
            kwargs.update(type=str, metavar="VALUE")
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(*options, **kwargs)


# A config holds a few dozen fields: a larger --config file is not one (and parsing it would take long).
MAX_CONFIG_BYTES = 1 << 20
_CONFIG_FIX = "--config takes a JSON or YAML mapping of config fields (e.g. a run's config.json)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader that refuses a key given twice in one mapping, and aliases (``*name``, which
    let a few lines stand for an exponentially large document)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError(f"an alias (*name) at line {self.peek_event().start_mark.line + 1}: a config "
                                 "spells out its values")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.YAMLError(f"the key {quote(key)} at line {key_node.start_mark.line + 1} is not a name")
            if key in seen:
                raise yaml.YAMLError(f"gives the key {quote(key)} twice (line {key_node.start_mark.line + 1}: which "
                                     "one counts is ambiguous)")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        text = read_bytes_checked(path, MAX_CONFIG_BYTES, _CONFIG_FIX, ConfigError).decode("utf-8")
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: is not UTF-8 text (byte {e.start}); {_CONFIG_FIX}") from None
    except RecursionError:
        raise ConfigError(f"{path}: is nested too deeply to be a config; {_CONFIG_FIX}") from None
    except yaml.YAMLError as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: is not a valid config ({problem[:120]}); {_CONFIG_FIX}") from None


def load_config_file(path) -> Dict[str, Any]:
    """The fields of a JSON or YAML (``.yaml``/``.yml``) config file (a run's config.json or one written by hand),
    original names accepted. A key given twice, or a file larger than any config, is refused."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--config {path}: no such file")
    try:  # a FIFO or a device (/dev/zero) is refused before it is opened: reading one blocks or never ends
        check_regular(path, MAX_CONFIG_BYTES, _CONFIG_FIX, what="any config")
    except BadFileError as e:
        raise ConfigError(f"--config {e}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: holds {type(data).__name__}, not a mapping of config fields; {_CONFIG_FIX}")
    else:
        try:
            data = read_json(path, fix=_CONFIG_FIX)
        except BadFileError as e:
            raise ConfigError(str(e)) from None
    return canonical(data)


def overrides_from_args(args: argparse.Namespace, prefix: str = "", skip=()) -> Dict[str, Any]:
    """The config fields given on the command line, over those of ``--config FILE`` (less ``skip``)."""
    key = f"{prefix}cfg_"
    out: Dict[str, Any] = {}
    if not prefix and getattr(args, "config_file", None):
        out.update({k: v for k, v in load_config_file(args.config_file).items() if k not in skip})
    given = {k[len(key):]: v for k, v in vars(args).items() if k.startswith(key) and v is not None}
    if not prefix:  # the fields whose values came from --config FILE, for naming_config_file
        args.config_file_fields = tuple(k for k in out if k not in given)
    out.update(given)
    return out


def _names_fields(message: str, fields) -> bool:
    """Whether a ConfigError's message is about one of ``fields``: validate's messages start with the field's
    name ("epochs must be >= 1, ..."), build's unknown-field message lists the names before "; known:"."""
    if message.startswith("unknown "):
        listed = message.split("; known:")[0]
        return any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", listed) for f in fields)
    return any(message.startswith((f"{f} ", f"{f}=", f"{f}:")) for f in fields)


@contextlib.contextmanager
def naming_config_file(args):
    """Name the --config file in a ConfigError about a value that came from it (not from an option): otherwise
    "epochs must be >= 1" sends the user looking through the command line for a value that is in the file."""
    try:
        yield
    except ConfigError as e:
        path, fields = getattr(args, "config_file", None), getattr(args, "config_file_fields", ())
        if path and not str(e).startswith("--config ") and _names_fields(str(e), fields):
            raise ConfigError(f"--config {path}: {e}") from None
        raise


def build(cls: Type[T], overrides: Dict[str, Any] = None, base: T = None) -> T:
    """A config of ``cls`` from ``base`` (or the defaults) with ``overrides`` applied and checked. A config class
    with ``method_recipes`` (the conv search) takes the named method's recipe under ``overrides``."""
    overrides = canonical(dict(overrides or {}))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {', '.join(quote(u)[1:-1] for u in unknown[:5])}"
                          f"{', ...' if len(unknown) > 5 else ''}; known: {', '.join(sorted(names))}")
    recipes = getattr(cls, "method_recipes", None)
    if recipes is not None and "method" in overrides:
        if overrides["method"] not in recipes:
            raise ConfigError(f"method must be one of {', '.join(recipes)}, not {overrides['method']!r}")
        overrides = {**recipes[overrides["method"]], **overrides}
    config = dataclasses.replace(base, **overrides) if base is not None else cls(**overrides)
    validate(config)
    _mark_validated(config)
    return config


# The mark build leaves on a config it validated: the field values it checked. Not a field, so to_dict (asdict),
# equality and config.json ignore it; pickling (a worker pool) keeps it. A config changed after build (a field
# set by hand) no longer matches its mark, and dataclasses.replace makes an unmarked instance: both are
# validated again by ensure_valid.
_VALIDATED = "_validated_values"


def _field_values(config) -> tuple:
    # each value with its type: 50 == 50.0 and 1 == True, but a float epochs or a bool count is not valid
    return tuple((type(v), v) for v in (getattr(config, f.name) for f in dataclasses.fields(config)))


def _mark_validated(config) -> None:
    object.__setattr__(config, _VALIDATED, _field_values(config))  # object's: a frozen config takes it too


def is_validated(config) -> bool:
    """Whether :func:`build` made ``config`` (and so validated it) and no field changed since."""
    return getattr(config, _VALIDATED, None) == _field_values(config)


def ensure_valid(config):
    """``config``, validated unless :func:`build` made it (a run's config is built and validated once; one made
    by hand or with dataclasses.replace is validated here)."""
    if not is_validated(config):
        validate(config)
        _mark_validated(config)
    return config


# The largest integer any field may hold: counts, sizes and seeds all fit a signed 64-bit integer (torch's).
MAX_INT = 2 ** 63 - 1


def check_values(config, signs: bool = True) -> None:
    """The one value check every config passes: each field holds a value of its declared type, every
    number is finite and within 2**63-1, and (``signs``) none is negative: no field of a recipe or a
    search is. Raises ConfigError naming the field."""
    for f in dataclasses.fields(config):
        value, tp = getattr(config, f.name), field_type(type(config), f)
        if value is None and _optional(type(config), f):  # e.g. "None: the device's default"
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is bool:
            ok, want = isinstance(value, bool), "true or false"
        elif tp is int:
            ok = number and isinstance(value, int) and abs(value) <= MAX_INT and (not signs or value >= 0)
            want = "an integer in 0..2**63-1"
        elif tp is float:
            ok = number and _finite_float(value) and (not signs or value >= 0)
            want = "a finite number >= 0"
        elif tp is str:
            ok, want = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ConfigError(f"{f.name} must be {want}, got {quote(value)}")


def _optional(cls, field: dataclasses.Field) -> bool:
    tp = _type_hints(cls).get(field.name)
    return typing.get_origin(tp) is typing.Union and type(None) in typing.get_args(tp)


def _finite_float(value) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond float range
        return False


def validate(config) -> None:
    """:func:`check_values` (types, finite numbers), the config's own ``validate`` method (if it has
    one: its specific messages, e.g. for a negative count), then the signs of the numbers."""
    check_values(config, signs=False)
    check = getattr(config, "validate", None)
    if check is not None:
        check()
    check_values(config)
    threads = getattr(config, "num_threads", None)
    if isinstance(threads, int) and threads > max_threads():
        raise ConfigError(f"num_threads must be at most {max_threads()} here (4 per usable core, 64 to 1024), got "
                          f"{quote(threads)}: more threads than that only exhaust memory")


def to_dict(config) -> Dict[str, Any]:
    return dataclasses.asdict(config)


def diff(a: Dict[str, Any], b: Dict[str, Any], ignore=()) -> Dict[str, tuple]:
    """Fields whose values differ between two config dicts: ``{field: (a_value, b_value)}``."""
    a, b = canonical(a), canonical(b)  # a config saved with the original's field names is ours
    keys = (set(a) | set(b)) - set(ignore)
    return {k: (a.get(k), b.get(k)) for k in sorted(keys) if a.get(k) != b.get(k)}


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition: for the ``validate`` methods of configs."""
    if not condition:
        raise ConfigError(message)
