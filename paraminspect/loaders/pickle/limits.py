"""Resource bounds for reading hostile files. One frozen object, built once, passed down."""

from __future__ import annotations


class Limits:
    """Every bound a reader applies to untrusted bytes. Defaults hold on hostile input.

    A file that needs more than a bound allows is reported unreadable with a message naming the
    bound; nothing is truncated silently.
    """

    #: memo slots one pickle may fill, and the largest memo index it may name
    max_memo: int = 2_000_000
    max_memo_index: int = 2**31
    #: container elements one pickle may build (list/dict/set/tuple items together)
    max_items: int = 20_000_000
    #: elements a hashed key may expand to when shared references are counted again, and its depth
    max_key_expansion: int = 100_000
    max_key_depth: int = 200
    #: pickles nested in pickles or archives in archives that are walked
    max_nesting: int = 4
    #: bytes of one pickle stream that are walked (torch keeps tensors outside the pickle)
    max_pickle_bytes: int = 1 << 30
    #: zip archives: entries listed, bytes read from one entry, and its compression ratio
    max_zip_entries: int = 300_000
    max_entry_bytes: int = 256 << 20
    max_compression_ratio: int = 200
    #: JSON documents read whole (Keras config.json, metadata.json)
    max_json_bytes: int = 64 << 20
    #: layers in one Keras model, HDF5 attribute bytes read, HDF5 objects visited
    max_layers: int = 50_000
    max_hdf5_attribute_bytes: int = 16 << 20
    max_hdf5_objects: int = 200_000

    def __init__(self, **overrides: int) -> None:
        """The defaults above, with any of them replaced by keyword."""
        for name, value in overrides.items():
            if not name.startswith("max_") or not hasattr(Limits, name):
                raise TypeError(f"Limits has no bound {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Limits are frozen: build a new Limits(...) instead")

    def __repr__(self) -> str:
        return f"Limits({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


DEFAULT_LIMITS = Limits()
