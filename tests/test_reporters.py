"""Every reporter, parsed back: GitHub annotations, SARIF (schema-validated), markdown, JUnit,
text. Each test reads what a CI system would read, not a snapshot."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.findings import FileReport, Finding, Report, Severity
from paraminspect.reporters import Options, get_reporter, rule_catalog
from paraminspect.reporters.github import escape_data, escape_property
from paraminspect.reporters.sarif import FINGERPRINT_KEY

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "fixtures" / "torch"
BN_TRAIN = TORCH / "cnn_whole_bn_train_frozen.pt"
DEEP = TORCH / "deep_whole_bn_train_frozen.pt"
CLEAN = TORCH / "cnn_ckpt_clean.pt"
TRUNCATED = TORCH / "truncated.pt"
EVIL = TORCH / "evil.pt"
#: CI keeps the official schema beside the repository (../shared/schemas); never copied in here
SARIF_SCHEMA = ROOT.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def render(name: str, report: Report, **options: object) -> str:
    stream = io.StringIO()
    get_reporter(name)(report, stream, Options(color=False, **options))  # type: ignore[arg-type]
    return stream.getvalue()


def report_of(*paths: Path) -> Report:
    """Checked as a user in the repository would name them (relative paths)."""
    files = [f for p in paths for f in check(_relative(p)).files]
    return Report(files=files)


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reporters print paths relative to the workspace; make that the repository."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)


# -- github -----------------------------------------------------------------------------------
ANNOTATION = re.compile(r"^::(error|warning|notice) (?P<props>[^:]*)::(?P<message>.*)$")


def _unescape(value: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(code, char)
    return value


def parse_annotations(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        match = ANNOTATION.match(line)
        if not match:
            continue
        props = dict(p.split("=", 1) for p in match["props"].split(","))
        item = {k: _unescape(v) for k, v in props.items()}
        item["level"] = line[2:].split(" ", 1)[0]
        item["message"] = _unescape(match["message"])
        out.append(item)
    return out


def test_github_annotation_points_at_the_file_with_code_and_name_in_the_title() -> None:
    (ann,) = parse_annotations(render("github", report_of(BN_TRAIN)))
    assert ann["level"] == "warning"
    assert ann["file"] == "fixtures/torch/cnn_whole_bn_train_frozen.pt"
    assert ann["title"].startswith("PI201 bn-train-in-frozen")
    assert ann["message"].startswith("backbone.bn: ")


def test_github_groups_one_rule_per_file_and_names_every_location() -> None:
    (ann,) = parse_annotations(render("github", report_of(DEEP)))
    where = ann["message"].split(": ", 1)[0]
    assert where.split(", ") == [f"backbone.blocks.{i}.bn" for i in range(6)]


def test_github_errors_unreadable_and_notices_skipped(tmp_path: Path) -> None:
    pointer = tmp_path / "model.pt"
    pointer.write_text(LFS_POINTER)
    anns = parse_annotations(render("github", report_of(TRUNCATED, pointer)))
    levels = {(a["level"], a["title"].split()[0]) for a in anns}
    assert ("error", "PI001") in levels
    assert ("notice", "paraminspect") in levels
    assert not any(a["level"] == "error" and "model.pt" in a["file"] for a in anns)


def test_github_escaping_keeps_commands_on_one_line() -> None:
    assert escape_data("50%\nnext") == "50%25%0Anext"
    assert escape_property("a:b,c") == "a%3Ab%2Cc"
    report = Report([FileReport("x.pt", findings=[Finding(
        "PI999", "x", Severity.ERROR, "a", "line1\nline2 :: with, commas 100%")])])
    text = render("github", report)
    (ann,) = parse_annotations(text)
    assert ann["message"] == "a: line1\nline2 :: with, commas 100%"
    assert len([ln for ln in text.splitlines() if ln.startswith("::")]) == 1


# -- sarif ------------------------------------------------------------------------------------
def sarif(report: Report) -> dict:
    return json.loads(render("sarif", report, rules=rule_catalog()))


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    if not SARIF_SCHEMA.is_file():
        pytest.skip(f"the SARIF 2.1.0 schema is not at {SARIF_SCHEMA} (CI provides ../shared/schemas)")
    import jsonschema

    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    pointer = tmp_path / "lfs.pt"
    pointer.write_text(LFS_POINTER)
    doc = sarif(report_of(BN_TRAIN, DEEP, TRUNCATED, EVIL, CLEAN, pointer))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = list(validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER).iter_errors(doc))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    # and the schema is really checking: a broken level is caught
    doc["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator_cls(schema).iter_errors(doc))


def test_sarif_rules_come_from_the_registry_and_the_documents() -> None:
    doc = sarif(report_of(BN_TRAIN))
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert {"PI001", "PI201", "PI401"} <= set(rules)
    pi201 = rules["PI201"]
    assert pi201["name"] == "bn-train-in-frozen"
    assert pi201["defaultConfiguration"]["level"] == "warning"
    assert pi201["helpUri"].endswith("/rules/PI201-bn-train-in-frozen.md")
    assert "BatchNorm" in pi201["shortDescription"]["text"]
    assert "requires_grad_(False)" in pi201["fullDescription"]["text"]  # from "Why it matters"


def test_sarif_result_locations_fingerprints_and_levels() -> None:
    report = report_of(BN_TRAIN, EVIL)
    doc = sarif(report)
    run = doc["runs"][0]
    results = run["results"]
    by_rule = {r["ruleId"]: r for r in results}
    bn = by_rule["PI201"]
    loc = bn["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == "fixtures/torch/cnn_whole_bn_train_frozen.pt"
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "backbone.bn"
    finding = report.files[0].findings[0]
    uri = "fixtures/torch/cnn_whole_bn_train_frozen.pt"
    assert bn["partialFingerprints"][FINGERPRINT_KEY] == finding.fingerprint(uri)
    assert by_rule["PI002"]["level"] == "error"
    rules = run["tool"]["driver"]["rules"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_marks_unreadable_files_as_an_unsuccessful_run() -> None:
    invocation = sarif(report_of(TRUNCATED))["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "truncated.pt" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert sarif(report_of(CLEAN))["runs"][0]["invocations"][0]["executionSuccessful"] is True


# -- markdown ---------------------------------------------------------------------------------
def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([c.strip() for c in cells])
    return rows


def test_markdown_summary_table_has_one_row_per_file() -> None:
    text = render("markdown", report_of(BN_TRAIN, DEEP, TRUNCATED, CLEAN))
    header, *rows = table_rows(text)
    assert header == ["file", "format", "params", "trainable", "frozen", "errors", "warnings", "info"]
    assert len(rows) == 4 and all(len(r) == 8 for r in rows)
    by_file = {r[0].strip("`"): r for r in rows}
    assert by_file["fixtures/torch/deep_whole_bn_train_frozen.pt"][6] == "1"  # one mistake
    assert by_file["fixtures/torch/truncated.pt"][1] == "**unreadable**"
    assert "4 files checked, 1 error, 2 warnings" in text


def test_markdown_groups_by_file_and_rule_and_folds_long_lists() -> None:
    text = render("markdown", report_of(BN_TRAIN, DEEP))
    deep = text.split("### `fixtures/torch/deep_whole_bn_train_frozen.pt`", 1)[1]
    assert "**PI201 bn-train-in-frozen** (warning, 6 locations)" in deep
    assert "- `backbone.blocks.0.bn` and 5 more: BatchNorm2d is in train mode" in deep
    details = deep.split("<details>", 1)[1].split("</details>", 1)[0]
    assert [ln.strip() for ln in details.splitlines() if ln.strip().endswith("<br>")] == [
        f"`backbone.blocks.{i}.bn`<br>" for i in range(6)]
    single = text.split("### `fixtures/torch/cnn_whole_bn_train_frozen.pt`", 1)[1].split("###")[0]
    assert "<details>" not in single and "- `backbone.bn`:" in single


def test_markdown_escapes_what_would_break_the_page() -> None:
    finding = Finding("PI999", "x", Severity.ERROR, "a`b", "<script> | *bold* [link](x)")
    report = Report([FileReport("dir|x.pt", format="pytorch", findings=[finding])])
    text = render("markdown", report)
    (_, row) = table_rows(text)
    assert len(row) == 8  # the pipe in the path did not split the row
    assert "<script>" not in text and "\\<script\\>" in text
    assert "\\*bold\\*" in text and "\\[link\\]" in text
    assert "``a`b``" in text


# -- junit ------------------------------------------------------------------------------------
def junit(report: Report, fail_on: Severity | None = Severity.WARNING) -> ET.Element:
    return ET.fromstring(render("junit", report, fail_on=fail_on, rules=rule_catalog()))


def test_junit_one_suite_per_file_one_case_per_rule() -> None:
    root = junit(report_of(BN_TRAIN, CLEAN))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "fixtures/torch/cnn_whole_bn_train_frozen.pt", "fixtures/torch/cnn_ckpt_clean.pt"
    ]
    codes = [c.get("name").split()[0] for c in suites[0].findall("testcase")]
    assert codes == sorted(codes) and len(codes) == len(set(codes)) and "PI201" in codes
    failed = [c for c in suites[0].findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["PI201 bn-train-in-frozen"]
    assert "backbone.bn" in failed[0].find("failure").text
    assert suites[0].get("failures") == "1" and suites[1].get("failures") == "0"
    assert root.get("tests") == str(sum(int(s.get("tests")) for s in suites))


def test_junit_findings_below_fail_on_pass_but_are_listed() -> None:
    root = junit(report_of(BN_TRAIN), fail_on=Severity.ERROR)
    case = next(c for c in root.iter("testcase") if c.get("name").startswith("PI201"))
    assert case.find("failure") is None
    assert "backbone.bn" in case.find("system-out").text
    assert root.get("failures") == "0"


def test_junit_unreadable_is_an_error_and_lfs_pointer_is_skipped(tmp_path: Path) -> None:
    pointer = tmp_path / "model.pt"
    pointer.write_text(LFS_POINTER)
    root = junit(report_of(TRUNCATED, pointer))
    bad, lfs = root.findall("testsuite")
    assert bad.get("errors") == "1" and bad.find("testcase/error") is not None
    assert lfs.get("skipped") == "1" and "LFS" in lfs.find("testcase/skipped").get("message")
    assert root.get("errors") == "1" and root.get("failures") == "0"


# -- text -------------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _text(report: Report, stream: io.StringIO, **options: object) -> str:
    get_reporter("text")(report, stream, Options(**options))  # type: ignore[arg-type]
    return stream.getvalue()


def test_quiet_text_names_every_finding_on_its_own_line() -> None:
    out = _text(report_of(DEEP, BN_TRAIN), io.StringIO(), color=False, quiet=True)
    lines = out.splitlines()
    assert len(lines) == 2  # one line per finding; a repeated mistake is one finding
    assert lines[0].startswith(
        "fixtures/torch/deep_whole_bn_train_frozen.pt:backbone.blocks.0.bn (+5 more): PI201")
    assert lines[1].startswith("fixtures/torch/cnn_whole_bn_train_frozen.pt:backbone.bn: PI201")


def test_text_off_a_terminal_has_no_box_drawing_and_no_wrapped_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _text(report_of(BN_TRAIN, DEEP), io.StringIO(), color=True)
    assert not re.search("[\u2500-\u257f]", out)
    assert "\x1b[" not in out
    assert any("fixtures/torch/deep_whole_bn_train_frozen.pt" in ln for ln in out.splitlines())


def test_dumb_terminal_gets_ascii_and_no_color_env_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    out = _text(report_of(BN_TRAIN), FakeTTY(), color=True)
    assert not re.search("[\u2500-\u257f]", out) and "\x1b[" not in out
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in _text(report_of(BN_TRAIN), FakeTTY(), color=True)
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b[" in _text(report_of(BN_TRAIN), FakeTTY(), color=True)  # the control case
    assert "\x1b[" not in _text(report_of(BN_TRAIN), FakeTTY(), color=False)  # --no-color


def test_json_stays_the_contract() -> None:
    data = json.loads(render("json", report_of(BN_TRAIN)))
    assert set(data) == {"paraminspect", "files", "counts"}
    (finding,) = data["files"][0]["findings"]
    assert {"code", "name", "severity", "location", "message", "fix"} <= set(finding)


def test_markdown_links_each_file_to_its_html_freeze_map() -> None:
    text = render("markdown", report_of(BN_TRAIN, TRUNCATED),
                  freeze_map_link="maps/{stem}.html")
    section = text.split("### `fixtures/torch/cnn_whole_bn_train_frozen.pt`", 1)[1].split("###")[0]
    assert "[Freeze map](maps/cnn_whole_bn_train_frozen.html)" in section
    assert "maps/truncated.html" not in text  # an unreadable file has no map
    assert "Freeze map" not in render("markdown", report_of(BN_TRAIN))
