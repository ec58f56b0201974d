"""streamer: find an LSL EEG stream, read it into a ring buffer, detect gaps and stalls,
and feed sleepnet's preprocessor."""
