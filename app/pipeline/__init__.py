"""The streaming, windowed pipeline: decode -> VAD -> speech windows -> ASR -> alignment ->
diarization -> labels. Audio lives in a PCM file on disk and is read a block at a time, so
memory does not grow with the length of a recording."""
