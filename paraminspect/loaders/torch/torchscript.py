"""TorchScript archives (``torch.jit.save``), read without torch and without running anything.

``data.pkl`` holds the module tree as flat dicts (``{'training': bool, <tensor>: ..., <child>:
module}``), walked by the restricted unpickler. Which tensors are parameters and which are
buffers is written only in the saved code (``__parameters__`` / ``__buffers__`` per class in
``code/__torch__/...py``), so that code is parsed (``ast.parse``, never compiled or run). The code
also gives the mode where tracing baked it in (``torch.batch_norm(..., True, ...)``) and the
module-level dataflow: which submodule's ``forward`` result feeds which.
"""

from __future__ import annotations

import ast
import re
import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...kinds import classify
from ...record import Record
from ...sniff import Sniffed, open_archive
from ...zipguard import read_entry
from ..dataflow import Op, contract, topological_order
from ..pickle.limits import DEFAULT_LIMITS
from ..pickle.scan import with_partial
from ..pickle.unpickler import GlobalLog, Stub, TensorRef, unpickle
from .pickled import check_storages, record_code_references

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANGLE = re.compile(r"^___torch_mangle_\d+$")
#: torch.<op> -> index of its literal mode argument
BATCH_NORM_CALLS = {"batch_norm": 5, "instance_norm": 5}
DROPOUT_CALLS = {
    name: 2 for name in (
        "dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout",
        "alpha_dropout_", "feature_alpha_dropout", "feature_alpha_dropout_",
    )
}
#: class constants (``Final``) worth keeping as layer attributes
CONSTANT_ATTRS = ("track_running_stats", "momentum", "affine", "eps", "num_features", "p")
MAX_OPS = 200_000
MAX_DEPTH = 100


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    prefix = sniffed.detail.get("prefix", "")
    log = GlobalLog()
    limits = DEFAULT_LIMITS
    try:
        with open_archive(path, sniffed) as archive:
            names = set(archive.namelist())

            def read(name: str) -> bytes:  # bounded: size and compression ratio
                return read_entry(
                    archive, archive.getinfo(name), limits.max_entry_bytes,
                    limits.max_compression_ratio,
                )

            data = read(f"{prefix}/data.pkl")
            sizes = {
                n[len(prefix) + 6 :]: archive.getinfo(n).file_size
                for n in names if n.startswith(f"{prefix}/data/")
            }
            code = {
                n[len(prefix) + 6 :]: read(n)
                for n in names if n.startswith(f"{prefix}/code/") and n.endswith(".py")
            }
            constants = read(f"{prefix}/constants.pkl") if (
                f"{prefix}/constants.pkl" in names) else b""
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError, KeyError) as exc:
        raise LoadError(f"corrupt TorchScript archive ({exc})") from None
    try:
        root, unpickler = unpickle(data, log)
    except LoadError as exc:
        partial = ModelGraph(path=str(path), format="torchscript", framework="pytorch")
        raise with_partial(exc, partial, log) from None
    check_storages(unpickler.storages, sizes)
    graph = ModelGraph(path=str(path), format="torchscript", content="export",
                       framework="pytorch")
    if constants:
        try:
            unpickle(constants, log)
        except LoadError as exc:
            graph.notes.append(f"could not walk constants.pkl: {exc}")
    if not _is_module(root):
        raise LoadError("TorchScript data.pkl holds no module object")
    classes = _Classes(code)
    instances: dict[str, tuple[Stub, ClassInfo]] = {}
    _add_module(graph, "", root, classes, instances, set(), {})
    record_code_references(graph, log)
    _dataflow(graph, instances)
    return graph


