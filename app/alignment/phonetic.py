"""English forced alignment offline: PocketSphinx's acoustic model (it ships in the
`pocketsphinx` wheel) moves each word's edges to where the audio says it was spoken.

Whisper's cross-attention (DTW) times put a word roughly right but leave the pauses at
sentence ends and clip the last word of a sentence; with them, a speaker's words cover
markedly less of what the speaker said (bench/RESULTS.md: word-level DER on pyannote's
sample through /asr 16.6 % with DTW times, 1.3 % with these).

The words are aligned in stretches cut where Whisper heard a pause (>= PAUSE_MS), each cut
moved to the quietest moment near that pause, so one misheard sentence costs only its own
stretch. A stretch that cannot be aligned (no path through all its words: a word Whisper
misheard, a cut inside speech, a voice the model does not know) is tried once more joined
with the next one; if that fails too, or if a word would move more than MAX_SHIFT_MS away
from where Whisper put it, the stretch keeps Whisper's times. Words without letters to say
(punctuation only) sit at the edge of the word before them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.domain import Word

FRAME_S = 0.01  # PocketSphinx's frame (100 frames per second)
PAUSE_MS = 500
"""A gap of at least this between two of Whisper's words may hold a cut between stretches."""
LONGEST_STRETCH_MS = 30_000
"""Longer speech without such a pause is cut at its widest gap between words: one failure
costs at most this much of Whisper's times, and the aligner's search stays small."""
SEARCH_MS = 300
"""A cut is placed at the quietest 100 ms within this distance of Whisper's pause."""
MAX_SHIFT_MS = 1_000
"""A stretch whose alignment moves a word farther than this from Whisper's span is not
trusted (Whisper's times are rough, but not that wrong)."""
_QUIET_FRAMES = 10

# A rough spelling-to-ARPABET guess for words the dictionary lacks (names, coinages): the
# aligner needs about the right number of phones, not the right ones.
_DIGRAPHS = {"th": "TH", "sh": "SH", "ch": "CH", "ph": "F", "ng": "NG", "ck": "K", "ee": "IY",
             "oo": "UW", "ea": "IY", "ai": "EY", "ou": "AW", "oa": "OW", "qu": "K W"}  # fmt: skip
_LETTER_PHONES = "AE B K D EH F G HH IH JH K L M N AA P K R S T AH V W K_S Y Z"
_LETTERS = dict(zip("abcdefghijklmnopqrstuvwxyz", _LETTER_PHONES.split(), strict=True))
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class AlignedWords:
    words: list[Word]
    stretches: int
    kept_whisper: int
    """Stretches that kept Whisper's times (could not be aligned, or not trusted)."""


def _guess_phones(token: str) -> str:
    phones: list[str] = []
    i = 0
    while i < len(token):
        if token[i : i + 2] in _DIGRAPHS:
            phones.append(_DIGRAPHS[token[i : i + 2]])
            i += 2
            continue
        if token[i] in _LETTERS and token[i - 1 : i] != token[i]:  # "tt" says one T
            phones.append(_LETTERS[token[i]].replace("_", " "))
        i += 1
    return " ".join(phones)


def align_words(words: list[Word], samples: np.ndarray) -> AlignedWords:
    """`words` in order, timed on `samples` (16 kHz mono: int16, or float in [-1, 1]);
    returns them retimed. A PocketSphinx decoder is made for each call: a decoder carries
    state from one utterance to the next (the same words on the same audio came back 10 ms
    apart depending on what it had aligned before), and a fresh one costs ~0.08 s, so a
    result depends on its input alone, whichever worker process computes it."""
    from pocketsphinx import Decoder

    if samples.dtype != np.int16:  # as PcmFile.read scales them: exact for its samples
        samples = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)
    decoder = Decoder(samprate=16000, lm=None, loglevel="FATAL")
    tokens = [_token(decoder, w.text) for w in words]
    return _Run(decoder, words, tokens, samples).run()


def _token(decoder: Any, text: str) -> str | None:
    """The dictionary entry that says this word, added with a guessed pronunciation when
    missing; None for a word with nothing to say."""
    token = re.sub(r"[^a-z0-9']", "", text.lower()).strip("'")
    if not token:
        return None
    if decoder.lookup_word(token):
        return token
    if token.isdigit():
        phones = " ".join(decoder.lookup_word(_DIGITS[int(d)]) for d in token)
    else:
        phones = _guess_phones(token)
    if not phones:
        return None
    decoder.add_word(token, phones, True)
    return token


