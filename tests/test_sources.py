"""A user's model in the form they have it: ONNX, Keras and torch.export files, a callable with an
integer input and a loss of its own, a transformers classifier from a config; inputs resolved from what
each declares; bad files and specs refused up front, on one line, with nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import wattgap

import wattgap.api as wattgap_api
from wattgap.errors import ConfigError
from wattgap.models.inputs import InputSpec, synthesize
from wattgap.models.sources import Declared, identity, kind_of, resolve_inputs

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

TOKENS = [
    {"name": "ids", "shape": [6], "dtype": "int64", "range": [0, 50]},
    {"name": "x", "shape": [4]},
]
QUICK = {"max_time_s": 0.2, "min_time_s": 0.05, "warmup_min_time_s": 0.02, "min_iters": 5, "warmup_min_iters": 2}


def write_files(folder: Path) -> None:
    """The same two-input model (token ids and features) as ONNX, as a torch.export program, and a Keras
    model with the same inputs, written as their users would."""
    import torch
    from helpers.usermodels import tokens_and_features

    torch.manual_seed(0)
    model = tokens_and_features().eval()
    example = (torch.randint(0, 50, (2, 6)), torch.randn(2, 4))
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(folder / "tokens.pt2"))
    torch.onnx.export(
        model, example, str(folder / "tokens.onnx"), dynamo=True, input_names=["ids", "x"],
        dynamic_shapes=({0: batch}, {0: batch}), external_data=False,
    )  # fmt: skip
    import keras

    ids, x = keras.Input((6,), dtype="int64", name="ids"), keras.Input((4,), name="x")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(ids))
    outputs = keras.layers.Dense(3)(keras.layers.Concatenate()([pooled, x]))
    built = keras.Model([ids, x], outputs)
    built.save(str(folder / "tokens.keras"))
    built.export(str(folder / "tokens_saved"), verbose=False)


def test_each_source_runs_where_it_can_and_reads_back_without_its_files(tmp_path: Path) -> None:
    write_files(tmp_path)
    config = {
        "models": [
            "helpers.usermodels:tokens_and_features",
            "tokens.onnx",
            "tokens.pt2",
            "tokens.keras",
            "tokens_saved",
        ],
        "backends": ["torch-eager", "onnxruntime", "openvino", "tf-eager"],
        "workloads": ["infer", "train"],
        "devices": ["cpu"],
        "batch_sizes": [3],
        "threads": [1],
        "inputs": TOKENS,
        "loss": "helpers.usermodels:squared_error",
        "protocol": QUICK,
        "energy": {"idle_s": 0},
    }
    (tmp_path / "sweep.json").write_text(json.dumps(config))
    (tmp_path / "sweep.yaml").write_text(json.dumps(config))  # JSON is YAML
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = wattgap_api.load_run(tmp_path / "wattgap.db", "latest")
    ran = {(r.cell.model, r.cell.workload, r.cell.backend): r for r in run.results}
    assert {key: r.status for key, r in ran.items() if r.status != "skipped"} == {
        ("helpers.usermodels:tokens_and_features", "infer", "torch-eager"): "ok",
        ("helpers.usermodels:tokens_and_features", "infer", "onnxruntime"): "ok",
        ("helpers.usermodels:tokens_and_features", "infer", "openvino"): "ok",
        ("helpers.usermodels:tokens_and_features", "train", "torch-eager"): "ok",  # with the user's loss
        ("tokens.onnx", "infer", "onnxruntime"): "ok",
        ("tokens.onnx", "infer", "openvino"): "ok",  # the arrays its request reads stay alive with the cell
        ("tokens.pt2", "infer", "torch-eager"): "ok",
        ("tokens.pt2", "infer", "onnxruntime"): "ok",  # exported from the program
        ("tokens.pt2", "infer", "openvino"): "ok",
        ("tokens.keras", "infer", "tf-eager"): "ok",
        ("tokens.keras", "train", "tf-eager"): "ok",
        ("tokens_saved", "infer", "tf-eager"): "ok",  # its serving signature
    }
    assert ran[("helpers.usermodels:tokens_and_features", "infer", "tf-eager")].reason == (
        "tf-eager runs zoo, Keras models; 'helpers.usermodels:tokens_and_features' is a PyTorch model"
    )  # the probe built the callable before the run: what it returns decides where it runs
    assert ran[("helpers.usermodels:tokens_and_features", "train", "torch-eager")].settings["loss"] == (
        "helpers.usermodels:squared_error"
    )
    assert ran[("tokens.pt2", "train", "torch-eager")].reason.startswith("a saved torch.export program is an inference")
    onnx = ran[("tokens.onnx", "infer", "onnxruntime")]
    assert onnx.flops_per_sample is None  # not counted for a file: unknown, never guessed
    assert onnx.parameters == 50 * 8 + 12 * 3 + 3 and onnx.input_shape == [6]
    assert ran[("tokens.pt2", "infer", "onnxruntime")].flops_per_sample  # counted on the program
    guarded = ran[("tokens.pt2", "infer", "onnxruntime")].agreement
    assert guarded is not None and guarded.max_abs_diff < 1e-4 and "PyTorch" in guarded.reference
    kept = run.environment.user_models
    assert kept["tokens.onnx"]["kind"] == "onnx" and kept["tokens.onnx"]["framework"] == "onnx"
    assert kept["tokens.keras"]["inputs"] == [
        {"name": "ids", "shape": [6], "dtype": "int64", "range": [0.0, 50.0]},
        {"name": "x", "shape": [4], "dtype": "float32", "range": None},
    ]
    assert kept["tokens_saved"]["kind"] == "savedmodel" and kept["tokens_saved"]["parameters"] == 439
    for name in ("tokens.onnx", "tokens.pt2", "tokens.keras", "tokens_saved"):
        digest = kept[name]["sha256"]
        assert digest == identity(str(tmp_path / name))["sha256"] and len(digest) == 64
        shutil.rmtree(tmp_path / name) if name == "tokens_saved" else (tmp_path / name).unlink()
    for command in (["show", "latest"], ["export", "latest", "--format", "json", "--output", "out.json"]):
        read = wattgap(*command, cwd=tmp_path)
        assert read.returncode == 0 and "Traceback" not in read.stderr, (command, read.stderr)


def test_a_transformers_classifier_from_a_config_runs_and_trains_with_its_own_loss(tmp_path: Path) -> None:
    from transformers import BertConfig

    BertConfig(
        vocab_size=97, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=3, architectures=["BertForSequenceClassification"],
    ).save_pretrained(str(tmp_path / "bert"))  # fmt: skip
    args = ["--model", "hf:bert", "--backend", "torch-eager,onnxruntime", "--workload", "infer,train"]
    done = wattgap(
        "run", *args, "--batch-size", "2", "--device", "cpu", "--threads", "1", "--max-time", "0.2", "--idle", "0",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = wattgap_api.load_run(tmp_path / "wattgap.db", "latest")
    statuses = {(r.cell.workload, r.cell.backend): r.status for r in run.results if r.status != "skipped"}
    assert statuses == {("infer", "torch-eager"): "ok", ("infer", "onnxruntime"): "ok", ("train", "torch-eager"): "ok"}
    kept = run.environment.user_models["hf:bert"]
    assert kept["kind"] == "hf" and [spec["name"] for spec in kept["inputs"]] == ["input_ids", "attention_mask"]
    assert kept["inputs"][0] == {"name": "input_ids", "shape": [64], "dtype": "int64", "range": [0.0, 97.0]}
    exported = next(r for r in run.results if r.cell.backend == "onnxruntime")
    assert exported.agreement is not None and exported.agreement.top1 == 1.0  # a classifier: top-1 compared


@pytest.mark.parametrize(
    ("model", "content", "extra", "expected"),
    [
        ("missing.onnx", None, [], "models[0]: 'missing.onnx' does not exist"),
        ("corrupt.onnx", b"\x08\x07 not protobuf \xff\xff", [], "models[0]: 'corrupt.onnx' cannot be loaded: "),
        ("notes.pt2", b"these are notes, not a program", [], "models[0]: 'notes.pt2' cannot be loaded: "),
        ("model.h5", b"", [], "models[0]: got 'model.h5'; allowed: a zoo model"),
        ("hf:nowhere", None, [], "models[0]: 'hf:nowhere': no folder 'nowhere' holding a config.json"),
        ("helpers.usermodels:tokens_and_features", None, [], "inputs: 'helpers.usermodels:tokens_and_features' "),
    ],
)
def test_bad_sources_are_refused_on_one_line(
    tmp_path: Path, model: str, content: bytes | None, extra: list[str], expected: str
) -> None:
    if content is not None:
        (tmp_path / model).write_bytes(content)
    done = wattgap("run", "--model", model, "--device", "cpu", "--idle", "0", *extra, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "wattgap.db").exists()


def test_inputs_that_do_not_fit_the_model_are_refused_before_the_run(tmp_path: Path) -> None:
    write_files(tmp_path)
    for inputs, expected in (
        ([{**TOKENS[0], "name": "tokens"}, TOKENS[1]], "inputs: got ['tokens', 'x']; allowed: the inputs"),
        ([TOKENS[0], {"name": "x", "shape": [5]}], "inputs.x: got x float32[5]; allowed: what 'tokens.onnx'"),
        ({"tokens.onnx": [TOKENS[0], {"name": "x", "shape": [5]}]}, "inputs.x: got x float32[5]; allowed: what"),
        ({"tokens.pt2": TOKENS}, "inputs: got 'tokens.pt2'; allowed: the user models of models (tokens.onnx)"),
    ):
        config = {"models": ["tokens.onnx"], "backends": ["onnxruntime"], "devices": ["cpu"], "inputs": inputs}
        (tmp_path / "bad.yaml").write_text(json.dumps(config))
        done = wattgap("run", "--config", "bad.yaml", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    # TorchScript declares nothing: the model is tried on the inputs it would be fed before the run
    import torch
    from helpers.usermodels import tiny

    torch.jit.script(tiny()).save(str(tmp_path / "tiny.pt"))
    done = wattgap("run", "--model", "tiny.pt", "--input-shape", "3,9,9", "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "models[0]: inputs: 'tiny.pt' fails on the inputs it would be fed (input float32[3x9x9]): " in done.stderr
    assert not (tmp_path / "wattgap.db").exists()


def test_inputs_per_model_feed_each_user_model_its_own(tmp_path: Path) -> None:
    """Two user models in one sweep: one fed the inputs listed under its name, the other (not named)
    ``input_shape``, which a mapping leaves to the models it does not name."""
    config = {
        "models": ["helpers.usermodels:tokens_and_features", "helpers.usermodels:no_shape"],
        "inputs": {"helpers.usermodels:tokens_and_features": TOKENS},
        "input_shape": [3, 2, 2],
        "devices": ["cpu"], "batch_sizes": [2], "threads": [1], "protocol": QUICK, "energy": {"idle_s": 0},
    }  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(json.dumps(config))
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = wattgap_api.load_run(tmp_path / "wattgap.db", "latest")
    assert {r.cell.model: r.status for r in run.results} == dict.fromkeys(config["models"], "ok")
    kept = run.environment.user_models
    assert [spec["name"] for spec in kept["helpers.usermodels:tokens_and_features"]["inputs"]] == ["ids", "x"]
    assert kept["helpers.usermodels:no_shape"]["inputs"] == [
        {"name": "input", "shape": [3, 2, 2], "dtype": "float32", "range": None}
    ]


def test_inputs_resolve_from_what_the_model_declares() -> None:
    declared = [Declared("ids", (0,), "int64", [0.0, 10.0], default=(8,)), Declared("mask", (0,), "int64", [1.0, 2.0])]
    assert [s.shape for s in resolve_inputs(declared[:1], None, None, "m")] == [[8]]  # the model's default
    assert [s.shape for s in resolve_inputs(declared[:1], None, (16,), "m")] == [[16]]  # input_shape fills it
    with pytest.raises(ConfigError, match="has free sizes; give input_shape or an inputs section"):
        resolve_inputs(declared, None, None, "m")  # mask has no default
    with pytest.raises(ConfigError, match="needs a value range"):
        resolve_inputs([Declared("ids", (4,), "int64")], None, None, "m")
    with pytest.raises(ConfigError, match="does not declare its inputs; give input_shape"):
        resolve_inputs(None, None, None, "m")
    given = (
        InputSpec(name="mask", shape=[8], dtype="int64", range=[1, 2]),
        InputSpec(name="ids", shape=[8], dtype="int64", range=[0, 10]),
    )
    assert [s.name for s in resolve_inputs(declared, given, None, "m")] == ["ids", "mask"]  # the model's order
    assert resolve_inputs(None, None, (3, 4), "m") == [InputSpec(name="input", shape=[3, 4])]


def test_synthetic_inputs_follow_their_spec_and_seed() -> None:
    specs = [
        InputSpec(name="ids", shape=[5], dtype="int64", range=[3, 7]),
        InputSpec(name="x", shape=[2, 2]),
        InputSpec(name="u", shape=[4], dtype="float16", range=[-1, 1]),
        InputSpec(name="flag", shape=[1], dtype="bool"),
    ]
    batch = synthesize(specs, 64, seed=5)
    assert batch["ids"].dtype == np.int64 and batch["ids"].min() >= 3 and batch["ids"].max() <= 6
    assert batch["x"].shape == (64, 2, 2) and batch["x"].dtype == np.float32 and abs(batch["x"].mean()) < 0.3
    assert batch["u"].dtype == np.float16 and batch["u"].min() >= -1 and batch["u"].max() <= 1
    assert batch["flag"].dtype == np.bool_
    again = synthesize(specs, 64, seed=5)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)
    with pytest.raises(ConfigError, match=r"inputs\.ids\.range: required for int64 input 'ids'"):
        InputSpec(name="ids", shape=[5], dtype="int64")


def test_source_kinds_and_folder_identity(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"graph")
    assert [kind_of(n) for n in ("resnet18", "a.b:c", "m.onnx", "m.keras", "m.pt2", "m.pt", "hf:x", str(saved))] == [
        "zoo", "callable", "onnx", "keras", "torch-export", "torchscript", "hf", "savedmodel",
    ]  # fmt: skip
    first = identity(str(saved))["sha256"]
    (saved / "variables").mkdir()
    (saved / "variables" / "v").write_bytes(b"weights")
    assert identity(str(saved))["sha256"] != first  # a folder's digest covers every file in it
    os.remove(saved / "variables" / "v")
    assert identity(str(saved))["sha256"] == first


def test_an_onnx_graph_with_external_data_is_identified_with_its_weights(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])], [weight],
    )  # fmt: skip
    onnx.save_model(helper.make_model(graph), str(tmp_path / "m.onnx"), save_as_external_data=True,
                    location="m.weights", size_threshold=0)  # fmt: skip
    found = identity(str(tmp_path / "m.onnx"))
    assert found["external_data"] == ["m.weights"] and found["sha256"]
    data = tmp_path / "m.weights"
    data.write_bytes(data.read_bytes()[:-4] + np.float32(2).tobytes())  # same graph file, other weights
    assert identity(str(tmp_path / "m.onnx"))["sha256"] != found["sha256"]
    data.unlink()
    assert identity(str(tmp_path / "m.onnx"))["sha256"] is None  # the weights are gone: no identity claimed
