"""TorchScript archives: loader facts (from data.pkl and the saved code) and exact findings.

Fixtures: fixtures/torch/cnn_ts_*.pt (made by fixtures/make_torch.py). Extra shapes of model
(ModuleList, unused branch, parameters on a container) are scripted into tmp_path when torch is
installed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from paraminspect.errors import LoadError
from paraminspect.graph import LayerKind, Mode, OrderSource, Source, TensorRole, Trainable
from paraminspect.loaders import load
from paraminspect.loaders.torch.torchscript_code import clean_class_name

from .conftest import TORCH_FIXTURES, findings, needs_torch

W, E = "warning", "error"
EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "cnn_ts_script_clean.pt": set(),
    "cnn_ts_trace_clean.pt": set(),
    "cnn_ts_script_bn_train.pt": {("PI201", "backbone.bn", W), ("PI202", "backbone.bn", E)},
    "cnn_ts_trace_bn_train.pt": {("PI201", "backbone.bn", W), ("PI202", "backbone.bn", E)},
}
CHAIN = [
    ("backbone.conv", "backbone.bn"), ("backbone.bn", "backbone.relu"),
    ("backbone.relu", "pool"), ("pool", "drop"), ("drop", "head"),
]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(name: str) -> None:
    assert findings(TORCH_FIXTURES / name) == EXPECTED[name]


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_graph_facts(kind: str) -> None:
    graph = load(TORCH_FIXTURES / f"cnn_ts_{kind}_bn_train.pt")
    assert (graph.format, graph.content) == ("torchscript", "export")
    # parameter/buffer split from __parameters__ / __buffers__ in the saved code
    assert [t.name for t in graph.parameters()] == [
        "backbone.conv.weight", "backbone.conv.bias", "backbone.bn.weight", "backbone.bn.bias",
        "head.weight", "head.bias",
    ]
    assert {t.name for t in graph.buffers()} == {
        "backbone.bn.running_mean", "backbone.bn.running_var", "backbone.bn.num_batches_tracked",
    }
    weight = graph.tensors["backbone.conv.weight"]
    assert (weight.role, weight.shape, weight.dtype) == (TensorRole.PARAMETER, (4, 3, 3, 3), "float32")
    assert weight.trainable is Trainable.FROZEN and weight.trainable_fact.source is Source.STORED
    assert graph.tensors["head.bias"].trainable is Trainable.TRAINABLE
    bn = graph.layers["backbone.bn"]
    assert bn.class_name == "torch.nn.modules.batchnorm.BatchNorm2d"
    assert bn.attrs["torchscript_class"].startswith("__torch__.torch.nn.modules.batchnorm.")
    assert bn.kind is LayerKind.BATCHNORM
    assert bn.mode is Mode.TRAIN and bn.mode_fact.source is Source.STORED
    assert graph.layers["head"].mode is Mode.EVAL
    assert graph.order_source is OrderSource.DATAFLOW
    assert graph.edges == CHAIN and graph.outputs == ["head"]
    assert "torch.jit._pickle.build_intlist" in {r.target for r in graph.code_references} or kind == "trace"


def test_trace_mode_comes_from_the_code_not_the_attribute() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ts_trace_bn_train.pt")
    bn, drop = graph.layers["backbone.bn"], graph.layers["drop"]
    assert "baked into traced code (torch.batch_norm)" in bn.mode_fact.evidence
    assert drop.mode is Mode.EVAL and "torch.dropout" in drop.mode_fact.evidence
    script = load(TORCH_FIXTURES / "cnn_ts_script_bn_train.pt")
    assert script.layers["backbone.bn"].mode_fact.evidence == (
        "module.training stored in the TorchScript archive")


def test_clean_class_name() -> None:
    assert clean_class_name("__torch__.torch_models.___torch_mangle_23.SmallCNN") == (
        "torch_models.SmallCNN")
    assert clean_class_name("__torch__.torch.nn.modules.conv.Conv2d") == "torch.nn.modules.conv.Conv2d"


def test_loading_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from paraminspect.loaders import load\n"
        f"for p in sorted(__import__('pathlib').Path({str(TORCH_FIXTURES)!r}).glob('cnn_ts_*.pt')):\n"
        "    load(p)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _rewrite(src: Path, dst: Path, drop: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if drop not in info.filename:
                zout.writestr(info, zin.read(info.filename))
    return dst


def test_missing_class_code_is_a_load_error(tmp_path: Path) -> None:
    bad = _rewrite(TORCH_FIXTURES / "cnn_ts_script_clean.pt", tmp_path / "nocode.pt",
                   "code/__torch__/torch/nn/modules/batchnorm.py")
    with pytest.raises(LoadError, match="no code for class __torch__.torch.nn.modules.batchnorm"):
        load(bad)
    assert findings(bad) == {("PI001", "", E)}


# -- shapes of model scripted on the fly -------------------------------------------------------
SCRIPT = '''
import sys, warnings
import torch
from torch import nn
warnings.simplefilter("ignore")
out = sys.argv[1]

class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.aux_head = nn.Linear(4, 3)
    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.head = nn.Linear(4, 2)
    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return self.head(x)

class Parallel(nn.Module):
    """Two independent outputs: a trainable tower and a frozen one."""
    def __init__(self):
        super().__init__()
        self.big = nn.Linear(4, 64)
        self.small = nn.Linear(4, 2)
    def forward(self, x, y):
        return self.big(x), self.small(y)

x = torch.randn(2, 4)
m = Unused().eval()
torch.jit.save(torch.jit.script(m), f"{out}/unused_script.pt")
torch.jit.save(torch.jit.trace(m, x), f"{out}/unused_trace.pt")
torch.jit.save(torch.jit.script(Blocks().eval()), f"{out}/blocks_script.pt")
m = Parallel().eval()
m.small.requires_grad_(False)
torch.jit.save(torch.jit.script(m), f"{out}/parallel_script.pt")
'''


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ts")
    script = out / "make.py"  # torch.jit.script needs the classes' source in a real file
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


@needs_torch
@pytest.mark.parametrize("name", ["unused_script.pt", "unused_trace.pt"])
def test_unused_branch_is_dead(scripted: Path, name: str) -> None:
    assert findings(scripted / name) == {("PI104", "aux_head", W)}
    graph = load(scripted / name)
    assert graph.edges == [("body", "head")] and graph.outputs == ["head"]


@needs_torch
def test_module_list_loop_edges(scripted: Path) -> None:
    graph = load(scripted / "blocks_script.pt")
    assert graph.order_source is OrderSource.DATAFLOW
    assert ("blocks.0", "blocks.1") in graph.edges and ("blocks.1", "head") in graph.edges
    assert graph.outputs == ["head"]
    assert findings(scripted / "blocks_script.pt") == set()


@needs_torch
def test_parallel_towers_no_frozen_head_with_edges(scripted: Path) -> None:
    # registration order would call `small` (frozen, last) a frozen head behind trainable `big`;
    # the code shows two independent outputs.
    graph = load(scripted / "parallel_script.pt")
    assert graph.edges == [] and set(graph.outputs) == {"big", "small"}
    assert findings(scripted / "parallel_script.pt") == set()
