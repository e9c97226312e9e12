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
