"""sleepnet.sim: the simulator of single-channel Fpz-Cz sleep EEG and its calibration.

* ``calibrate``: ``python -m sleepnet.sim.calibrate``: fits the parameters to real Sleep-EDF data;
* ``control``: control traces: stage weights, wandering gains, arousals;
* ``envelope``: the spectral envelope of real nights, imposed on the signal;
* ``events``: spindles, K-complexes, vertex waves, blinks, eye movements, sawtooth, movements;
* ``hypnogram_model``: the stage sequence: a cycle-aware semi-Markov model of real hypnograms;
* ``night``: a whole simulated night, the demo recording, EDF+ output;
* ``parameters``: components, subjects, the committed ``simulation_params.json``;
* ``synthesis``: the signal: unit processes times their gains, the events, the electrode.
"""
