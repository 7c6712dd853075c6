"""Kaldi data directories, audio I/O and alignments.

* :mod:`speechrep.data.kaldi_dir`: read/write/validate/fix/subset/split/combine data
  directories (``DataDir``).
* :mod:`speechrep.data.audio`: ``load_audio``, ``iter_audio``, ``write_wav``,
  ``write_utt2dur``.
* :mod:`speechrep.data.ctm`: CTM alignments and frame labels.
* :mod:`speechrep.data.textgrid`: Praat TextGrids <-> CTM.
"""

from speechrep.data.audio import iter_audio, load_audio, write_utt2dur, write_wav
from speechrep.data.ctm import frame_labels, read_ctm, write_ctm
from speechrep.data.kaldi_dir import (
    DataDir,
    combine_data_dirs,
    fix_data_dir,
    read_kaldi_map,
    split_data_dir,
    subset_data_dir,
    validate_data_dir,
    write_kaldi_map,
)

__all__ = [
    "DataDir",
    "combine_data_dirs",
    "fix_data_dir",
    "frame_labels",
    "iter_audio",
    "load_audio",
    "read_ctm",
    "read_kaldi_map",
    "split_data_dir",
    "subset_data_dir",
    "validate_data_dir",
    "write_ctm",
    "write_kaldi_map",
    "write_utt2dur",
    "write_wav",
]
