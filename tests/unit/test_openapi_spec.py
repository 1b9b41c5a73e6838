"""The OpenAPI spec documents the responses the service really sends: the error statuses
in each family's shape, no 422 (validation failures are 400s), the real content types."""

from __future__ import annotations

from typing import Any

from app.api.error_handlers import allowed_methods
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


def test_upload_forms_are_typed_and_require_the_file() -> None:
    document = spec()
    schemas = document["components"]["schemas"]
    for path, field in (
        ("/asr", "audio_file"),
        ("/v1/audio/transcriptions", "file"),
        ("/v1/jobs", "file"),
    ):
        body = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert body["encoding"][field]["contentType"].startswith("audio/*")
        form = schemas[body["schema"]["$ref"].split("/")[-1]]
        assert form["required"] == [field], path
        for name, prop in form["properties"].items():  # a form field is absent, never null
            assert "anyOf" not in prop, (path, name)
    openai = schemas["Body_transcriptions_v1_audio_transcriptions_post"]["properties"]
    assert openai["temperature"] == {**openai["temperature"], "type": "number", "maximum": 1.0}
    assert openai["stream"]["type"] == "boolean"
    assert "diarized_json" in openai["response_format"]["enum"]
    asr = {p["name"]: p["schema"] for p in document["paths"]["/asr"]["post"]["parameters"]}
    assert asr["diarize"]["type"] == "boolean" and asr["num_speakers"]["minimum"] == 1


def test_answers_and_events_have_schemas() -> None:
    document = spec()
    paths = document["paths"]
    audio = paths["/v1/audio/transcriptions"]["post"]["responses"]["200"]["content"]
    refs = [s["$ref"] for s in audio["application/json"]["schema"]["anyOf"]]
    assert [r.split("/")[-1] for r in refs] == [
        "TranscriptionJson",
        "VerboseTranscription",
        "DiarizedTranscription",
    ]
    event = audio["text/event-stream"]["schema"]["properties"]["data"]["contentSchema"]
    names = {s["$ref"].split("/")[-1] for s in event["anyOf"]}
    assert names == {"TextDelta", "DiarizedSegment", "TextDone", "StreamError"}
    assert names <= set(document["components"]["schemas"])  # every reference resolves
    asr = paths["/asr"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert asr["$ref"].endswith("/AsrTranscript")
    submitted = paths["/v1/jobs"]["post"]["responses"]["202"]
    assert submitted["content"]["application/json"]["schema"]["$ref"].endswith("/JobObject")
    assert {"GetJob", "GetJobResult", "DeleteJob"} <= set(submitted["links"])
    result = {p["name"]: p for p in paths["/v1/jobs/{job_id}/result"]["get"]["parameters"]}
    assert "application/json" in result["speakers"]["content"]


def test_a_405_allows_every_method_of_the_path() -> None:
    app = create_app(Settings(_env_file=None))
    scope = {"type": "http", "method": "PUT", "path": "/v1/jobs", "root_path": "", "headers": []}
    assert allowed_methods(app, scope) == "GET, POST"
    assert allowed_methods(app, {**scope, "path": "/v1/jobs/abc"}) == "GET, DELETE"
