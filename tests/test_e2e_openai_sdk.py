"""The official openai SDK, unchanged, against the live service (/v1)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import srt
from audio_tools import CONVERSATION, JFK, JFK_WORDS, SPANISH, normalize, wer
from checks import assert_verbose_conversation
from live_server import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key="not-needed", max_retries=0, timeout=300
    ) as client:
        yield client


def test_transcription_json(sdk: openai.OpenAI) -> None:
    with JFK.open("rb") as f:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=f)
    assert wer(JFK_WORDS, result.text) <= 0.1, result.text


def test_transcription_text_srt_vtt(sdk: openai.OpenAI) -> None:
    with CONVERSATION.open("rb") as f:
        text = sdk.audio.transcriptions.create(model="tiny.en", file=f, response_format="text")
    assert "budget report" in " ".join(normalize(text))
    with CONVERSATION.open("rb") as f:
        subtitles = sdk.audio.transcriptions.create(model="tiny.en", file=f, response_format="srt")
    cues = list(srt.parse(subtitles))
    assert len(cues) >= 2 and cues[0].start.total_seconds() < cues[-1].start.total_seconds()
    with CONVERSATION.open("rb") as f:
        vtt = sdk.audio.transcriptions.create(model="tiny.en", file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT") and "-->" in vtt


def test_verbose_json_with_words_and_segments(sdk: openai.OpenAI) -> None:
    with CONVERSATION.open("rb") as f:
        result = sdk.audio.transcriptions.create(
            model="tiny.en",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert_verbose_conversation(result)


def test_words_only_granularity_omits_segments(sdk: openai.OpenAI) -> None:
    with JFK.open("rb") as f:
        result = sdk.audio.transcriptions.create(
            model="tiny.en",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert result.words and not result.segments


def test_temperature_is_used(sdk: openai.OpenAI) -> None:
    with JFK.open("rb") as f:
        result = sdk.audio.transcriptions.create(
            model="tiny.en", file=f, temperature=0.7, response_format="verbose_json"
        )
    assert result.segments and {s.temperature for s in result.segments} == {0.7}


def test_translation(sdk: openai.OpenAI) -> None:
    with SPANISH.open("rb") as f:
        result = sdk.audio.translations.create(model="base", file=f, response_format="verbose_json")
    assert "beach" in normalize(result.text)
    assert result.language == "spanish"
    assert result.model_extra and result.model_extra["task"] == "translate"


def test_models_list_and_retrieve(sdk: openai.OpenAI) -> None:
    ids = {m.id for m in sdk.models.list()}
    assert {"whisper-1", "base", "tiny.en"} <= ids
    model = sdk.models.retrieve("tiny.en")
    assert model.id == "tiny.en" and model.object == "model" and model.created > 0


def test_unknown_model_raises_typed_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("no-such-model")
    assert missing.value.status_code == 404
    with JFK.open("rb") as f, pytest.raises(openai.BadRequestError) as bad:
        sdk.audio.transcriptions.create(model="large-v3", file=f)
    assert bad.value.status_code == 400
    assert "base" in str(bad.value.message) and "tiny.en" in str(bad.value.message)
    assert bad.value.response.headers["x-should-retry"] == "false"
