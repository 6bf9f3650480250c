"""The pieces of ``python -m mets_fast.train``: presets, the learning-rate schedule, batches
from the store, the distributed set-up, the training loop and its curves."""
