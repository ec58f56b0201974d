"""sleepnet.io: files in and out (recordings, hypnograms, scored nights, exports).

* ``atomic``: files written whole or not at all (temporary file, fsync, rename);
* ``exports``: files the batch commands write: stage CSV, metrics JSON, confusion CSV;
* ``feature_nights``: labelled nights as per-epoch features (the shared Sleep-EDF feature files);
* ``hypnogram_exports``: hypnograms other tools read: EDF+ annotations, BIDS events;
* ``hypnograms``: EDF+ annotations and text hypnograms to one stage code per 30-s epoch;
* ``night_file``: a scored night: the live hypnogram TSV or the batch stage CSV;
* ``recordings``: EDF/BDF/npz recordings to one channel in µV.
"""
