"""replay: recordings (npz, EDF/BDF) to LSL as simulated live streams, with the true
stages on a second Markers stream. Public: :func:`replay.player.load_source`,
:class:`replay.player.ReplaySource`, :class:`replay.player.Player`."""
