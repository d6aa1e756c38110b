import os
import socket
import threading
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sas import transport as transport_module
from protocols.sas.frames import reply_needs
from protocols.sas.long_polls import (
    GeneralPoll,
    PendingCashout,
    Poll,
    ReadPendingCashout,
    encode_poll,
    encode_reply,
    parse_poll,
    parse_reply,
)
from protocols.sas.transport import (
    MemoryTransport,
    StreamDecoder,
    StreamTransport,
    TransportClosed,
    UartTransport,
    encode_stream,
    open_transport,
)


@pytest.fixture
def pair():
    host, egm = MemoryTransport.pair()
    yield host, egm
    host.close()
    egm.close()


# ------------------------------------------------------------------ memory


def test_memory_pair_carries_wakeup_on_first_byte_only(pair):
    host, egm = pair
    host.send(b"\x01\x1f")
    host.send(b"\x02\x03", wakeup=False)
    assert egm.read_marked(4, 1.0) == [(0x01, True), (0x1F, False), (0x02, False), (0x03, False)]


def test_memory_replies_flow_back(pair):
    host, egm = pair
    egm.send(b"\x01", wakeup=False)
    assert host.read(1, 1.0) == b"\x01"


def test_read_timeout_honoured(pair):
    host, _ = pair
    started = time.monotonic()
    assert host.read(1, 0.05) == b""
    elapsed = time.monotonic() - started
    assert 0.045 <= elapsed < 1.0


def test_partial_read_returns_what_arrived(pair):
    host, egm = pair
    egm.send(b"\x01\x57", wakeup=False)
    started = time.monotonic()
    assert host.read(10, 0.05) == b"\x01\x57"
    assert time.monotonic() - started >= 0.045


def test_read_returns_as_soon_as_enough_bytes(pair):
    host, egm = pair
    threading.Timer(0.02, lambda: egm.send(b"\x01\x02", wakeup=False)).start()
    started = time.monotonic()
    assert host.read(2, 2.0) == b"\x01\x02"
    assert time.monotonic() - started < 1.0


def test_read_message_splits_at_wakeup_and_skips_noise(pair):
    host, egm = pair
    host.send(b"\x55\x66", wakeup=False)  # noise: no wakeup bit
    host.send(b"\x81")
    host.send(b"\x01\x1f")
    assert egm.read_message(0.5) == b"\x81"
    assert egm.read_message(0.5) == b"\x01\x1f"
    assert egm.read_message(0.02) == b""


def test_reset_input(pair):
    host, egm = pair
    egm.send(b"\x01\x02\x03", wakeup=False)
    host.reset_input()
    assert host.read(3, 0.01) == b""


def test_close_wakes_blocked_reader(pair):
    host, _ = pair
    errors = []

    def reader():
        try:
            host.read(1, 5.0)
        except TransportClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.02)
    host.close()
    thread.join(1.0)
    assert not thread.is_alive() and errors
    with pytest.raises(TransportClosed):
        host.send(b"\x81")


def test_send_to_closed_peer_is_lost(pair):
    host, egm = pair
    egm.close()
    assert host.send(b"\x81") is None  # a dead wire: no error, nobody hears it
    assert host.read(1, 0.05) == b""


def test_named_memory_pairs():
    host = open_transport("memory://line-a")
    egm = open_transport("memory://line-a?end=egm")
    other = open_transport("memory://line-b?end=egm")
    host.send(b"\x81")
    assert egm.read_marked(1, 0.5) == [(0x81, True)]
    assert other.read(1, 0.01) == b""
    host.close()
    egm.close()
    fresh = open_transport("memory://line-a")
    assert fresh is not host
    fresh.close()
    other.close()
    with pytest.raises(ValueError):
        open_transport("memory://line-a?end=middle")


def test_host_and_egm_talk_through_the_codec(pair):
    """A tiny EGM thread answers LP 57; the host reads exactly what reply_needs asks for."""
    host, egm = pair

    def emulator():
        message = egm.read_message(1.0)
        poll = parse_poll(message)
        assert poll == Poll(3, ReadPendingCashout())
        egm.send(encode_reply(3, PendingCashout(0x00, 2550)), wakeup=False)
        assert parse_poll(egm.read_message(1.0)) == Poll(3, GeneralPoll())
        egm.send(b"\x00", wakeup=False)

    thread = threading.Thread(target=emulator)
    thread.start()
    sent = encode_poll(3, ReadPendingCashout())
    host.send(sent)
    received = b""
    while need := reply_needs(sent, received):
        chunk = host.read(need, 0.5)
        if not chunk:
            break
        received += chunk
    assert parse_reply(sent, received) == PendingCashout(0x00, 2550)
    host.send(encode_poll(3, GeneralPoll()))
    assert host.read(1, 0.5) == b"\x00"
    thread.join(1.0)


