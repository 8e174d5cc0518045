"""PI002 on every hostile route, nothing executed; no PI002 error on what real frameworks write.

The corpus is generated at test time (tests/security_corpus.py). One subprocess really loads each
hostile file to prove its payload is live; the scanner, in this process, must never run it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from paraminspect.engine import check_file
from paraminspect.loaders.pickle.policy import judge, resolve

from . import security_corpus as corpus


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path | None]]:
    workdir = tmp_path_factory.mktemp("hostile")
    files: dict[str, tuple[Path, Path | None]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate-entry zip warns on purpose
        cases = corpus.hostile(workdir)
    for name, (data, marker) in cases.items():
        path = workdir / name
        path.write_bytes(data)
        files[name] = (path, marker)
    return files


HOSTILE_NAMES = sorted(corpus.hostile(Path("/nonexistent")))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_route_is_an_error_and_is_not_run(
    name: str, hostile_files: dict[str, tuple[Path, Path | None]]
) -> None:
    path, marker = hostile_files[name]
    report = check_file(path)
    errors = [f for f in report.findings if f.code == "PI002" and f.severity.value == "error"]
    assert errors, f"{name}: {[(f.code, f.message) for f in report.findings]}"
    assert all(f.location == "" for f in errors)
    if marker is not None:
        assert not marker.exists(), f"{name} ran its payload"


def test_payloads_are_live(hostile_files: dict[str, tuple[Path, Path | None]], tmp_path: Path) -> None:
    """Ground truth: a real load runs every payload that has a marker (so the corpus is honest)."""
    pytest.importorskip("torch")
    pytest.importorskip("numpy")
    live = {name: path for name, (path, marker) in hostile_files.items() if marker is not None}
    for name, (_, marker) in hostile_files.items():
        assert marker is None or not marker.exists(), f"{name} ran before the live check"
    corpus.live_check(live, tmp_path)
    not_run = [name for name, (_, marker) in hostile_files.items() if marker and not marker.exists()]
    assert not_run == []


def test_findings_before_a_load_error_are_kept(
    hostile_files: dict[str, tuple[Path, Path | None]],
) -> None:
    report = check_file(hostile_files["payload_then_garbage.pkl"][0])
    codes = {(f.code, f.severity.value) for f in report.findings}
    assert ("PI001", "error") in codes and ("PI002", "error") in codes
    assert any("os.system" in f.message for f in report.findings if f.code == "PI002")


def test_the_entry_torch_reads_is_the_one_scanned(
    hostile_files: dict[str, tuple[Path, Path | None]],
) -> None:
    report = check_file(hostile_files["torch_duplicate_entry.pt"][0])
    assert any(f.code == "PI002" and "os.system" in f.message for f in report.findings)


@pytest.mark.parametrize("name", sorted(corpus.unreadable_archives()))
def test_archives_that_cannot_be_read_are_named_unreadable(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(corpus.unreadable_archives()[name])
    report = check_file(path)
    assert [f.code for f in report.findings] == ["PI001"]
    assert "not scanned" in report.findings[0].message or "cannot be scanned" in report.findings[0].message


@pytest.mark.parametrize(
    ("module", "name", "target"),
    [
        ("posixpath", "os.system", "os.system"),
        ("torch.nn.modules.module", "torch.serialization.pickle.loads", "pickle.loads"),
        ("__builtin__", "eval", "builtins.eval"),
        ("cPickle", "loads", "pickle.loads"),
        ("nt", "system", "os.system"),
        ("typing", "cast.__builtins__.get", "builtins.get"),
        ("torch._C._nn", "gelu", "torch._C._nn.gelu"),
    ],
)
def test_names_resolve_as_python_would(module: str, name: str, target: str) -> None:
    assert resolve(module, name)[0] == target


@pytest.mark.parametrize(
    ("target", "calls", "tier"),
    [
        ("torch._C._nn.gelu", 0, None),
        ("transformers.trainer_utils.SchedulerType", 1, None),
        ("numpy.random._pickle.__randomstate_ctor", 1, None),
        ("mypackage.Net", 0, None),
        ("mypackage.make", 1, "warning"),
        ("os.system", 0, "error"),
        ("logging.FileHandler", 0, "error"),
        ("torch.utils.collect_env.run", 1, "error"),
        ("torch.load", 1, "error"),
        ("builtins.getattr", 1, "error"),  # an unresolved lookup
    ],
)
def test_tiers(target: str, calls: int, tier: str | None) -> None:
    verdict = judge(target, calls=calls, instantiations=0)
    assert (verdict.tier if verdict else None) == tier


@pytest.fixture(scope="module")
def benign_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return corpus.benign(tmp_path_factory.mktemp("benign"))


BENIGN_NAMES = [
    "state_dict.pt", "whole_module.pt", "checkpoint.pt", "compiled_module.pt", "rng_state.pth",
    "random_states_0.pkl", "numpy_generator.pkl", "plain_numbers.npy", "config_dict.pkl",
    "clean_nested.pkl", "hf_whole_module.pt", "training_args.bin",
]


@pytest.mark.parametrize("name", BENIGN_NAMES)
def test_framework_files_get_no_pi002_error(name: str, benign_files: dict[str, Path]) -> None:
    if name not in benign_files:
        pytest.skip("transformers is not installed")
    report = check_file(benign_files[name])
    assert not [f for f in report.findings if f.code == "PI002" and f.severity.value == "error"]


@pytest.mark.parametrize(
    "name", ["rng_state.pth", "random_states_0.pkl", "numpy_generator.pkl", "config_dict.pkl",
             "training_args.bin", "plain_numbers.npy"],
)
def test_non_model_pickles_are_scanned_data_not_unreadable(
    name: str, benign_files: dict[str, Path]
) -> None:
    if name not in benign_files:
        pytest.skip("transformers is not installed")
    report = check_file(benign_files[name])
    assert report.findings == [] and report.content == "data"


def test_python2_era_npy_header_is_read(tmp_path: Path) -> None:
    # NumPy under Python 2 wrote long integers with an L suffix; numpy.load still reads them
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    path = tmp_path / "old.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                     + bytes(16))
    report = check_file(path)
    assert report.error is None and report.findings == [] and report.content == "data"


@pytest.mark.parametrize("module", ["numpy.core._internal", "numpy._core._internal"])
def test_old_numpy_array_reconstructor_is_known(module: str, tmp_path: Path) -> None:
    # object arrays pickled by old NumPy rebuild through _internal._reconstruct(subtype, shape,
    # dtype): the same ndarray.__new__ as multiarray._reconstruct
    blob = (b"\x80\x02c" + module.encode() + b"\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b"
            b"\x87R.")
    path = tmp_path / "old_array.pkl"
    path.write_bytes(blob)
    report = check_file(path)
    assert report.error is None and [f.code for f in report.findings] == []
