"""Cases of the ``saved`` area: saved-model folders."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

from . import cases as _cases
from .cases import case, fifo, lib_load, sentinel_absent, snippet, zoo_cli

# --------------------------------------------------------------------------------------------- saved folders


def _edit_config(d: Path, fn) -> Path:
    m = d / "m"
    shutil.copytree(_cases.FIXTURES / "saved", m)
    cfg = json.loads((m / "config.json").read_text())
    new = fn(cfg, m)
    if new is not None:
        (m / "config.json").write_text(new if isinstance(new, str) else json.dumps(new))
    return m


def _set(path: str, value):
    def fn(cfg, m):
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        if value is _DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
        return cfg
    return fn


_DELETE = object()


def _raw(text: str):
    return lambda cfg, m: text


def _weights(fn):
    """Edit model.safetensors with ``fn(tensors) -> tensors``; ``digest=True`` records the new sha256."""
    def edit(cfg, m, digest=True):
        from safetensors.torch import load_file, save_file
        tensors = fn(load_file(m / "model.safetensors"))
        save_file(tensors, m / "model.safetensors")
        if digest:
            data = (m / "model.safetensors").read_bytes()
            cfg["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        return cfg
    return edit


def _bytes(fn):
    def edit(cfg, m):
        p = m / "model.safetensors"
        fn(p)
        return cfg
    return edit


def _nan_first(t):
    t["classifier.weight"][0, 0] = float("nan")
    return t


def _add_saved_cases() -> None:
    huge = "[" + ",".join(["0"] * 2_000_000) + "]"
    g_code = "__import__('os').system('touch PWNED')"
    edits = {
        # JSON itself
        "json.empty": (_raw(""), "refuse"), "json.brace": (_raw("{"), "refuse"),
        "json.null": (_raw("null"), "refuse"), "json.list": (_raw("[]"), "refuse"),
        "json.number": (_raw("1"), "refuse"), "json.string": (_raw('"config"'), "refuse"),
        "json.binary": (lambda c, m: (m / "config.json").write_bytes(os.urandom(4096)), "refuse"),
        "json.utf16": (lambda c, m: (m / "config.json").write_bytes(json.dumps(c).encode("utf-16")), "refuse"),
        "json.truncated": (lambda c, m: json.dumps(c)[: len(json.dumps(c)) // 2], "refuse"),
        "json.nan_literal": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": NaN'), "refuse"),
        "json.inf_literal": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": 1e999'), "refuse"),
        "json.deep_100000": (lambda c, m: json.dumps(c)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
                             "refuse"),
        "json.array_2M": (lambda c, m: json.dumps(c)[:-1] + ', "x": ' + huge + "}", "refuse"),
        "json.dup_key_top": (lambda c, m: json.dumps(c)[:-1] + ', "name": "darts-cifar10"}', "refuse"),
        "json.dup_key_args": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": 4, "C": 400000'), "refuse"),
        "json.huge_string_40MB": (lambda c, m: json.dumps({**c, "description": "x" * 40_000_000}), "refuse"),
        "json.fifo": (lambda c, m: ((m / "config.json").unlink(), fifo(m / "config.json")) and None, "refuse"),
        "json.is_dir": (lambda c, m: ((m / "config.json").unlink(), (m / "config.json").mkdir()) and None, "refuse"),
        "json.dev_zero_link": (lambda c, m: ((m / "config.json").unlink(), (m / "config.json").symlink_to(
            "/dev/zero")) and None, "refuse"),
        # fields
        "field.format_other": (_set("format", "pytorch"), "refuse"),
        "field.format_version_2": (_set("format_version", 2), "refuse"),
        "field.format_version_str": (_set("format_version", "1"), "refuse"),
        "field.kind_unknown": (lambda c, m: {**c, "kind": "os.system", "arch": "os.system"}, "refuse"),
        "field.arch_missing": (lambda c, m: {k: v for k, v in c.items() if k not in ("arch", "kind")}, "refuse"),
        "field.args_missing": (_set("args", _DELETE), "refuse"),
        "field.args_list": (_set("args", [4, 10, 3]), "refuse"),
        "field.args_extra": (_set("args.evil", "__import__('os')"), "refuse"),
        "field.C_0": (_set("args.C", 0), "refuse"), "field.C_neg": (_set("args.C", -4), "refuse"),
        "field.C_1e9": (_set("args.C", 10**9), "refuse"), "field.C_str": (_set("args.C", "4"), "refuse"),
        "field.C_true": (_set("args.C", True), "refuse"), "field.C_float": (_set("args.C", 4.0), "refuse"),
        "field.C_2pow70": (_set("args.C", 2**70), "refuse"),
        "field.layers_1e6": (_set("args.layers", 10**6), "refuse"),
        "field.num_classes_0": (_set("args.num_classes", 0), "refuse"),
        "field.num_classes_1e9": (_set("args.num_classes", 10**9), "refuse"),
        "field.auxiliary_str": (_set("args.auxiliary", "yes"), "refuse"),
        "field.genotype_garbage": (_set("genotype", "Genotype(normal=garbage"), "refuse"),
        "field.genotype_code": (_set("genotype", g_code), "refuse"),
        "field.genotype_bad_op": (lambda c, m: {**c, "genotype": c["genotype"].replace("sep_conv_3x3", "os.system")},
                                  "refuse"),
        "field.genotype_bad_index": (lambda c, m: {**c, "genotype": c["genotype"].replace("1), ('skip", "99), ('skip")},
                                     "refuse"),
        "field.genotype_1MB": (_set("genotype", "Genotype(normal=[" + "('sep_conv_3x3', 0), " * 50_000 + "])"),
                               "refuse"),
        "field.genotype_list": (_set("genotype", [["sep_conv_3x3", 0]] * 1000), "refuse"),
        "field.dataset_unknown": (_set("dataset", "../../etc"), "either"),
        "field.mean_nan": (lambda c, m: json.dumps({**c, "preprocessing": {**c["preprocessing"], "mean": [
            float("nan")] * 3}}), "refuse"),
        "field.mean_1M": (_set("preprocessing.mean", [0.5] * 1_000_000), "refuse"),
        "field.input_size_huge": (_set("preprocessing.input_size", [3, 10**9, 10**9]), "refuse"),
        "field.tied_bogus": (_set("tied", {"classifier.weight": "nope"}), "refuse"),
        "field.tied_list": (_set("tied", ["a"] * 1000), "refuse"),
        # files / digest
        "files.string": (_set("files", "model.safetensors"), "refuse"),
        "files.list": (_set("files", ["model.safetensors"]), "refuse"),
        "files.entry_str": (lambda c, m: {**c, "files": {"model.safetensors": "abc"}}, "refuse"),
        "files.sha_int": (lambda c, m: {**c, "files": {"model.safetensors": {"sha256": 5, "size": 1}}}, "refuse"),
        "files.sha_wrong": (lambda c, m: {**c, "files": {"model.safetensors": {
            "sha256": "0" * 64, "size": c["files"]["model.safetensors"]["size"]}}}, "refuse"),
        "files.size_neg": (lambda c, m: {**c, "files": {"model.safetensors": {
            **c["files"]["model.safetensors"], "size": -1}}}, "refuse"),
        "files.size_mismatch": (lambda c, m: {**c, "files": {"model.safetensors": {
            **c["files"]["model.safetensors"], "size": 10**12}}}, "refuse"),
        "files.path_escape": (lambda c, m: {**c, "files": {"../../../etc/passwd": {"sha256": "0" * 64, "size": 1}}},
                              "either"),
        "files.sha_list_1M": (lambda c, m: {**c, "files": {"model.safetensors": {"sha256": ["a"] * 1_000_000}}},
                              "refuse"),
        # the weights
        "weights.missing": (lambda c, m: (m / "model.safetensors").unlink() or c, "refuse"),
        "weights.empty": (_bytes(lambda p: p.write_bytes(b"")), "refuse"),
        "weights.truncated": (_bytes(lambda p: p.write_bytes(p.read_bytes()[:1000])), "refuse"),
        "weights.header_2pow62": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 1 << 62) + b"{}")), "refuse"),
        "weights.header_garbage": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 20) + b"{not json at all}!!!")),
                                   "refuse"),
        "weights.offsets_past_end": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 64) + json.dumps(
            {"classifier.weight": {"dtype": "F32", "shape": [10, 64], "data_offsets": [0, 2560]}}).ljust(64)
            .encode())), "refuse"),
        "weights.dev_zero_link": (_bytes(lambda p: (p.unlink(), p.symlink_to("/dev/zero"))), "refuse"),
        "weights.fifo": (_bytes(lambda p: (p.unlink(), fifo(p))), "refuse"),
        "weights.dir": (_bytes(lambda p: (p.unlink(), p.mkdir())), "refuse"),
        "weights.nan_with_digest": (_weights(_nan_first), "refuse"),
        "weights.inf_with_digest": (_weights(lambda t: (t["classifier.weight"].fill_(float("inf")), t)[1]), "refuse"),
        "weights.nan_no_digest": (lambda c, m: (_weights(_nan_first)(c, m, digest=False), c.pop("files"), c)[2],
                                  "refuse"),
        "weights.int_dtype": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].long()}), "refuse"),
        "weights.bool_dtype": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].bool()}),
                               "refuse"),
        "weights.f64_dtype": (_weights(lambda t: {k: (v.double() if v.is_floating_point() else v)
                                                  for k, v in t.items()}), "either"),
        "weights.wrong_shape": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].t()
                                                   .contiguous()}), "refuse"),
        "weights.missing_tensor": (_weights(lambda t: {k: v for k, v in t.items() if k != "classifier.weight"}),
                                   "refuse"),
        "weights.extra_tensor": (_weights(lambda t: {**t, "evil": __import__("torch").zeros(3)}), "refuse"),
        "weights.huge_extra_64MB": (_weights(lambda t: {**t, "evil": __import__("torch").zeros(16 << 20)}),
                                    "refuse"),
        "ok.untouched": (lambda c, m: None, "accept"),
    }
    for name, (fn, expect) in edits.items():
        def make_lib(d, fix, fn=fn):
            return lib_load(_edit_config(d, fn))

        def make_eval(d, fix, fn=fn):
            return zoo_cli("eval", _edit_config(d, fn), "--data", _cases.FIXTURES / "cifar", "--no-download",
                           "--no-progress", "--device", "cpu", "--batch-size", "24", "--json", d / "out" / "eval.json")

        def make_info(d, fix, fn=fn):
            return snippet(f"import zoo, json\nprint(json.dumps(zoo.info({str(_edit_config(d, fn))!r}), default=str)"
                           f"[:200])")
        names = ("{d}/m",)
        case(f"saved.{name}.load", make_lib, lib=True, expect=expect, names=names, check=sentinel_absent)
        case(f"saved.{name}.eval", make_eval, expect=expect, names=names, check=sentinel_absent,
             outputs=("out", "home"))
        if name.startswith(("json.", "field.genotype", "files.")):
            # info reads the metadata only (no weights, no digests): it must refuse what cannot be read or is
            # ambiguous (a key given twice with two values), and may show the rest
            info_refuses = name.startswith("json.") and name not in ("json.nan_literal", "json.inf_literal")
            case(f"saved.{name}.info", make_info, lib=True, expect="refuse" if info_refuses else "either",
                 names=names, check=sentinel_absent)


