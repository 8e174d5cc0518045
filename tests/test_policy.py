"""Freeze policy (PI401): config parsing, positives, negatives, and "could not be verified"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.config import ConfigError, Policy, settings_from_table
from paraminspect.findings import Severity
from paraminspect.policy import match_depth

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "fixtures" / "torch"


def settings(**policy: object) -> object:
    table = {"policy": [{"files": "*.pt", **policy}]}
    return settings_from_table(table, root=TORCH)


def pi401(fixture: str, **policy: object) -> list:
    report = check(TORCH / fixture, settings(**policy))
    return [f for f in report.findings if f.code == "PI401"]


def kinds(findings: list) -> set[tuple[str, str]]:
    """(location, what) pairs, 'what' being the first words after the policy label."""
    out = set()
    for f in findings:
        text = f.message.split(": ", 1)[1]
        out.add((f.location, text))
    return out


# -- config -----------------------------------------------------------------------------------
def test_policy_table_parses_into_frozen_settings() -> None:
    s = settings_from_table(
        {"policy": [{"files": "checkpoints/finetune-*.pt", "frozen": ["backbone.*"],
                     "trainable": ["head.*", "*.lora_*"], "eval": ["backbone.*"],
                     "min-trainable-params": 1000, "unverifiable": "warning"}]},
        root=ROOT,
    )
    (policy,) = s.policies
    assert policy == Policy(
        files=("checkpoints/finetune-*.pt",), frozen=("backbone.*",),
        trainable=("head.*", "*.lora_*"), eval=("backbone.*",), min_trainable_params=1000,
        unverifiable=Severity.WARNING, index=1,
    )
    with pytest.raises(AttributeError):
        policy.frozen = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"frozen": ["a"], "colour": 1}, "unknown key"),
        ({"frozen": ["a"], "unverifiable": "never"}, "never passed silently"),
        ({"frozen": ["a"], "unverifiable": "off"}, "unverifiable must be one of"),
        ({"frozen": ["a"], "min-trainable-params": -1}, "whole number"),
        ({"frozen": ["a"], "min-trainable-params": True}, "whole number"),
        ({"frozen": "a", "trainable": [1]}, "list of glob patterns"),
        ({"files": "*.pt"}, "declares nothing"),
    ],
)
def test_bad_policy_tables_are_config_errors(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_table({"policy": [table]}, root=ROOT)


def test_patterns_match_parameters_and_layers_at_any_depth() -> None:
    assert match_depth("backbone.*", "backbone.conv") == 2
    assert match_depth("backbone.*", "backbone.conv.weight") == 2
    assert match_depth("backbone", "backbone.conv.weight") == 1
    assert match_depth("backbone.*", "backbone") is None
    assert match_depth("*.lora_*", "blocks.0.attn.lora_A.weight") == 4
    assert match_depth("head.*", "headless.weight") is None


# -- positives --------------------------------------------------------------------------------
def test_layers_in_train_mode_that_the_policy_wants_in_eval() -> None:
    (finding,) = pi401("cnn_whole_bn_train_frozen.pt", eval=["backbone.*"])
    assert finding.location == "backbone" and finding.severity is Severity.ERROR
    assert set(finding.paths) == {"backbone.conv", "backbone.bn", "backbone.relu"}
    assert "in train mode" in finding.message and "backbone.bn" in finding.message


def test_frozen_parameters_the_policy_trains_are_named_grouped() -> None:
    (finding,) = pi401("cnn_whole_head_frozen.pt", trainable=["head.*"])
    assert finding.location == "head"
    assert set(finding.paths) == {"head.weight", "head.bias"}
    assert "2 parameters the policy trains are frozen: head (all 2 parameters)" in finding.message


def test_trainable_parameters_the_policy_freezes() -> None:
    (finding,) = pi401("cnn_whole_eval.pt", frozen=["backbone.*"])
    assert finding.location == "backbone"
    assert set(finding.paths) == {
        "backbone.conv.weight", "backbone.conv.bias", "backbone.bn.weight", "backbone.bn.bias"
    }


def test_a_single_frozen_bias_in_a_trained_layer() -> None:
    (finding,) = pi401("cnn_whole_mixed.pt", trainable=["head"])
    assert finding.paths == ("head.bias",) and finding.location == "head"
    assert "head (bias)" in finding.message


def test_min_trainable_params_counts_elements() -> None:
    (finding,) = pi401("cnn_whole_clean.pt", **{"min-trainable-params": 11})
    assert finding.location == "" and "10 trainable elements" in finding.message
    assert pi401("cnn_whole_clean.pt", **{"min-trainable-params": 10}) == []


def test_deeper_pattern_wins_and_ties_are_reported() -> None:
    # backbone frozen, but the policy trains backbone.bn explicitly: bn's params disagree
    (finding,) = pi401("cnn_whole_bn_train_frozen.pt", frozen=["backbone"], trainable=["backbone.bn"])
    assert set(finding.paths) == {"backbone.bn.weight", "backbone.bn.bias"}
    (tie,) = pi401("cnn_whole_clean.pt", frozen=["head.*"], trainable=["head.*"])
    assert "equally specifically" in tie.message


def test_policy_severity_is_configurable() -> None:
    (finding,) = pi401("cnn_whole_eval.pt", frozen=["backbone.*"], severity="warning")
    assert finding.severity is Severity.WARNING


# -- negatives --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "policy"),
    [
        ("cnn_whole_clean.pt", {"frozen": ["backbone.*"], "trainable": ["head.*"], "eval": ["backbone.*"]}),
        ("cnn_whole_clean.pt", {"frozen": ["backbone"], "trainable": ["head", "*.lora_*"]}),
        # trainability inferred from the optimizer state counts as known
        ("cnn_ckpt_clean.pt", {"frozen": ["backbone.*"], "trainable": ["head.*"], "min-trainable-params": 10}),
        ("cnn_whole_eval.pt", {"trainable": ["*"], "eval": ["*"]}),
    ],
)
def test_files_that_agree_with_the_policy_pass(fixture: str, policy: dict) -> None:
    assert pi401(fixture, **policy) == []


def test_a_policy_for_other_files_does_not_apply() -> None:
    table = {"policy": [{"files": "checkpoints/finetune-*.pt", "frozen": ["*"]}]}
    report = check(TORCH / "cnn_whole_eval.pt", settings_from_table(table, root=TORCH))
    assert [f for f in report.findings if f.code == "PI401"] == []


def test_other_rules_are_unchanged_by_a_policy() -> None:
    report = check(TORCH / "cnn_whole_bn_train_frozen.pt", settings(frozen=["backbone.*"]))
    assert ("PI201", "backbone.bn") in {(f.code, f.location) for f in report.findings}


# -- unknown never passes ---------------------------------------------------------------------
def test_unknown_trainability_is_reported_as_unverifiable() -> None:
    (finding,) = pi401("cnn_sd_clean.pt", frozen=["backbone.*"], trainable=["head.*"])
    assert "could not be verified" in finding.message and "trainability" in finding.message
    assert finding.severity is Severity.ERROR  # the default: unknown fails like a violation
    assert len(finding.paths) == 6


def test_unverifiable_severity_is_configurable() -> None:
    (finding,) = pi401("cnn_sd_clean.pt", frozen=["backbone.*"], unverifiable="info")
    assert finding.severity is Severity.INFO


def test_unknown_mode_and_unknown_counts_are_unverifiable_too() -> None:
    (mode,) = pi401("cnn_ckpt_clean.pt", eval=["backbone.*"])  # checkpoints store no modes
    assert "train/eval mode" in mode.message
    (count,) = pi401("cnn_sd_clean.pt", **{"min-trainable-params": 5})
    assert "could not be verified" in count.message


def test_a_pattern_list_that_matches_nothing_is_not_a_pass() -> None:
    (finding,) = pi401("cnn_whole_clean.pt", frozen=["encoder.*"])
    assert "frozen = ['encoder.*'] matches nothing" in finding.message


@pytest.mark.parametrize("fixture", ["cnn_sd_clean.pt", "cnn_sd_keepvars.pt", "cnn_ddp_sd.pt", "tfm_sd.pt"])
def test_state_dicts_never_pass_a_policy_silently(fixture: str) -> None:
    assert pi401(fixture, frozen=["*"], eval=["*"]) != []


# -- show --policy ----------------------------------------------------------------------------
def test_show_policy_marks_covered_layers(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paraminspect]\n[[tool.paraminspect.policy]]\nfiles = "*.pt"\n'
        'frozen = ["backbone.*"]\ntrainable = ["head.*"]\neval = ["backbone.*"]\n'
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from paraminspect.cli import main; main()", "show", "--policy",
         "--no-color", str(TORCH / "cnn_whole_mixed.pt")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    conv = next(ln for ln in lines if "conv Conv2d" in ln)
    head = next(ln for ln in lines if "head Linear" in ln)
    pool = next(ln for ln in lines if "pool " in ln)
    assert "[policy: frozen, eval]" in conv
    assert "[policy: trainable]" in head
    assert "[policy" not in pool
