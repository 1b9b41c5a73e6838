"""Bad input gets a clear 4xx in the endpoint's own error shape, never a 500 or a hang."""

from __future__ import annotations

import base64
import io
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from audio_tools import CONVERSATION, FIXTURES, JFK, encode
from conftest import ServerFactory
from live_server import LiveServer

pytestmark = pytest.mark.e2e


def post_asr(client: httpx.Client, name: str, data: bytes, **params: str) -> httpx.Response:
    return client.post("/asr", params=params, files={"audio_file": (name, data)})


def post_v1(client: httpx.Client, name: str, data: bytes, **fields: str) -> httpx.Response:
    return client.post(
        "/v1/audio/transcriptions",
        data={"model": "tiny.en", **fields},
        files={"file": (name, data)},
    )


def assert_asr_error(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for needle in needles:
        assert needle in detail.lower(), detail


def assert_openai_error(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert response.headers["x-should-retry"] == "false"
    for needle in needles:
        assert needle in error["message"].lower(), error


def tone_wav(seconds: float) -> bytes:
    """A 16 kHz mono WAV of a 220 Hz tone."""
    samples = (np.sin(np.arange(int(seconds * 16000)) * 2 * np.pi * 220 / 16000) * 8000).astype(
        np.int16
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def truncated_wav(tmp_path: Path) -> bytes:
    wav = encode(CONVERSATION, tmp_path / "c.wav").read_bytes()
    return wav[: len(wav) // 3]


def test_empty_file(client: httpx.Client) -> None:
    assert_asr_error(post_asr(client, "a.wav", b""), 400, "empty")
    assert_openai_error(post_v1(client, "a.wav", b""), 400, "empty")


def test_random_bytes(client: httpx.Client) -> None:
    noise = os.urandom(64 * 1024)
    assert_asr_error(post_asr(client, "a.mp3", noise), 400, "could not be read")
    assert_openai_error(post_v1(client, "a.mp3", noise), 400, "could not be read")


def test_truncated_files(client: httpx.Client, tmp_path: Path) -> None:
    assert_asr_error(post_asr(client, "a.wav", truncated_wav(tmp_path)), 400, "truncated")
    m4a = encode(CONVERSATION, tmp_path / "c.m4a").read_bytes()
    assert_openai_error(post_v1(client, "a.m4a", m4a[: len(m4a) // 2]), 400)


def test_video_without_audio_track_is_rejected(client: httpx.Client, tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height = 64, 64
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert_asr_error(post_asr(client, "v.mp4", path.read_bytes()), 400, "no audio track")


def test_missing_file_field(client: httpx.Client) -> None:
    assert_asr_error(client.post("/asr", params={"model": "tiny.en"}), 400, "audio_file")
    for path in ("/v1/audio/transcriptions", "/v1/jobs"):  # multipart, but no file part
        response = client.post(path, files={"model": (None, "tiny.en")})
        assert_openai_error(response, 400, "file")
    # A body that cannot carry a file at all: 415, in each family's shape.
    urlencoded = client.post("/v1/audio/transcriptions", data={"model": "tiny.en"})
    assert_openai_error(urlencoded, 415, "multipart/form-data")
    as_json = client.post("/asr", json={"audio_file": "x"})
    assert_asr_error(as_json, 415, "multipart/form-data")


def test_unknown_model_names_what_is_available(client: httpx.Client) -> None:
    audio = JFK.read_bytes()
    assert_asr_error(post_asr(client, "a.flac", audio, model="large-v3"), 400, "base", "tiny.en")
    assert_asr_error(post_asr(client, "a.flac", audio, model="/etc/passwd"), 400, "unknown model")
    assert_openai_error(post_v1(client, "a.flac", audio, model="gpt-9"), 400, "unknown model")


def test_bad_formats_and_values(client: httpx.Client) -> None:
    audio = JFK.read_bytes()
    assert_openai_error(post_v1(client, "a.flac", audio, response_format="xml"), 400, "xml")
    assert_asr_error(post_asr(client, "a.flac", audio, output="docx"), 400, "docx")
    assert_asr_error(post_asr(client, "a.flac", audio, word_timestamps="maybe"), 400, "true")
    assert_asr_error(post_asr(client, "a.flac", audio, language="klingon"), 400, "klingon")
    assert_asr_error(post_asr(client, "a.flac", audio, min_speakers="3", max_speakers="2"), 400)
    assert_asr_error(post_asr(client, "a.flac", audio, num_speakers="-1"), 400, "num_speakers")
    assert_openai_error(post_v1(client, "a.flac", audio, temperature="7"), 400, "temperature")
    streamed_srt = post_v1(client, "a.flac", audio, stream="true", response_format="srt")
    assert_openai_error(streamed_srt, 400, "stream")
    assert_openai_error(post_v1(client, "a.flac", audio, colour="blue"), 400, "colour")
    response = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.flac", audio)},
        data={"model": "tiny.en", "timestamp_granularities[]": "word"},
    )
    assert_openai_error(response, 400, "verbose_json")


def test_english_only_model_refuses_other_languages(client: httpx.Client) -> None:
    audio = JFK.read_bytes()
    assert_asr_error(
        post_asr(client, "a.flac", audio, model="tiny.en", task="translate"), 400, "english-only"
    )
    assert_asr_error(
        post_asr(client, "a.flac", audio, model="tiny.en", language="de"), 400, "english-only"
    )


def test_odd_length_raw_pcm(client: httpx.Client) -> None:
    assert_asr_error(post_asr(client, "a.pcm", b"\x00" * 1001, encode="false"), 400, "odd")


@pytest.fixture(scope="module")
def small_limit_server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(MAX_FILE_SIZE_MB="0.2")


def test_oversize_upload_is_413(small_limit_server: LiveServer, tmp_path: Path) -> None:
    big = encode(CONVERSATION, tmp_path / "big.wav").read_bytes()  # ~0.55 MiB > 0.2 MiB
    with httpx.Client(base_url=small_limit_server.url, timeout=60) as c:
        assert_asr_error(post_asr(c, "big.wav", big), 413, "max_file_size_mb")
        assert_openai_error(post_v1(c, "big.wav", big), 413, "max_file_size_mb")

        # Chunked upload with no Content-Length: stopped while streaming, still a 413.
        def chunks() -> Iterator[bytes]:
            boundary = b"--xyz\r\n"
            yield (
                boundary
                + b'Content-Disposition: form-data; name="audio_file"; filename="b.wav"\r\n\r\n'
            )
            for i in range(0, len(big) * 4, 65536):
                yield (big * 4)[i : i + 65536]
            yield b"\r\n--xyz--\r\n"

        response = c.post(
            "/asr", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"}
        )
        assert_asr_error(response, 413, "max_file_size_mb")
        ok = post_asr(c, "jfk.flac", JFK.read_bytes(), model="tiny.en")  # 0.1 MiB: fits
        assert ok.status_code == 200, ok.text


def test_no_temporary_files_left_behind(client: httpx.Client, live_server: LiveServer) -> None:
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("asr-upload-*"))
    post_asr(client, "a.wav", b"")
    post_asr(client, "a.flac", JFK.read_bytes(), model="tiny.en")
    after = set(Path(tempfile.gettempdir()).glob("asr-upload-*"))
    assert after <= before
    assert "Traceback" not in live_server.logs()


def test_bad_known_speaker_references(client: httpx.Client, tmp_path: Path) -> None:
    def post(names: list[str], references: list[str], fmt: str = "diarized_json") -> httpx.Response:
        return client.post(
            "/v1/audio/transcriptions",
            data={
                "model": "tiny.en",
                "response_format": fmt,
                "known_speaker_names[]": names,
                "known_speaker_references[]": references,
            },
            files={"file": ("c.flac", CONVERSATION.read_bytes())},
        )

    def url(data: bytes, media: str = "audio/flac") -> str:
        return f"data:{media};base64," + base64.b64encode(data).decode()

    sample = url((FIXTURES / "voice_slt.flac").read_bytes())
    assert_openai_error(post(["a"], [sample], fmt="json"), 400, "diarized_json")
    assert_openai_error(post([], [sample]), 400, "one known_speaker_names[] entry per")
    assert_openai_error(post(["a"], ["https://example.com/a.wav"]), 400, "data url")
    assert_openai_error(post(["a"], ["data:audio/wav;base64,@@@@"]), 400, "base64")
    assert_openai_error(post(["a"], [url(os.urandom(4000))]), 400, "[0]", "could not be read")
    assert_openai_error(post(["a"] * 5, [sample] * 5), 400, "at most 4")
    short, long = url(tone_wav(1.0), "audio/wav"), url(tone_wav(12.0), "audio/wav")
    assert_openai_error(post(["a"], [short]), 400, "lasts 1.0 s", "2 to 10")
    assert_openai_error(post(["a", "b"], [sample, long]), 400, "[1]", "longer")
    # A field past the form's part limit is refused by the form parser, in OpenAI's shape.
    assert_openai_error(post(["a"], [url(os.urandom(5 * 1024 * 1024))]), 400)


def raw_multipart(field: str, filename: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body with the file name's bytes as they are (httpx escapes a NUL)."""
    body = (
        b'--bound\r\nContent-Disposition: form-data; name="'
        + field.encode()
        + b'"; filename="'
        + filename
        + b'"\r\nContent-Type: audio/flac\r\n\r\n'
        + data
        + b"\r\n--bound--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=bound"}


def test_limits_before_work(client: httpx.Client) -> None:
    """What a small request must not make the server do: take a file name with a NUL in it
    (was a 500), download and hold a model it was not set up with, or cluster any number
    of speakers."""
    audio = JFK.read_bytes()
    for name in (b"a\x00.flac", b"tab\x09name.flac"):
        for path, field, check in (
            ("/asr", "audio_file", assert_asr_error),
            ("/v1/audio/transcriptions", "file", assert_openai_error),
            ("/v1/jobs", "file", assert_openai_error),
        ):
            body, headers = raw_multipart(field, name, audio)
            check(client.post(path, content=body, headers=headers), 400, "control characters")
    refused = post_v1(client, "a.flac", audio, model="large-v3")
    assert_openai_error(refused, 400, "allowed_models")
    assert_asr_error(post_asr(client, "a.flac", audio, max_speakers="1000"), 400, "speakers")
    assert_asr_error(post_asr(client, "a.flac", audio, num_speakers="65"), 400, "speakers")
