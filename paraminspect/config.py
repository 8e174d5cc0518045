"""Settings: built once from ``[tool.paraminspect]`` and command-line flags, then frozen."""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

from .findings import Severity
from .record import FrozenRecord, assign, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def _toml():  # type: ignore[no-untyped-def]
    """The TOML parser, imported only when a file that may configure paraminspect is met."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


class ConfigError(Exception):
    """Invalid configuration; the message is one line."""


FAIL_ON_CHOICES = ("error", "warning", "info", "never")
#: the default: every freezing mistake (a warning) fails a build, ``info`` never does
DEFAULT_FAIL_ON = "warning"


class Policy(FrozenRecord):
    """One ``[[tool.paraminspect.policy]]`` table: what a team meant to freeze (rule PI401).

    Patterns are globs on dotted paths; a pattern covers a parameter or layer when it matches the
    path or one of its dotted prefixes (``backbone.*`` covers ``backbone.conv`` and
    ``backbone.conv.weight``; ``backbone`` covers everything below it).
    """

    __slots__ = ("files", "frozen", "trainable", "eval", "min_trainable_params", "severity",
                 "unverifiable", "index", "source")
    files: tuple[str, ...]  #: file globs (relative to the config's folder), like per-file-ignores
    frozen: tuple[str, ...]
    trainable: tuple[str, ...]
    eval: tuple[str, ...]  #: layers that must be in eval mode
    min_trainable_params: int | None  #: trainable elements, summed over the model
    severity: Severity  #: of a disagreement
    #: of "the file cannot tell" (trainability or mode unknown); never off: unknown must not pass
    unverifiable: Severity
    index: int  #: position in the config, for messages
    source: str

    def __init__(
        self, files: tuple[str, ...] = ("*",), frozen: tuple[str, ...] = (),
        trainable: tuple[str, ...] = (), eval: tuple[str, ...] = (),  # noqa: A002
        min_trainable_params: int | None = None, severity: Severity = Severity.ERROR,
        unverifiable: Severity = Severity.ERROR, index: int = 1, source: str = "config",
    ) -> None:
        assign(self, "files", files)
        assign(self, "frozen", frozen)
        assign(self, "trainable", trainable)
        assign(self, "eval", eval)
        assign(self, "min_trainable_params", min_trainable_params)
        assign(self, "severity", severity)
        assign(self, "unverifiable", unverifiable)
        assign(self, "index", index)
        assign(self, "source", source)

    @property
    def label(self) -> str:
        return f"policy #{self.index} ({', '.join(self.files)})"

    def applies_to(self, path: str, root: Path) -> bool:
        return any(_path_matches(path, pattern, root) for pattern in self.files)


class Settings(FrozenRecord):
    """What to check and when to fail. Empty ``select`` means every rule."""

    __slots__ = ("select", "ignore", "fail_on", "per_file_ignores", "policies", "root",
                 "non_models", "timeout")
    select: tuple[str, ...]
    ignore: tuple[str, ...]
    fail_on: Severity | None
    #: (glob, codes): codes ignored for files matching glob (relative to ``root``)
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...]
    policies: tuple[Policy, ...]
    root: Path  #: the current folder by default
    #: a named file that is no model at all: "error" (PI001) or "notice" (skipped, pre-commit)
    non_models: str
    #: seconds one file may take before it is reported "timed out" (None or 0: no limit)
    timeout: float | None

    def __init__(
        self, select: tuple[str, ...] = (), ignore: tuple[str, ...] = (),
        fail_on: Severity | None = Severity.WARNING,
        per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = (),
        policies: tuple[Policy, ...] = (), root: Path | None = None, non_models: str = "error",
        timeout: float | None = 60.0,
    ) -> None:
        assign(self, "select", select)
        assign(self, "ignore", ignore)
        assign(self, "fail_on", fail_on)
        assign(self, "per_file_ignores", per_file_ignores)
        assign(self, "policies", policies)
        assign(self, "root", Path.cwd() if root is None else root)
        assign(self, "non_models", non_models)
        assign(self, "timeout", timeout)

    def rule_enabled(self, code: str, name: str, path: str | None = None) -> bool:
        if self.select and not _matches_any(code, name, self.select):
            return False
        if _matches_any(code, name, self.ignore):
            return False
        if path is not None:
            for pattern, codes in self.per_file_ignores:
                if _matches_any(code, name, codes) and _path_matches(path, pattern, self.root):
                    return False
        return True

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced; ``None`` values leave a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _matches_any(code: str, name: str, selectors: Iterable[str]) -> bool:
    for selector in selectors:
        selector = selector.strip()
        if selector.upper() == "ALL" or (selector and code.startswith(selector.upper())):
            return True
        if selector.lower() == name:
            return True
    return False


def _path_matches(path: str, pattern: str, root: Path) -> bool:
    candidate = Path(path)
    try:
        relative = candidate.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        relative = candidate.as_posix()
    return (
        fnmatch.fnmatch(relative, pattern)
        or fnmatch.fnmatch(candidate.as_posix(), pattern)
        or fnmatch.fnmatch(candidate.name, pattern)
    )


def parse_fail_on(value: str) -> Severity | None:
    value = value.strip().lower()
    if value not in FAIL_ON_CHOICES:
        raise ConfigError(f"fail-on must be one of {', '.join(FAIL_ON_CHOICES)}, not {value!r}")
    return None if value == "never" else Severity(value)


def split_codes(values: Iterable[str]) -> tuple[str, ...]:
    """``["PI1,PI201", "PI3"]`` -> ``("PI1", "PI201", "PI3")``."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _read_toml(path: Path) -> tuple[dict[str, object], str]:
    """The parsed file and its text; a file that cannot be read or parsed is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"{path}: cannot read ({reason})") from None
    tomllib = _toml()
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line N, column M)"
        message = str(exc)
        line = re.search(r"at line (\d+)", message)
        number = line.group(1) if line else str(max(len(text.splitlines()), 1))  # end of file
        where = f"{path}:{number}"
        raise ConfigError(f"{where}: invalid TOML: {message}") from None


#: ``[tool.paraminspect]``, ``tool.paraminspect.x =``, ``paraminspect = {`` under ``[tool]``
_MAY_CONFIGURE = re.compile(rb"paraminspect\s*[\].=]")


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.paraminspect]`` table, walking up.

    A ``pyproject.toml`` on the way that cannot be parsed is an error, never skipped: skipping
    it would silently apply another project's settings (or none)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:  # a file that never names paraminspect cannot configure it: skip the parse
                if not _MAY_CONFIGURE.search(candidate.read_bytes()):
                    continue
            except OSError:
                pass  # _read_toml reports it
            data, _ = _read_toml(candidate)
            tool = data.get("tool", {})
            if isinstance(tool, dict) and "paraminspect" in tool:
                return candidate
    return None


def load_settings(config_file: Path | None = None, start: Path | None = None) -> Settings:
    """Settings from ``[tool.paraminspect]`` of ``config_file`` or the nearest pyproject.toml."""
    path = config_file or find_pyproject(start or Path.cwd())
    if path is None:
        return Settings()
    data, text = _read_toml(path)
    tool = data.get("tool", {})
    table = tool.get("paraminspect", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.paraminspect] must be a table")
    return settings_from_table(table, root=path.parent, source=str(path), text=text)


KNOWN_KEYS = ("select", "ignore", "fail-on", "per-file-ignores", "policy", "timeout")


def _line_of(text: str, *needles: str) -> int | None:
    """The first line (1-based) of the ``[tool.paraminspect]`` part of ``text`` holding every
    needle, for messages that point at the mistake."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if "tool.paraminspect" in ln), 0)
    for number in range(start, len(lines)):
        if all(needle in lines[number] for needle in needles):
            return number + 1
    return None


