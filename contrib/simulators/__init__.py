"""Local simulators of external systems, for tests and the demo."""
