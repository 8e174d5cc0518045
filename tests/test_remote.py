"""Remote files: only headers and directories cross the network, counted on real local servers.

A 1 GB file of each format (written sparse) is served over HTTP with Range support by a server
the test starts on 127.0.0.1, which counts the body bytes it sends; S3 runs against moto's
server mode when s3fs is installed.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.io import restore_url

from .conftest import FIXTURES, TORCH_FIXTURES
from .range_server import serve
from .sparse_models import LAYERS, TENSOR_BYTES, onnx_1gb, safetensors_1gb, torch_zip_1gb

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

MB = 1024 * 1024
SAFETENSORS_SAMPLE = "cnn_clean.safetensors"


@pytest.mark.parametrize(
    ("name", "make", "fmt"),
    [
        ("model.safetensors", safetensors_1gb, "safetensors"),
        ("model.pt", torch_zip_1gb, "pytorch"),
        ("model.onnx", onnx_1gb, "onnx"),
    ],
)
def test_1gb_over_http_transfers_under_1mb(
    tmp_path: Path, name: str, make: Callable[[Path], int], fmt: str
) -> None:
    make(tmp_path / name)
    assert (tmp_path / name).stat().st_size > LAYERS * TENSOR_BYTES
    with serve(tmp_path) as server:
        report = check(f"{server.url}/{name}")
        sent = server.sent
    (entry,) = report.files
    assert entry.error is None and entry.format == fmt
    assert entry.summary is not None
    if fmt != "pytorch":  # the torch archive's pickle holds one-element tensors over 4 MB members
        assert entry.summary.params == LAYERS * TENSOR_BYTES // 4
    assert 0 < sent <= MB, f"{sent} bytes transferred for a 1 GB {fmt} file"


def test_remote_findings_equal_local_findings(tmp_path: Path) -> None:
    name = "cnn_ckpt_frozen_after_optim.pt"  # Adam step counters are read: tiny ranged reads
    shutil.copy(TORCH_FIXTURES / name, tmp_path / name)
    local = check(tmp_path / name).files[0]
    with serve(tmp_path) as server:
        remote = check(f"{server.url}/{name}").files[0]
    expected = {("PI301", "backbone.conv"), ("PI301", "backbone.bn"), ("PI201", "backbone.bn")}
    assert {(f.code, loc) for f in remote.findings for loc in f.all_locations} == expected
    assert [f.message for f in remote.findings] == [f.message for f in local.findings]


def test_path_folded_url_is_restored() -> None:
    assert restore_url(Path("s3://bucket/models/x.pt")) == "s3://bucket/models/x.pt"
    assert restore_url("https://host/x.onnx") == "https://host/x.onnx"
    assert restore_url("models/x.pt") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_folder_on_moto_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    import fsspec

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(key, "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="models")
        # moto keeps objects in memory: small real files here, the 1 GB cases run over HTTP
        for local, key in (
            (FIXTURES / "safetensors" / SAFETENSORS_SAMPLE, "run/weights.safetensors"),
            (TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim.pt", "run/ckpt.pt"),
            (TORCH_FIXTURES / "cnn_ckpt_clean.pt", "run/clean.pt"),
            (TORCH_FIXTURES / "cnn_ckpt_clean.pt", "run/notes.txt"),  # no model suffix: skipped
        ):
            client.upload_file(str(local), "models", key)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        report = check("s3://models/run")
    finally:
        server.stop()
    by_name = {Path(f.path).name: f for f in report.files}
    assert sorted(by_name) == ["ckpt.pt", "clean.pt", "weights.safetensors"]
    assert by_name["weights.safetensors"].error is None
    assert by_name["weights.safetensors"].format == "safetensors"
    assert {(f.code, loc) for f in by_name["ckpt.pt"].findings for loc in f.all_locations} == {
        ("PI301", "backbone.conv"), ("PI301", "backbone.bn"), ("PI201", "backbone.bn")
    }


def test_cli_checks_a_url(tmp_path: Path) -> None:
    from .conftest import run_cli

    name = "cnn_ckpt_frozen_after_optim.pt"
    shutil.copy(TORCH_FIXTURES / name, tmp_path / name)
    with serve(tmp_path) as server:
        result = run_cli("check", "-f", "json", f"{server.url}/{name}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # PI301 is a warning: the default fails on it
    assert f'"{server.url}/{name}"' in result.stdout
    assert '"PI301"' in result.stdout and '"backbone.conv"' in result.stdout
