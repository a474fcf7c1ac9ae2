"""Gradient buckets in one process: contiguous runs of a flat gradient buffer in the order
backward finalises the parameters, about ``limit`` long, a parameter never split."""

from __future__ import annotations

import xpnn
from xpnn.distributed.buckets import plan_buckets


def layout_of(*sizes: int) -> tuple[list[xpnn.Parameter], list]:
    params = [xpnn.Parameter(None, f"p{i}") for i in range(len(sizes))]
    slots, start = [], 0
    for p, size in zip(params, sizes, strict=True):
        slots.append((p, start, start + size))
        start += size
    return params, [(None, slots)]


def test_buckets_follow_backward_order_over_contiguous_slices_up_to_the_limit() -> None:
    params, layout = layout_of(200, 10, 30, 5, 8, 2)  # a 3-layer MLP's weights and biases
    buckets = plan_buckets(list(reversed(params)), layout, limit=50)
    assert [(b.start, b.stop) for b in buckets] == [(210, 255), (200, 210), (0, 200)]
    assert [len(b.params) for b in buckets] == [4, 1, 1]


def test_a_parameter_finalised_out_of_buffer_order_starts_a_bucket_of_its_own() -> None:
    params, layout = layout_of(4, 4, 4)
    buckets = plan_buckets([params[2], params[0], params[1]], layout, limit=100)
    assert [(b.start, b.stop) for b in buckets] == [(8, 12), (0, 8)]


def test_parameters_backward_never_reached_come_last() -> None:
    params, layout = layout_of(4, 4, 4)
    buckets = plan_buckets([params[2]], layout, limit=4)
    assert [b.params[0].name for b in buckets] == ["p2", "p1", "p0"]
