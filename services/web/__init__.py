"""The web service: the page a person opens on a phone, and the API.

Run it alone with ``pisentry web [--config FILE]`` (``pisentry run`` starts it
with the rest); it listens on ``web.host:web.port`` (default
http://127.0.0.1:8080; https with ``web.certfile_path`` and ``keyfile_path``).
On first start with no password it prints one, once, and keeps only its scrypt
hash in ``$PISENTRY_HOME/state``; ``pisentry set-password`` changes it and
logs every session out. Machines use ``web.api_key`` in the
``web.api_key_header_name`` header (``X-API-Key``). The OpenAPI document is
at ``/openapi.json`` (logged in).

Pages: ``/`` live grid with arm/disarm and live events, ``/events`` a day's
timeline with thumbnails and an hourly chart, ``/player?event=ID`` the clip
player with the real/false-alarm verdict, ``/health``, ``/config``.

Live view, three ways, each encoded or remuxed once for all viewers and not
at all with none: ``/stream.mjpg?fps=`` (MJPEG, capped by
``web.max_stream_fps``), ``/ws/live`` (JPEG over WebSocket, the next frame only
after the page acknowledges the last), ``/ws/h264`` (the camera's own h264 as
fragmented MP4 for Media Source Extensions; about a third of MJPEG's bytes on
the synthetic scene). Figures: ``bench/stream.py``.

Modules: ``service`` (the shell: uvicorn and the bus on one loop), ``app``
(routes), ``guard`` (the one door every request passes), ``auth`` (password,
sessions, rate limit), ``live`` (JPEG fan-out), ``h264live`` (fMP4 fan-out),
``health`` (heartbeats and host figures), ``feed`` (live events for pages),
``cli`` (``pisentry web``, ``pisentry set-password``).
"""
