"""The frames between a caller and a dirty worker, over one unix stream
connection per call (docs/dirty.md, "IPC"):

    header: payload length (4 bytes, big-endian) and type (1 byte)
    payload: a pickle (protocol 5) of the type's value

REQUEST (action, args, kwargs) goes one way; RESULT value, ERROR dict
(DirtyError.to_dict()), CHUNK value ... END come back. Pickle, not a
restricted encoding: both ends are the same application under the same
user (the sockets sit in a 0700 directory), any picklable value passes,
and the C pickler is the cheapest encoder Python has.
"""
import pickle
import struct

REQUEST, RESULT, ERROR, CHUNK, END = 1, 2, 3, 4, 5
HEADER = struct.Struct("!IB")
MAX_PAYLOAD = 1 << 31

_dumps = pickle.dumps
_loads = pickle.loads


def pack(kind, value):
    """[header, payload] for sendmsg (no copy of a large payload)."""
    payload = _dumps(value, 5)
    if len(payload) >= MAX_PAYLOAD:
        raise ValueError("dirty payload of %d bytes is too large" % len(payload))
    return [HEADER.pack(len(payload), kind), payload]


def send(sock, kind, value):
    parts = pack(kind, value)
    if len(parts[1]) < 65536:
        sock.sendall(parts[0] + parts[1])
    else:
        sock.sendall(parts[0])
        sock.sendall(parts[1])


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


def recv(sock):
    """(kind, value); EOFError when the peer closed first."""
    size, kind = HEADER.unpack(_recv_exact(sock, HEADER.size))
    payload = _recv_exact(sock, size) if size else b""
    return kind, (_loads(payload) if size else None)


async def recv_async(reader):
    size, kind = HEADER.unpack(await reader.readexactly(HEADER.size))
    payload = await reader.readexactly(size) if size else b""
    return kind, (_loads(payload) if size else None)
