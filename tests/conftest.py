"""Fixtures shared across test folders."""

import ee
import pytest
from ee import apitestcase


@pytest.fixture
def ee_offline(monkeypatch):
    """The real ee client with the wheel's algorithm list and no network (ee.apitestcase's hooks)."""
    monkeypatch.setattr(ee.data, "getAlgorithms", apitestcase.GetAlgorithms)
    monkeypatch.setattr(ee.data, "_install_cloud_api_resource", lambda: None)
    monkeypatch.setattr(ee.data, "computeValue", lambda expr: pytest.fail("a test tried to reach Earth Engine"))
    ee.Initialize(None, "", project="offline-test")
    yield
    ee.Reset()
