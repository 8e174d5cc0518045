"""Real terminal rendering: the CLI runs on a pseudo-terminal of 60, 80 and 120 columns, and the
captured screen output must never need the terminal to wrap a line (so nothing is cut mid-word),
paths too long for a line are shortened from the left, and a 500-layer model's freeze map fits
in about 60 lines with its repeated blocks folded. Also the HTML picture in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from .conftest import ROOT, TORCH_FIXTURES, needs_torch

DEEP = TORCH_FIXTURES / "deep_whole_bn_train_frozen.pt"
AFTER_OPTIM = TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim.pt"
WIDTHS = (60, 80, 120)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def in_terminal(args: list[str], columns: int, cwd: Path) -> str:
    """Run ``paraminspect ARGS`` on a pseudo-terminal ``columns`` wide; the bytes it shows
    (``CI`` set, so no transient progress bar is drawn)."""
    import fcntl
    import pty
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm", NO_COLOR="1", CI="1")
    pid, fd = pty.fork()
    if pid == 0:  # the child: size its terminal, then become paraminspect
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        os.chdir(cwd)
        os.execvpe(sys.executable, [sys.executable, "-m", "paraminspect", *args], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def long_path_model() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pi-layout-"))
    deep = folder / "experiments" / "2026-12-01-resnet-bitfit-sweep" / "run-0042" / "checkpoints"
    deep.mkdir(parents=True)
    shutil.copy(DEEP, deep / "deep_whole_bn_train_frozen.pt")
    shutil.copy(AFTER_OPTIM, deep / "frozen_after_optim.pt")
    yield deep
    shutil.rmtree(folder)


@pytest.mark.parametrize("columns", WIDTHS)
def test_check_report_fits_the_terminal_without_breaking_words(
    columns: int, long_path_model: Path
) -> None:
    out = in_terminal(["check", str(long_path_model), "--show-evidence"], columns, ROOT)
    lines = out.splitlines()
    assert lines, out
    too_long = [ln for ln in lines if len(ln) > columns]
    assert not too_long, f"lines wider than {columns} columns:\n" + "\n".join(too_long)
    # every word of every message, fix and evidence is shown whole
    proc = subprocess.run([sys.executable, "-m", "paraminspect", "check", "-f", "json",
                           str(long_path_model)], capture_output=True, text=True, cwd=ROOT)
    words = set(out.split())
    for file in json.loads(proc.stdout)["files"]:
        for finding in file["findings"]:
            for text in (finding["message"], finding["fix"], finding["evidence"]):
                missing = [w for w in text.split() if w not in words]
                assert not missing, (columns, missing)
    # the file names are on screen (paths shortened from the left keep the name)
    assert "deep_whole_bn_train_frozen.pt" in out and "frozen_after_optim.pt" in out
    assert "PI201" in out and "+5 more" in out


def test_narrow_summary_counts_in_words() -> None:
    # too narrow for the summary table: each file's counts become a sentence
    out = in_terminal(["check", str(TORCH_FIXTURES / "cnn_whole_head_frozen.pt")], 60, ROOT)
    words = " ".join(out.split())  # the sentence may wrap anywhere
    assert "(120 trainable, 10 frozen), 1 warning 1 file checked" in words, out


@pytest.mark.parametrize("columns", WIDTHS)
def test_show_fits_the_terminal(columns: int) -> None:
    out = in_terminal(["show", str(DEEP.relative_to(ROOT))], columns, ROOT)
    assert all(len(ln) <= columns for ln in out.splitlines()), out
    assert "backbone DeepBackbone" in out and "legend:" in out


@pytest.fixture(scope="module")
def transformer_model() -> Path:
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    model = nn.Sequential(
        nn.Embedding(50, 8),
        nn.TransformerEncoder(layer, num_layers=50, enable_nested_tensor=False),
        nn.Linear(8, 2),
    )
    model[1].requires_grad_(False)
    model[1].layers[49].linear1.requires_grad_(True)  # the last block differs: it is not folded
    folder = Path(tempfile.mkdtemp(prefix="pi-show-"))
    path = folder / "encoder50.pt"
    torch.save(model, path)
    yield path
    shutil.rmtree(folder)


@needs_torch
def test_show_of_a_500_layer_model_folds_repeats_and_fits_a_screen(transformer_model: Path) -> None:
    out = in_terminal(["show", str(transformer_model)], 80, ROOT)
    lines = out.splitlines()
    assert 10 < len(lines) <= 62, out
    assert all(len(ln) <= 80 for ln in lines), out
    assert any("0–48 ×49 TransformerEncoderLayer  frozen" in ln for ln in lines), out
    assert any(ln.endswith("── 49 TransformerEncoderLayer  mixed  train  600 params")
               for ln in lines), out
    # --depth 2 stops at the ModuleList; --all unfolds every block
    shallow = in_terminal(["show", str(transformer_model), "--depth", "2"], 80, ROOT)
    assert "layers ModuleList" in shallow and "TransformerEncoderLayer" not in shallow
    full = in_terminal(["show", str(transformer_model), "--all"], 120, ROOT)
    assert len(full.splitlines()) > 500 and "×" not in full


def test_legend_uses_the_terms_of_the_format() -> None:
    onnx = in_terminal(["show", "fixtures/onnx/cnn_legacy_training.onnx"], 120, ROOT)
    assert "legend:" in onnx and "training_mode" in onnx
    assert "requires_grad" not in onnx and "model.train" not in onnx
    torch_map = in_terminal(["show", str(DEEP.relative_to(ROOT))], 120, ROOT)
    assert "requires_grad" in torch_map
    keras = in_terminal(["show", "fixtures/keras/fn_clean.keras"], 120, ROOT)
    assert "trainable flags" in keras and "requires_grad" not in keras
    # a state dict saved with its optimizer: what trains comes from the optimizer, not a flag
    checkpoint = in_terminal(["show", str(AFTER_OPTIM.relative_to(ROOT))], 120, ROOT)
    assert "inferred from the saved optimizer" in checkpoint
    assert "requires_grad of the parameters" not in checkpoint
    report = in_terminal(["check", "fixtures/onnx/cnn_legacy_eval.onnx"], 120, ROOT)
    assert "? = trainability not stored in the file (onnx)" in report
    assert "state dict" not in report
    # the nested Keras model, frozen and alike throughout, is folded into one line
    assert "base Functional  frozen  eval  120 params  (5 layers below, all alike)" in keras


# -- the HTML picture ----------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, color, interlace = body[8], body[9], body[12]
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            corner = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line) if channels == 3 else bytes(
            b for j in range(0, stride, 4) for b in line[j:j + 3]))
        prev = line
    return width, height, rows


def count_color(rows: list[bytes], hex_color: str, tolerance: int = 6) -> int:
    target = bytes.fromhex(hex_color.lstrip("#"))
    hits = 0
    for row in rows[::2]:
        for x in range(0, len(row), 6):  # every other pixel is plenty
            if all(abs(row[x + c] - target[c]) <= tolerance for c in range(3)):
                hits += 1
    return hits


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_freeze_map_renders_in_headless_chromium(tmp_path: Path) -> None:
    from paraminspect.reporters.freeze_html import COLORS

    page = tmp_path / "map.html"
    proc = subprocess.run([sys.executable, "-m", "paraminspect", "show", str(AFTER_OPTIM),
                           "--format", "html", "-o", str(page)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = page.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "PI301" in html
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=900,500", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, rows = read_png(shot.read_bytes())
    assert (width, height) == (900, 500)
    # two frozen layers (blue), one trainable (green), all three in the optimizer (amber)
    frozen, trainable = count_color(rows, COLORS["frozen"]), count_color(rows, COLORS["trainable"])
    assert frozen > 200 and trainable > 100, (frozen, trainable)
    assert frozen > trainable  # two cells against one
    assert count_color(rows, COLORS["tracked"]) > 200
    # the strip's rows (a legend swatch is 12 pixels wide, a strip cell hundreds)
    strip = [row for row in rows if count_color([row], COLORS["frozen"]) > 50]
    assert strip and count_color(strip, COLORS["mixed"]) == 0  # nothing partly frozen here
