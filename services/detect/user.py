"""User-defined detection: ``detector = "module:function"``.

The function is imported once at start. It takes either nothing or one
argument, the frame's luma plane (uint8 numpy array, h x w), and returns
``True``/``False`` or a list of boxes ``[x, y, w, h]``: normalised (0..1) when
every value is at most 1, else pixels of the frame it was given. An empty list
means no motion.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

UserResult = tuple[bool, list[list[float]]]


def load_user_detector(spec: str) -> Callable[[np.ndarray], UserResult]:
    """The wrapped function, or ``ValueError`` naming what is wrong."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"detect.detector: {spec!r} is not module:function")
    if str(Path.cwd()) not in sys.path:  # a customize.py next to the config
        sys.path.append(str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any error in user code is a config problem
        raise ValueError(f"detect.detector: cannot import {module_name!r} ({exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(  # noqa: TRY004 - a config error, reported like the others
f"detect.detector: {module_name!r} has no function {func_name!r}")
    try:
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                         p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = [None]  # a builtin without a signature: give it the frame
    if len(params) > 1:
        raise ValueError(f"detect.detector: {spec} must take no argument or one (the frame)")
    takes_frame = len(params) == 1

    def run(luma: np.ndarray) -> UserResult:
        result = func(luma) if takes_frame else func()
        return normalise_result(result, luma.shape[1], luma.shape[0], spec)

    return run


def normalise_result(result: Any, width: int, height: int, spec: str = "detector") -> UserResult:
    if isinstance(result, (bool, np.bool_)):
        return bool(result), []
    if result is None:
        return False, []
    try:
        boxes = [[float(v) for v in box] for box in result]
    except (TypeError, ValueError):
        raise TypeError(f"{spec} returned {type(result).__name__}; want a bool or a list of "
                        "[x, y, w, h] boxes") from None
    if any(len(b) != 4 for b in boxes):
        raise TypeError(f"{spec} returned a box without 4 values")
    if boxes and max(max(b) for b in boxes) > 1.0:
        boxes = [[b[0] / width, b[1] / height, b[2] / width, b[3] / height] for b in boxes]
    clipped = []
    for x, y, w, h in boxes:
        x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
        if x1 > x0 and y1 > y0:
            clipped.append([x0, y0, x1 - x0, y1 - y0])
    return bool(clipped), clipped
