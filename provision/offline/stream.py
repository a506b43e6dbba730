"""One response body into one file, hashed on the way: the download core's inner loop.

Three ways in, the fastest that applies first. Each writes what has arrived (a kill loses at
most one read), reports it, and raises `Stalled` when no byte came for `stall` seconds:

  splice    plain HTTP on Linux, a body of known length: the kernel moves the bytes socket ->
            pipe -> file, never through Python; a second thread hashes them from the page cache
            right behind the writer, at most LAG bytes behind.
  read1     TLS, chunked bodies: http.client's read1 (what has arrived), os.write; a large body
            is hashed by the same second thread, a small one inline.
  urllib3   anything else (a response object that is not http.client's): urllib3's read1.

Both threads release the GIL for their large operations (splice, write, hashlib on buffers of
MiBs), so on two cores receiving and hashing overlap: one pass, as before, but not in series.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
from collections.abc import Callable

READ = 1 << 20  # bytes per read or splice: small enough that a kill loses little
BIG = 8 << 20  # bodies from this size on are hashed in the second thread
LAG = 64 << 20  # how far the hashing thread may fall behind the writer (page cache it keeps hot)
CHUNK = 4 << 20  # bytes the hashing thread reads back at a time (pread: measured as fast as mmap
#                 behind splice, and faster behind os.write, where unmapping interrupts the writer)
BATCH = 4 << 20  # the hashing thread wakes for this many new bytes (or the end)


class Stalled(Exception):
    """No byte arrived for `seconds`: the caller drops the connection and resumes with Range."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no bytes for {seconds:g} s")
        self.seconds = seconds


class WriteFailed(Exception):
    """Writing the file failed (a full disk, say): not the connection's fault, never retried."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class Digests:
    """The running hashes of a file's first `size` bytes (sha256, and md5 when it is checked)."""

    def __init__(self, md5: bool = False) -> None:
        self.md5 = md5
        self.reset()

    def reset(self) -> None:
        self.h = {"sha256": hashlib.sha256()} | ({"md5": hashlib.md5()} if self.md5 else {})
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        for h in self.h.values():
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {k: h.hexdigest() for k, h in self.h.items()}

    def catch_up(self, fd: int, upto: int) -> None:
        """Hash the file's bytes from `size` to `upto`, read back from the page cache (they were
        just written, or an earlier attempt or run wrote them)."""
        while self.size < upto:
            data = os.pread(fd, min(upto - self.size, CHUNK), self.size)
            if not data:
                raise OSError(f"the file ends at {self.size} bytes, {upto} were written")
            self.update(data)


class Follower:
    """Hashes a file in a second thread as the writer `mark()`s its progress."""

    def __init__(self, fd: int, digests: Digests, written: int) -> None:
        self.fd, self.digests = fd, digests
        self.written = written
        self.error: BaseException | None = None
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="provision-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self.written - self.digests.size < BATCH and not self._done:
                        self._cond.wait()
                    upto, done = self.written, self._done
                if upto > self.digests.size:
                    self.digests.catch_up(self.fd, upto)
                    with self._cond:
                        self._cond.notify_all()
                elif done:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the writer's thread in finish()
            with self._cond:
                self.error = e
                self._cond.notify_all()

    def mark(self, written: int) -> None:
        with self._cond:
            self.written = written
            self._cond.notify_all()
            while self.written - self.digests.size > LAG and self.error is None:
                self._cond.wait()

    def finish(self) -> None:
        """Wait until every written byte is hashed."""
        with self._cond:
            self._done = True
            self._cond.notify_all()
        self._thread.join()
        if self.error is not None:
            raise self.error


def _http_client_response(raw: object) -> object | None:
    """The http.client response under urllib3's (a private attribute, checked, never assumed)."""
    import http.client

    fp = getattr(raw, "_fp", None)
    return fp if isinstance(fp, http.client.HTTPResponse) else None


