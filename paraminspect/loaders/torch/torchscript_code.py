"""The Python code saved in a TorchScript archive (``code/__torch__/...py``), parsed with
``ast`` and never compiled or run: per class its parameter and buffer names, constants, methods and
the modes traced calls bake in; and the clean class names of its mangled qualnames."""

from __future__ import annotations

import ast
import re

from ...errors import LoadError
from ...record import Record

MANGLE = re.compile(r"^___torch_mangle_\d+$")
#: torch.<op> -> index of its literal mode argument
BATCH_NORM_CALLS = {"batch_norm": 5, "instance_norm": 5}
DROPOUT_CALLS = {
    name: 2 for name in (
        "dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout",
        "alpha_dropout_", "feature_alpha_dropout", "feature_alpha_dropout_",
    )
}


class ClassInfo(Record):
    """One class of the saved code: its parameter and buffer names, constants, methods, and the
    modes its calls bake in."""

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


class SavedClasses:
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
