"""The frames between a caller and a dirty worker, over one unix stream
connection per call (docs/dirty.md, "IPC"):

    header   type (1 byte), pickle length (4), buffer count (4), big-endian
    lengths  one 8-byte length per out-of-band buffer (top bit: writable)
    pickle   protocol 5, of the type's value
    buffers  the out-of-band buffers, raw

REQUEST (action, args, kwargs) goes one way; RESULT value, ERROR dict
(DirtyError.to_dict()), CHUNK value ... END come back.

Each bytes or bytearray of OOB_MIN bytes or more, and each memoryview,
inside the value (in lists, tuples and dict values) travels out-of-band:
sendmsg() sends it from its own memory and the receiver's recv() fills
the object pickle.loads() returns (bytes; a bytearray, or a memoryview
that was writable, arrives as a bytearray), so only the kernel copies it.
The sync side's framing and I/O are C (src/python/dirty.c, without the
GIL); the asyncio side writes and reads the same frames from Python.
Pickle, not a restricted encoding: both ends are the same application
under the same user (the sockets sit in a 0700 directory), any picklable
value passes, and the C pickler is the cheapest encoder Python has.
"""
import pickle
import struct

from cgunicorn._core import _dirty_prepare, _dirty_recv, _dirty_send

REQUEST, RESULT, ERROR, CHUNK, END = 1, 2, 3, 4, 5
HEADER = struct.Struct("!BII")
LENGTH = struct.Struct("!Q")
WRITABLE = 1 << 63
# below this a bytes object is cheaper to copy into the pickle than to
# give its own iovec and allocation
OOB_MIN = 16 * 1024
MAX_PICKLE = (1 << 32) - 1

_dumps = pickle.dumps
_loads = pickle.loads


def encode(value):
    """(pickle, [PickleBuffer, ...]) of value, its large buffers left out
    of the pickle (not copied). Raises what pickle raises."""
    bufs = []
    payload = _dumps(_dirty_prepare(value, OOB_MIN), 5, buffer_callback=bufs.append)
    if len(payload) > MAX_PICKLE:
        raise ValueError("dirty payload of %d bytes is too large" % len(payload))
    return payload, bufs


def send(sock, kind, encoded, timeout=None):
    """One frame of an encode()d value (the client encodes before it
    connects, so an unpicklable argument fails without a connection).
    timeout: seconds for the whole frame, None for none. Raises
    TimeoutError, OSError."""
    payload, bufs = encoded
    _dirty_send(sock.fileno(), kind, payload, bufs, timeout)


def send_value(sock, kind, value):
    """One frame of value, without a timeout; what pickle raises is raised
    before anything is sent."""
    send(sock, kind, encode(value))


def recv(sock, carry, timeout=None):
    """(kind, value) of the next frame; EOFError when the peer closed
    first, TimeoutError past timeout (seconds, None for none). carry: a
    bytearray kept for the connection (what was read past this frame)."""
    kind, payload, bufs = _dirty_recv(sock.fileno(), timeout, carry)
    if payload is None:
        return kind, None
    return kind, _loads(payload, buffers=bufs)


# ---- asyncio (the asgi worker's callers) --------------------------------

def frame(kind, payload, bufs):
    """The frame as a list of bytes-like parts, for a transport's write."""
    views = [b.raw() for b in bufs]
    head = HEADER.pack(kind, len(payload), len(views))
    if views:
        head += b"".join(LENGTH.pack(v.nbytes | (0 if v.readonly else WRITABLE))
                         for v in views)
    return [head, payload] + views


async def recv_async(reader):
    kind, size, nbufs = HEADER.unpack(await reader.readexactly(HEADER.size))
    lengths = []
    if nbufs:
        raw = await reader.readexactly(LENGTH.size * nbufs)
        lengths = [LENGTH.unpack_from(raw, i * LENGTH.size)[0] for i in range(nbufs)]
    payload = await reader.readexactly(size) if size else None
    buffers = []
    for n in lengths:
        data = await reader.readexactly(n & ~WRITABLE)
        buffers.append(bytearray(data) if n & WRITABLE else data)
    if payload is None:
        return kind, None
    return kind, _loads(payload, buffers=buffers)
