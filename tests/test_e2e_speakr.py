"""Speakr, every connector, exactly as its code sends requests (murtaza-nasir/speakr,
src/services/transcription/connectors/): the requests below are built field for field as
Speakr builds them, with the client libraries it uses (httpx, the openai SDK), over real
HTTP to the real service on real voices (pyannote's two-speaker sample, JFK), and the
answers are read the way Speakr reads them.

- asr_endpoint (ASR_BASE_URL): POST /asr, the query Speakr sends (encode, task, output,
  diarize and enable_diarization, return_speaker_embeddings, speaker bounds, prompt,
  hotwords, model), `audio_file`, basic auth from the URL; voice profiles from
  `speaker_embeddings` (Speakr keeps only vectors of 256 floats and matches by cosine).
- openai_transcribe (TRANSCRIPTION_MODEL=gpt-4o-transcribe-diarize): diarized_json,
  chunking_strategy=auto, the known speakers of an earlier chunk as MP3 data URLs.
- openasr: POST /v1/audio/transcriptions with diarize=true and verbose_json.
- The health check and model lists of the connectors; undecodable uploads carry one of the
  phrases on which Speakr retries after converting to MP3.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from audio_tools import JFK, encode, encode_video, normalize, pyannote_sample, write_wav
from conftest import ServerFactory
from live_server import LiveServer

from app.config import Settings
from app.pipeline.decode import decode_file

pytestmark = pytest.mark.e2e
KEY = "key-for-speakr-0123456789"
# Speakr's retry-after-MP3-conversion phrases (src/tasks/processing.py).
SPEAKR_FORMAT_PHRASES = (
    "corrupted file",
    "unsupported audio",
    "unsupported format",
    "invalid audio",
    "invalid file format",
    "invalid codec",
    "could not find codec",
    "audio codec",
    "audio format",
    "failed to decode audio",
    "not a valid audio file",
)
MIME = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "opus": "audio/ogg",
    "webm": "audio/webm",
    "mp4": "video/mp4",
}


@pytest.fixture(scope="module")
def speakr_server(server_factory: ServerFactory) -> LiveServer:
    aliases = Settings.model_fields["model_aliases"].default
    return server_factory(
        API_KEYS=KEY,
        PRELOAD_MODEL="tiny.en",
        # The default aliases, plus the one an operator adds for openasr's default model.
        MODEL_ALIASES=f"{aliases},qwen3-asr-0.6b=",
    )


def asr_base_url(server: LiveServer) -> str:
    """ASR_BASE_URL as a Speakr operator writes it, the key in it (sent as basic auth)."""
    return server.url.replace("http://", f"http://speakr:{KEY}@")


# --- the sample, cut and re-encoded -------------------------------------------------------
def reference_turns() -> list[tuple[float, float, str]]:
    wav, _ = pyannote_sample()
    turns = []
    for line in wav.with_suffix(".rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        turns.append((start, start + length, fields[7]))
    return turns


def sample_part(folder: Path, start_s: float, end_s: float, name: str) -> Path:
    wav, _ = pyannote_sample()
    samples = decode_file(wav).samples
    assert isinstance(samples, np.ndarray)
    return write_wav(samples[int(start_s * 16000) : int(end_s * 16000)], folder / name)


def mp3_data_url(samples: np.ndarray, folder: Path, name: str) -> str:
    """A voice sample as Speakr sends it to gpt-4o-transcribe-diarize: an MP3 data URL."""
    mp3 = encode(write_wav(samples, folder / f"{name}.wav"), folder / f"{name}.mp3")
    return "data:audio/mpeg;base64," + base64.b64encode(mp3.read_bytes()).decode()


def who(start: float, end: float, offset: float = 0.0) -> str | None:
    """The reference speaker who talks most within [start, end] of a part cut at `offset`."""
    overlap: dict[str, float] = {}
    for a, b, speaker in reference_turns():
        shared = min(b, end + offset) - max(a, start + offset)
        if shared > 0:
            overlap[speaker] = overlap.get(speaker, 0.0) + shared
    return max(overlap, key=lambda s: overlap[s]) if overlap else None


# --- asr_endpoint -------------------------------------------------------------------------
def speakr_asr(base_url: str, path: Path, mime: str, **request: Any) -> httpx.Response:
    """ASREndpointConnector.transcribe's request: its params dict (booleans as httpx writes
    them), the file as `audio_file`, its timeouts; one parameter no server knows."""
    params: dict[str, Any] = {"encode": True, "task": "transcribe", "output": "json"}
    if request.get("language"):
        params["language"] = request["language"]
    params["diarize"] = params["enable_diarization"] = True
    params["return_speaker_embeddings"] = True
    for name in ("min_speakers", "max_speakers"):
        if request.get(name):
            params[name] = request[name]
    if request.get("prompt"):
        params["initial_prompt"] = request["prompt"]
    if request.get("hotwords"):
        params["hotwords"] = request["hotwords"]
    if request.get("model"):
        params["model"] = request["model"]
    params["speakr_future_option"] = "on"  # servers ignore parameters they do not know
    timeout = httpx.Timeout(None, connect=60.0, read=600.0, write=600.0, pool=None)
    with httpx.Client() as client, path.open("rb") as audio:
        return client.post(
            f"{base_url}/asr",
            params=params,
            files={"audio_file": (path.name, audio, mime)},
            timeout=timeout,
        )


def parse_like_speakr(data: dict[str, Any]) -> dict[str, Any]:
    """What ASREndpointConnector._parse_response keeps of an answer."""
    segments, speakers, last = [], set(), None
    for seg in data["segments"]:
        speaker = seg.get("speaker")
        if speaker is None:
            speaker = last if last is not None else "UNKNOWN_SPEAKER"
        else:
            last = speaker
        speakers.add(speaker)
        segments.append((seg.get("start"), seg.get("end"), speaker, seg.get("text", "").strip()))
    return {
        "segments": segments,
        "speakers": sorted(speakers),
        "embeddings": data.get("speaker_embeddings"),
        "language": data.get("language"),
        "text": data.get("text", ""),
    }


@pytest.fixture(scope="module")
def encoded_sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("speakr-formats")
    wav, _ = pyannote_sample()
    files = {"wav": wav, "mp4": encode_video(wav, folder / "sample.mp4")}
    for ext in ("mp3", "m4a", "opus", "webm"):
        files[ext] = encode(wav, folder / f"sample.{ext}")
    return files


@pytest.mark.parametrize("ext", list(MIME))
def test_asr_endpoint_as_speakr_sends_it(
    speakr_server: LiveServer, encoded_sample: dict[str, Path], ext: str
) -> None:
    response = speakr_asr(
        asr_base_url(speakr_server),
        encoded_sample[ext],
        MIME[ext],
        language="en",
        min_speakers=1,
        max_speakers=5,
        prompt="A conversation between two women.",
        hotwords="pyannote",
        model="tiny.en",
    )
    assert response.status_code == 200, response.text
    parsed = parse_like_speakr(response.json())
    assert parsed["language"] == "en"
    assert "UNKNOWN_SPEAKER" not in parsed["speakers"]
    assert len(parsed["speakers"]) == 2, parsed["speakers"]
    # The voice profiles Speakr keeps: one 256-float vector per label the segments use.
    embeddings = parsed["embeddings"]
    assert set(embeddings) == set(parsed["speakers"])
    for vector in embeddings.values():
        assert len(vector) == 256 and np.all(np.isfinite(vector))
        assert abs(np.linalg.norm(vector) - 1) < 1e-3
    # The two labels are the two people of pyannote's reference: each label's segments are
    # mostly (by time) one person's, and a different person's for each label.
    held: dict[str, dict[str | None, float]] = {}
    for start, end, speaker, _ in parsed["segments"]:
        times = held.setdefault(speaker, {})
        person = who(start, end)
        times[person] = times.get(person, 0.0) + end - start
    people = {speaker: max(times, key=lambda p: times[p]) for speaker, times in held.items()}
    assert sorted(map(str, people.values())) == ["speaker90", "speaker91"], held


def test_a_voice_profile_matches_the_same_person_in_another_recording(
    speakr_server: LiveServer, tmp_path: Path
) -> None:
    """As Speakr uses speaker_embeddings across recordings: profiles from one recording,
    a new recording's speakers matched to them by cosine similarity. The two recordings are
    pyannote's sample (two real women) cut in two at 18 s (where each part has both voices),
    the second with JFK after it."""
    cut = 18.0
    first = sample_part(tmp_path, 0, cut, "first.wav")
    rest = decode_file(sample_part(tmp_path, cut, 30, "rest.wav")).samples
    jfk = decode_file(JFK).samples
    assert isinstance(rest, np.ndarray) and isinstance(jfk, np.ndarray)
    jfk_from = len(rest) / 16000 + 1
    second = write_wav(np.concatenate([rest, np.zeros(16000), jfk]), tmp_path / "second.wav")

    def profiles(path: Path, offset: float) -> dict[str, np.ndarray]:
        """person -> the voiceprint of the label that holds most of that person's speech."""
        response = speakr_asr(asr_base_url(speakr_server), path, "audio/wav", model="tiny.en")
        assert response.status_code == 200, response.text
        parsed = parse_like_speakr(response.json())
        held: dict[tuple[str, str], float] = {}
        for start, end, speaker, _ in parsed["segments"]:
            person = "jfk" if offset and start >= jfk_from - 0.5 else who(start, end, offset)
            if person is not None:
                held[(speaker, person)] = held.get((speaker, person), 0.0) + end - start
        best: dict[str, tuple[float, str]] = {}
        for (speaker, person), seconds in held.items():
            if seconds > best.get(person, (0.0, ""))[0]:
                best[person] = (seconds, speaker)
        return {p: np.asarray(parsed["embeddings"][s]) for p, (_, s) in best.items()}

    known = profiles(first, 0.0)
    new = profiles(second, cut)
    assert set(known) == {"speaker90", "speaker91"}, known.keys()
    assert set(new) == {"speaker90", "speaker91", "jfk"}, new.keys()
    similarity = {(n, k): float(new[n] @ known[k]) for n in new for k in known}
    for person in known:
        nearest = max(known, key=lambda k: similarity[(person, k)])
        assert nearest == person, similarity
        assert similarity[(person, person)] > similarity[("jfk", person)], similarity


