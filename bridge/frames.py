"""Encode once, send to many: a small identity cache of encoded frames.

A broadcast reaches every connection as the same hub message object; each
connection's writer asks here for its frame, and only the first one pays for
the encoding (protobuf binary is cheap, proto3 JSON is not). Keyed by object
identity, holding a reference so an id is never reused while cached.
"""

from __future__ import annotations

from collections import OrderedDict

from . import codec
from .outbound import Outbound

CAPACITY = 64


class FrameCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[tuple[int, bool], tuple[object, codec.Frame]] = OrderedDict()
        self.hits = 0

    def encode(self, item: Outbound, binary: bool) -> codec.Frame:
        if item.shared is None:
            return codec.encode(item.envelope, binary)
        key = (id(item.shared), binary)
        cached = self._frames.get(key)
        if cached is not None and cached[0] is item.shared:
            self.hits += 1
            return cached[1]
        frame = codec.encode(item.envelope, binary)
        self._frames[key] = (item.shared, frame)
        if len(self._frames) > self.capacity:
            self._frames.popitem(last=False)
        return frame
