"""The model registry: fitted estimators on disk, each with a model card, written atomically.

  registry    Registry: list, read, verify, load, save, prune (it composes the three below)
  cards       ModelCard and CardDraft (card.json), TrainingWindow, Selection, names, library versions
  storage     atomic version directories, sha256-verified reads, unpickling
  retention   which versions to prune, and the cleanup of crashed saves and interrupted prunes
"""

from forecaster.registry.cards import (
    ARTIFACT_FILE,
    CARD_FILE,
    CARD_SCHEMA_VERSION,
    CardDraft,
    InvalidName,
    ModelCard,
    Selection,
    TrainingWindow,
    library_versions,
    validate_signal,
    validate_version,
    validate_workload,
)
from forecaster.registry.registry import Registry
from forecaster.registry.retention import TRASH_PREFIX
from forecaster.registry.storage import TEMP_PREFIX

__all__ = [
    "ARTIFACT_FILE",
    "CARD_FILE",
    "CARD_SCHEMA_VERSION",
    "TEMP_PREFIX",
    "TRASH_PREFIX",
    "CardDraft",
    "InvalidName",
    "ModelCard",
    "Registry",
    "Selection",
    "TrainingWindow",
    "library_versions",
    "validate_signal",
    "validate_version",
    "validate_workload",
]