# -- saved code --------------------------------------------------------------------------------
class ClassInfo(Record):
    __slots__ = ("qualname", "parameters", "buffers", "constants", "methods", "baked")
    qualname: str
    parameters: list[str]
    buffers: list[str]
    constants: dict[str, object]
    methods: dict[str, ast.FunctionDef]
    #: literal modes baked into calls: ("batch_norm"|"dropout", op name, value)
    baked: list[tuple[str, str, bool]]

    def __init__(
        self, qualname: str, parameters: list[str] | None = None,
        buffers: list[str] | None = None, constants: dict[str, object] | None = None,
        methods: dict[str, ast.FunctionDef] | None = None,
        baked: list[tuple[str, str, bool]] | None = None,
    ) -> None:
        self.qualname = qualname
        self.parameters = [] if parameters is None else parameters
        self.buffers = [] if buffers is None else buffers
        self.constants = {} if constants is None else constants
        self.methods = {} if methods is None else methods
        self.baked = [] if baked is None else baked


class _Classes:
    """Class definitions from ``code/``, parsed on demand."""

    def __init__(self, code: dict[str, bytes]) -> None:
        self.code = code
        self.parsed: dict[str, dict[str, ClassInfo] | None] = {}
        self.syntax_errors: list[str] = []

    def get(self, qualname: str) -> ClassInfo:
        module, _, name = qualname.rpartition(".")
        filename = module.replace(".", "/") + ".py"
        if filename not in self.parsed:
            self.parsed[filename] = self._parse(filename)
        classes = self.parsed[filename]
        if classes is None or name not in classes:
            raise LoadError(f"TorchScript archive has no code for class {qualname} "
                            f"(code/{filename}): truncated or corrupt")
        return classes[name]

    def _parse(self, filename: str) -> dict[str, ClassInfo] | None:
        source = self.code.get(filename)
        if source is None:
            return None
        try:
            tree = ast.parse(source.decode("utf-8"), filename=filename)
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            raise LoadError(f"unparsable TorchScript code in code/{filename} ({exc})") from None
        module = filename[: -len(".py")].replace("/", ".")
        return {
            node.name: _class_info(f"{module}.{node.name}", node)
            for node in tree.body if isinstance(node, ast.ClassDef)
        }


def _class_info(qualname: str, node: ast.ClassDef) -> ClassInfo:
    info = ClassInfo(qualname)
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(
                item.targets[0], ast.Name) and isinstance(item.value, (ast.List, ast.Tuple)):
            names = [e.value for e in item.value.elts
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if item.targets[0].id == "__parameters__":
                info.parameters = names
            elif item.targets[0].id == "__buffers__":
                info.buffers = names
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and isinstance(
                item.value, ast.Constant) and isinstance(item.value.value, (bool, int, float)):
            info.constants[item.target.id] = item.value.value
        elif isinstance(item, ast.FunctionDef):
            info.methods[item.name] = item
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id == "torch"):
            continue
        for family, table in (("batch_norm", BATCH_NORM_CALLS), ("dropout", DROPOUT_CALLS)):
            index = table.get(func.attr)
            if index is None:
                continue
            arg = call.args[index] if len(call.args) > index else None
            for kw in call.keywords:
                if kw.arg in ("training", "train", "use_input_stats"):
                    arg = kw.value
            if isinstance(arg, ast.Constant) and isinstance(arg.value, bool):
                info.baked.append((family, func.attr, arg.value))
    return info


def clean_class_name(qualname: str) -> str:
    """``__torch__.torch.nn.modules.conv.___torch_mangle_16.Conv2d`` -> ``torch.nn.modules.conv.Conv2d``."""
    parts = qualname.split(".")
    if parts and parts[0] == "__torch__":
        parts = parts[1:]
    return ".".join(p for p in parts if not MANGLE.match(p))


# -- module tree -------------------------------------------------------------------------------
def _is_module(value: Any) -> bool:
    return (
        isinstance(value, Stub)
        and value.target().startswith("__torch__.")
        and isinstance(value._pi_state, dict)
        and isinstance(value._pi_state.get("training"), bool)
    )


