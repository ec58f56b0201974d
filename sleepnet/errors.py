"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class SleepstreamError(Exception):
    """Base class: a problem with the user's input, named in the message."""


class InputFileError(SleepstreamError):
    """A recording or hypnogram file that cannot be read or does not fit."""


class WeightsError(SleepstreamError):
    """Missing, corrupt or mismatched model weights."""


class OutputWriteError(SleepstreamError):
    """An output file that could not be written whole (full disk, unwritable folder, a file
    too large for the process's limit); the file it would have replaced is unchanged."""
