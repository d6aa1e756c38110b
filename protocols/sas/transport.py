"""Byte transports under the SAS codec: one interface, three back ends.

SAS marks the first byte of every host message with a 9th "wakeup" bit.
`Transport.send(frame, wakeup=True)` sets it on the first byte only;
`read(n, timeout)` returns what arrived within `timeout` (possibly fewer than
`n` bytes, possibly none).

- `UartTransport`: a real UART through pyserial. The wakeup bit becomes the
  parity bit: the address byte goes out with MARK parity, the rest with SPACE
  parity, draining between the two so the switch cannot overtake a byte still
  in the UART. Host side only (an EGM side would need per-byte parity errors).
- `MemoryTransport.pair()`: two connected in-process ends that carry the
  wakeup flag with each byte; tests and the demo.
- `StreamTransport`: any byte stream (a pty, a socket, a serial-like object)
  with the wakeup bit carried in-band by the escape scheme below, because a
  pty cannot carry a 9th bit.

Stream escape scheme (both directions, every byte):
    FF 01   the next byte carries the wakeup bit
    FF FF   a literal FF
    other   the byte itself, no wakeup
so the general poll of address 127 (FF with wakeup) travels as FF 01 FF FF.
FF followed by anything else is a framing slip: both bytes are dropped and
counted in `StreamDecoder.errors`.

Ends that carry the flag (memory, stream) are `WakeupTransport`s: an EGM
emulator reads `read_marked()` or whole host messages with `read_message()`.

`open_transport(url)` opens one by URL: `memory://NAME[?end=host|egm]`,
`pty:///dev/pts/N`, `uart:///dev/ttyUSB0?baud=19200`, `socket://HOST:PORT`,
or a bare device path (a /dev/pts/ path is a pty, any other path a UART).
"""

import abc
import os
import select
import threading
import time
import tty
from collections import deque
from typing import Any, Callable, Self
from urllib.parse import parse_qs, urlsplit

import serial

DEFAULT_BAUD = 19200

MarkedByte = tuple[int, bool]


class TransportError(Exception):
    """The line itself failed (device gone, peer hung up)."""


class TransportClosed(TransportError):
    """This end, or the stream under it, is closed."""


class Transport(abc.ABC):
    """A serial line as the SAS host (or an EGM emulator) sees it."""

    @abc.abstractmethod
    def send(self, frame: bytes, wakeup: bool = True) -> None:
        """Send `frame`; `wakeup` sets the wakeup bit on its first byte only."""

    @abc.abstractmethod
    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes, waiting at most `timeout` seconds for them."""

    @abc.abstractmethod
    def reset_input(self) -> None:
        """Drop whatever was received and not read yet."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the line; further reads and sends raise TransportClosed."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WakeupTransport(Transport):
    """A transport that reports, per received byte, whether it had the wakeup bit."""

    def __init__(self) -> None:
        # A wakeup byte read past the end of the previous message, kept for the next.
        self._held: MarkedByte | None = None

    @abc.abstractmethod
    def _read_marked(self, n: int, deadline: float) -> list[MarkedByte]:
        """Up to `n` received bytes with their flags, waiting until `deadline` (monotonic)."""

    @abc.abstractmethod
    def _drop_input(self) -> None:
        """Drop the received bytes of the back end."""

    def read_marked(self, n: int, timeout: float) -> list[MarkedByte]:
        """Up to `n` (byte, wakeup) pairs, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        out: list[MarkedByte] = []
        if n > 0 and self._held is not None:
            out.append(self._held)
            self._held = None
        if len(out) < n:
            out += self._read_marked(n - len(out), deadline)
        return out

    def read(self, n: int, timeout: float) -> bytes:
        return bytes(byte for byte, _ in self.read_marked(n, timeout))

    def read_message(self, timeout: float, gap: float = 0.02) -> bytes:
        """EGM side: the next host message, b"" if none began within `timeout`.

        Bytes before a wakeup byte are skipped (a message meant for someone
        else, or noise). The message ends before the next wakeup byte, or when
        no byte comes for `gap` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            got = self.read_marked(1, max(0.0, deadline - time.monotonic()))
            if not got:
                return b""
            if got[0][1]:
                break
        message = bytearray([got[0][0]])
        while True:
            got = self.read_marked(1, gap)
            if not got:
                return bytes(message)
            if got[0][1]:
                self._held = got[0]
                return bytes(message)
            message.append(got[0][0])

    def reset_input(self) -> None:
        self._held = None
        self._drop_input()


# ------------------------------------------------------------------ memory


