"""PI401 freeze-policy-violation: the checkpoint disagrees with the team's declared freeze policy."""

from __future__ import annotations

from collections.abc import Iterator

from ..config import Policy
from ..findings import Severity
from ..graph import ModelGraph
from ..policy import Kind, Verdict, evaluate
from ._text import listing, plural
from .base import Issue, Rule

#: how many folded groups a message names before "and N more" (``paths`` always has them all)
SHOWN = 12


class FreezePolicyViolation(Rule):
    code = "PI401"
    name = "freeze-policy-violation"
    severity = Severity.ERROR
    fix = (
        "Freeze or unfreeze the named paths (and set their train/eval mode) as the policy says "
        "before saving, or correct the [[tool.paraminspect.policy]] table if the policy is wrong."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for policy in self.settings.policies:
            if not policy.applies_to(graph.path, self.settings.root):
                continue
            for verdict in evaluate(graph, policy):
                yield _issue(policy, verdict)


def _issue(policy: Policy, verdict: Verdict) -> Issue:
    names = listing(verdict.groups, limit=SHOWN)
    count = len(verdict.paths)
    severity = policy.severity
    fix = ""
    if verdict.kind is Kind.SHOULD_BE_FROZEN:
        text = f"{plural(count, 'parameter')} the policy freezes {_are(count)} trainable: {names}"
    elif verdict.kind is Kind.SHOULD_BE_TRAINABLE:
        text = f"{plural(count, 'parameter')} the policy trains {_are(count)} frozen: {names}"
    elif verdict.kind is Kind.SHOULD_BE_EVAL:
        text = f"{plural(count, 'layer')} the policy wants in eval mode {_are(count)} in train mode: {names}"
    elif verdict.kind is Kind.TOO_FEW_TRAINABLE:
        text = f"too few trainable parameters: {verdict.detail}"
    elif verdict.kind is Kind.AMBIGUOUS:
        text = f"frozen and trainable patterns match {plural(count, 'parameter')} equally specifically: {names}"
        fix = "Make one pattern more specific (a deeper path) so the policy says one thing per parameter."
    elif verdict.kind is Kind.NO_MATCH:
        text = f"could not be verified: {verdict.detail} matches nothing in this file"
        severity = policy.unverifiable
        fix = "Check the pattern for typos, or narrow the policy's files to the models it describes."
    else:
        text = (
            f"could not be verified: the file does not record the {verdict.detail} of "
            f"{plural(count, 'path')}: {names}"
        )
        severity = policy.unverifiable
        fix = (
            "Save a format that records it (the whole module, a checkpoint with optimizer state, "
            "Keras, torch.export), or set unverifiable = \"warning\" / \"info\" in the policy."
        )
    return Issue(
        location=verdict.location,
        message=f"{policy.label}: {text}",
        fix=fix,
        paths=verdict.paths,
        severity=severity,
    )


def _are(count: int) -> str:
    return "is" if count == 1 else "are"
