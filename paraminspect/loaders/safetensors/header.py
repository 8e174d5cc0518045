"""The safetensors header: read (bounded, UTF-8), parsed as JSON or as the library's compact
layout, and validated the way the safetensors library does (dtypes, shapes, byte ranges that tile
the data buffer)."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from itertools import chain, repeat
from math import prod
from operator import itemgetter, mul, sub
from pathlib import Path

from ...errors import LoadError
from ...io import open_binary

#: the library's limit (safetensors ``MAX_HEADER_SIZE``)
MAX_HEADER = 100_000_000
#: safetensors dtype -> (torch-style name, bits per element), as accepted by safetensors 0.8
DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8), "U8": ("uint8", 8), "I8": ("int8", 8), "I16": ("int16", 16),
    "U16": ("uint16", 16), "F16": ("float16", 16), "BF16": ("bfloat16", 16),
    "I32": ("int32", 32), "U32": ("uint32", 32), "F32": ("float32", 32), "C64": ("complex64", 64),
    "F64": ("float64", 64), "I64": ("int64", 64), "U64": ("uint64", 64),
    "F8_E5M2": ("float8_e5m2", 8), "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8), "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "F8_E8M0": ("float8_e8m0", 8), "F4": ("float4_e2m1", 4), "F6_E2M3": ("float6_e2m3", 6),
    "F6_E3M2": ("float6_e3m2", 6),
}
DTYPE_NAMES = {code: name for code, (name, _) in DTYPES.items()}
BITS = {code: bits for code, (_, bits) in DTYPES.items()}
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "C64", "F8_E5M2", "F8_E4M3",
                          "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"})
NON_FLOAT = frozenset(DTYPES) - FLOAT_DTYPES


Columns = tuple[dict[str, str] | None, list[str], list[str], list[tuple[int, ...]]]


def read_header_text(path: Path) -> tuple[str, int]:
    """The header text (bounded, UTF-8, starting with ``{``) and the size of the data buffer."""
    try:
        with open_binary(path) as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise LoadError("truncated safetensors file: no 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER:
                raise LoadError(f"safetensors header length {length} exceeds the 100 MB limit")
            if length > size - 8:
                raise LoadError(
                    f"safetensors header length {length} exceeds the file ({size} bytes): truncated"
                )
            raw = handle.read(length)
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LoadError("safetensors header is not valid UTF-8") from None
    if not text.startswith("{"):
        raise LoadError("safetensors header does not start with '{'")
    return text, size - 8 - length


def parse_json(text: str, data_size: int) -> Columns:
    """The general path: any header JSON, validated; LoadError naming what is wrong."""
    header = _parse_header(text)
    if not isinstance(header, dict):
        raise LoadError("safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise LoadError("safetensors __metadata__ must map strings to strings")
    entries = _validate(header, data_size)
    return (metadata, list(entries), list(map(itemgetter(0), entries.values())),
            list(map(itemgetter(1), entries.values())))


#: between the quotes of one canonical entry, ``"NAME":{"dtype":"F32","shape":[2,2],
#: "data_offsets":[0,16]},`` split at ``"``: name, ``:{``, dtype, ``:``, F32, ``,``, shape,
#: ``:[2,2],``, data_offsets, ``:[0,16]},``
_FIXED = ((1, ":{"), (2, "dtype"), (3, ":"), (5, ","), (6, "shape"), (8, "data_offsets"))
_SHAPE = re.compile(r":\[((?:0|[1-9][0-9]{0,18})(?:,(?:0|[1-9][0-9]{0,18}))*)?\],")
_NO_DIGITS = str.maketrans("", "", "0123456789")


def parse_canonical(text: str, data_size: int) -> Columns | None:
    """The compact header the safetensors library writes, read as columns without building a
    dict per tensor; None (then :func:`parse_json` decides) at the least doubt.

    Equal to the JSON path by construction: with no backslash in the text every ``"`` opens or
    closes a string, so splitting at ``"`` alternates string contents and the text between
    strings. Every piece between strings is checked whole (no whitespace, fixed keys in fixed
    order, numbers as JSON writes them, at most 19 digits), names hold no control character,
    each name once and none ``__metadata__``, which may only come first and is read by
    ``json.loads``. Then the column checks of :func:`_validate_columns`."""
    if "\\" in text:
        return None
    stripped = text.rstrip(" \t\n\r")
    if not stripped.endswith("}"):
        return None
    parts = (stripped[:-1] + ",").split('"')
    start = 1
    metadata = None
    if len(parts) > 2 and parts[1] == "__metadata__":
        end = next((i for i in range(2, len(parts), 2) if "}" in parts[i]), 0)
        if not end or parts[end] != "}," or not parts[2].startswith(":{"):
            return None
        try:  # the text from the ``{`` after ``"__metadata__":`` to the first ``}`` after it
            value = '"'.join(parts[2:end + 1])[1:-1]
            metadata = json.loads(value, object_pairs_hook=no_duplicates)
        except ValueError:
            return None
        if type(metadata) is not dict or set(map(type, metadata.values())) - {str}:
            return None
        start = end + 1
    rest = parts[start:]
    count = len(rest) // 10
    if parts[0] != "{" or not count or len(rest) != count * 10:
        return None
    for offset, piece in _FIXED:
        if rest[offset::10].count(piece) != count:
            return None
    names, dtypes, shape_parts = rest[0::10], rest[4::10], rest[7::10]
    if len(set(names)) != count or "__metadata__" in names or not "".join(names).isprintable():
        return None  # JSON refuses raw control characters in strings (not printable)
    if not set(dtypes) <= DTYPES.keys():
        return None
    offsets = rest[9::10]
    numbers = "".join(offsets)
    # the digit-free skeleton of all of them, and each one starting with the only ``:`` of its
    # own: then each is ``:[digits,digits]},`` (one piece may not carry its neighbour's numbers)
    if not numbers.isascii() or numbers.translate(_NO_DIGITS) != ":[,]}," * count:
        return None
    if not all(map(str.startswith, offsets, repeat(":["))):
        return None
    # ``:[B,E]},`` each: a number starts after ``[`` or ``,``; JSON refuses a leading zero
    if numbers.count("[0") != numbers.count("[0,") or numbers.count(",0") != numbers.count(",0]"):
        return None
    tokens = numbers[2:-3].replace("]},:[", ",").split(",")
    if len(tokens) != 2 * count or "" in tokens or max(map(len, tokens)) > 19:
        return None
    # every token ASCII digits and the pieces exactly ``:[B,E]},`` rebuilt from them: a digit
    # elsewhere (``:[0,1]3},``) would otherwise pass the skeleton and reach int()
    if not "".join(tokens).isdigit():
        return None
    pairs = map(",".join, zip(tokens[0::2], tokens[1::2]))
    if ":[" + "]},:[".join(pairs) + "]}," != numbers:
        return None
    shape_of: dict[str, tuple[int, ...]] = {}
    numel_of: dict[str, int] = {}
    for piece in set(shape_parts):
        match = _SHAPE.fullmatch(piece)
        if match is None:
            return None
        shape_of[piece] = shape = tuple(map(int, match[1].split(","))) if match[1] else ()
        numel_of[piece] = prod(shape)
    begins, ends = tokens[0::2], tokens[1::2]
    if begins[0] == "0" and begins[1:] == ends[:-1]:  # in file order: convert each bound once
        ends = list(map(int, ends))
        begins = [0, *ends[:-1]]
    else:
        begins, ends = list(map(int, begins)), list(map(int, ends))
    bits = map(mul, map(numel_of.__getitem__, shape_parts), map(BITS.__getitem__, dtypes))
    if not _sizes_and_tiling(begins, ends, bits, data_size):
        return None
    return metadata, names, dtypes, list(map(shape_of.__getitem__, shape_parts))


def _parse_header(text: str) -> object:
    """JSON with duplicate keys refused, as the library does.

    A duplicate-checking hook costs a Python call per object (a third of the time at 100,000
    tensors), so the header is parsed plainly first. Every key of every object brings one ``:``
    outside strings, and a ``:`` inside a string only adds to the count; so when the text holds
    exactly as many ``:`` as the parsed top level and its objects hold keys, no key was repeated
    (a repeat collapses and leaves fewer keys than colons). Otherwise the exact, slower path.
    """
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise LoadError(f"safetensors header is not valid JSON ({_one_line(exc)})") from None
    if isinstance(header, dict):
        keys = len(header) + sum(len(v) for v in header.values() if type(v) is dict)
        if text.count(":") == keys:
            return header
    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise LoadError(f"safetensors header is not valid JSON ({_one_line(exc)})") from None


def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


Entries = dict[str, tuple[str, tuple[int, ...]]]


def _validate(header: dict[str, object], data_size: int) -> Entries:
    """name -> (dtype, shape) of a header the safetensors library accepts; LoadError otherwise.

    Well-formed headers take the whole-column path (:func:`_validate_columns`, a few C-level
    passes over all tensors at once); anything it doubts goes through :func:`_validate_exact`,
    which names the first offending tensor."""
    entries = _validate_columns(header, data_size)
    return entries if entries is not None else _validate_exact(header, data_size)


def _validate_columns(header: dict[str, object], data_size: int) -> Entries | None:
    """The checks of :func:`_validate_exact`, column by column; None when any one fails."""
    infos = list(header.values())
    if not infos:
        return None
    if set(map(type, infos)) != {dict}:
        return None
    try:
        dtypes = list(map(itemgetter("dtype"), infos))  # type: ignore[arg-type]
        shapes = list(map(itemgetter("shape"), infos))  # type: ignore[arg-type]
        offsets = list(map(itemgetter("data_offsets"), infos))  # type: ignore[arg-type]
    except KeyError:
        return None
    if set(map(type, dtypes)) != {str} or set(map(type, shapes)) != {list}:
        return None
    if set(map(type, offsets)) != {list} or set(map(len, offsets)) != {2}:
        return None
    specs = list(map(DTYPES.get, dtypes))
    if None in specs:
        return None
    dims = list(chain.from_iterable(shapes))
    bounds = list(chain.from_iterable(offsets))
    # ``type is int`` refuses bool, as the library does
    if dims and (set(map(type, dims)) != {int} or min(dims) < 0):
        return None
    if set(map(type, bounds)) != {int} or min(bounds) < 0:
        return None
    bits = map(mul, map(prod, shapes), map(itemgetter(1), specs))
    if not _sizes_and_tiling(bounds[0::2], bounds[1::2], bits, data_size):
        return None
    return dict(zip(header, zip(dtypes, map(tuple, shapes))))


def _sizes_and_tiling(begins: list[int], ends: list[int], bits: Iterable[int],
                      data_size: int) -> bool:
    """Each range as long as its dtype and shape need; the ranges tile the data buffer."""
    if list(map(mul, map(sub, ends, begins), repeat(8))) != list(bits):
        return False  # a size that disagrees with dtype and shape, or a range ending first
    if begins[0] == 0 and begins[1:] == ends[:-1] and ends[-1] == data_size:
        return True  # already in file order (sizes are non-negative, so no overlap)
    spans = sorted(zip(begins, ends))
    starts = [begin for begin, _ in spans]
    stops = [end for _, end in spans]
    # overlap, gap, past the end, or unused bytes after the last tensor
    return starts[0] == 0 and starts[1:] == stops[:-1] and stops[-1] == data_size


def _validate_exact(header: dict[str, object], data_size: int) -> Entries:
    """Per-tensor checks plus the library's layout rule: ranges tile the data buffer exactly."""
    entries: dict[str, tuple[str, tuple[int, ...]]] = {}
    ranges: list[tuple[int, int, str]] = []
    append = ranges.append
    for name, info in header.items():
        if type(info) is not dict:
            raise LoadError(f"safetensors entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        spec = DTYPES.get(dtype) if type(dtype) is str else None
        if spec is None:
            raise LoadError(f"tensor {name}: unknown safetensors dtype {dtype!r}")
        if type(shape) is not list:
            raise LoadError(f"tensor {name}: shape must be a list of non-negative integers")
        numel = 1
        for dim in shape:  # ``type is int`` refuses bool, as the library does
            if type(dim) is not int or dim < 0:
                raise LoadError(f"tensor {name}: shape must be a list of non-negative integers")
            numel *= dim
        if type(offsets) is not list or len(offsets) != 2:
            raise LoadError(f"tensor {name}: data_offsets must be two non-negative integers")
        begin, end = offsets
        if type(begin) is not int or type(end) is not int or begin < 0 or end < 0:
            raise LoadError(f"tensor {name}: data_offsets must be two non-negative integers")
        if begin > end:
            raise LoadError(f"tensor {name}: data_offsets [{begin}, {end}] end before they begin")
        if end > data_size:
            raise LoadError(
                f"tensor {name}: data_offsets end at {end}, past the {data_size}-byte data "
                "buffer (truncated file?)"
            )
        bits = numel * spec[1]
        if bits % 8 or bits // 8 != end - begin:
            raise LoadError(
                f"tensor {name}: {dtype} {shape} needs {bits / 8:g} bytes, data_offsets give "
                f"{end - begin}"
            )
        entries[name] = (dtype, tuple(shape))
        append((begin, end, name))
    position, previous = 0, None
    for begin, end, name in sorted(ranges):
        if begin < position:
            raise LoadError(f"tensors {previous} and {name} overlap in the data buffer")
        if begin > position:
            raise LoadError(
                f"gap of {begin - position} bytes before tensor {name}: the safetensors library "
                "requires contiguous data"
            )
        position, previous = end, name
    if position != data_size:
        raise LoadError(
            f"{data_size - position} bytes after the last tensor: the safetensors library refuses "
            "files whose data buffer is not fully used"
        )
    return entries
