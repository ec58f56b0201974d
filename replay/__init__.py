"""replay: recordings (npz, EDF/BDF) to LSL as simulated live streams."""