def _socket(raw: object) -> socket.socket | None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def receive(raw: object, fd: int, start: int, digests: Digests, length: int | None, stall: float,
            on_bytes: Callable[[int], None], splice: bool = True) -> int:
    """Write the body of `raw` (urllib3's response) to `fd` from offset `start`, hashing it into
    `digests` (which holds the hash of the file's first `digests.size` bytes: it catches up on
    the rest of the first `start` bytes itself). `length`: the body's size, if the server said.
    Returns the bytes received; a short count means the connection ended early."""
    os.lseek(fd, start, os.SEEK_SET)
    hr = _http_client_response(raw)
    sock = _socket(raw)
    if sock is not None:
        sock.settimeout(stall)  # the read timeout was for the response to start; now a stall
    plain = type(sock) is socket.socket  # an ssl.SSLSocket's bytes need decrypting in Python
    big = length is None or length >= BIG or start - digests.size >= BIG
    follower = Follower(fd, digests, start) if big else None
    if follower is None:
        digests.catch_up(fd, start)
    try:
        if (splice and plain and hr is not None and length is not None and hasattr(os, "splice")
                and not hr.chunked and follower is not None):
            got = _splice(hr, sock, fd, start, length, stall, on_bytes, follower)
        elif hr is not None:
            got = _http_read1(hr, fd, start, stall, on_bytes, follower, digests, sock is not None)
        else:
            got = _read1(raw, fd, start, stall, on_bytes, follower, digests)
    finally:
        if follower is not None:
            follower.finish()
    return got


def reusable(raw: object) -> bool:
    """After `receive`: did http.client read the body to its very end, so that the connection
    can serve the next request (never after splice, which bypasses http.client's count)?"""
    hr = _http_client_response(raw)
    return hr is not None and hr.isclosed()


def _write(fd: int, view: memoryview) -> None:
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise WriteFailed(e) from None


def _pump(read: Callable[[], bytes], fd: int, start: int, on_bytes: Callable[[int], None],
          follower: Follower | None, digests: Digests) -> int:
    """Write what each read returns until it returns nothing; hash it here (small files) or
    let the follower hash it from the file (large ones). Returns the bytes written."""
    got = 0
    while data := read():
        _write(fd, memoryview(data))
        got += len(data)
        if follower is not None:
            follower.mark(start + got)
        else:
            digests.update(data)
        on_bytes(len(data))
    return got


def _http_read1(hr, fd: int, start: int, stall: float, on_bytes: Callable[[int], None],  # type: ignore[no-untyped-def]
                follower: Follower | None, digests: Digests, timed: bool) -> int:
    """http.client's read1: whatever has arrived (never waiting to fill a buffer, so a kill or a
    stall loses at most what is in flight), through its length and chunked bookkeeping, so
    the connection can serve the next file."""
    def read() -> bytes:
        try:
            return hr.read1(READ)
        except TimeoutError:  # socket.timeout: the socket's timeout is the stall limit now
            if timed:
                raise Stalled(stall) from None
            raise

    return _pump(read, fd, start, on_bytes, follower, digests)


def _read1(raw, fd: int, start: int, stall: float, on_bytes: Callable[[int], None],  # type: ignore[no-untyped-def]
           follower: Follower | None, digests: Digests) -> int:
    from urllib3.exceptions import ReadTimeoutError

    def read() -> bytes:
        try:
            return raw.read1(READ)
        except ReadTimeoutError:
            raise Stalled(stall) from None

    return _pump(read, fd, start, on_bytes, follower, digests)


def _splice(hr, sock: socket.socket, fd: int, start: int, length: int, stall: float,  # type: ignore[no-untyped-def]
            on_bytes: Callable[[int], None], follower: Follower) -> int:
    """socket -> pipe -> file in the kernel. http.client may hold the body's first bytes in its
    buffer (read with the headers): those go first. The response is not reusable afterwards
    (http.client's count is bypassed): the caller closes it, which drops the connection."""
    got = 0
    try:
        head = hr.fp.peek(1)  # what http.client read beyond the headers (or one read, if none)
    except TimeoutError:
        raise Stalled(stall) from None
    head = hr.fp.read1(min(len(head), length)) if head and length else b""
    if head:
        _write(fd, memoryview(head))
        got += len(head)
        follower.mark(start + got)
        on_bytes(len(head))
    sfd = sock.fileno()
    rd, wr = os.pipe()
    try:
        try:
            import fcntl

            fcntl.fcntl(wr, fcntl.F_SETPIPE_SZ, READ)
        except (ImportError, AttributeError, OSError):
            pass  # the default pipe (64 KiB) works, with more calls
        while got < length:
            try:
                n = os.splice(sfd, wr, min(READ, length - got))
            except BlockingIOError:
                if not select.select([sock], [], [], stall)[0]:
                    raise Stalled(stall) from None
                continue
            if n == 0:  # the server closed the connection early
                break
            moved = 0
            try:
                while moved < n:
                    moved += os.splice(rd, fd, n - moved)
            except OSError as e:
                raise WriteFailed(e) from None
            got += n
            follower.mark(start + got)
            on_bytes(n)
    finally:
        os.close(rd)
        os.close(wr)
    return got
