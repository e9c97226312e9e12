"""A real MJPEG-over-HTTP camera on loopback, serving JPEGs of real footage."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = b"pisentryframe"


class MjpegCamera:
    def __init__(self, jpegs: list[bytes], fps: float = 15.0, port: int = 0) -> None:
        self.jpegs, self.fps, self.port = jpegs, fps, port
        self.served = 0
        self._server: ThreadingHTTPServer | None = None
        self._running = threading.Event()

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.end_headers()
                i = 0
                try:
                    while camera._running.is_set():
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                                         + jpeg + b"\r\n")
                        camera.served += 1
                        i += 1
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._running.set()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def stop(self) -> None:
        self._running.clear()  # ends the streaming loops, which closes their connections
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
