"""The stderr relay thread: everything passes through, the tail is the last bytes."""

from __future__ import annotations

import os
import random
import threading

import pytest

from ess_callback._relay import OutputPipe, TailBuffer, make_pipe


def _drain(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 1 << 16):
        into += chunk


def relay_through(chunks: list[bytes], tail_bytes: int) -> tuple[bytes, bytes]:
    """Write *chunks* into a relayed pipe; return (what reached the destination, tail)."""
    source_r, source_w = make_pipe()
    dest_r, dest_w = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=_drain, args=(dest_r, received))
    reader.start()
    relay = OutputPipe("stderr", source_r, dest_w, TailBuffer(tail_bytes))
    finished = threading.Event()
    relay.start(finished.set)
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(source_w, view) :]
    os.close(source_w)
    assert finished.wait(30), "the relay did not reach end of file"
    assert not relay.running
    os.close(dest_w)
    reader.join(30)
    os.close(dest_r)
    os.close(source_r)
    return bytes(received), relay.tail.getvalue()


def test_relay_passes_everything_and_keeps_the_last_bytes_of_big_chunks() -> None:
    """Megabytes in large writes arrive whole, in order; the tail is their last bytes."""
    data = [bytes([i % 251]) * 300_000 + str(i).encode() for i in range(12)]
    out, tail = relay_through(data, 2000)
    whole = b"".join(data)
    assert out == whole
    assert tail == whole[-2000:]


def test_relay_tail_is_right_when_small_writes_follow_a_big_one() -> None:
    """A big chunk replaces the ring, then small ones wrap around it: still the last bytes."""
    data = [b"x" * 100_000, *(f"line {i}\n".encode() for i in range(500))]
    out, tail = relay_through(data, 1000)
    whole = b"".join(data)
    assert out == whole
    assert tail == whole[-1000:]


def test_relay_keeps_reading_when_the_destination_is_gone() -> None:
    """A closed destination never blocks the child: the pipe is still drained to its end."""
    source_r, source_w = make_pipe()
    dest_r, dest_w = os.pipe()
    os.close(dest_r)  # writes to dest_w now fail with EPIPE
    relay = OutputPipe("stderr", source_r, dest_w, TailBuffer(10))
    finished = threading.Event()
    relay.start(finished.set)
    os.write(source_w, b"a" * 50_000 + b"0123456789")
    os.close(source_w)
    assert finished.wait(30)
    assert relay.tail.getvalue() == b"0123456789"
    os.close(dest_w)
    os.close(source_r)


@pytest.mark.parametrize("seed", range(6))
def test_relay_tail_is_the_last_bytes_whatever_the_chunk_sizes(seed: int) -> None:
    """Chunks shorter and longer than the tail, in any order: the tail is the last bytes."""
    rng = random.Random(seed)
    keep = 1500
    data = [
        bytes(rng.randrange(256) for _ in range(rng.choice((10, 700, 1499, 1500, 1501, 40_000))))
        for _ in range(60)
    ]
    out, tail = relay_through(data, keep)
    whole = b"".join(data)
    assert out == whole
    assert tail == whole[-keep:]
