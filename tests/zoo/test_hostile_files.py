"""Small files that claim huge networks, nest without end or shadow methods: refused in one line, nothing allocated."""
import json
from collections import OrderedDict

import pytest
import torch
from hostile import legacy_file
from zoo_testutil import legacy_rnn_model, write_legacy

import genotypes
import zoo
from zoo import legacy as L
from zoo.convert import model_from_original

pytestmark = pytest.mark.bounded  # 30 s and 1.2 GB of peak RSS a test (tests/conftest.py)


def _legacy_with_object_pickle(object_pickle: bytes, path):
    path.write_bytes(legacy_file(object_pickle))
    return path


def test_a_stride_0_view_claiming_terabytes_is_refused_by_comparing_with_the_bytes_held(tmp_path):
    huge = torch.zeros(1).expand(10, 10**11)  # one float in the file, 10^12 claimed
    torch.save({"stem.0.weight": huge}, tmp_path / "f.pt")
    assert (tmp_path / "f.pt").stat().st_size < 2000
    with pytest.raises(L.CheckpointError, match="claims 1000000000000 elements but the file holds 1"):
        L.load_original(tmp_path / "f.pt")


def test_a_tiny_checkpoint_whose_stem_claims_a_huge_width_builds_nothing(tmp_path):
    sd = OrderedDict([("stem.0.weight", torch.zeros(1).expand(9000, 3, 3, 3)),
                      ("classifier.weight", torch.zeros(10, 4)), ("cells.0.x", torch.zeros(1))])
    torch.save(sd, tmp_path / "c.pt")
    with pytest.raises(L.CheckpointError, match="claims 243000 elements"):
        model_from_original(tmp_path / "c.pt", "cifar10")
    # the same claim with real bytes behind it still stops at the size limit, before any network is built
    sd["stem.0.weight"] = torch.zeros(9000, 3, 3, 3)
    torch.save(sd, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="C=3000 is out of range: it must be an integer from 1 to 256"):
        model_from_original(tmp_path / "c.pt", "cifar10")


def test_a_legacy_storage_claiming_more_than_the_file_is_refused(tmp_path):
    blob = bytearray(write_legacy(OrderedDict([("stem.0.weight", torch.zeros(2, 3, 3, 3))])))
    assert len(blob) < 1000
    idx = blob.find(b"K6")  # 54 elements, pickled as BININT1 54
    blob[idx + 1] = 255
    (tmp_path / "x.pt").write_bytes(bytes(blob))
    with pytest.raises(L.CheckpointError, match="claims 255 elements, more than the file holds"):
        L.load_original(tmp_path / "x.pt")


def test_storages_declaring_more_than_the_file_in_total_are_refused(tmp_path):
    # each storage fits the file, all of them together do not: nothing is allocated for them
    big = OrderedDict((f"w{i}", torch.zeros(40)) for i in range(40))  # 40 x 160 bytes declared
    blob = write_legacy(big)
    short = blob[: len(blob) - 40 * 160 + 200]  # keeps the pickles, drops most storage bytes
    (tmp_path / "t.pt").write_bytes(short)
    with pytest.raises(L.CheckpointError, match="the storages declare .* bytes, more than the file's"):
        L.load_original(tmp_path / "t.pt")


def test_shared_containers_are_walked_once_not_exponentially(tmp_path):
    x = [torch.zeros(1)]
    for _ in range(60):  # 60 levels of x = [x, x]: 2**60 paths through a few hundred bytes
        x = [x, x]
    write_legacy(x, tmp_path / "dag.pt")
    assert (tmp_path / "dag.pt").stat().st_size < 2000
    L.load_original(tmp_path / "dag.pt")  # 61 levels deep: allowed, and read in moments
    torch.save(x, tmp_path / "dag.zip")
    L.load_original(tmp_path / "dag.zip")


def test_a_pickled_model_containing_itself_is_one_line(tmp_path, zoo_ref):
    ref = zoo_ref("ptb_small.pt")
    c = ref["config"]
    obj = legacy_rnn_model(ref["state_dict"], c["ntoken"], c["ninp"], genotypes.get("DARTS_V2", "rnn"))
    obj.__dict__["_modules"]["me"] = obj
    write_legacy(obj, tmp_path / "ptb_model.pt")
    with pytest.raises(L.CheckpointError, match="contains itself"):
        model_from_original(tmp_path / "ptb_model.pt", "ptb")


