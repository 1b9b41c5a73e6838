"""The OpenAPI spec documents the responses the service really sends: the error statuses
in each family's shape, no 422 (validation failures are 400s), the real content types."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.factory import create_app


def spec() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()


def test_every_operation_declares_its_errors_and_none_declares_422() -> None:
    paths = spec()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path != "/health":
                assert "401" in responses, (method, path)  # when API_KEYS is set
    for path in ("/asr", "/v1/audio/transcriptions", "/v1/jobs"):
        assert {"400", "413", "503"} <= set(paths[path]["post"]["responses"]), path
    assert {"404", "409"} <= set(paths["/v1/jobs/{job_id}/result"]["get"]["responses"])
    assert "404" in paths["/v1/models/{model_id}"]["get"]["responses"]


def test_error_shapes_and_content_types() -> None:
    document = spec()
    schemas = document["components"]["schemas"]
    assert set(schemas["OpenAIError"]["properties"]) == {"error"}
    assert set(schemas["DetailError"]["properties"]) == {"detail"}
    v1 = document["paths"]["/v1/audio/transcriptions"]["post"]["responses"]
    assert v1["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIError")
    asr = document["paths"]["/asr"]["post"]["responses"]
    assert asr["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/DetailError")
    assert "text/event-stream" in v1["200"]["content"]
    assert {"application/x-subrip", "text/vtt"} <= set(asr["200"]["content"])
    assert list(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain"
    ]
    assert "HTTPValidationError" not in document["components"]["schemas"]
