"""The Hugging Face hub, as the registry sees it: is it reachable, what is cached, download."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from app.config import Settings

log = logging.getLogger(__name__)

_PROBE_TTL_S = 60.0


class HubClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._probe: tuple[float, bool] | None = None

    @property
    def cache_dir(self) -> Path | None:
        """HF_HOME's hub cache when set; else huggingface_hub's own default."""
        home = self._settings.hf_home
        return home / "hub" if home else None

    @property
    def offline(self) -> bool:
        from huggingface_hub import constants

        return self._settings.hf_hub_offline or bool(constants.HF_HUB_OFFLINE)

    def reachable(self) -> bool:
        """True when downloads could start now. Probed with a short timeout, cached 60 s."""
        if self.offline:
            return False
        with self._lock:
            now = time.monotonic()
            if self._probe is not None and now - self._probe[0] < _PROBE_TTL_S:
                return self._probe[1]
            ok = self._probe_once()
            self._probe = (now, ok)
            if not ok:
                log.info("hugging face hub unreachable; serving local models only")
            return ok

    def _probe_once(self) -> bool:
        from huggingface_hub import constants

        request = urllib.request.Request(constants.ENDPOINT, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=self._settings.hub_timeout_seconds):
                return True
        except urllib.error.HTTPError:
            return True  # the host answered; it is reachable
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def cached(self, repo: str) -> Path | None:
        """The local snapshot of a repo if the HF cache already has it complete."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(repo, local_files_only=True, cache_dir=self.cache_dir))
        except (LocalEntryNotFoundError, OSError, ValueError):
            return None
        return path if (path / "model.bin").is_file() else None

    def download(self, repo: str) -> Path:
        from huggingface_hub import snapshot_download

        token = self._settings.hf_token.get_secret_value() if self._settings.hf_token else None
        log.info("downloading %s from the hub", repo)
        return Path(snapshot_download(repo, token=token, cache_dir=self.cache_dir))
