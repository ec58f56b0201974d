"""The shipped models, one folder each, installed as package data so
:func:`sleepnet.weights.load_model` finds them outside a checkout
(``config.json`` with its ``kind``, ``label_map.json``,
``MODEL_CARD.md`` and its measured figures).

``DEFAULT_MODEL`` is the one place the default model is named; every command loads it
unless told ``--weights NAME_OR_FOLDER``.

- ``feature-gbm-sleepedf-v1``: gradient-boosted trees over causal per-epoch spectral
  features and night context, trained on 18 real Sleep-EDF nights (subjects 1-9;
  subject 0 left out). The default.
- ``feature-gbm-scalefree-sleepedf-v1``: the same recipe over scale-free features (band
  shares and ratios, no level), for per-epoch normalised input (the design's z-scored
  ``sample.npz``); chosen automatically for such input, never for µV input unless named.
- ``cnn-lstm-simulated-v2``: the CNN–LSTM trained on simulated nights only; on real EEG
  it calls nearly every epoch N3 (see its model card).
"""

DEFAULT_MODEL = "feature-gbm-sleepedf-v1"