class _Pipe:
    """One direction of a memory pair: marked bytes waiting for the reader."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[MarkedByte] = deque()
        # Set when the reading end closes: later sends are lost, as on a dead wire.
        self.closed = False


class MemoryTransport(WakeupTransport):
    """One end of an in-process line; the wakeup flag travels with each byte."""

    _registry: dict[str, tuple["MemoryTransport", "MemoryTransport"]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, inbox: _Pipe, outbox: _Pipe) -> None:
        super().__init__()
        self._inbox = inbox
        self._outbox = outbox

    @classmethod
    def pair(cls) -> tuple["MemoryTransport", "MemoryTransport"]:
        """Two connected ends: (host end, EGM end)."""
        to_egm, to_host = _Pipe(), _Pipe()
        return cls(inbox=to_host, outbox=to_egm), cls(inbox=to_egm, outbox=to_host)

    @classmethod
    def named(cls, name: str) -> tuple["MemoryTransport", "MemoryTransport"]:
        """The pair registered under `name`, made on first use and again once both ends closed."""
        with cls._registry_lock:
            pair = cls._registry.get(name)
            if pair is None or (pair[0].closed and pair[1].closed):
                pair = cls.pair()
                cls._registry[name] = pair
            return pair

    @property
    def closed(self) -> bool:
        return self._inbox.closed

    def send(self, frame: bytes, wakeup: bool = True) -> None:
        if self.closed:
            raise TransportClosed("memory transport is closed")
        with self._outbox.cond:
            if self._outbox.closed:
                return
            for index, byte in enumerate(frame):
                self._outbox.queue.append((byte, wakeup and index == 0))
            self._outbox.cond.notify_all()

    def _read_marked(self, n: int, deadline: float) -> list[MarkedByte]:
        inbox = self._inbox
        with inbox.cond:
            while len(inbox.queue) < n and not inbox.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                inbox.cond.wait(remaining)
            if inbox.closed:
                raise TransportClosed("memory transport is closed")
            return [inbox.queue.popleft() for _ in range(min(n, len(inbox.queue)))]

    def _drop_input(self) -> None:
        with self._inbox.cond:
            self._inbox.queue.clear()

    def close(self) -> None:
        with self._inbox.cond:
            self._inbox.closed = True
            self._inbox.queue.clear()
            # Wake a reader blocked on this end so it sees the close.
            self._inbox.cond.notify_all()


# ------------------------------------------------------------------ stream

ESCAPE = 0xFF
WAKEUP_NEXT = 0x01


def encode_stream(frame: bytes, wakeup: bool = True) -> bytes:
    """`frame` in the stream escape scheme, the wakeup bit on its first byte if asked."""
    out = bytearray()
    for index, byte in enumerate(frame):
        if wakeup and index == 0:
            out += bytes([ESCAPE, WAKEUP_NEXT])
        if byte == ESCAPE:
            out += bytes([ESCAPE, ESCAPE])
        else:
            out.append(byte)
    return bytes(out)


class StreamDecoder:
    """Incremental decoder of the stream escape scheme; escapes may straddle reads."""

    def __init__(self) -> None:
        self._after_escape = False
        self._wakeup_next = False
        self.errors = 0

    def feed(self, raw: bytes) -> list[MarkedByte]:
        out: list[MarkedByte] = []
        for byte in raw:
            if self._after_escape:
                self._after_escape = False
                if byte == WAKEUP_NEXT:
                    self._wakeup_next = True
                elif byte == ESCAPE:
                    out.append((ESCAPE, self._wakeup_next))
                    self._wakeup_next = False
                else:
                    self.errors += 1
                    self._wakeup_next = False
            elif byte == ESCAPE:
                self._after_escape = True
            else:
                out.append((byte, self._wakeup_next))
                self._wakeup_next = False
        return out


class _FdPort:
    """A file descriptor (pty, tty): select for timeouts, os.read/os.write."""

    def __init__(self, fd: int, owns: bool) -> None:
        self.fd = fd
        # Descriptors closed with the port (a pty's slave side rides along).
        self.owned: list[int] = [fd] if owns else []

    def read_some(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 4096)
        except OSError as exc:
            # A pty whose other side is gone reads EIO.
            raise TransportClosed(f"stream hung up: {exc}") from exc
        if not data:
            raise TransportClosed("stream hung up")
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def drop_input(self) -> None:
        while self.read_some(0.0):
            pass

    def close(self) -> None:
        for fd in self.owned:
            os.close(fd)


class _SerialPort:
    """A pyserial-like object (`read`, `write`, `timeout`), e.g. from serial_for_url."""

    def __init__(self, port: Any, owns: bool) -> None:
        self.port = port
        self.owns = owns

    def read_some(self, timeout: float) -> bytes:
        self.port.timeout = max(0.0, timeout)
        first = self.port.read(1)
        if not first:
            return b""
        waiting = getattr(self.port, "in_waiting", 0)
        return bytes(first) + (bytes(self.port.read(waiting)) if waiting else b"")

    def write(self, data: bytes) -> None:
        self.port.write(data)
        if hasattr(self.port, "flush"):
            self.port.flush()

    def drop_input(self) -> None:
        if hasattr(self.port, "reset_input_buffer"):
            self.port.reset_input_buffer()
        else:
            while self.read_some(0.0):
                pass

    def close(self) -> None:
        if self.owns:
            self.port.close()


class StreamTransport(WakeupTransport):
    """A byte stream with the wakeup bit escaped in-band (see the module docstring).

    `stream` is a file descriptor or a pyserial-like object; `owns` says
    whether `close()` closes it.
    """

    def __init__(self, stream: int | Any, *, owns: bool = True) -> None:
        super().__init__()
        self._port: _FdPort | _SerialPort
        if isinstance(stream, int):
            self._port = _FdPort(stream, owns)
        else:
            self._port = _SerialPort(stream, owns)
        self._decoder = StreamDecoder()
        self._pending: deque[MarkedByte] = deque()
        self._closed = False

    @classmethod
    def open_path(cls, path: str) -> "StreamTransport":
        """Open a pty (or any tty) by path, in raw mode so no byte is interpreted."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        if os.isatty(fd):
            tty.setraw(fd)
        return cls(fd, owns=True)

    @classmethod
    def create_pty(cls) -> tuple["StreamTransport", str]:
        """A new pty: the transport on its master side and the path of its slave side.

        The slave stays open (raw) for the life of the transport, so the master
        never reads EIO while no one has the path open yet.
        """
        master, slave = os.openpty()
        tty.setraw(slave)
        transport = cls(master, owns=True)
        assert isinstance(transport._port, _FdPort)
        transport._port.owned.append(slave)
        return transport, os.ttyname(slave)

    @property
    def decode_errors(self) -> int:
        return self._decoder.errors

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("stream transport is closed")

    def send(self, frame: bytes, wakeup: bool = True) -> None:
        self._check_open()
        self._port.write(encode_stream(frame, wakeup))

    def _read_marked(self, n: int, deadline: float) -> list[MarkedByte]:
        self._check_open()
        while len(self._pending) < n:
            remaining = deadline - time.monotonic()
            raw = self._port.read_some(max(0.0, remaining))
            if raw:
                self._pending.extend(self._decoder.feed(raw))
            elif remaining <= 0:
                break
        return [self._pending.popleft() for _ in range(min(n, len(self._pending)))]

    def _drop_input(self) -> None:
        self._check_open()
        self._pending.clear()
        self._port.drop_input()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._port.close()