def rule_choices() -> list[tuple[str, str]]:
    """(code, name) of every registered rule: the single source of valid selectors."""
    from .rules import all_rules

    return [(rule.code, rule.name) for rule in all_rules()]


def unknown_selector(selector: str, choices: list[tuple[str, str]] | None = None) -> bool:
    """True when ``selector`` names no rule: not ALL, not a code prefix, not a rule name."""
    choices = rule_choices() if choices is None else choices
    selector = selector.strip()
    if selector.upper() == "ALL":
        return False
    return not any(
        (selector.upper() and code.startswith(selector.upper())) or selector.lower() == name
        for code, name in choices
    )


def validate_selectors(
    selectors: Iterable[str], where: str, text: str | None = None, source: str = ""
) -> None:
    """Raise ConfigError naming the first selector that matches no registered rule."""
    if not selectors:
        return
    choices = rule_choices()
    for selector in selectors:
        if unknown_selector(selector, choices):
            line = _line_of(text, selector) if text else None
            place = f"{source}:{line}: " if line else f"{source}: " if source else ""
            codes = ", ".join(code for code, _ in choices)
            raise ConfigError(
                f"{place}{where}: unknown rule code, prefix or name {selector!r}; "
                f"valid: ALL, {codes}, a prefix of them (PI2) or a rule name"
            )


