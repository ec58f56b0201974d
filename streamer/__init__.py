"""streamer: find an LSL EEG stream, read one channel in µV, detect gaps, stalls and
loss, and feed sleepnet's preprocessor to get timed 30-s epochs.

Public pieces: :func:`streamer.resolve.resolve_stream` and :class:`StreamQuery`,
:class:`streamer.stream.EEGStream` (connect / acquire / disconnect),
:class:`streamer.epochs.EpochAssembler` and :class:`TimedEpoch`,
:class:`streamer.truth.TruthStream` (true stages from a replay).
"""
