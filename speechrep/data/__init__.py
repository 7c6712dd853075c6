"""Kaldi data directories, audio I/O and alignments.

* :mod:`speechrep.data.kaldi_dir`: read/write/validate data directories (``DataDir``).
* :mod:`speechrep.data.audio`: ``load_audio``, ``iter_audio``, ``write_wav``.
* :mod:`speechrep.data.ctm`: CTM alignments and frame labels.
"""

from speechrep.data.audio import iter_audio, load_audio, write_wav
from speechrep.data.ctm import frame_labels, read_ctm, write_ctm
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, validate_data_dir, write_kaldi_map

__all__ = [
    "DataDir",
    "frame_labels",
    "iter_audio",
    "load_audio",
    "read_ctm",
    "read_kaldi_map",
    "validate_data_dir",
    "write_ctm",
    "write_kaldi_map",
    "write_wav",
]
