"""Recognize TensorFlow model folders: a SavedModel, or a ``tf.train.Checkpoint`` folder.

The folder registry asks :func:`folder_kind`; the files :func:`model_files` returns belong to the
model (sub-folders included, so a folder scan does not re-check ``variables/`` on its own).
"""

from __future__ import annotations

from pathlib import Path

SAVEDMODEL = "tf-savedmodel"
CHECKPOINT = "tf-checkpoint"
KINDS = (SAVEDMODEL, CHECKPOINT)
SAVEDMODEL_FILES = ("saved_model.pb", "keras_metadata.pb", "fingerprint.pb")


def folder_kind(path: Path) -> str | None:
    if (path / "saved_model.pb").is_file():
        return SAVEDMODEL
    if path.name == "variables" and (path.parent / "saved_model.pb").is_file():
        return None  # the SavedModel's own variables, read with it
    from .checkpoint import bundle_indexes

    if bundle_indexes(path) or ((path / "checkpoint").is_file() and any(path.glob("*.index"))):
        return CHECKPOINT
    return None


def model_files(path: Path, kind: str) -> set[Path]:
    if kind == SAVEDMODEL:
        files = {path / n for n in SAVEDMODEL_FILES if (path / n).is_file()}
        for sub in ("variables", "assets", "assets.extra"):
            if (path / sub).is_dir():
                files.add(path / sub)
                files |= {p for p in (path / sub).rglob("*") if p.is_file()}
        return files
    from .checkpoint import bundle_indexes

    files = {path / "checkpoint"} if (path / "checkpoint").is_file() else set()
    indexes = set(bundle_indexes(path)) | (set(path.glob("*.index")) if files else set())
    for index in indexes:
        files.add(index)
        files |= {p for p in path.glob(f"{index.stem}.data-*") if p.is_file()}
        if (path / f"{index.stem}.meta").is_file():  # the TF1 Saver's graph, read with it
            files.add(path / f"{index.stem}.meta")
    return files


def load_folder(path: Path, kind: str):  # -> ModelGraph
    if kind == SAVEDMODEL:
        from .savedmodel import load
    else:
        from .checkpoint import load
    return load(path)
