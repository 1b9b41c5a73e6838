"""One transcription from admission to its last window: the permit, the work folder and
the cancel token held together until the model thread returns."""
