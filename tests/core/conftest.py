from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from azorus_connect import Hub
from azorus_connect.plugins import PluginHost

from . import echo_plugin


@pytest.fixture(scope="session")
def echo_plugins() -> PluginHost:
    return PluginHost.load(extra=[echo_plugin])


def echo_config(url: str = "http://127.0.0.1:9/", **extra: Any) -> dict[str, Any]:
    """Two echo connections: `left` receives everything, `right` sends persons and enquiries."""
    both = {"person": "both", "enquiry": "both", "application": "both", "reference": "receive"}
    config: dict[str, Any] = {
        "connections": {
            "left": {"type": "echo", "directions": both, "settings": {"url": url}, "retry_delays": [0]},
            "right": {"type": "echo", "directions": both, "settings": {"url": url}, "retry_delays": [0]},
        }
    }
    for key, value in extra.items():
        config[key] = value
    return config


@pytest.fixture
def echo_hub(make_hub: Callable[..., Hub], echo_plugins: PluginHost) -> Callable[..., Hub]:
    def factory(config: dict[str, Any] | None = None) -> Hub:
        return make_hub(config if config is not None else echo_config(), plugins=echo_plugins)

    return factory
