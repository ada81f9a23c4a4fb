"""Built-in models: names that `-m NAME` selects instead of a model directory.

The names live here, alone and free of heavy imports, so shell completion can offer
them without loading TensorFlow.
"""

from __future__ import annotations

BUILTIN_MODELS = ("mnist", "photo-gray")