def _add_module(
    graph: ModelGraph, path: str, module: Stub, classes: _Classes,
    instances: dict[str, tuple[Stub, ClassInfo]], seen: set[int], tensors: dict[int, str],
) -> None:
    seen.add(id(module))
    layer = graph.ensure_layer(path)
    info = classes.get(module.target())
    instances[path] = (module, info)
    state: dict[str, Any] = module._pi_state
    layer.class_name = clean_class_name(module.target())
    layer.attrs["torchscript_class"] = module.target()
    layer.kind = classify(layer.class_name)
    layer.kind_fact = Fact(Source.STORED, "module class stored in the TorchScript archive")
    children = [(k, v) for k, v in state.items() if _is_module(v)]
    if layer.kind is LayerKind.OTHER and children:
        layer.kind = LayerKind.CONTAINER
    layer.mode = Mode.TRAIN if state["training"] else Mode.EVAL
    layer.mode_fact = Fact(Source.STORED, "module.training stored in the TorchScript archive")
    _baked_mode(layer, info)
    for attr in CONSTANT_ATTRS:
        value = info.constants.get(attr, state.get(attr))
        if isinstance(value, (bool, int, float)):
            layer.attrs[attr] = value

    roles = {**dict.fromkeys(info.buffers, TensorRole.BUFFER),
             **dict.fromkeys(info.parameters, TensorRole.PARAMETER)}
    for local, ref in state.items():
        if not isinstance(ref, TensorRef) or local not in roles:
            continue
        name = f"{path}.{local}" if path else local
        if id(ref) in tensors:  # tied: one tensor, as in module.parameters()
            graph.notes.append(f"{name} is the same tensor as {tensors[id(ref)]}")
            continue
        tensors[id(ref)] = name
        tensor = Tensor(name=name, layer=path, role=roles[local], shape=ref.shape, dtype=ref.dtype)
        tensor.origin = ref
        if tensor.role is TensorRole.PARAMETER and isinstance(ref.requires_grad, bool):
            tensor.trainable = Trainable.TRAINABLE if ref.requires_grad else Trainable.FROZEN
            tensor.trainable_fact = Fact(
                Source.STORED, "requires_grad stored with the tensor (_rebuild_tensor_v2)")
        graph.add_tensor(tensor)
    for local, child in children:
        child_path = f"{path}.{local}" if path else local
        if id(child) in seen:
            graph.notes.append(f"{child_path} is the same module object as one seen before")
            continue
        _add_module(graph, child_path, child, classes, instances, seen, tensors)


def _baked_mode(layer: Any, info: ClassInfo) -> None:
    """Traced code fixes the mode as a literal argument; that literal is what runs."""
    family = {LayerKind.BATCHNORM: "batch_norm", LayerKind.INSTANCENORM: "batch_norm",
              LayerKind.DROPOUT: "dropout"}.get(layer.kind)
    values = [(op, value) for fam, op, value in info.baked if fam == family]
    if not values:
        return
    op, value = next(((o, v) for o, v in values if v), values[0])  # any train-mode op wins
    layer.mode = Mode.TRAIN if value else Mode.EVAL
    layer.mode_fact = Fact(
        Source.STORED, f"training={value} baked into traced code (torch.{op})")


# -- dataflow from the saved code --------------------------------------------------------------
class _Unsound(Exception):
    """The code does something the dataflow reader cannot follow soundly."""


class _Frame(Record):
    __slots__ = ("path", "prefix", "locals", "aliases", "returns", "control")
    path: str
    prefix: str
    locals: set[str]
    aliases: dict[str, str]
    returns: str
    control: list[list[str]]

    def __init__(
        self, path: str, prefix: str, locals: set[str], aliases: dict[str, str], returns: str,
        control: list[list[str]] | None = None,
    ) -> None:
        self.path = path
        self.prefix = prefix
        self.locals = locals
        self.aliases = aliases
        self.returns = returns
        self.control = [] if control is None else control


