"""The frames between a caller and a dirty worker, over one unix stream
connection per call (docs/dirty.md, "IPC"):

    header   type (1 byte), pickle length (4), buffer count (4), big-endian
    lengths  one 8-byte length per out-of-band buffer
    pickle   protocol 5, of the type's value
    buffers  the out-of-band buffers, raw

REQUEST (action, args, kwargs) goes one way; RESULT value, ERROR dict
(DirtyError.to_dict()), CHUNK value ... END come back. A bytes object of
64 KiB or more among the arguments or the result travels as an
out-of-band buffer: sent from its own memory, received by the C helper
straight into the bytes object the other side gets (no pickle copy on
either side). Pickle, not a restricted encoding: both ends are the same
application under the same user (the sockets sit in a 0700 directory),
any picklable value passes, and the C pickler is the cheapest encoder
Python has.
"""
import io
import pickle
import struct

try:
    from cgunicorn._core import _dirty_recv_bytes
except ImportError:  # pragma: no cover - _core is always there in a server
    _dirty_recv_bytes = None

REQUEST, RESULT, ERROR, CHUNK, END = 1, 2, 3, 4, 5
HEADER = struct.Struct("!BII")
LENGTH = struct.Struct("!Q")
OOB_MIN = 64 * 1024
MAX_PICKLE = (1 << 32) - 1

_dumps = pickle.dumps
_loads = pickle.loads
_PickleBuffer = pickle.PickleBuffer


def _bytes_from(buf):
    return buf if type(buf) is bytes else bytes(buf)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if type(obj) is bytes and len(obj) >= OOB_MIN:
            return _bytes_from, (_PickleBuffer(obj),)
        return NotImplemented


def _has_big_bytes(kind, value):
    if kind == REQUEST:
        _, args, kwargs = value
        items = list(args) + list(kwargs.values())
    else:
        items = (value,)
    return any(type(v) is bytes and len(v) >= OOB_MIN for v in items)


def pack(kind, value):
    """[head, buffer, ...]: head holds header, lengths and pickle; the
    buffers are the big bytes objects themselves (not copied)."""
    bufs = []
    if _has_big_bytes(kind, value):
        f = io.BytesIO()
        _Pickler(f, 5, buffer_callback=bufs.append).dump(value)
        payload = f.getvalue()
    else:
        payload = _dumps(value, 5)
    if len(payload) > MAX_PICKLE:
        raise ValueError("dirty payload of %d bytes is too large" % len(payload))
    views = [b.raw() for b in bufs]
    head = [HEADER.pack(kind, len(payload), len(views))]
    head += [LENGTH.pack(v.nbytes) for v in views]
    head.append(payload)
    return [b"".join(head)] + views


def send(sock, kind, value):
    for part in pack(kind, value):
        sock.sendall(part)


def _recv_exact(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise EOFError("connection closed")
        got += k
    return buf


def _recv_buffer(sock, n):
    if _dirty_recv_bytes is None:
        return bytes(_recv_exact(sock, n))
    try:
        return _dirty_recv_bytes(sock.fileno(), n, sock.gettimeout())
    except TimeoutError:
        import socket
        raise socket.timeout("timed out") from None


def recv(sock):
    """(kind, value); EOFError when the peer closed first."""
    kind, size, nbufs = HEADER.unpack(_recv_exact(sock, HEADER.size))
    lengths = []
    if nbufs:
        raw = _recv_exact(sock, LENGTH.size * nbufs)
        lengths = [LENGTH.unpack_from(raw, i * LENGTH.size)[0] for i in range(nbufs)]
    payload = _recv_exact(sock, size) if size else None
    buffers = [_recv_buffer(sock, n) for n in lengths]
    if payload is None:
        return kind, None
    return kind, _loads(payload, buffers=buffers) if buffers else _loads(payload)


async def recv_async(reader):
    kind, size, nbufs = HEADER.unpack(await reader.readexactly(HEADER.size))
    lengths = []
    if nbufs:
        raw = await reader.readexactly(LENGTH.size * nbufs)
        lengths = [LENGTH.unpack_from(raw, i * LENGTH.size)[0] for i in range(nbufs)]
    payload = await reader.readexactly(size) if size else None
    buffers = [await reader.readexactly(n) for n in lengths]
    if payload is None:
        return kind, None
    return kind, _loads(payload, buffers=buffers) if buffers else _loads(payload)