def test_a_header_claiming_a_terabyte_of_bytes_allocates_nothing(tmp_path):
    (tmp_path / "h.pt").write_bytes(b"\x80\x02\x8e" + (2**40).to_bytes(8, "little"))
    with pytest.raises(L.CheckpointError):
        L.load_original(tmp_path / "h.pt")


@pytest.mark.parametrize("field,value", [("C", 10**6), ("layers", 10**6), ("num_classes", -1), ("C", "8")])
def test_a_saved_config_with_absurd_sizes_names_the_field_and_the_limit(tmp_path, field, value):
    model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2")
    d = zoo.save_pretrained(model, tmp_path / "m", card=False)
    cfg = json.loads((d / "config.json").read_text())
    cfg["args"][field] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.ModelLoadError, match=f"{field}={value!r} is out of range"):
        zoo.load(str(d))


def test_a_pickled_xrange_of_300_million_is_refused(tmp_path, zoo_ref):
    ref = zoo_ref("ptb_small.pt")
    c = ref["config"]
    obj = legacy_rnn_model(ref["state_dict"], c["ntoken"], c["ninp"], genotypes.get("DARTS_V2", "rnn"))
    cell = obj.__dict__["_modules"]["rnns"].__dict__["_modules"]["0"]
    g = cell.__dict__["genotype"]
    cell.__dict__["genotype"] = type(g)(recurrent=g.recurrent, concat=range(1, 3 * 10**8))
    write_legacy(obj, tmp_path / "ptb_model.pt")
    with pytest.raises(L.CheckpointError, match="range of 299999999 elements"):
        model_from_original(tmp_path / "ptb_model.pt", "ptb")


def test_a_list_containing_itself_and_200000_levels_of_nesting_are_one_line_errors(tmp_path):
    loop = []
    loop.append(loop)
    write_legacy(loop, tmp_path / "loop.pt")
    n = 200_000
    deep = b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
    _legacy_with_object_pickle(deep, tmp_path / "deep.pt")
    for name in ("loop.pt", "deep.pt"):
        with pytest.raises(L.CheckpointError, match="nested more than 64 levels") as e:
            L.load_original(tmp_path / name)
        assert "\n" not in str(e.value)


def test_an_ordereddict_build_that_shadows_items_is_refused(tmp_path):
    # OrderedDict() then BUILD {"items": 1}: a later sd.items() would call an int
    body = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01}q\x02X\x05\x00\x00\x00itemsq\x03K\x01sb."
    _legacy_with_object_pickle(body, tmp_path / "shadow.pt")
    with pytest.raises(L.UnsafeCheckpointError, match="refusing to set attribute 'items'"):
        L.load_original(tmp_path / "shadow.pt")


def test_saved_weights_with_nan_and_no_digest_do_not_load_quietly(tmp_path):
    from safetensors.torch import load_file, save_file

    model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2")
    d = zoo.save_pretrained(model, tmp_path / "m", card=False)
    tensors = load_file(d / "model.safetensors")
    tensors["classifier.weight"][0, 0] = float("nan")
    save_file(tensors, d / "model.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    del cfg["files"]  # no digest recorded
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.ModelLoadError, match=r"non-finite values \(NaN/inf\) in classifier.weight"):
        zoo.load(str(d))


def test_the_networks_themselves_refuse_absurd_sizes_before_allocating():
    # every path (a training config, a file, create_model) builds through the constructors
    with pytest.raises(ValueError, match="C=1000000 is out of range"):
        zoo.NetworkCIFAR(10**6, 10, 20, True, "DARTS_V2")
    with pytest.raises(ValueError, match="layers=1000000 is out of range"):
        zoo.NetworkImageNet(48, 1000, 10**6, True, "DARTS_V2")
    with pytest.raises(ValueError, match="ntoken=0 is out of range"):
        zoo.RNNModel(0, 8, 8, 8)
