"""Misbehaving HTTP servers on loopback (real sockets), for deadline tests: one that accepts and
never answers, one that sends its answer a byte at a time, one that fails with 503 twice."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

ANSWER = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"__name__": "up"}, "value": [0, "1"]}]}}).encode()


class MisbehavingServer:
    """A TCP server on loopback whose every connection is handled by `behave(conn, attempt)`."""

    def __init__(self, behave: Callable[[socket.socket, int], None]):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._behave, self._stop, self.attempts = behave, threading.Event(), 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.attempts += 1
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn, self.attempts), daemon=True).start()

    def _handle(self, conn: socket.socket, attempt: int) -> None:
        try:
            conn.recv(65536)  # the request
            self._behave(conn, attempt)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._open:
            conn.close()


def hang(conn: socket.socket, attempt: int) -> None:
    time.sleep(60)  # accepted, never answered


def trickle(conn: socket.socket, attempt: int) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(ANSWER))
    for byte in ANSWER:
        conn.sendall(bytes([byte]))
        time.sleep(0.25)  # well inside any socket timeout: only a total deadline ends it


def fail_twice(conn: socket.socket, attempt: int) -> None:
    if attempt <= 2:
        body = b'{"status":"error","error":"overloaded"}'
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
    conn.close()
