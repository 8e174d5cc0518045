"""PI104 dead-trainable-param and PI102 frozen-head over real dataflow edges (synthetic graphs).

File-based cases live with their formats: tests/test_torch_export.py (cnn_export_unused_head,
cnn_export_head_frozen) and tests/test_torchscript.py (unused branch, parallel towers).
"""

from __future__ import annotations

from paraminspect.engine import check_graph
from paraminspect.graph import (
    Fact,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)

STORED = Fact(Source.STORED, "requires_grad stored")


def make(layers: dict[str, tuple[int, bool | None]], edges: list[tuple[str, str]] | None,
         outputs: list[str], dataflow: bool = True) -> ModelGraph:
    """layers: path -> (elements, trainable; None = unknown)."""
    graph = ModelGraph(path="synthetic", format="synthetic", content="export")
    graph.ensure_layer("")
    for path, (size, trainable) in layers.items():
        state = {True: Trainable.TRAINABLE, False: Trainable.FROZEN, None: Trainable.UNKNOWN}
        graph.add_tensor(Tensor(
            name=f"{path}.weight", layer=path, role=TensorRole.PARAMETER, shape=(size,),
            trainable=state[trainable], trainable_fact=STORED if trainable is not None else Fact(),
        ))
    graph.order = list(graph.layers)
    graph.edges = edges
    graph.outputs = outputs
    graph.order_source = OrderSource.DATAFLOW if dataflow else OrderSource.REGISTRATION
    return graph


def codes(graph: ModelGraph) -> set[tuple[str, str]]:
    return {
        (f.code, location)
        for f in check_graph(graph)
        if f.code in ("PI102", "PI104")
        for location in f.all_locations
    }


def test_unreached_trainable_layer_is_dead() -> None:
    graph = make({"body": (100, True), "head": (10, True), "aux": (10, True)},
                 [("body", "head")], ["head"])
    assert codes(graph) == {("PI104", "aux")}


def test_frozen_unreached_layer_is_not_reported() -> None:
    graph = make({"body": (100, True), "head": (10, True), "aux": (10, False)},
                 [("body", "head")], ["head"])
    assert codes(graph) == set()


def test_unknown_trainability_is_not_reported() -> None:
    graph = make({"body": (100, None), "head": (10, None), "aux": (10, None)},
                 [("body", "head")], ["head"])
    assert codes(graph) == set()


def test_silent_without_edges_or_outputs() -> None:
    layers = {"body": (100, True), "head": (10, True), "aux": (10, True)}
    assert codes(make(layers, None, ["head"])) == set()
    assert codes(make(layers, [("body", "head")], [])) == set()
    assert codes(make(layers, [("body", "head")], ["head"], dataflow=False)) == set()


def test_layer_feeding_a_second_output_is_live() -> None:
    graph = make({"body": (100, True), "head": (10, True), "aux": (10, True)},
                 [("body", "head"), ("body", "aux")], ["head", "aux"])
    assert codes(graph) == set()


def test_frozen_head_with_edges() -> None:
    # registered head-first: registration order would see no frozen tail at all
    graph = make({"head": (10, False), "body": (100, True)}, [("body", "head")], ["head"])
    assert codes(graph) == {("PI102", "head")}


def test_frozen_head_peft_guard_with_edges() -> None:
    # a small trainable adapter upstream of a big frozen output layer is on purpose
    graph = make({"lora": (8, True), "head": (100, False)}, [("lora", "head")], ["head"])
    assert codes(graph) == set()


def test_parallel_frozen_tower_is_not_a_frozen_head() -> None:
    # registration order alone would flag `small` (frozen, last) behind `big`
    graph = make({"big": (100, True), "small": (10, False)}, [], ["big", "small"])
    assert codes(graph) == set()
    ordered = make({"big": (100, True), "small": (10, False)}, None, [], dataflow=False)
    assert codes(ordered) == {("PI102", "small")}


def test_frozen_layer_with_trainable_layer_after_it_is_not_a_head() -> None:
    graph = make({"body": (100, True), "neck": (10, False), "head": (10, True)},
                 [("body", "neck"), ("neck", "head")], ["head"])
    assert codes(graph) == set()


def test_unknown_layer_upstream_does_not_hide_a_frozen_head() -> None:
    # a layer the file cannot tell about sits upstream: the known part proves the inversion
    layers = {"stem": (50, None), "body": (100, True), "head": (10, False)}
    assert codes(make(layers, [("stem", "body"), ("body", "head")], ["head"])) == {
        ("PI102", "head")}
    assert codes(make(layers, None, [], dataflow=False)) == {("PI102", "head")}


def test_unknown_layer_after_a_frozen_one_may_be_the_trainable_head() -> None:
    layers = {"body": (100, True), "neck": (10, False), "head": (10, None)}
    assert codes(make(layers, [("body", "neck"), ("neck", "head")], ["head"])) == set()
    assert codes(make(layers, None, [], dataflow=False)) == set()


def test_unknown_layers_upstream_count_for_nothing_against_the_peft_guard() -> None:
    # only known-trainable elements are weighed against the frozen head: 8 < 100 stays silent
    layers = {"base": (1000, None), "lora": (8, True), "head": (100, False)}
    assert codes(make(layers, [("base", "lora"), ("lora", "head")], ["head"])) == set()
    assert codes(make(layers, None, [], dataflow=False)) == set()
