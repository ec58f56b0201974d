"""The CNN-LSTM: an epoch encoder CNN, a one-direction LSTM over the last five epochs,
and a classifier for the LAST epoch of the window (never the middle: no future epochs).

Kernel sizes are given in seconds and turned into samples with the model rate, in the
braindecode manner, so the same description works at any rate.

The design follows TinySleepNet [1]_, itself a lighter DeepSleepNet [2]_: a first
convolution with a 0.5-s kernel (fs/2) and a stride of about fs/16, max-pooling by 8, three
convolutions, max-pooling by 4, dropout, then a one-direction LSTM of 128 units over a
sequence of epochs. Where we differ: 32 then 64 filters (TinySleepNet: 128), a projection of
each epoch to a 128-value embedding, windows of 5 epochs (TinySleepNet: 20) labelled at the
LAST epoch so nothing from the future is needed live, and the LSTM state is not carried from
one window to the next (each window is scored on its own, so batch equals live).

References
----------
.. [1] Supratak A, Guo Y. TinySleepNet: an efficient deep learning model for sleep stage
   scoring based on raw single-channel EEG. 42nd Annual International Conference of the
   IEEE Engineering in Medicine & Biology Society (EMBC), 2020, 641-644.
   doi:10.1109/EMBC44109.2020.9176741
.. [2] Supratak A, Dong H, Wu C, Guo Y. DeepSleepNet: a model for automatic sleep stage
   scoring based on raw single-channel EEG. IEEE Transactions on Neural Systems and
   Rehabilitation Engineering 25(11), 2017, 1998-2008. doi:10.1109/TNSRE.2017.2721116
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """The CNN–LSTM's architecture; stored in a folder's ``config.json`` under ``"model"``.

    Durations are in seconds and turned into samples at ``sfreq_hz`` (the braindecode
    manner), so one description works at any rate.

    Parameters
    ----------
    sfreq_hz : float
        The rate the network reads, Hz.
    epoch_s : float
        Epoch length, s.
    n_classes : int
        Stages out (5: W, N1, N2, N3, REM).
    seq_len : int
        Epochs per window (the current one and those before it).
    conv1_filters : int
        Filters of the first convolution.
    conv1_kernel_s : float
        Its kernel, s (0.5 s: fs/2 samples).
    conv1_stride_s : float
        Its stride, s (about fs/16 samples).
    pool1_s : float
        The first max-pooling, s (divided by the stride: 8).
    conv_filters : int
        Filters of the later convolutions.
    conv_kernel_s : float
        Their kernel, s of signal (in strided samples inside the network).
    n_conv_blocks : int
        How many later convolutions.
    pool2_s : float
        The second max-pooling, s of signal (4 after the first pooling).
    embed_dim : int
        Size of each epoch's embedding.
    lstm_hidden : int
        Units of the one-direction LSTM.
    dropout : float
        Dropout rate (training only).
    """

    sfreq_hz: float = 100.0
    epoch_s: float = 30.0
    n_classes: int = 5
    seq_len: int = 5
    conv1_filters: int = 32
    conv1_kernel_s: float = 0.5
    conv1_stride_s: float = 0.06
    pool1_s: float = 0.48
    conv_filters: int = 64
    conv_kernel_s: float = 0.64
    n_conv_blocks: int = 3
    pool2_s: float = 1.92
    embed_dim: int = 128
    lstm_hidden: int = 128
    dropout: float = 0.3

    def samples(self, seconds: float) -> int:
        """A duration in samples at :attr:`sfreq_hz`.

        Parameters
        ----------
        seconds : float
            The duration, s.

        Returns
        -------
        int
            Its length in samples, at least 1.
        """
        return max(1, int(round(seconds * self.sfreq_hz)))

    @property
    def epoch_samples(self) -> int:
        """Samples per epoch (3000 at 100 Hz x 30 s): :meth:`samples` of ``epoch_s``."""
        return self.samples(self.epoch_s)

    def as_dict(self) -> dict:
        """The architecture as ``config.json`` stores it.

        Returns
        -------
        dict
            Each field by name (durations in s, the rate in Hz), as ``ModelConfig(**d)``
            takes them back.
        """
        return asdict(self)


class EpochEncoder(nn.Module):
    """One 30-s epoch to an embedding.

    Input: (batch, 1, n_times) with n_times = epoch_s * sfreq (3000 at 100 Hz).
    Output: (batch, embed_dim).

    Parameters
    ----------
    cfg : ModelConfig
        The architecture: its convolution kernels, strides and pools (s), filter counts,
        dropout and ``embed_dim``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        stride1 = cfg.samples(cfg.conv1_stride_s)
        pool1 = max(1, round(cfg.pool1_s / cfg.conv1_stride_s))
        k = cfg.samples(cfg.conv_kernel_s) // stride1 or 1
        layers: list[nn.Module] = [
            nn.Conv1d(1, cfg.conv1_filters, cfg.samples(cfg.conv1_kernel_s), stride=stride1, bias=False),
            nn.BatchNorm1d(cfg.conv1_filters), nn.ReLU(), nn.MaxPool1d(pool1), nn.Dropout(cfg.dropout),
        ]
        ch = cfg.conv1_filters
        for _ in range(cfg.n_conv_blocks):
            layers += [nn.Conv1d(ch, cfg.conv_filters, k, padding=k // 2, bias=False),
                       nn.BatchNorm1d(cfg.conv_filters), nn.ReLU()]
            ch = cfg.conv_filters
        pool2 = max(1, round(cfg.pool2_s / (cfg.conv1_stride_s * pool1)))
        layers += [nn.MaxPool1d(pool2), nn.Flatten(), nn.Dropout(cfg.dropout)]
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, cfg.epoch_samples)).shape[1]
        self.project = nn.Sequential(nn.Linear(n_flat, cfg.embed_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode epochs.

        Parameters
        ----------
        x : torch.Tensor
            (batch, 1, n_times) epochs, n_times = epoch_s * sfreq.

        Returns
        -------
        torch.Tensor
            (batch, embed_dim) embeddings.
        """
        return self.project(self.features(x))


class CausalSleepNet(nn.Module):
    """CNN-LSTM scoring the last epoch of a window of ``seq_len`` epochs (after
    TinySleepNet, Supratak & Guo 2020; see the module docstring).

    forward: (batch, seq_len, 1, n_times) -> logits (batch, n_classes) for the LAST epoch.
    encode:  (batch, 1, n_times) -> (batch, embed_dim), once per epoch.
    classify_embeddings: (batch, seq, embed_dim) -> logits (batch, n_classes).

    Parameters
    ----------
    cfg : ModelConfig
        The architecture, kept as ``cfg`` (``save_model`` writes it to ``config.json``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = EpochEncoder(cfg)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.lstm_hidden, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.lstm_hidden, cfg.n_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encode each epoch once (the stager keeps the embeddings of its window).

        Parameters
        ----------
        x : torch.Tensor
            (batch, 1, n_times) epochs.

        Returns
        -------
        torch.Tensor
            (batch, embed_dim) embeddings.
        """
        return self.encoder(x)

    def classify_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        """Run the LSTM over windows of embeddings and classify their LAST epoch.

        Parameters
        ----------
        emb : torch.Tensor
            (batch, seq, embed_dim) embeddings, oldest first.

        Returns
        -------
        torch.Tensor
            (batch, n_classes) logits of each window's last epoch.
        """
        out, _ = self.lstm(emb)
        return self.classifier(self.dropout(out[:, -1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the last epoch of each window.

        Parameters
        ----------
        x : torch.Tensor
            (batch, seq_len, 1, n_times) windows of epochs, oldest first.

        Returns
        -------
        torch.Tensor
            (batch, n_classes) logits.
        """
        b, s = x.shape[:2]
        emb = self.encode(x.reshape(b * s, *x.shape[2:])).reshape(b, s, -1)
        return self.classify_embeddings(emb)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of a network.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int
        Its parameter count (trainable or not).
    """
    return sum(p.numel() for p in model.parameters())
