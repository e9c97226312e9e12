"""A real MJPEG-over-HTTP camera on loopback, serving JPEGs of real footage."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = b"pisentryframe"


class MjpegCamera:
    def __init__(self, jpegs: list[bytes], fps: float = 15.0, port: int = 0,
                 lengths: bool = True, basic_auth: str | None = None) -> None:
        """``lengths``: each part says its Content-Length (some cameras do
        not); ``basic_auth``: "user:password" the camera asks for."""
        self.jpegs, self.fps, self.port = jpegs, fps, port
        self.lengths, self.basic_auth = lengths, basic_auth
        self.served = 0
        self._server: ThreadingHTTPServer | None = None
        self._running = threading.Event()

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if camera.basic_auth is not None:
                    want = "Basic " + base64.b64encode(camera.basic_auth.encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                        self.end_headers()
                        return
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.end_headers()
                i = 0
                due = time.monotonic()
                try:
                    while camera._running.is_set():
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        length = f"Content-Length: {len(jpeg)}\r\n" if camera.lengths else ""
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                         + f"{length}\r\n".encode() + jpeg + b"\r\n")
                        camera.served += 1
                        i += 1
                        # On a schedule, as a camera's sensor is: the time the
                        # write took (a loaded machine) does not lower the
                        # rate; a camera that fell behind does not burst.
                        due = max(due + 1 / camera.fps, time.monotonic())
                        time.sleep(due - time.monotonic())
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
