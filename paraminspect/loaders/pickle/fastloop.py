"""The opcode loop of :class:`~.unpickler.RestrictedUnpickler` over a pickle held in memory.

A torch ``data.pkl`` of 100,000 tensors is about 3 million opcodes; Python's unpickler spends a
``read()`` call on each opcode byte and another on each argument, and a method call per opcode.
Here the pickle is one ``bytes`` object walked with an index, and the opcodes a state dict is made
of (memo puts and gets, small ints, strings, marks, tuples, REDUCE, persistent ids) are handled in
the loop itself. They do exactly what the unpickler's own methods do, with the same bounds and the
same exceptions; an opcode whose argument would run past the end of the pickle, a memo index the
list part of the memo does not cover, and every other opcode, goes to the unpickler's method with
the stream positioned just after the opcode byte, so truncated, corrupt and hostile pickles meet
the very code they met before.

A FRAME opcode (protocol 4+) hands the rest of the pickle back to the stream-reading loop: framing
rules (no opcode may cross a frame's end) are enforced by Python's unframer, not duplicated here.
torch writes protocol 2, so its pickles never get there.
"""

from __future__ import annotations

import collections
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: real callables whose REDUCE arguments are counted and key-checked by ``load_reduce``
HASHED_REAL = (set, frozenset, dict, collections.OrderedDict, collections.defaultdict)

#: returned instead of a value when a FRAME opcode was met: the caller continues from the stream
FRAMED = object()

_unpack_uint32 = struct.Struct("<I").unpack_from

def run(unpickler: Any, data: bytes, pos: int) -> Any:  # noqa: C901, PLR0912, PLR0915 - one loop
    """Walk ``data`` from ``pos`` to its STOP; returns the pickled value, or :data:`FRAMED`.

    The unpickler's stream (an ``io.BytesIO`` over ``data``) is left where the stream-reading loop
    would have left it, on success and on every exception: the caller reads the next pickle from
    there, and tells a truncated pickle from a corrupt one by what is left of the stream.
    """
    u = unpickler
    stream = u._reader
    dispatch = u.dispatch
    # Memo puts and gets are inlined for the list part of the memo only, while nothing is in its
    # dict part: a put of the next index appends, a get below the length indexes. Anything else
    # (an index out of order, a memo at its bound) goes to the unpickler's method.
    dense = u.memo_dense
    dense_append = dense.append
    sparse = u.memo
    metastack = u.metastack
    stack = u.stack
    limits = u.limits
    dense_limit = min(limits.max_memo, limits.max_memo_index)
    max_items = limits.max_items
    end = len(data)
    try:
        while True:
            try:  # free unless raised, where ``pos >= end`` would be a test per opcode
                op = data[pos]
            except IndexError:
                raise EOFError from None
            pos += 1
            # Each inlined opcode first checks that its whole argument is there, advances ``pos``
            # past it, and only then does what may raise (the stream position must match).
            # The tests run in order of how often a torch state dict's pickle uses the opcode.
            if op == 114:  # LONG_BINPUT
                if pos + 4 <= end:
                    (index,) = _unpack_uint32(data, pos)
                    if index == len(dense) and index < dense_limit and not sparse:
                        pos += 4
                        dense_append(stack[-1])
                        continue
            elif op == 104:  # BINGET
                if pos < end:
                    index = data[pos]
                    if index < len(dense):
                        pos += 1
                        stack.append(dense[index])
                        continue
            elif op == 75:  # BININT1
                if pos < end:
                    stack.append(data[pos])
                    pos += 1
                    continue
            elif op == 40:  # MARK
                metastack.append(stack)
                stack = u.stack = []
                u.append = stack.append
                continue
            elif op == 88:  # BINUNICODE
                if pos + 4 <= end:
                    (size,) = _unpack_uint32(data, pos)
                    if pos + 4 + size <= end:
                        pos += 4 + size
                        stack.append(str(data[pos - size : pos], "utf-8", "surrogatepass"))
                        continue
            elif op == 116:  # TUPLE
                # load_tuple: count the items against the bound, then pop the mark
                u._items += len(stack)
                if u._items > max_items:
                    u._count(0)  # raises, with the bound's message
                items = stack
                stack = u.stack = metastack.pop()
                u.append = stack.append
                stack.append(tuple(items))
                continue
            elif op == 133:  # TUPLE1
                stack[-1] = (stack[-1],)
                continue
            elif op == 134:  # TUPLE2
                stack[-2:] = [(stack[-2], stack[-1])]
                continue
            elif op == 82:  # REDUCE
                # ``load_reduce`` checks the arguments of the real hashed containers; only
                # stand-ins and other callables are reduced here.
                if len(stack) >= 2:
                    args = stack[-1]
                    if stack[-2] not in HASHED_REAL or args == ():  # () has nothing to check
                        del stack[-1]
                        stack[-1] = stack[-1](*args)
                        continue
            elif op == 81:  # BINPERSID
                pid = stack.pop()
                stack.append(u.persistent_load(pid))
                continue
            elif op == 137:  # NEWFALSE
                stack.append(False)
                continue
            elif op == 41:  # EMPTY_TUPLE
                stack.append(())
                continue
            elif op == 106:  # LONG_BINGET
                if pos + 4 <= end:
                    (index,) = _unpack_uint32(data, pos)
                    if index < len(dense):
                        pos += 4
                        stack.append(dense[index])
                        continue
            elif op == 77:  # BININT2
                if pos + 2 <= end:
                    stack.append(data[pos] | data[pos + 1] << 8)
                    pos += 2
                    continue
            elif op == 113:  # BINPUT
                if pos < end:
                    index = data[pos]
                    if index == len(dense) and index < dense_limit and not sparse:
                        # load_binput reads the top of the stack before its argument: an empty
                        # stack fails with the argument unread
                        dense_append(stack[-1])
                        pos += 1
                        continue
            elif op == 140:  # SHORT_BINUNICODE
                if pos < end:
                    size = data[pos]
                    if pos + 1 + size <= end:
                        pos += 1 + size
                        stack.append(str(data[pos - size : pos], "utf-8", "surrogatepass"))
                        continue
            elif op == 135:  # TUPLE3
                stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                continue
            elif op == 136:  # NEWTRUE
                stack.append(True)
                continue
            elif op == 78:  # NONE
                stack.append(None)
                continue
            elif op == 125:  # EMPTY_DICT
                stack.append({})
                continue
            elif op == 46:  # STOP
                return stack.pop()
            # Everything else, and an inlined opcode short of its argument: the unpickler's own
            # method reads from the stream. ``pos`` is -1 while the stream holds the position.
            stream.seek(pos)
            pos = -1
            dispatch[op](u)
            pos = stream.tell()
            stack = u.stack
            if op == 149:  # FRAME
                return FRAMED
    finally:
        if pos >= 0:
            stream.seek(pos)