class _Flow:
    def __init__(self, graph: ModelGraph, instances: dict[str, tuple[Stub, ClassInfo]]) -> None:
        self.graph = graph
        self.instances = instances
        self.ops: list[Op] = []
        self.sources: dict[str, str | None] = {}
        self.counter = 0
        self.stack: list[tuple[str, str]] = []

    # modules
    def is_leaf(self, path: str) -> bool:
        return not any(_is_module(v) for v in self.instances[path][0]._pi_state.values())

    def child(self, base: str, name: str) -> str | None:
        path = f"{base}.{name}" if base else name
        return path if path in self.instances else None

    def glue_group(self, path: str) -> str | None:
        return path if self.graph.layers[path].tensors else None

    def emit(self, frame: _Frame, inputs: list[str], output: str) -> None:
        if len(self.ops) > MAX_OPS:
            raise _Unsound("the code is too large to follow")
        controls = [v for block in frame.control for v in block]
        self.ops.append(Op(self.glue_group(frame.path), inputs + controls, [output]))

    def call(self, path: str, method: str, args: list[list[str]], kwargs: dict[str, list[str]]
             ) -> str:
        self.counter += 1
        result = f"{self.counter}:{path}.{method}:result"
        every = [v for a in args for v in a] + [v for a in kwargs.values() for v in a]
        if self.is_leaf(path):
            self.ops.append(Op(path, every, [result]))
            return result
        info = self.instances[path][1]
        fn = info.methods.get(method)
        if fn is None:
            raise _Unsound(f"{info.qualname} has no method {method} in the saved code")
        if (path, method) in self.stack or len(self.stack) > MAX_DEPTH:
            raise _Unsound(f"recursive call of {path or 'the root'}.{method}")
        self.stack.append((path, method))
        prefix = f"{self.counter}:{path}.{method}:"
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args][1:]
        assigned = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Store)}
        frame = _Frame(path, prefix, set(params) | assigned, {}, result)
        if fn.args.vararg or fn.args.kwarg or len(args) > len(params):
            bound = {p: every for p in params}
        else:
            bound = {p: (args[i] if i < len(args) else kwargs.get(p, [])) for i, p in enumerate(params)}
        for param, values in bound.items():
            self.ops.append(Op(None, values, [prefix + param]))
        self.block(frame, fn.body)
        self.stack.pop()
        return result

    def resolve(self, frame: _Frame, expr: ast.expr) -> str | None:
        """The module instance ``expr`` denotes, or None if it is not a module."""
        if isinstance(expr, ast.Name):
            if expr.id == "self":
                return frame.path
            return frame.aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(frame, expr.value)
            return self.child(base, expr.attr) if base is not None else None
        if (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name)
                and expr.func.id == "getattr" and len(expr.args) == 2
                and isinstance(expr.args[1], ast.Constant) and isinstance(expr.args[1].value, str)):
            base = self.resolve(frame, expr.args[0])
            return self.child(base, expr.args[1].value) if base is not None else None
        return None

    def deps(self, frame: _Frame, expr: ast.AST | None) -> list[str]:
        """Values ``expr`` depends on; submodule calls inside it are followed."""
        if expr is None or isinstance(expr, ast.Constant):
            return []
        if isinstance(expr, ast.expr) and self.resolve(frame, expr) is not None:
            raise _Unsound("a module is used as a value, not called")
        if isinstance(expr, ast.Name):
            if expr.id in frame.aliases:
                raise _Unsound("a module alias is used as a value")
            return [frame.prefix + expr.id] if expr.id in frame.locals else []
        if isinstance(expr, ast.Attribute):
            owner = self.resolve(frame, expr.value)
            if owner is not None:
                name = f"{owner}.{expr.attr}" if owner else expr.attr
                if name in self.graph.tensors:
                    value = f"tensor:{name}"
                    self.sources[value] = self.graph.tensors[name].layer
                    return [value]
                return []  # a plain attribute: training flag, constant, ...
            return self.deps(frame, expr.value)
        if isinstance(expr, ast.Call):
            func = expr.func
            args = [self.deps(frame, a) for a in expr.args]
            kwargs = {k.arg or "**": self.deps(frame, k.value) for k in expr.keywords}
            if isinstance(func, ast.Attribute):
                target = self.resolve(frame, func.value)
                if target is not None:
                    return [self.call(target, func.attr, args, kwargs)]
            return self.deps(frame, func) + [v for a in args for v in a] + [
                v for a in kwargs.values() for v in a]
        if isinstance(expr, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
            if names & set(frame.aliases) or "self" in names:
                raise _Unsound("a module is used inside a comprehension")
            return [frame.prefix + n for n in names if n in frame.locals]
        found: list[str] = []
        for child in ast.iter_child_nodes(expr):
            if isinstance(child, (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop,
                                  ast.boolop)):
                continue
            found.extend(self.deps(frame, child))
        return found

    def assign(self, frame: _Frame, target: ast.expr, values: list[str]) -> None:
        if isinstance(target, ast.Name):
            self.emit(frame, values, frame.prefix + target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.assign(frame, element, values)
        elif isinstance(target, ast.Starred):
            self.assign(frame, target.value, values)
        elif isinstance(target, ast.Subscript):
            self.assign(frame, target.value, values + self.deps(frame, target.slice))
        elif isinstance(target, ast.Attribute):
            owner = self.resolve(frame, target.value)
            name = (f"{owner}.{target.attr}" if owner else target.attr) if owner is not None else ""
            if name in self.graph.tensors:
                self.emit(frame, values, f"tensor:{name}")
            elif owner is None:
                self.assign(frame, target.value, values)  # type: ignore[arg-type]

    def block(self, frame: _Frame, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.statement(frame, stmt)

    def statement(self, frame: _Frame, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if stmt.value is None:
                return
            module = self.resolve(frame, stmt.value)
            if module is not None:
                if len(targets) != 1 or not isinstance(targets[0], ast.Name):
                    raise _Unsound("a module is stored in a structure")
                if targets[0].id in frame.aliases and frame.aliases[targets[0].id] != module:
                    raise _Unsound("one local names different modules")
                frame.aliases[targets[0].id] = module
                return
            values = self.deps(frame, stmt.value)
            for target in targets:
                self.assign(frame, target, values)
        elif isinstance(stmt, ast.AugAssign):
            self.assign(frame, stmt.target, self.deps(frame, stmt.value) + self.deps(frame, stmt.target))
        elif isinstance(stmt, ast.Expr):
            self.deps(frame, stmt.value)
        elif isinstance(stmt, ast.Return):
            self.emit(frame, self.deps(frame, stmt.value), frame.returns)
        elif isinstance(stmt, (ast.If, ast.While)):
            frame.control.append(self.deps(frame, stmt.test))
            self.block(frame, stmt.body)
            self.block(frame, stmt.orelse)
            frame.control.pop()
        elif isinstance(stmt, ast.For):
            iterated = self.deps(frame, stmt.iter)
            self.assign(frame, stmt.target, iterated)
            frame.control.append(iterated)
            self.block(frame, stmt.body)
            self.block(frame, stmt.orelse)
            frame.control.pop()
        elif isinstance(stmt, (ast.Raise, ast.Assert)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.deps(frame, child)
        elif isinstance(stmt, (ast.Pass, ast.Break, ast.Continue)):
            return
        elif isinstance(stmt, ast.With):
            self.block(frame, stmt.body)
        else:
            raise _Unsound(f"unsupported statement {type(stmt).__name__}")


def _dataflow(graph: ModelGraph, instances: dict[str, tuple[Stub, ClassInfo]]) -> None:
    flow = _Flow(graph, instances)
    root_fn = instances[""][1].methods.get("forward")
    reason = None
    if root_fn is None:
        reason = "the root module has no forward in the saved code"
    else:
        inputs = [f"input:{a.arg}" for a in (root_fn.args.posonlyargs + root_fn.args.args)[1:]]
        for value in inputs:
            flow.sources[value] = None
        try:
            result = flow.call("", "forward", [[v] for v in inputs], {})
        except (_Unsound, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, _Unsound) else "the code nests too deeply"
    if reason is not None:
        graph.order = list(graph.layers)
        graph.notes.append(
            f"module-level dataflow not recovered from the TorchScript code ({reason}); "
            "order is module registration order"
        )
        return
    edges, outputs = contract(flow.ops, flow.sources, [result])
    order, cyclic = topological_order(list(graph.layers), edges)
    graph.edges, graph.order, graph.order_source = edges, order, OrderSource.DATAFLOW
    graph.outputs = [p for p in order if p in set(outputs)]
    if cyclic:
        graph.notes.append("the layer graph has a cycle (a module runs more than once, or a "
                           "module with its own parameters wraps its children); order breaks "
                           "it at the earliest registered layer")
