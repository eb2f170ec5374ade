"""A search's sizes have upper bounds, checked before the supernet is built (--C 1000000 used to end in a
traceback allocating 24 TB, --steps 100 in a supernet still building after 30 s), and an allocation that fails
anyway ends in one line naming the values to lower, not a traceback."""
from __future__ import annotations

import pytest

from reproduce import __main__ as cli
from reproduce.config import ConfigError, build
from reproduce.search.config import CIFAR10SearchConfig, ImageNetSearchConfig, PTBSearchConfig


@pytest.mark.parametrize("field, value", [("C", 1_000_000), ("C", 258), ("layers", 65), ("steps", 100),
                                          ("stem_multiplier", 17)])
def test_conv_search_sizes_have_upper_bounds(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be at most \d+ \(.*\), not {value}$"):
        build(CIFAR10SearchConfig, {field: value, "multiplier": 4})


def test_the_bounds_leave_the_papers_sizes_and_more():
    build(CIFAR10SearchConfig, {"C": 256, "layers": 64, "steps": 16, "stem_multiplier": 16})
    build(ImageNetSearchConfig, {"image_size": 1024})


def test_imagenet_crops_and_recurrent_widths_have_upper_bounds():
    with pytest.raises(ConfigError, match=r"^image_size must be at most 1024 .*, not 2048$"):
        build(ImageNetSearchConfig, {"image_size": 2048})
    with pytest.raises(ConfigError, match=r"^nhid must be at most 4096 .*, not 5000$"):
        build(PTBSearchConfig, {"emsize": 5000, "nhid": 5000, "nhidlast": 5000})


def test_search_with_a_huge_C_is_refused_in_one_line(tiny_cifar, tmp_path, capsys):
    argv = ["search", "cifar10", "--out", str(tmp_path / "s"), "--data", str(tiny_cifar), "--device", "cpu",
            "--epochs", "1", "--layers", "2", "--train-examples", "24", "--image-size", "8", "--C", "1000000"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: C must be at most 256") and "\n" not in err


def _raising(monkeypatch, error):
    """main() whose command raises ``error``."""
    parser = cli.build_parser()
    args = parser.parse_args(["report", "nowhere"])

    def fail(_args):
        raise error

    args.func = fail
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 24000000000000 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB.\nSee the documentation"),
    MemoryError()])
def test_an_allocation_failure_ends_in_one_line_naming_what_to_lower(monkeypatch, capsys, error):
    _raising(monkeypatch, error)
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory: the run needs more memory than there is") and "\n" not in err
    assert "lower C, layers, batch_size or image_size" in err


def test_other_runtime_errors_still_show_their_traceback(monkeypatch):
    _raising(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main([])
