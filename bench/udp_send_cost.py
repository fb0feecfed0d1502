"""What one UDP send costs here, and whether batching with sendmmsg(2) would help the forwarder.

    python -m bench.udp_send_cost [--messages 200000] [--batch 32]

A receiver process on CPU 0 drains a loopback socket; this process, on
CPU 1, sends ``--messages`` 60-byte datagrams to it three ways: one
``sendto`` each; ``sendmmsg`` batches whose headers are filled from Python
through ctypes for every batch (what a forwarder would have to do); and
``sendmmsg`` of one prefilled batch again and again (the kernel's cost
alone, the best batching could ever do). A forwarded query costs dnscock
two sends (to the upstream, back to the client): if the kernel's part of a
send does not shrink with batching, the forwarded-uncached bar of the
benchmark is out of reach this way.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import socket
import struct
import time


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t), ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def _receiver(sock: socket.socket) -> int:
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {0})
        sock.settimeout(2)
        try:
            while True:
                sock.recv(2048)
        except OSError:
            os._exit(0)
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    port = receiver.getsockname()[1]
    pid = _receiver(receiver)
    os.sched_setaffinity(0, {1})
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data, address, count, batch = b"x" * 60, ("127.0.0.1", port), args.messages, args.batch

    start = time.perf_counter()
    for _ in range(count):
        sender.sendto(data, address)
    print(f"sendto, one per datagram:          {(time.perf_counter() - start) / count * 1e6:5.2f} us per datagram")

    iovecs, messages = (_Iovec * batch)(), (_Mmsghdr * batch)()
    name = ctypes.create_string_buffer(struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port,
                                                                                     socket.inet_aton("127.0.0.1")), 16)

    def fill() -> None:
        for i in range(batch):
            iovecs[i].iov_base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
            iovecs[i].iov_len = len(data)
            header = messages[i].msg_hdr
            header.msg_name, header.msg_namelen = ctypes.addressof(name), 16
            header.msg_iov, header.msg_iovlen = ctypes.pointer(iovecs[i]), 1

    start = time.perf_counter()
    for _ in range(count // batch):
        fill()
        libc.sendmmsg(sender.fileno(), messages, batch, 0)
    print(f"sendmmsg({batch}), filled from Python: {(time.perf_counter() - start) / count * 1e6:5.2f} us per datagram")

    fill()
    start = time.perf_counter()
    for _ in range(count // batch):
        libc.sendmmsg(sender.fileno(), messages, batch, 0)
    print(f"sendmmsg({batch}), prefilled (kernel): {(time.perf_counter() - start) / count * 1e6:5.2f} us per datagram")
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