# ------------------------------------------------------------------ stream


def test_stream_escape_literals():
    assert encode_stream(b"\x01\x1f") == b"\xff\x01\x01\x1f"
    assert encode_stream(b"\xff") == b"\xff\x01\xff\xff"
    assert encode_stream(b"\x01\xff\x02", wakeup=False) == b"\x01\xff\xff\x02"
    assert encode_stream(b"") == b""


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.booleans()), max_size=8), st.integers(1, 7))
def test_stream_escape_round_trips_any_bytes(messages, chunk):
    wire = b"".join(encode_stream(frame, wakeup) for frame, wakeup in messages)
    expected = [(byte, wakeup and i == 0) for frame, wakeup in messages for i, byte in enumerate(frame)]
    decoder = StreamDecoder()
    decoded = []
    # Escapes straddling read boundaries must survive.
    for start in range(0, len(wire), chunk):
        decoded += decoder.feed(wire[start : start + chunk])
    assert decoded == expected
    assert decoder.errors == 0


def test_stream_decoder_counts_bad_escape():
    decoder = StreamDecoder()
    assert decoder.feed(b"\x01\xff\x07\x02") == [(0x01, False), (0x02, False)]
    assert decoder.errors == 1


@pytest.fixture
def pty_pair():
    egm, path = StreamTransport.create_pty()
    host = open_transport(f"pty://{path}")
    yield host, egm, path
    host.close()
    egm.close()


def test_pty_carries_wakeup_both_ways(pty_pair):
    host, egm, _ = pty_pair
    host.send(b"\xff")  # general poll of address 127
    host.send(b"\x01\x71\x01\xff\x0a\x0d", wakeup=True)
    assert egm.read_marked(7, 1.0) == [
        (0xFF, True),
        (0x01, True),
        (0x71, False),
        (0x01, False),
        (0xFF, False),
        (0x0A, False),
        (0x0D, False),
    ]
    egm.send(bytes(range(256)), wakeup=False)
    received = b""
    deadline = time.monotonic() + 2.0
    while len(received) < 256 and time.monotonic() < deadline:
        received += host.read(256 - len(received), 0.5)
    assert received == bytes(range(256))


def test_pty_read_timeout_honoured(pty_pair):
    host, egm, _ = pty_pair
    started = time.monotonic()
    assert host.read(1, 0.05) == b""
    assert 0.045 <= time.monotonic() - started < 1.0
    assert egm.read_message(0.02) == b""


def test_pty_reset_input(pty_pair):
    host, egm, _ = pty_pair
    egm.send(b"\x01\x02", wakeup=False)
    time.sleep(0.02)
    host.reset_input()
    assert host.read(2, 0.02) == b""


def test_bare_pts_path_is_a_stream(pty_pair):
    _, egm, path = pty_pair
    with open_transport(path) as other:
        assert isinstance(other, StreamTransport)
        other.send(b"\x85")
        assert egm.read_marked(1, 1.0) == [(0x85, True)]


def test_closed_stream_refuses(pty_pair):
    host, _, _ = pty_pair
    host.close()
    with pytest.raises(TransportClosed):
        host.send(b"\x81")
    with pytest.raises(TransportClosed):
        host.read(1, 0.0)


def test_peer_hang_up_is_a_transport_error():
    master, slave = os.openpty()
    host = StreamTransport(slave)
    os.close(master)
    with pytest.raises(TransportClosed):
        host.read(1, 0.5)
    host.close()


def test_socket_url_is_a_stream():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with open_transport(f"socket://127.0.0.1:{port}") as host:
            peer, _ = server.accept()
            with peer:
                peer.settimeout(1.0)
                host.send(b"\x01\x1f")
                assert peer.recv(16) == b"\xff\x01\x01\x1f"
                peer.sendall(b"\x01\xff\xff")
                assert host.read(2, 1.0) == b"\x01\xff"
    finally:
        server.close()


