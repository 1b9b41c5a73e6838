"""Output writers: one small class per format, behind a registry keyed by format name."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from app.domain import Segment, Transcript, Word


def seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(max(ms, 0), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _caption(segment: Segment) -> str:
    text = segment.text.strip().replace("-->", "->")
    return f"[{segment.speaker}]: {text}" if segment.speaker else text


def word_json(word: Word) -> dict[str, Any]:
    out: dict[str, Any] = {
        "word": word.text.strip(),
        "start": seconds(word.start_ms),
        "end": seconds(word.end_ms),
        "score": round(word.probability, 3),
    }
    if word.speaker:
        out["speaker"] = word.speaker
    return out


class Writer:
    media_type: ClassVar[str]
    extension: ClassVar[str]

    def write(self, transcript: Transcript) -> str:
        raise NotImplementedError


class TextWriter(Writer):
    media_type = "text/plain; charset=utf-8"
    extension = "txt"

    def write(self, transcript: Transcript) -> str:
        return "".join(_caption(s) + "\n" for s in transcript.segments)


class SrtWriter(Writer):
    media_type = "application/x-subrip; charset=utf-8"
    extension = "srt"

    def write(self, transcript: Transcript) -> str:
        blocks = [
            f"{i}\n{_clock(s.start_ms, ',')} --> {_clock(s.end_ms, ',')}\n{_caption(s)}\n"
            for i, s in enumerate(transcript.segments, start=1)
        ]
        return "\n".join(blocks)


class VttWriter(Writer):
    media_type = "text/vtt; charset=utf-8"
    extension = "vtt"

    def write(self, transcript: Transcript) -> str:
        blocks = [
            f"{_clock(s.start_ms, '.')} --> {_clock(s.end_ms, '.')}\n{_caption(s)}\n"
            for s in transcript.segments
        ]
        return "WEBVTT\n\n" + "\n".join(blocks)


class TsvWriter(Writer):
    """Whisper's TSV: integer milliseconds, tab-separated, one segment per line."""

    media_type = "text/tab-separated-values; charset=utf-8"
    extension = "tsv"

    def write(self, transcript: Transcript) -> str:
        lines = ["start\tend\ttext"]
        lines += [
            f"{s.start_ms}\t{s.end_ms}\t{_caption(s).replace(chr(9), ' ')}"
            for s in transcript.segments
        ]
        return "\n".join(lines) + "\n"


class AsrJsonWriter(Writer):
    """whisper-asr-webservice / whisperX JSON: `text` mirrors `segments` (legacy shape)."""

    media_type = "application/json"
    extension = "json"

    def document(self, transcript: Transcript) -> dict[str, Any]:
        segments = [self._segment(s) for s in transcript.segments]
        words = [word_json(w) for s in transcript.segments for w in s.words]
        return {
            "text": segments,
            "language": transcript.language,
            "segments": segments,
            "word_segments": words,
            "duration": seconds(transcript.duration_ms),
            "model": transcript.model,
            "word_timestamps": transcript.word_timestamps,
            "diarization": transcript.diarization,
            "speakers": transcript.speakers,
            "notes": list(transcript.notes),
        }

    @staticmethod
    def _segment(segment: Segment) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": segment.id,
            "start": seconds(segment.start_ms),
            "end": seconds(segment.end_ms),
            "text": segment.text,
        }
        if segment.words:
            out["words"] = [word_json(w) for w in segment.words]
        if segment.speaker:
            out["speaker"] = segment.speaker
        return out

    def write(self, transcript: Transcript) -> str:
        document = self.document(transcript)
        if transcript.speaker_embeddings is not None:
            document["speaker_embeddings"] = transcript.speaker_embeddings
        return json.dumps(document, ensure_ascii=False)


WRITERS: dict[str, type[Writer]] = {
    "json": AsrJsonWriter,
    "text": TextWriter,
    "txt": TextWriter,
    "srt": SrtWriter,
    "vtt": VttWriter,
    "tsv": TsvWriter,
}


def writer_for(fmt: str) -> Writer:
    return WRITERS[fmt]()
