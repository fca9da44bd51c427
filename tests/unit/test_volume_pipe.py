"""The bridge of a volume's data stream (`server.storage.pipe`) driven by a real thread:
bytes arrive in order, at most `depth` chunks wait, either side may give up and the other
is unblocked (no libvirt: the thread plays the stream); and what an upload may put into a
qcow2 volume (`server.storage.imagecheck`)."""

from __future__ import annotations

import asyncio
import struct
import threading

import pytest

from server.storage.imagecheck import qcow2_problem, upload_limit
from server.storage.pipe import Aborted, Pipe


def _thread(pipe: Pipe, work) -> threading.Thread:
    def target() -> None:
        try:
            pipe.finish(work(), None)
        except BaseException as e:
            pipe.finish(None, e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


async def test_chunks_reach_the_thread_in_order_and_the_queue_stays_bounded() -> None:
    pipe = Pipe(asyncio.get_running_loop(), depth=2, idle=10)
    got: list[bytes] = []
    most = [0]
    gate = threading.Event()

    def consume() -> int:
        gate.wait(10)  # the loop side fills the pipe meanwhile
        while (chunk := pipe.take()) is not None:
            most[0] = max(most[0], pipe.qsize())
            got.append(chunk)
        return sum(map(len, got))

    _thread(pipe, consume)
    for i in range(2):
        assert await pipe.put(bytes([i]) * 3)
    assert pipe.qsize() == 2  # a third put would wait: nothing more is held
    gate.set()
    for i in range(2, 20):
        assert await pipe.put(bytes([i]) * 3)
    await pipe.put(None)
    assert await pipe.result() == 60
    assert got == [bytes([i]) * 3 for i in range(20)] and most[0] <= 2


async def test_the_thread_gives_until_the_end() -> None:
    pipe = Pipe(asyncio.get_running_loop(), depth=1, idle=10)

    def produce() -> int:
        for i in range(5):
            pipe.give(bytes([i]))
        pipe.give(None)
        return 5

    _thread(pipe, produce)
    out = []
    while (chunk := await pipe.get()) is not None:
        out.append(chunk)
    assert out == [bytes([i]) for i in range(5)] and await pipe.result() == 5


async def test_an_abort_unblocks_a_thread_waiting_to_take() -> None:
    pipe = Pipe(asyncio.get_running_loop(), depth=2, idle=30)
    started = threading.Event()

    def consume() -> int:
        started.set()
        while pipe.take() is not None:
            pass
        return 0

    thread = _thread(pipe, consume)
    await asyncio.to_thread(started.wait, 10)
    await pipe.put(b"x")
    pipe.abort()  # the client went away
    with pytest.raises(Aborted):
        await pipe.result()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()


async def test_an_abort_unblocks_a_thread_waiting_to_give() -> None:
    pipe = Pipe(asyncio.get_running_loop(), depth=1, idle=30)

    def produce() -> int:
        while True:
            pipe.give(b"y")

    thread = _thread(pipe, produce)
    assert await pipe.get() == b"y"
    pipe.abort()  # the download's client left: the thread blocked on a full pipe stops
    with pytest.raises(Aborted):
        await pipe.result()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()


async def test_a_failing_thread_wakes_the_loop_side() -> None:
    pipe = Pipe(asyncio.get_running_loop(), depth=1, idle=30)

    def fail() -> int:
        pipe.take()
        raise OSError("disk full")

    _thread(pipe, fail)
    assert await pipe.put(b"a")
    results = [await pipe.put(b"b") for _ in range(3)]  # the thread is gone: not stuck
    assert results[-1] is False
    with pytest.raises(OSError, match="disk full"):
        await pipe.result()


def _qcow2(*, version: int = 3, backing: int = 0, size: int = 64 << 20, crypt: int = 0,
           incompatible: int = 0) -> bytes:
    head = struct.pack(">4sIQIIQI", b"QFI\xfb", version, backing, 0, 16, size, crypt)
    return head.ljust(72, b"\0") + struct.pack(">Q", incompatible)


def test_a_qcow2_volume_takes_a_standalone_qcow2_image_that_fits() -> None:
    assert qcow2_problem(_qcow2(), 64 << 20) is None
    assert qcow2_problem(_qcow2(version=2), 64 << 20) is None
    assert "Not a qcow2 image" in (qcow2_problem(b"\0" * 4096, 64 << 20) or "")
    assert "backing file" in (qcow2_problem(_qcow2(backing=512), 64 << 20) or "")
    assert "external data file" in (qcow2_problem(_qcow2(incompatible=4), 64 << 20) or "")
    assert "encrypted" in (qcow2_problem(_qcow2(crypt=1), 64 << 20) or "")
    assert "virtual size" in (qcow2_problem(_qcow2(size=65 << 20), 64 << 20) or "")
    assert "version 4" in (qcow2_problem(_qcow2(version=4), 64 << 20) or "")
    assert upload_limit("raw", 100) == 100 and upload_limit("qcow2", 64 << 20) > 64 << 20
