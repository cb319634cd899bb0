"""A response's head and body leave in one send; nothing is lost or reordered on close."""

from __future__ import annotations

import asyncio

from gpsoc_kit.runtime import _OneSendPerTurn


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


async def test_writes_of_one_turn_are_sent_once_in_order():
    real = RecordingTransport()
    transport = _OneSendPerTurn(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.sent == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.sent[1:] == [b"next"]


async def test_close_sends_what_is_pending_first_and_the_rest_is_the_real_transport():
    real = RecordingTransport()
    transport = _OneSendPerTurn(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert real.sent == [b"last words"] and real.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert real.sent == [b"last words"]
    assert transport.get_extra_info("peername") == "extra:peername"
