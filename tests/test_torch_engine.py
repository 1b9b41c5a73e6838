"""The torch engine on the CPU with tiny.en converted from the bundled weights: the same
words as CTranslate2 float32 decoding the same 30 s windows greedily, word times within
a few frames of CTranslate2's, and the per-window fallback when a window fails its checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK, SPANISH, normalize

from app.domain import Audio, DecodeOptions
from app.engines.base import SpeechWindow
from app.pipeline.decode import decode_to_pcm

pytest.importorskip("transformers")

from app.engines import torch_decoding
from app.engines.torch_engine import TorchEngine, TorchWhisperModel

WINDOW = 30 * 16000


@pytest.fixture(scope="module")
def torch_model(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> TorchWhisperModel:
    engine = TorchEngine(tmp_path_factory.mktemp("cache"), "cpu", "float32", batch_size=8)
    return engine.load("tiny.en", tiny_en)


@pytest.fixture(scope="module")
def ct2_model(tiny_en: Path) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(tiny_en), device="cpu", compute_type="float32")


def samples(path: Path, tmp_path: Path) -> np.ndarray:
    return decode_to_pcm(path, tmp_path / "audio.pcm", encoded=True, max_duration_s=3600).read()


def ct2_windows(
    model: Any, audio: np.ndarray, word_timestamps: bool, language: str = "en"
) -> list[Any]:
    """CTranslate2 float32 (faster-whisper's sequential decoder) on each 30 s window alone,
    greedy, with timestamp tokens (seeking within the window), no text carried between
    windows: what the torch engine's batched windows are."""
    segments = []
    for start in range(0, len(audio), WINDOW):
        found, _ = model.transcribe(
            audio[start : start + WINDOW],
            language=language,
            beam_size=1,
            temperature=[0.0],
            without_timestamps=False,
            condition_on_previous_text=False,
            vad_filter=False,
            word_timestamps=word_timestamps,
        )
        segments += [(start / 16000, s) for s in found]
    return segments


@pytest.mark.parametrize("clip", [JFK, CONVERSATION], ids=["jfk", "conversation"])
def test_same_words_as_ctranslate2_float32(
    torch_model: TorchWhisperModel, ct2_model: Any, clip: Path, tmp_path: Path
) -> None:
    audio = samples(clip, tmp_path)
    ours = torch_model.transcribe(Audio(audio), DecodeOptions(beam_size=1, temperature=None))
    theirs = ct2_windows(ct2_model, audio, word_timestamps=False)
    assert len(ours.segments) == len(theirs) >= -(-len(audio) // WINDOW)
    starts = [s.start_ms / 1000 for s in ours.segments]
    assert np.allclose(starts, [offset + s.start for offset, s in theirs], atol=0.021)
    assert normalize(" ".join(s.text for s in ours.segments)) == normalize(
        " ".join(s.text for _, s in theirs)
    )
    assert all(s.temperature == 0.0 and s.avg_logprob > -1.0 for s in ours.segments)


def test_word_times_match_ctranslate2(
    torch_model: TorchWhisperModel, ct2_model: Any, tmp_path: Path
) -> None:
    audio = samples(CONVERSATION, tmp_path)
    ours = torch_model.transcribe(Audio(audio), DecodeOptions(word_timestamps=True))
    words = [w for s in ours.segments for w in s.words]
    theirs = [
        (offset + w.start, offset + w.end, w.word)
        for offset, s in ct2_windows(ct2_model, audio, word_timestamps=True)
        for w in s.words
    ]
    assert [w.text for w in words] == [t for _, _, t in theirs]
    starts = np.array([w.start_ms / 1000 for w in words])
    assert np.all(np.diff(starts) >= 0)
    error = np.abs(starts - np.array([s for s, _, _ in theirs]))
    assert np.median(error) <= 0.04 and error.max() <= 0.5, error.max()


def test_a_window_that_fails_its_checks_is_decoded_again_hotter(
    torch_model: TorchWhisperModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = samples(JFK, tmp_path)
    decoder = torch_model._decoder
    passes: list[float] = []
    original = decoder._pass

    def recording(*args: Any) -> Any:
        passes.append(args[3])  # the pass's temperature
        return original(*args)

    monkeypatch.setattr(decoder, "_pass", recording)
    torch_model.transcribe(Audio(audio), DecodeOptions(temperature=None))
    assert passes == [0.0]  # clean speech passes greedily
    # Demand a log-probability no pass can reach: the window climbs its whole schedule,
    # and the most probable attempt is kept.
    monkeypatch.setattr(torch_decoding, "LOG_PROB_THRESHOLD", -0.0001)
    passes.clear()
    segments = torch_model.transcribe(Audio(audio), DecodeOptions(temperature=None)).segments
    assert passes == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert segments and all(s.temperature in passes for s in segments)
    # A temperature the client set is the only one tried.
    passes.clear()
    torch_model.transcribe(Audio(audio), DecodeOptions(temperature=0.4))
    assert passes == [0.4]


def test_the_service_on_the_torch_engine(server_factory: Any) -> None:
    """ASR_ENGINE=torch end to end: a Speakr request with speakers, over real HTTP."""
    server = server_factory(ASR_ENGINE="torch", PRELOAD_MODEL="tiny.en")
    params = {"output": "json", "diarize": "true", "model": "tiny.en", "language": "en"}
    with httpx.Client(base_url=server.url, timeout=300) as client, CONVERSATION.open("rb") as f:
        assert client.get("/health").json()["engine"] == "torch"
        response = client.post("/asr", params=params, files={"audio_file": f})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(set(body["speakers"])) == 2
    assert all(s["speaker"] for s in body["segments"])
    assert "friday" in normalize(" ".join(s["text"] for s in body["segments"]))


def test_identical_uploads_sent_together_get_one_transcript(
    server_factory: Any, tmp_path: Path
) -> None:
    """Speech played backwards: Whisper falls back to sampled passes on it. Each window
    samples from its own input's seed, so five identical uploads (one alone, four batched
    together) get one transcript (with one generator shared by every batch they got five
    different ones)."""
    from concurrent.futures import ThreadPoolExecutor

    from audio_tools import pyannote_sample, write_wav

    from app.pipeline.decode import decode_file

    forward = np.asarray(decode_file(pyannote_sample()[0]).samples, dtype=np.float32)
    backwards = write_wav(forward[::-1].copy(), tmp_path / "backwards.wav").read_bytes()
    server = server_factory(ASR_ENGINE="torch", PRELOAD_MODEL="tiny.en", MAX_ACTIVE_REQUESTS="4")
    params = {"output": "json", "diarize": "false", "model": "tiny.en", "vad_filter": "false"}
    with httpx.Client(base_url=server.url, timeout=300) as client:

        def transcript(_: int) -> str:
            files = {"audio_file": ("backwards.wav", backwards)}
            response = client.post("/asr", params=params, files=files)
            assert response.status_code == 200, response.text
            return " ".join(s["text"] for s in response.json()["segments"])

        alone = transcript(0)
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(transcript, range(4)))
    assert alone.strip()
    assert set(together) == {alone}


@pytest.fixture(scope="module")
def base_models(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Multilingual base: the torch engine's model and CTranslate2 float32's."""
    from faster_whisper import WhisperModel
    from model_files import bundled_model

    source = bundled_model("base", cache_dir)
    engine = TorchEngine(tmp_path_factory.mktemp("cache"), "cpu", "float32", batch_size=8)
    return engine.load("base", source), WhisperModel(str(source), "cpu", compute_type="float32")


def test_multilingual_language_detection_and_transcription(
    base_models: tuple[Any, Any], tmp_path: Path
) -> None:
    ours, ct2 = base_models
    audio = samples(SPANISH, tmp_path)[:WINDOW]
    guess = ours.detect_language(Audio(audio))
    ct2_code, ct2_probability, _ = ct2.detect_language(audio)
    assert guess.code == ct2_code == "es"
    assert abs(guess.probability - ct2_probability) < 0.01
    transcript = ours.transcribe(Audio(audio), DecodeOptions(beam_size=1))
    assert transcript.language == "es"
    found = ct2_windows(ct2, audio, word_timestamps=False, language="es")
    assert normalize(" ".join(s.text for s in transcript.segments)) == normalize(
        " ".join(s.text for _, s in found)
    )
    translated = ours.transcribe(Audio(audio), DecodeOptions(task="translate", language="es"))
    english = normalize(" ".join(s.text for s in translated.segments))
    assert translated.task == "translate" and len(english) >= 5
    assert english != normalize(" ".join(s.text for s in transcript.segments))


def test_static_decoder_follows_transformers_decoder(
    torch_model: TorchWhisperModel, tmp_path: Path
) -> None:
    """The preallocated-cache decoder (CUDA graphs on a GPU) against transformers' own
    decoder with its dynamic cache: the same greedy tokens and logits for 40 steps, on a
    batch of two real windows of different lengths."""
    import torch

    from app.engines.torch_audio import log_mel
    from app.engines.torch_static_decoder import StaticDecoder

    model = torch_model._model
    audio = samples(CONVERSATION, tmp_path)
    mels, _ = log_mel([audio[:WINDOW], audio[len(audio) // 2 :]], torch_model._filters)
    states = torch_model._decoder.encode(mels)
    prefix = torch.tensor([[50257, 50362], [50257, 50362]])  # <|startoftranscript|>, notimestamps
    static = StaticDecoder(model)
    with torch.inference_mode():
        hidden = static.prefill(states, prefix)
        ours = static.logits(hidden[:, -1])
        out = model.model.decoder(input_ids=prefix, encoder_hidden_states=states, use_cache=True)
        theirs = model.proj_out(out.last_hidden_state[:, -1]).float()
        cache = out.past_key_values
        for step in range(40):
            torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-3)
            chosen = theirs.argmax(-1)
            assert torch.equal(ours.argmax(-1), chosen), f"step {step}"
            ours = static.step(chosen, prefix.shape[1] + step)
            out = model.model.decoder(
                input_ids=chosen[:, None],
                encoder_hidden_states=states,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            theirs = model.proj_out(out.last_hidden_state[:, -1]).float()


def test_batched_features_are_faster_whispers_per_window(
    torch_model: TorchWhisperModel, tmp_path: Path
) -> None:
    """All windows go through one zero-padded STFT; each must still get the features
    faster-whisper computes for it alone (its own maximum, its own last frame), with zeros
    past its audio. Lengths: a full window, and shorter ones ending at various points
    within a 10 ms hop (the last frame is where padding could leak in)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    from app.engines.torch_audio import log_mel

    audio = samples(CONVERSATION, tmp_path)
    click_at_the_end = audio[:16150] * 0.01
    click_at_the_end[-20:] = 0.9
    pieces = [
        audio[:WINDOW],
        audio[16000 : 16000 + 7 * 16000 + 37],
        audio[: WINDOW - 12345],
        audio[5 * 16000 : 5 * 16000 + 159],
        np.zeros(16000, dtype=np.float32),  # silence: floored against its own maximum
        click_at_the_end,  # loudest in the frame just past its own: not its maximum
    ]
    mels, frames = log_mel(pieces, torch_model._filters)
    reference = FeatureExtractor(feature_size=int(torch_model._model.config.num_mel_bins))
    for i, piece in enumerate(pieces):
        expected = reference(piece)[:, :3000]
        assert frames[i] == expected.shape[1], i
        ours = mels[i].cpu().numpy()
        np.testing.assert_allclose(ours[:, : frames[i]], expected, atol=2e-4, err_msg=str(i))
        assert not ours[:, frames[i] :].any(), i


def texts(model: TorchWhisperModel, windows: list[SpeechWindow]) -> list[str]:
    return [" ".join(s.text for s in w.segments) for w in model.decode_windows(windows)]


def test_the_compiled_encoder_gives_the_same_words_for_any_batch_size(
    torch_model: TorchWhisperModel, tiny_en: Path, tmp_path: Path
) -> None:
    """TORCH_COMPILE's path on the CPU (Inductor, C++): one graph for every batch size
    (a recompile would be a ~30 s stall in a request, so here it is an error), and the
    same words as the uncompiled encoder."""
    import torch

    compiled = TorchEngine(tmp_path / "cache", "cpu", "float32", 8, compile_encoder=True).load(
        "tiny.en", tiny_en
    )
    assert compiled._decoder.compiled_encoder is not None
    conversation = samples(CONVERSATION, tmp_path)
    batches = [
        [samples(JFK, tmp_path)],
        [conversation[k * WINDOW // 2 :][:WINDOW] for k in range(4)],  # a size not warmed up
    ]
    with torch._dynamo.config.patch(error_on_recompile=True):
        for pieces in batches:
            windows = [SpeechWindow(p, DecodeOptions(language="en")) for p in pieces]
            assert texts(compiled, windows) == texts(torch_model, windows)
