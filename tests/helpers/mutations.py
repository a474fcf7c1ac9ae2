"""Seeded mutations of a file's bytes and of its JSON header, shared by the fuzz tests of the
npz loader (tests/test_fuzz.py) and of the safetensors loader (tests/io/)."""

from __future__ import annotations

import random
from typing import Any

REPLACEMENTS = [None, -1, 0, 10**12, 2.5, "x", [], {}, [1, 2], {"a": 1}, True, [[[[[]]]]]]


def flip(data: bytes, rng: random.Random) -> bytes:
    """One to eight random bits flipped."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite(data: bytes, rng: random.Random) -> bytes:
    """A random span of up to 16 bytes overwritten with random bytes."""
    start = rng.randrange(len(data))
    span = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return data[:start] + span + data[start + len(span) :]


def json_edit(header: Any, rng: random.Random, replacements: list[Any] = REPLACEMENTS) -> Any:
    """Replace one random node of the JSON header by a value of another kind."""
    path: list[Any] = []
    node = header
    while isinstance(node, dict | list) and node and rng.random() < 0.75:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    if not path:
        return rng.choice(replacements)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = rng.choice(replacements)
    return header
