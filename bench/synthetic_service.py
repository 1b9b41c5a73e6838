"""The service, over HTTP, with a Whisper of a released shape and random weights.

Real large-v3 weights cannot be had offline, so the GPU benchmark serves a model of exactly
large-v3's (or turbo's) shape with random weights: the service is the real one (routers,
admission, decode, VAD, window scheduler, torch engine, writers); only the model is random,
and every window decodes exactly `--tokens` tokens (no end-of-text, one greedy pass, no
fallback), so every engine in the comparison does the same work per window.

    python3 bench/synthetic_service.py --shape large-v3 --tokens 100 --port 9001 \
        --models-dir /tmp/gpu/stage/models

Requests name the model `base` (a bundled folder the registry resolves; its tokenizer and
languages are used, its weights are not).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.domain import DecodeOptions  # noqa: E402
from app.engines.torch_decoding import WindowDecoder, WindowTask  # noqa: E402
from app.engines.torch_engine import TorchEngine, TorchWhisperModel  # noqa: E402
from app.engines.torch_selection import Vocabulary  # noqa: E402
from app.models.ct2_to_torch import convert  # noqa: E402

SHAPES = {  # transformers' WhisperConfig fields of the released models
    "large-v3": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 32, "heads": 20},
    "large-v3-turbo": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 4, "heads": 20},
    "tiny": {"d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "heads": 6},  # smoke tests
}


def random_whisper(shape: str, device: str, dtype: Any) -> Any:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    fields = SHAPES[shape]
    width = fields["d_model"]
    config = WhisperConfig(
        vocab_size=51866,
        num_mel_bins=128,
        d_model=width,
        encoder_layers=fields["encoder_layers"],
        decoder_layers=fields["decoder_layers"],
        encoder_attention_heads=fields["heads"],
        decoder_attention_heads=fields["heads"],
        encoder_ffn_dim=4 * width,
        decoder_ffn_dim=4 * width,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config)
    return model.to(dtype).eval()


class FixedLengthModel(TorchWhisperModel):
    """The torch engine's model with every window decoding exactly `tokens` tokens."""

    def __init__(self, name: str, folder: Path, model: Any, tokens: int) -> None:
        super().__init__(name, folder, model, batch_size=128)
        vocabulary = self._vocabulary
        fixed = Vocabulary(
            eot=-1,  # never chosen: no window ends early
            no_speech=vocabulary.no_speech,
            timestamp_begin=vocabulary.timestamp_begin,
            no_timestamps=vocabulary.no_timestamps,
            blank=(),
            suppress=(vocabulary.eot,),
        )
        self._decoder = WindowDecoder(model, fixed, lambda ids: "x" * len(ids))
        self._tokens = tokens

    def _task(self, options: DecodeOptions, tokenizer: Any) -> WindowTask:
        task = super()._task(options, tokenizer)
        self._decoder.max_positions = len(task.prefix) + self._tokens
        return WindowTask(task.prefix, task.sot_index, (0.0,))  # one pass, no fallback


class SyntheticEngine(TorchEngine):
    def __init__(
        self,
        cache_dir: Path,
        shape: str,
        tokens: int,
        device: str = "cuda",
        compile_encoder: bool | None = None,
    ) -> None:
        compute_type = "float16" if device == "cuda" else "float32"
        super().__init__(cache_dir, device, compute_type, 128, compile_encoder)
        self.shape, self.tokens = shape, tokens

    def load(self, name: str, path: Path) -> FixedLengthModel:
        import torch

        # Only the tokenizer and languages are used: a folder may hold just those (with an
        # empty model.bin, so the registry lists it) instead of weights to convert.
        has_them = (path / "generation_config.json").is_file()
        folder = path if has_them else convert(path, self._cache_dir, name)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        model = random_whisper(self.shape, self.device, dtype)
        return self.prepared(FixedLengthModel(f"{self.shape}-random", folder, model, self.tokens))


def main() -> None:
    import uvicorn

    from app.factory import create_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="large-v3")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/synthetic-cache"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--compile", default=None, choices=("true", "false"), help="TORCH_COMPILE (unset: auto)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings(
        _env_file=None,
        cache_dir=args.cache_dir,
        models_dir=args.models_dir,
        data_dir=args.cache_dir / "data",
        hf_hub_offline=True,
        preload_model="base",
        diarization_model="none",
        alignment="dtw",
        max_batch_windows=int(os.environ.get("MAX_BATCH_WINDOWS", "128")),
        max_active_requests=int(os.environ.get("MAX_ACTIVE_REQUESTS", "128")),
        max_queue_size=256,
        log_level="WARNING",
    )
    compile_encoder = None if args.compile is None else args.compile == "true"
    engine = SyntheticEngine(args.cache_dir, args.shape, args.tokens, args.device, compile_encoder)
    app = create_app(settings, engine=engine)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