# -------------------------------------------------------------------- uart


class FakeSerial:
    """Records what a pyserial.Serial is asked to do, in order."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self._parity = kwargs["parity"]
        self._timeout = kwargs["timeout"]
        self.events = []
        self.incoming = bytearray()

    @property
    def parity(self):
        return self._parity

    @parity.setter
    def parity(self, value):
        self._parity = value
        self.events.append(("parity", value))

    @property
    def timeout(self):
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        self._timeout = value
        self.events.append(("timeout", value))

    def write(self, data):
        self.events.append(("write", bytes(data), self._parity))
        return len(data)

    def flush(self):
        self.events.append(("flush",))

    def read(self, n):
        data = bytes(self.incoming[:n])
        del self.incoming[:n]
        return data

    def reset_input_buffer(self):
        self.events.append(("reset_input",))
        self.incoming.clear()

    def close(self):
        self.events.append(("close",))


@pytest.fixture
def uart():
    made = []

    def factory(**kwargs):
        made.append(FakeSerial(**kwargs))
        return made[-1]

    transport = UartTransport("/dev/ttyFAKE", serial_factory=factory)
    return transport, made[0]


def test_uart_opens_19200_8_bits_space_parity(uart):
    _, fake = uart
    assert fake.kwargs["port"] == "/dev/ttyFAKE"
    assert fake.kwargs["baudrate"] == 19200
    assert fake.kwargs["bytesize"] == serial.EIGHTBITS
    assert fake.kwargs["parity"] == serial.PARITY_SPACE
    assert fake.kwargs["stopbits"] == serial.STOPBITS_ONE


def test_uart_long_poll_mark_then_space_with_drains(uart):
    transport, fake = uart
    transport.send(b"\x01\x71\x01\xff\x00\x00")
    assert fake.events == [
        ("parity", serial.PARITY_MARK),
        ("write", b"\x01", serial.PARITY_MARK),
        ("flush",),
        ("parity", serial.PARITY_SPACE),
        ("write", b"\x71\x01\xff\x00\x00", serial.PARITY_SPACE),
        ("flush",),
    ]


def test_uart_switches_only_when_needed(uart):
    transport, fake = uart
    transport.send(b"\x81")
    transport.send(b"\x82")
    transport.send(b"\x01\x1f")
    transport.send(b"\x05\x06", wakeup=False)
    assert fake.events == [
        ("parity", serial.PARITY_MARK),
        ("write", b"\x81", serial.PARITY_MARK),
        ("flush",),
        ("write", b"\x82", serial.PARITY_MARK),
        ("flush",),
        ("write", b"\x01", serial.PARITY_MARK),
        ("flush",),
        ("parity", serial.PARITY_SPACE),
        ("write", b"\x1f", serial.PARITY_SPACE),
        ("flush",),
        ("write", b"\x05\x06", serial.PARITY_SPACE),
        ("flush",),
    ]


def test_uart_read_reset_close(uart):
    transport, fake = uart
    fake.incoming += b"\x01\x57\x00"
    assert transport.read(2, 0.1) == b"\x01\x57"
    assert transport.read(5, 0.1) == b"\x00"
    assert fake.events == [("timeout", 0.1)]
    transport.reset_input()
    transport.close()
    transport.close()
    assert fake.events[-2:] == [("reset_input",), ("close",)]
    with pytest.raises(TransportClosed):
        transport.send(b"\x81")


def test_uart_urls(monkeypatch):
    made = []

    def factory(**kwargs):
        made.append(FakeSerial(**kwargs))
        return made[-1]

    monkeypatch.setattr(transport_module.serial, "Serial", factory)
    assert isinstance(open_transport("uart:///dev/ttyUSB0?baud=9600"), UartTransport)
    assert made[-1].kwargs["port"] == "/dev/ttyUSB0" and made[-1].kwargs["baudrate"] == 9600
    assert isinstance(open_transport("/dev/ttyS0"), UartTransport)
    assert made[-1].kwargs["port"] == "/dev/ttyS0" and made[-1].kwargs["baudrate"] == 19200


def test_unknown_url():
    with pytest.raises(ValueError):
        open_transport("ftp://example")
    with pytest.raises(ValueError):
        open_transport("memory://")
