"""Module-level dataflow recovered from the code saved in a TorchScript archive: the root's
``forward`` followed through submodule calls into edges between layers, their order and the
model's outputs; code it cannot follow soundly leaves the registration order and a note."""

from __future__ import annotations

import ast

from ...graph import ModelGraph, OrderSource
from ...record import Record
from ..dataflow import Op, contract, topological_order
from ..pickle.stubs import Stub
from .torchscript_code import ClassInfo
from .torchscript_modules import is_module

MAX_OPS = 200_000
MAX_DEPTH = 100


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
        return not any(is_module(v) for v in self.instances[path][0]._pi_state.values())

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


def dataflow(graph: ModelGraph, instances: dict[str, tuple[Stub, ClassInfo]]) -> None:
    """Set the graph's edges, order and outputs from the root's ``forward``; where the code cannot
    be followed, the registration order and a note saying why."""
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
