"""Kaldi data directories, audio I/O and alignments.

* :mod:`speechrep.data.kaldi_dir`: read/write data directories (``DataDir``);
  :mod:`speechrep.data.validate`: validate/fix; :mod:`speechrep.data.dir_ops`:
  subset/split/combine.
* :mod:`speechrep.data.audio`: ``load_audio``, ``iter_audio``, ``write_wav``,
  ``write_utt2dur``.
* :mod:`speechrep.data.ctm`: CTM alignments and frame labels.
* :mod:`speechrep.data.textgrid`: Praat TextGrids <-> CTM.
"""

from speechrep.data.audio import iter_audio, load_audio, write_utt2dur, write_wav
from speechrep.data.ctm import frame_labels, read_ctm, write_ctm
from speechrep.data.dir_ops import combine_data_dirs, split_data_dir, subset_data_dir
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, write_kaldi_map
from speechrep.data.validate import fix_data_dir, validate_data_dir

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