# --- openai_transcribe --------------------------------------------------------------------
def speakr_openai(server: LiveServer) -> openai.OpenAI:
    """OpenAITranscribeConnector's client: its own httpx client with Speakr's headers."""
    headers = {"X-Title": "Speakr - AI Audio Transcription", "User-Agent": "Speakr/1.0"}
    return openai.OpenAI(
        api_key=KEY,
        base_url=f"{server.url}/v1",
        # Speakr hands the SDK an httpx.Client; this SDK's annotation names its own fork of
        # httpx, and it takes the client at run time all the same.
        http_client=httpx.Client(verify=True, headers=headers, timeout=600),  # type: ignore[arg-type]
        max_retries=0,
    )


def diarize_chunk(sdk: openai.OpenAI, path: Path, known: dict[str, str] | None = None) -> list[Any]:
    """One chunk as Speakr sends it with gpt-4o-transcribe-diarize."""
    params: dict[str, Any] = {
        "model": "gpt-4o-transcribe-diarize",
        "chunking_strategy": "auto",
        "response_format": "diarized_json",
    }
    if known:
        params["extra_body"] = {
            "known_speaker_names": list(known),
            "known_speaker_references": list(known.values()),
        }
    with path.open("rb") as audio:
        result = sdk.audio.transcriptions.create(file=audio, **params)
    return [s for s in result.segments if s.text.strip()]


