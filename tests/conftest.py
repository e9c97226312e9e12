import shutil
from collections.abc import Iterator

import pytest

from common.paths import Home
from tests.support import new_home


@pytest.fixture
def home() -> Iterator[Home]:
    h = new_home()
    yield h
    shutil.rmtree(h.root, ignore_errors=True)



# ./test.sh runs two workers (pytest-xdist), each taking whole files, so a
# module's fixtures are made once, on one worker. The files that start a whole
# `pisentry run` (six services, the synthetic camera at 15 fps) and time real
# behaviour are one unit, run one after another on one worker: two of them at
# once on two cores slowed each to three times its length, starved a
# restarting service and kept a first frame off the bus for 15 s.
WHOLE_PIPELINE = ("tests/system/", "tests/capture/test_pipeline.py",
                  "tests/common/test_supervisor_client.py", "tests/web/test_browser.py",
                  "tests/web/test_motion_browser.py", "tests/web/test_settings_browser.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class OnePipelineAtATime(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return "whole-pipeline" if path.startswith(WHOLE_PIPELINE) else path

    return OnePipelineAtATime(config, log)
