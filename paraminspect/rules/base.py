"""The rule contract: subclass :class:`Rule`, give it a code, and it is registered."""

from __future__ import annotations

from ..config import Settings
from ..findings import Finding, Severity
from ..record import FrozenRecord, assign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import ClassVar

    from ..graph import ModelGraph


class Issue(FrozenRecord):
    """What a rule yields; the engine stamps code, name and severity on it.

    House style: ``location`` is where; ``message`` is one sentence of what is wrong and one of
    why it matters, without the location (so one message can stand for many layers); ``fix`` one
    sentence of how to fix it; ``evidence`` how the file shows it (stored / inferred, and from
    what), shown with ``--show-evidence`` and in JSON.
    """

    __slots__ = ("location", "message", "fix", "paths", "severity", "evidence")
    location: str
    message: str
    fix: str
    paths: tuple[str, ...]
    severity: Severity | None  #: overrides the rule's default severity
    evidence: str

    def __init__(
        self, location: str, message: str, fix: str = "", paths: tuple[str, ...] = (),
        severity: Severity | None = None, evidence: str = "",
    ) -> None:
        assign(self, "location", location)
        assign(self, "message", message)
        assign(self, "fix", fix)
        assign(self, "paths", paths)
        assign(self, "severity", severity)
        assign(self, "evidence", evidence)


class Rule:
    """Base class. Subclasses with a ``code`` register themselves; there is no list to forget."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    fix: ClassVar[str] = ""  #: default one-line fix, used when an issue brings none

    registry: ClassVar[dict[str, type[Rule]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.code:
            return
        if cls.code in Rule.registry and Rule.registry[cls.code] is not cls:
            raise TypeError(f"rule code {cls.code} is used twice")
        Rule.registry[cls.code] = cls

    def __init__(self, settings: Settings | None = None) -> None:
        #: the run's settings, for the few rules configured by them (PI401 reads the policies)
        self.settings = settings if settings is not None else Settings()

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        """Yield issues found in ``graph``. Must never guess where the graph says 'unknown'."""
        return iter(())

    @classmethod
    def finding(cls, issue: Issue) -> Finding:
        return Finding(
            code=cls.code,
            name=cls.name,
            severity=issue.severity or cls.severity,
            location=issue.location,
            message=issue.message,
            fix=issue.fix or cls.fix,
            paths=issue.paths,
            evidence=issue.evidence,
        )
