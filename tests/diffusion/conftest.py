"""Tiny networks run fastest single-threaded (and stay fast on a busy shared machine)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread (the root conftest's fixture)."""
    yield
