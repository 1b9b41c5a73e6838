"""Transcription jobs: persisted in a database, run by a worker, announced by webhooks."""
