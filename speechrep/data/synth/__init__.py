"""The embedded corpus: speech generated offline by Debian's synthesizers (flite,
festival) reading sentences of the ``fortunes`` package, with exact phone timings.

* :mod:`speechrep.data.synth.text`: sentence selection and transcript normalisation.
* :mod:`speechrep.data.synth.voices`: speakers, synthesizer drivers, phone set, edge
  handling of the alignments (with the measured mismatches).
* :mod:`speechrep.data.synth.build`: splits, output layout, :func:`make_synth`.
* :mod:`speechrep.data.synth.many`: the many-voice corpus (sizes ``many``, ``large``).
* :mod:`speechrep.data.synth.real`: real voices (Asterisk G.722 prompt packs).
"""

from speechrep.data.corpora.common import normalize_text
from speechrep.data.synth.build import SIZES, SPLITS, SynthSize, assign_sentences, make_synth
from speechrep.data.synth.text import FORTUNE_CATEGORIES, fortune_sentences
from speechrep.data.synth.voices import PHONES, SAMPLE_RATE, SPEAKERS, SynthSpeaker, check_voices, synthesize

__all__ = [
    "FORTUNE_CATEGORIES",
    "PHONES",
    "SAMPLE_RATE",
    "SIZES",
    "SPEAKERS",
    "SPLITS",
    "SynthSize",
    "SynthSpeaker",
    "assign_sentences",
    "check_voices",
    "fortune_sentences",
    "make_synth",
    "normalize_text",
    "synthesize",
]
