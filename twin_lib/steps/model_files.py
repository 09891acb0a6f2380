"""Model weights on this machine: a registry or base-model URI turned into a local directory.

Kept apart from the training steps so the predictor, which only reads weights, does not
import the trainer's dependencies (peft, matplotlib) that its image does not carry.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from twin_lib.settings import TwinSettings
from twin_lib.training.transfer import Transfer, is_s3


def local_model_dir(uri: str, settings: TwinSettings) -> Path:
    """A directory holding the model at ``uri`` (downloaded once into the cache for ``s3://``).

    A hub id is returned as a path-like name, which ``from_pretrained`` resolves itself.
    """
    if not is_s3(uri):
        return Path(uri)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = settings.stack.cache_dir / "models" / "downloads" / digest
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=target.parent))
    try:
        Transfer(settings.minio).download_tree(uri, staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
