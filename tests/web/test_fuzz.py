"""Schemathesis against the app's own OpenAPI document, in-process (ASGI):
every documented operation, fuzzed, with a valid API key; no 5xx, and every
response matches its documented schema.

The app is built at import because schemathesis' pytest integration needs the
schema when tests are collected (its lazy fixture form breaks on pytest 9).
"""

from __future__ import annotations

import atexit
import shutil
import time

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support import new_home
from tests.web.conftest import API_KEY, build_env, seed_event

_home = new_home()
_env = build_env(_home, arming_owner=True)
seed_event(_env, "ev1", time.time() - 60)  # real rows, so lookups also hit found paths
# An endless stream cannot finish inside one fuzz case; it has its own tests.
schema = schemathesis.openapi.from_asgi("/openapi.json", _env.client.app,
                                        headers={"X-API-Key": API_KEY}
                                        ).exclude(path="/stream.mjpg")


@atexit.register
def _cleanup() -> None:  # at exit, since the module is imported even when deselected
    _env.catalogue.close()
    shutil.rmtree(_home.root, ignore_errors=True)


def test_schema_documents_the_api() -> None:
    paths = _env.client.get("/openapi.json", headers={"X-API-Key": API_KEY}).json()["paths"]
    for expected in ("/api/status", "/api/arm", "/api/disarm", "/api/events",
                     "/api/events/{event_id}/label", "/api/recordings/{clip_id}/video.mp4",
                     "/api/snapshot.jpg", "/stream.mjpg", "/login"):
        assert expected in paths


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_has_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": API_KEY},
                           checks=[not_a_server_error, response_schema_conformance])
