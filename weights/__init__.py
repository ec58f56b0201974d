"""The shipped models, one folder each, installed as package data so
:func:`sleepnet.weights.load_model` finds them outside a checkout
(``config.json`` with its ``kind``, ``label_map.json``,
``MODEL_CARD.md`` and its measured figures).

``DEFAULT_MODEL`` is the one place the default model is named; every command loads it
unless told ``--weights NAME_OR_FOLDER``.

- ``gbm-gru-sleepedf-v1``: the default. The weighted mean of gradient-boosted trees and a
  causal GRU over causal per-epoch spectral features and night context, both trained on 18
  real Sleep-EDF nights (subjects 1-9; subject 0 left out) for sessions that start at
  lights-off or anywhere in the night. Scores with numpy alone.
- ``feature-gbm-sleepedf-v1``: the trees alone (the default before), trained on the same
  nights for sessions started at lights-off only.
- ``feature-gbm-scalefree-sleepedf-v1``: the trees' recipe over scale-free features (band
  shares and ratios, no level), for per-epoch normalised input (the design's z-scored
  ``sample.npz``); chosen automatically for such input, never for µV input unless named.
- ``cnn-lstm-simulated-v2``: the CNN–LSTM trained on simulated nights only; on real EEG
  it calls nearly every epoch N3 (see its model card).
"""

DEFAULT_MODEL = "gbm-gru-sleepedf-v1"
