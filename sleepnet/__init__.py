"""sleepnet: sleep staging of one EEG channel, with no knowledge of LSL or the terminal.

The live path (``streamer``, ``scorer``) and the batch path (``sleepstream score``) both call
the same functions from here. Data flows one way, from the core up through the rooms:

* the core, at the top: ``stages``, ``preprocess``, ``features``, ``weights``,
  ``batch``, ``metrics``, ``errors``, ``user_dirs``, ``predictions``, ``night_context``;
* ``models/``: one file per model kind;
* ``io/``: recordings, hypnograms, scored night files, exports;
* ``sim/``: the simulator (parameters, control traces, events, synthesis, hypnogram model,
  spectral envelope, calibration);
* ``train/``: datasets and training;
* ``report/``: sleep statistics, figures, the explainability view and the report.

A room imports the core and the rooms below it (models and io use the core; sim uses io;
train uses models, io and the simulator's nights; report uses io), never one above it.
"""