# -------------------------------------------------------------------- uart


class UartTransport(Transport):
    """A real UART: the wakeup bit is sent as MARK parity on the address byte.

    Rests at SPACE parity (the 9th bit of every other byte is clear). pyserial
    clears INPCK, so received bytes are not parity-checked: the host does not
    need the EGM's 9th bit.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        *,
        serial_factory: Callable[..., Any] | None = None,
    ) -> None:
        factory = serial_factory or serial.Serial
        self._serial = factory(
            port=port,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_SPACE,
            stopbits=serial.STOPBITS_ONE,
            timeout=0,
        )
        self._parity = serial.PARITY_SPACE
        self._timeout: float = 0
        self._closed = False

    def _set_parity(self, parity: str) -> None:
        # Reconfiguring the port costs a tcsetattr: only switch when it changes.
        if parity != self._parity:
            self._serial.parity = parity
            self._parity = parity

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("UART transport is closed")

    def send(self, frame: bytes, wakeup: bool = True) -> None:
        self._check_open()
        rest = bytes(frame)
        if wakeup and rest:
            self._set_parity(serial.PARITY_MARK)
            self._serial.write(rest[:1])
            # Drain so the parity switch cannot overtake the address byte.
            self._serial.flush()
            rest = rest[1:]
        if rest:
            self._set_parity(serial.PARITY_SPACE)
            self._serial.write(rest)
            self._serial.flush()

    def read(self, n: int, timeout: float) -> bytes:
        self._check_open()
        if timeout != self._timeout:
            self._serial.timeout = timeout
            self._timeout = timeout
        return bytes(self._serial.read(n))

    def reset_input(self) -> None:
        self._check_open()
        self._serial.reset_input_buffer()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._serial.close()


# ----------------------------------------------------------------- factory


def open_transport(url: str) -> Transport:
    """Open a SAS line by URL (forms in the module docstring)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    baud = int(query.get("baud", [str(DEFAULT_BAUD)])[0])
    if parts.scheme == "memory":
        name = parts.netloc + parts.path
        if not name:
            raise ValueError(f"memory transport needs a name: {url!r}")
        end = query.get("end", ["host"])[0]
        if end not in ("host", "egm"):
            raise ValueError(f"memory transport end must be host or egm, got {end!r}")
        host, egm = MemoryTransport.named(name)
        return host if end == "host" else egm
    if parts.scheme == "pty":
        return StreamTransport.open_path(parts.path)
    if parts.scheme == "uart":
        return UartTransport(parts.path, baud)
    if parts.scheme == "socket":
        return StreamTransport(serial.serial_for_url(url, timeout=0), owns=True)
    if not parts.scheme and parts.path.startswith("/"):
        if os.path.realpath(parts.path).startswith("/dev/pts/"):
            return StreamTransport.open_path(parts.path)
        return UartTransport(parts.path, baud)
    raise ValueError(f"not a SAS transport URL: {url!r}")
