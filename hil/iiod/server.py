"""An iiod server (libiio 0.2x legacy text protocol over TCP) in front of an emulated Pluto.

Protocol (one command per line, "\\r\\n" or "\\n"; replies start with an integer line, negative = -errno):
  VERSION                          -> "0.24.saginhl\\n"
  PRINT                            -> "<len>\\n<xml>\\n"          ZPRINT, BINARY -> "-22\\n" (client falls back)
  TIMEOUT <ms>                     -> "0\\n"
  READ <dev> [DEBUG|BUFFER|INPUT <ch>|OUTPUT <ch>] <attr>   -> "<len>\\n<value>\\n" or "<-errno>\\n"
  WRITE <dev> [...] <attr> <n>  + n bytes                    -> "<n>\\n" or "<-errno>\\n"
  OPEN <dev> <samples> <mask> [CYCLIC] -> "0\\n"           CLOSE <dev> -> "0\\n"
  READBUF <dev> <bytes>            -> "<bytes>\\n<mask>\\n" + raw little-endian samples
  WRITEBUF <dev> <bytes>           -> "0\\n", then <bytes> from the client, then "<bytes>\\n"
  SET <dev> BUFFERS_COUNT <n>, GETTRIG <dev>, SETTRIG <dev> [<trig>], HELP, EXIT
Each client connection has its own thread; libiio opens one extra connection per buffer. A malformed
command gets "-22", an unknown device "-19", an unknown attribute "-2", an over-long WRITE "-27" (its bytes
are read and discarded), and the connection keeps serving; an unexpected failure inside a command is
answered "-5" (logged) rather than dropping the connection. At most MAX_CONNECTIONS clients are served at
once (one thread each); a further connection is closed at once and counted in `connections_refused`. A
connection that drops closes its buffers.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from sagin_hil.hil.iiod.context import IioContext, IioDevice, load_pluto_context
from sagin_hil.hil.iiod.device import ADC, DDS, EmulatedPluto
from sagin_hil.hil.iiod.rf import PlutoRF

__all__ = ["IiodServer", "PROTOCOL_VERSION"]

log = logging.getLogger(__name__)
PROTOCOL_VERSION = "0.24.saginhl"
MAX_LINE_BYTES = 4096
MAX_WRITE_BYTES = 1 << 20  # attribute values
MAX_BUFFER_BYTES = 1 << 26  # one READBUF/WRITEBUF (64 MiB: 16 Mi two-channel samples)
MAX_CONNECTIONS = 16  # simultaneous clients (threads); pyadi-iio uses 1 + 1 per open buffer


class _ProtocolError(Exception):
    def __init__(self, code: int):
        self.code = code


@dataclass
class _OpenBuffer:
    dev: IioDevice
    samples: int
    mask: str
    cyclic: bool
    channels: list


class _Out:
    """Replies go out whole (sendall), never as a partial write."""

    def __init__(self, conn: socket.socket):
        self.write = conn.sendall


class IiodServer:
    """A threaded TCP server speaking iiod's legacy protocol for one EmulatedPluto + PlutoRF.

    Parameters
    ----------
    host, port: where to listen (port 0 picks a free one; read `.port`).
    rf_kwargs: passed to PlutoRF (attenuation_db, channel_factory, xo_ppm, realtime, seed, ...).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, context: IioContext | None = None, **rf_kwargs: Any):
        from sagin_hil.phy.channel.emulator import warm_up

        warm_up()  # compile (or load) the channel kernel now: a first READBUF must not wait for numba
        self.context = context or load_pluto_context()
        self.device = EmulatedPluto(self.context)
        self.rf = PlutoRF(self.device, **rf_kwargs)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from None
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._rx_owner: object | None = None  # the connection holding the RX buffer
        self._thread: threading.Thread | None = None
        self.commands_served = 0
        self.connections_refused = 0
        self.internal_errors = 0

    @property
    def uri(self) -> str:
        return f"ip:{self.host}:{self.port}"

    def set_scenario_time(self, t_s: float) -> None:
        """Make the next received sample scenario time t_s (a scenario channel follows its link from there)."""
        self.rf.set_time(t_s)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> IiodServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"iiod-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                break
            with self._conns_lock:
                full = len(self._conns) >= MAX_CONNECTIONS
                if not full:
                    self._conns.add(conn)
            if full:  # bounded threads: a client opening connections in a loop cannot exhaust the host
                self.connections_refused += 1
                log.warning("iiod %s: %d clients connected (the limit); closing a new connection",
                            self.port, MAX_CONNECTIONS)
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and drop every client (their pending reads fail, as when a Pluto is unplugged)."""
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> IiodServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ one client
    def _serve_conn(self, conn: socket.socket) -> None:
        f = _Out(conn)
        rfile = conn.makefile("rb", buffering=65536)
        buffers: dict[str, _OpenBuffer] = {}
        try:
            while not self._stop.is_set():
                line = rfile.readline(MAX_LINE_BYTES + 1)
                if not line:
                    break
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # discard the rest of an over-long line
                        line = rfile.readline(MAX_LINE_BYTES)
                    f.write(b"%d\n" % -errno.EINVAL)
                    continue
                words = line.decode("ascii", errors="replace").strip().split()
                if not words:
                    continue
                self.commands_served += 1
                log.debug("iiod %s <- %s", self.port, " ".join(words))
                if words[0].upper() == "EXIT":
                    break
                try:
                    self._dispatch(words, rfile, f, buffers, conn)
                except _ProtocolError as exc:
                    f.write(b"%d\n" % exc.code)
                except (OSError, ConnectionError):
                    raise
                except Exception:  # noqa: BLE001 (a bug costs one command, not the client's session)
                    self.internal_errors += 1
                    log.exception("iiod %s: command %r failed; answered -EIO", self.port, " ".join(words)[:200])
                    f.write(b"%d\n" % -errno.EIO)
        except (OSError, ValueError):
            pass  # client went away
        finally:
            for buf in list(buffers.values()):
                self._close_buffer(buf, conn)
            with self._conns_lock:
                self._conns.discard(conn)
            for h in (rfile, conn):
                try:
                    h.close()
                except OSError:
                    pass

    def _dev(self, ident: str) -> IioDevice:
        dev = self.context.device(ident)
        if dev is None:
            raise _ProtocolError(-errno.ENODEV)
        return dev

    def _dispatch(self, words: list[str], rfile: BinaryIO, out: Any, buffers: dict, conn: socket.socket) -> None:
        cmd, args = words[0].upper(), words[1:]
        if cmd == "VERSION" and not args:
            out.write(PROTOCOL_VERSION.encode() + b"\n")
        elif cmd == "PRINT" and not args:
            xml = self.context.xml.encode()
            out.write(b"%d\n" % len(xml) + xml + b"\n")
        elif cmd in ("ZPRINT", "BINARY"):
            raise _ProtocolError(-errno.EINVAL)
        elif cmd == "HELP":
            out.write(b"Available commands: VERSION PRINT TIMEOUT READ WRITE OPEN CLOSE READBUF WRITEBUF "
                      b"SET GETTRIG SETTRIG EXIT\n")
        elif cmd == "TIMEOUT" and len(args) == 1 and args[0].isdigit():
            out.write(b"0\n")
        elif cmd == "READ" and 2 <= len(args) <= 4:
            self._read_attr(args, out)
        elif cmd == "WRITE" and 3 <= len(args) <= 5:
            self._write_attr(args, rfile, out)
        elif cmd == "OPEN" and len(args) in (3, 4):
            self._open(args, out, buffers, conn)
        elif cmd == "CLOSE" and len(args) == 1:
            dev = self._dev(args[0])
            buf = buffers.pop(dev.id, None)
            if buf is None:
                raise _ProtocolError(-errno.EBADF)
            self._close_buffer(buf, conn)
            out.write(b"0\n")
        elif cmd == "READBUF" and len(args) == 2:
            self._readbuf(args, out, buffers)
        elif cmd == "WRITEBUF" and len(args) == 2:
            self._writebuf(args, rfile, out, buffers)
        elif cmd == "SET" and len(args) == 3 and args[1].upper() == "BUFFERS_COUNT":
            self._dev(args[0])
            if not args[2].isdigit() or not 1 <= int(args[2]) <= 64:
                raise _ProtocolError(-errno.EINVAL)
            out.write(b"0\n")
        elif cmd == "GETTRIG" and len(args) == 1:
            self._dev(args[0])
            raise _ProtocolError(-errno.ENOENT)  # the Pluto's devices have no trigger
        elif cmd == "SETTRIG" and len(args) in (1, 2):
            self._dev(args[0])
            raise _ProtocolError(-errno.ENOSYS)
        else:
            raise _ProtocolError(-errno.EINVAL)

    # ------------------------------------------------------------------ attributes
    def _attr_address(self, dev: IioDevice, args: list[str]) -> tuple[str | None, str, str]:
        """args after the device id (without a WRITE length) -> (channel key, attribute, kind)."""
        if len(args) == 1:
            name, chn, kind = args[0], None, "attr"
        elif len(args) == 2 and args[0].upper() in ("DEBUG", "BUFFER"):
            name, chn, kind = args[1], None, args[0].lower()
        elif len(args) == 3 and args[0].upper() in ("INPUT", "OUTPUT"):
            output = args[0].upper() == "OUTPUT"
            ch = dev.channel(args[1], output)
            if ch is None:
                raise _ProtocolError(-errno.ENOENT)
            name, chn, kind = args[2], ch.key, "attr"
        else:
            raise _ProtocolError(-errno.EINVAL)
        return chn, name, kind

    def _read_attr(self, args: list[str], out: Any) -> None:
        dev = self._dev(args[0])
        chn, name, kind = self._attr_address(dev, args[1:])
        ret, value = self.device.read(dev.id, chn, name, kind)
        if ret < 0:
            raise _ProtocolError(ret)
        data = value.encode()
        out.write(b"%d\n" % len(data) + data + b"\n")

    def _write_attr(self, args: list[str], rfile: BinaryIO, out: Any) -> None:
        if not args[-1].isdigit():
            raise _ProtocolError(-errno.EINVAL)
        n = int(args[-1])
        if n > MAX_WRITE_BYTES:  # read and drop its bytes so the next command is found, then refuse
            left = n
            while left > 0:
                chunk = rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise OSError("client closed during WRITE")
                left -= len(chunk)
            raise _ProtocolError(-errno.EFBIG)
        payload = rfile.read(n)
        if len(payload) < n:
            raise OSError("client closed during WRITE")
        dev = self._dev(args[0])
        chn, name, kind = self._attr_address(dev, args[1:-1])
        ret = self.device.write(dev.id, chn, name, kind, payload)
        out.write(b"%d\n" % ret)

    # ------------------------------------------------------------------ buffers
    def _open(self, args: list[str], out: Any, buffers: dict, conn: socket.socket) -> None:
        dev = self._dev(args[0])
        cyclic = len(args) == 4
        if cyclic and args[3].upper() != "CYCLIC":
            raise _ProtocolError(-errno.EINVAL)
        if not args[1].isdigit() or int(args[1]) == 0:
            raise _ProtocolError(-errno.EINVAL)
        try:
            chans = dev.channels_in_mask(args[2])
        except ValueError:
            raise _ProtocolError(-errno.EINVAL) from None
        if not chans or dev.id not in (ADC, DDS) or dev.id in buffers:
            raise _ProtocolError(-errno.EINVAL if not chans or dev.id not in (ADC, DDS) else -errno.EBUSY)
        if dev.id == ADC:
            with self._conns_lock:
                if self._rx_owner is not None:
                    raise _ProtocolError(-errno.EBUSY)
                self._rx_owner = conn
        if dev.id == DDS and any(not c.output for c in chans):
            raise _ProtocolError(-errno.EINVAL)
        buffers[dev.id] = _OpenBuffer(dev, int(args[1]), args[2], cyclic, chans)
        if dev.id == DDS:
            self.rf.open_tx(cyclic)
        else:
            self.rf.start_rx()
        out.write(b"0\n")

    def _close_buffer(self, buf: _OpenBuffer, conn: socket.socket) -> None:
        if buf.dev.id == ADC:
            with self._conns_lock:
                if self._rx_owner is conn:
                    self._rx_owner = None
        else:
            self.rf.close_tx(buf.cyclic)

    @staticmethod
    def _frame_bytes(buf: _OpenBuffer) -> int:
        return sum(c.sample_bytes for c in buf.channels)

    def _readbuf(self, args: list[str], out: Any, buffers: dict) -> None:
        dev = self._dev(args[0])
        buf = buffers.get(dev.id)
        if buf is None or dev.id != ADC:
            raise _ProtocolError(-errno.EBADF)
        if not args[1].isdigit():
            raise _ProtocolError(-errno.EINVAL)
        nbytes, frame = int(args[1]), self._frame_bytes(buf)
        if nbytes == 0 or nbytes % frame or nbytes > MAX_BUFFER_BYTES:
            raise _ProtocolError(-errno.EINVAL)
        iq = self.rf.read_adc(nbytes // frame)
        cols = [c.scan_index for c in sorted(buf.channels, key=lambda c: c.scan_index)]
        words = iq if cols == [0, 1] else np.ascontiguousarray(iq[:, cols])
        data = words.astype("<i2", copy=False).tobytes()
        out.write(b"%d\n" % len(data) + buf.mask.encode() + b"\n" + data)

    def _writebuf(self, args: list[str], rfile: BinaryIO, out: Any, buffers: dict) -> None:
        dev = self._dev(args[0])
        buf = buffers.get(dev.id)
        if not args[1].isdigit():
            raise _ProtocolError(-errno.EINVAL)
        nbytes = int(args[1])
        if buf is None or dev.id != DDS:
            raise _ProtocolError(-errno.EBADF)
        frame = self._frame_bytes(buf)
        if nbytes == 0 or nbytes % frame or nbytes > MAX_BUFFER_BYTES:
            raise _ProtocolError(-errno.EINVAL)
        out.write(b"0\n")
        payload = rfile.read(nbytes)
        if len(payload) < nbytes:
            raise OSError("client closed during WRITEBUF")
        words = np.frombuffer(payload, dtype="<i2").reshape(-1, len(buf.channels))
        iq = np.zeros((len(words), 2), np.int16)
        for col, ch in enumerate(sorted(buf.channels, key=lambda c: c.scan_index)):
            iq[:, ch.scan_index] = words[:, col]
        self.rf.write_tx(iq, buf.cyclic)
        out.write(b"%d\n" % nbytes)