def _in_order(words: list[Word]) -> list[Word]:
    """No word starts before the previous one ends: where an aligned stretch meets one that
    kept Whisper's times, a cut moved into the quiet can overlap Whisper's edge a little."""
    out: list[Word] = []
    for word in words:
        if out and word.start_ms < out[-1].end_ms:
            start_ms = out[-1].end_ms
            word = replace(word, start_ms=start_ms, end_ms=max(word.end_ms, start_ms))
        out.append(word)
    return out


class _Run:
    def __init__(
        self, decoder: Any, words: list[Word], tokens: list[str | None], pcm: np.ndarray
    ) -> None:
        self.decoder, self.words, self.tokens = decoder, words, tokens
        self.pcm = pcm
        frames = self.pcm[: len(self.pcm) // 160 * 160].astype(np.float32).reshape(-1, 160)
        energy = np.log10((frames**2).mean(axis=1) + 1e-3)
        self.quiet = np.convolve(energy, np.ones(_QUIET_FRAMES) / _QUIET_FRAMES, mode="same")
        self.stretches = self._stretches()

    def _stretches(self) -> list[tuple[int, int]]:
        """Index ranges [i, j) of words between Whisper's pauses; a stretch longer than
        LONGEST_STRETCH_MS (speech without a pause) is halved at its widest gap."""
        cuts = [i for i in range(1, len(self.words)) if self._gap_ms(i) >= PAUSE_MS]
        todo = list(itertools.pairwise([0, *cuts, len(self.words)]))
        out: list[tuple[int, int]] = []
        while todo:
            first, last = todo.pop(0)
            length_ms = self.words[last - 1].end_ms - self.words[first].start_ms
            if length_ms <= LONGEST_STRETCH_MS or last - first < 2:
                out.append((first, last))
                continue
            middle = (first + last) / 2  # among equal gaps, the one nearest the middle
            widest = max(range(first + 1, last), key=lambda i: (self._gap_ms(i), -abs(i - middle)))
            todo[:0] = [(first, widest), (widest, last)]
        return out

    def _gap_ms(self, i: int) -> int:
        return self.words[i].start_ms - self.words[i - 1].end_ms

    def _cut_s(self, after: int) -> float:
        """Where the audio is cut between word `after - 1` and word `after`, in seconds."""
        if after == 0:
            return 0.0
        if after == len(self.words):
            return len(self.pcm) / 16000
        low = max(0, self.words[after - 1].end_ms - SEARCH_MS) // 10
        high = min(len(self.quiet), (self.words[after].start_ms + SEARCH_MS) // 10)
        if high <= low:
            return (self.words[after - 1].end_ms + self.words[after].start_ms) / 2000
        return (low + int(np.argmin(self.quiet[low:high]))) * FRAME_S

    def run(self) -> AlignedWords:
        out: list[Word] = []
        kept = 0
        k = 0
        while k < len(self.stretches):
            first = self.stretches[k][0]
            for joined in (k, k + 1)[: len(self.stretches) - k]:
                last = self.stretches[joined][1]
                aligned = self._attempt(first, last)
                if aligned is not None:
                    out.extend(aligned)
                    k = joined + 1
                    break
            else:
                kept += 1
                out.extend(self.words[first : self.stretches[k][1]])
                k += 1
        return AlignedWords(_in_order(out), len(self.stretches), kept)

    def _attempt(self, first: int, last: int) -> list[Word] | None:
        start_s, end_s = self._cut_s(first), self._cut_s(last)
        said = [(i, t) for i in range(first, last) if (t := self.tokens[i]) is not None]
        if not said or end_s <= start_s:
            return None
        decoder = self.decoder
        decoder.set_align_text(" ".join(t for _, t in said))
        decoder.start_utt()
        decoder.process_raw(
            self.pcm[round(start_s * 16000) : round(end_s * 16000)].tobytes(), full_utt=True
        )
        decoder.end_utt()
        spans = [
            (s.start_frame, s.end_frame + 1)
            for s in (decoder.seg() or ())
            if not s.word.startswith(("<", "[", "+", "(NULL"))
        ]
        if len(spans) != len(said):  # a partial path: the audio ran out before the words did
            return None
        offset_ms = round(start_s * 1000)
        timed: dict[int, tuple[int, int]] = {}
        for (i, _), (a, b) in zip(said, spans, strict=True):
            word = self.words[i]
            start_ms, end_ms = offset_ms + a * 10, offset_ms + b * 10
            if max(word.start_ms - end_ms, start_ms - word.end_ms) > MAX_SHIFT_MS:
                return None
            timed[i] = (start_ms, end_ms)
        out: list[Word] = []
        edge_ms = offset_ms
        for i in range(first, last):
            start_ms, end_ms = timed.get(i, (edge_ms, edge_ms))
            out.append(replace(self.words[i], start_ms=start_ms, end_ms=end_ms))
            edge_ms = end_ms
        return out
