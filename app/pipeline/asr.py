"""The ASR stage: blocks of speech windows through a Whisper engine, in order.

Each block's speech is joined (silences left out) and decoded in one engine call with the
engine's own VAD off; times are then mapped back onto the recording. The first block fixes
the language (Whisper detects it once per file), and the sequential decoder carries the
previous block's text into the next as its prompt, as it does between its own 30 s windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from app.domain import Audio, DecodeOptions, Segment, Transcript
from app.engines.base import LoadedModel, whisper_transcript
from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.windows import Block, Timeline

TextSink = Callable[[tuple[Segment, ...]], None]
"""Gets each window's (or block's) final segments, in order, as decoding goes on."""

# faster-whisper stops conditioning on earlier text after a window needed this temperature.
_PROMPT_RESET_TEMPERATURE = 0.5
_FRAMES_PER_SECOND = 100  # Whisper's mel frames, the unit of `seek`


def restore_times(segment: Segment, timeline: Timeline) -> Segment:
    """Block-relative times -> recording times (words resolved within one region each)."""
    if segment.words:
        words = []
        for word in segment.words:
            region = timeline.region_of((word.start_ms + word.end_ms) / 2000)
            words.append(
                replace(
                    word,
                    start_ms=timeline.to_recording_ms(word.start_ms / 1000, region),
                    end_ms=timeline.to_recording_ms(word.end_ms / 1000, region),
                )
            )
        return replace(
            segment, start_ms=words[0].start_ms, end_ms=words[-1].end_ms, words=tuple(words)
        )
    start_s, end_s = segment.start_ms / 1000, segment.end_ms / 1000
    return replace(
        segment,
        start_ms=timeline.to_recording_ms(start_s, timeline.region_of(start_s)),
        end_ms=timeline.to_recording_ms(end_s, timeline.region_of(end_s, is_end=True)),
    )


def _carried_prompt(segments: tuple[Segment, ...]) -> str | None:
    if not segments or segments[-1].temperature > _PROMPT_RESET_TEMPERATURE:
        return None
    return "".join(s.text for s in segments).strip() or None


def transcribe_blocks(
    model: LoadedModel,
    pcm: PcmFile,
    blocks: list[Block],
    options: DecodeOptions,
    *,
    batched: bool,
    progress: Callable[[float], None],
    on_text: TextSink | None = None,
) -> Transcript:
    """Decode `blocks` in order; `progress` gets the fraction of speech done after each,
    `on_text` each block's segments."""
    total = sum(b.samples for b in blocks) or 1
    segments: list[Segment] = []
    language, probability = options.language, 1.0
    prompt = options.initial_prompt
    done = 0
    for index, block in enumerate(blocks):
        block_options = replace(options, vad_filter=False, language=language, initial_prompt=prompt)
        result = model.transcribe(
            Audio(block.speech(pcm), SAMPLE_RATE), block_options, windows=block.window_bounds_s()
        )
        if index == 0:
            language, probability = result.language, result.language_probability
        timeline = block.timeline()
        seek_offset = done * _FRAMES_PER_SECOND // SAMPLE_RATE
        first = len(segments)
        for segment in result.segments:
            restored = restore_times(segment, timeline)
            segments.append(replace(restored, id=len(segments), seek=segment.seek + seek_offset))
        if on_text is not None:
            on_text(tuple(segments[first:]))
        if not batched:  # the batched decoder never conditions on earlier text
            prompt = _carried_prompt(result.segments)
        done += block.samples
        progress(done / total)
    return whisper_transcript(
        model.name, tuple(segments), language or "en", probability, pcm.duration_ms, options
    )