def test_openai_transcribe_diarize_keeps_speakers_across_chunks(
    speakr_server: LiveServer, tmp_path: Path
) -> None:
    """Chunk 1 gives letters; chunk 2 is sent with those letters as known names and 2-10 s
    MP3 references of each voice from chunk 1: the same person keeps the same letter, and a
    voice that matches no reference (JFK) gets a letter that is none of the known names.
    Chunk 2 begins with the other woman, so letters by order of appearance would swap them
    (checked: without references it answers A for her). Chunks are 0-18 s and 14.4-30 s
    of the sample (a shorter second chunk had too little of one voice for the diarizer);
    B's reference lies in the stretch both chunks share, A's does not."""
    first = sample_part(tmp_path, 0, 18, "chunk1.wav")
    samples = decode_file(first).samples
    assert isinstance(samples, np.ndarray)
    with speakr_openai(speakr_server) as sdk:
        chunk1 = diarize_chunk(sdk, first)
        letters = {s.speaker for s in chunk1}
        assert letters == {"A", "B"}, letters
        references, person_of = {}, {}
        for letter in sorted(letters):
            own = max((s for s in chunk1 if s.speaker == letter), key=lambda s: s.end - s.start)
            start, end = own.start, min(own.end, own.start + 10)
            assert end - start >= 2, (letter, own)
            references[letter] = mp3_data_url(
                samples[int(start * 16000) : int(end * 16000)], tmp_path, letter
            )
            person_of[letter] = who(start, end)
        second = 14.4
        chunk2 = diarize_chunk(sdk, sample_part(tmp_path, second, 30, "chunk2.wav"), references)
        assert {s.speaker for s in chunk2} == letters
        assert person_of[chunk2[0].speaker] == who(chunk2[0].start, chunk2[0].end, second)
        for segment in chunk2:
            person = who(segment.start, segment.end, offset=second)
            if segment.end - segment.start >= 1.5 and person is not None:
                assert person_of.get(segment.speaker) == person, (segment, person_of)
        stranger = diarize_chunk(sdk, JFK, references)
    assert stranger and {s.speaker for s in stranger}.isdisjoint(references)


