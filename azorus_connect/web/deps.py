"""FastAPI dependencies shared by the core's routes and plugins' routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["get_hub"]


def get_hub(request: Request) -> Hub:
    """The hub serving this request (``Depends(get_hub)`` in a route)."""
    return request.app.state.hub  # type: ignore[no-any-return]
