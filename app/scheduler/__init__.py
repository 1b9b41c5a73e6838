"""Window batching across requests (see window_scheduler.py)."""