def test_openai_transcribe_models_and_listing(speakr_server: LiveServer) -> None:
    with speakr_openai(speakr_server) as sdk, JFK.open("rb") as audio:
        ids = [m.id for m in sdk.models.list().data]
        # OpenAITranscribeConnector.list_models keeps ids with 'transcribe' or 'whisper'.
        audio_models = {i for i in ids if "transcribe" in i.lower() or "whisper" in i.lower()}
        assert {
            "gpt-4o-transcribe",
            "gpt-4o-mini-transcribe",
            "gpt-4o-mini-transcribe-2025-12-15",
            "gpt-4o-transcribe-diarize",
            "whisper-1",
        } <= audio_models
        text = sdk.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=audio).text
    assert "fellow americans" in " ".join(normalize(text))


# --- openasr ------------------------------------------------------------------------------
def test_openasr_diarize_as_speakr_sends_it(speakr_server: LiveServer) -> None:
    """OpenASRTranscriptionConnector.transcribe: multipart fields as (None, value) tuples, its
    default model id (mapped by MODEL_ALIASES here), a Bearer key; segments[].speaker read."""
    wav, _ = pyannote_sample()
    with httpx.Client() as client, wav.open("rb") as audio:
        response = client.post(
            f"{speakr_server.url}/v1/audio/transcriptions",
            files={
                "file": (wav.name, audio, "audio/wav"),
                "model": (None, "qwen3-asr-0.6b"),
                "response_format": (None, "verbose_json"),
                "diarize": (None, "true"),
                "language": (None, "en"),
            },
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=httpx.Timeout(None, connect=30.0, read=600.0, write=600.0),
        )
    assert response.status_code == 200, response.text
    data = response.json()
    speakers = {s.get("speaker") for s in data["segments"]}
    assert None not in speakers and len(speakers) == 2, speakers
    assert data["language"] == "english" and data["text"]


# --- health, model list, undecodable uploads ----------------------------------------------
def test_health_and_model_list_as_the_connectors_probe_them(speakr_server: LiveServer) -> None:
    base = asr_base_url(speakr_server)
    with httpx.Client(timeout=10.0) as client:
        # ASREndpointConnector.health_check: /health, then /, without a key; < 500 is up.
        assert client.get(f"{speakr_server.url}/health").status_code < 500
        # ASREndpointConnector.list_models: /v1/models through the URL with the key in it.
        models = client.get(f"{base}/v1/models")
    assert models.status_code == 200
    ids = [m.get("id") for m in models.json().get("data", []) if m.get("id")]
    assert "tiny.en" in ids and "gpt-4o-transcribe-diarize" in ids


def test_undecodable_uploads_name_a_phrase_speakr_retries_on(speakr_server: LiveServer) -> None:
    junk = io.BytesIO(b"this is not audio at all, only text " * 64)
    base = asr_base_url(speakr_server)
    with httpx.Client(timeout=60) as client:
        answers = {
            "asr": client.post(f"{base}/asr", files={"audio_file": ("a.mp3", junk, "audio/mpeg")}),
            "openai": client.post(
                f"{base}/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": ("a.mp3", junk.getvalue(), "audio/mpeg")},
            ),
            "jobs": client.post(
                f"{base}/v1/jobs", files={"file": ("a.mp3", junk.getvalue(), "audio/mpeg")}
            ),
        }
    for family, response in answers.items():
        assert response.status_code == 400, (family, response.text)
        body = response.json()
        message = body["detail"] if family == "asr" else body["error"]["message"]
        assert any(p in message.lower() for p in SPEAKR_FORMAT_PHRASES), (family, message)
