"""A stand-in for ``load_delegate('libedgetpu.so.1')`` (backend option ``delegate_loader``).

It checks that the delegate library the backend was configured with exists (the test puts a file
there), records the call, and returns None: the backend then runs the compiled model on LiteRT's CPU
interpreter, which works because the fake compiler's ``*_edgetpu.tflite`` is the plain int8 model.
``EAGLE_FAKE_DELEGATE_FAIL=1`` makes it fail the way LiteRT does when no Edge TPU is attached.
"""

from __future__ import annotations

import os

LOADED: list[str] = []


def load(path: str) -> None:
    if os.environ.get("EAGLE_FAKE_DELEGATE_FAIL") == "1" or not os.path.isfile(path):
        raise ValueError(f"Failed to load delegate from {path}\n")
    LOADED.append(path)
    return None
