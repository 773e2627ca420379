"""azorus-connect: the integration hub between a university's CRM data and the systems around it."""

from __future__ import annotations

__version__ = "0.1.0"
