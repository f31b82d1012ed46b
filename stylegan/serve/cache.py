"""Recent responses by request, least recently used first out, bounded by count and by bytes.

Why: moving a slider back and forth, or paging back through seeds, asks for images already made; the cache answers
them without the worker. Only deterministic requests are cached (never noise=random).
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Dict, Hashable, Optional

DEFAULT_MAX_ITEMS = 512
DEFAULT_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class CachedResponse:
    body: bytes
    media_type: str
    headers: Dict[str, str] = field(default_factory=dict)


class ResponseCache:
    """Thread-safe LRU map request key -> CachedResponse, holding at most `max_items` and `max_bytes` of bodies."""

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: "collections.OrderedDict[Hashable, CachedResponse]" = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> Optional[CachedResponse]:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return item

    def put(self, key: Hashable, item: CachedResponse) -> None:
        size = len(item.body)
        if size > self.max_bytes or self.max_items < 1:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._items[key] = item
            self._bytes += size
            while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.body)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes


__all__ = ["ResponseCache", "CachedResponse", "DEFAULT_MAX_ITEMS", "DEFAULT_MAX_BYTES"]