def settings_from_table(
    table: Mapping[str, object], root: Path, source: str = "config", text: str | None = None
) -> Settings:
    def place(*needles: str) -> str:
        line = _line_of(text, *needles) if text else None
        return f"{source}:{line}" if line else source

    unknown = [key for key in table if key not in KNOWN_KEYS]
    if unknown:
        raise ConfigError(
            f"{place(unknown[0])}: unknown [tool.paraminspect] key {unknown[0]!r}; "
            f"valid keys: {', '.join(KNOWN_KEYS)}"
        )

    def codes(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{place(key)}: {key} must be a list of rule codes")
        selectors = split_codes(value)
        validate_selectors(selectors, key, text, source)
        return selectors

    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{place('per-file-ignores')}: per-file-ignores must be a table of "
                          "glob = [codes]")
    pfi = []
    for pattern, value in per_file.items():
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{place(pattern)}: per-file-ignores.{pattern} must be a list of rule codes"
            )
        selectors = split_codes(value)
        validate_selectors(selectors, f"per-file-ignores.{pattern}", text, source)
        pfi.append((pattern, selectors))
    fail_on = table.get("fail-on", DEFAULT_FAIL_ON)
    if not isinstance(fail_on, str) or fail_on.strip().lower() not in FAIL_ON_CHOICES:
        raise ConfigError(
            f"{place('fail-on')}: fail-on must be one of {', '.join(FAIL_ON_CHOICES)}, "
            f"not {fail_on!r}"
        )
    timeout = table.get("timeout", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"{place('timeout')}: timeout must be a number of seconds (0: no limit)")
    return Settings(
        select=codes("select"),
        ignore=codes("ignore"),
        fail_on=parse_fail_on(fail_on),
        per_file_ignores=tuple(pfi),
        policies=parse_policies(table.get("policy", []), source),
        root=root,
        timeout=float(timeout),
    )


POLICY_KEYS = {
    "files", "frozen", "trainable", "eval", "min-trainable-params", "severity", "unverifiable"
}


def parse_policies(value: object, source: str = "config") -> tuple[Policy, ...]:
    """``[[tool.paraminspect.policy]]`` tables -> Policy objects (ConfigError on any mistake)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{source}: policy must be an array of tables ([[tool.paraminspect.policy]])")
    policies = []
    for index, table in enumerate(value, start=1):
        where = f"{source}: policy #{index}"
        unknown = set(table) - POLICY_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}; "
                              f"valid keys: {', '.join(sorted(POLICY_KEYS))}")

        def globs(key: str, table: dict[str, object] = table, where: str = where) -> tuple[str, ...]:
            raw = table.get(key, [])
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
                raise ConfigError(f"{where}: {key} must be a list of glob patterns")
            return tuple(v.strip() for v in raw)

        def severity(key: str, table: dict[str, object] = table, where: str = where) -> Severity:
            raw = table.get(key, "error")
            choices = [s.value for s in Severity]
            if not isinstance(raw, str) or raw.strip().lower() not in choices:
                extra = (
                    " (a policy the file cannot confirm is never passed silently)"
                    if key == "unverifiable" else ""
                )
                raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}{extra}")
            return Severity(raw.strip().lower())

        minimum = table.get("min-trainable-params")
        if minimum is not None and (
            isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0
        ):
            raise ConfigError(f"{where}: min-trainable-params must be a whole number >= 0")
        policy = Policy(
            files=globs("files") or ("*",),
            frozen=globs("frozen"),
            trainable=globs("trainable"),
            eval=globs("eval"),
            min_trainable_params=minimum,
            severity=severity("severity"),
            unverifiable=severity("unverifiable"),
            index=index,
            source=source,
        )
        if not (policy.frozen or policy.trainable or policy.eval or minimum is not None):
            raise ConfigError(
                f"{where}: declares nothing (give frozen, trainable, eval or min-trainable-params)"
            )
        policies.append(policy)
    return tuple(policies)
