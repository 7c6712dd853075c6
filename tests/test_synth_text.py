"""Sentence selection, transcripts, phone normalisation and alignment edges of the
synthetic corpus (no synthesizer needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechrep.data.corpora.common import normalize_text
from speechrep.data.synth.text import FORTUNES_DIR, fortune_sentences, is_plain_sentence
from speechrep.data.synth.voices import PHONES, fit_alignment, normalize_phone
from speechrep.errors import DataError


@pytest.mark.parametrize(
    "sentence, keep",
    [
        ("A clash of doctrine is not a disaster.", True),
        ("Don't look back, something might be gaining on you.", True),
        ("Is a well-known fact really known?", True),
        ("Too short to keep.", False),  # 4 words
        (
            "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen more.",
            False,
        ),
        ("lower case start is not a sentence.", False),
        ("There were 42 of them in the room.", False),  # digits
        ("The NASA budget was cut again this year.", False),  # acronym
        ("F u cn rd ths u cnt spl wrth a dm!", False),  # words without vowels
        ("He said hello to the famous Dr.", False),  # abbreviation split off
        ('She said "yes" and left the room.', False),  # quotes
        ("No full stop at the end of this one", False),
        ("I think that I shall never see a poem.", True),  # "I" is not an acronym
    ],
)
def test_sentence_filter(sentence: str, keep: bool):
    assert is_plain_sentence(sentence) is keep


def test_fortune_sentences_from_a_fixture_tree(tmp_path: Path):
    (tmp_path / "wisdom").write_text(
        "A dream will always triumph over reality, once it is given the chance.\n"
        "\t\t-- Stanislaw Lem Was Here Today With Friends\n%\n"
        "A fake fortuneteller can be tolerated.  But an authentic soothsayer should\n"
        "be shot on sight.  Cassandra did not get half the kicking around she deserved.\n%\n"
        "a dream will always triumph over reality, once it is given the chance.\n",
        encoding="utf-8",
    )
    (tmp_path / "food").write_text("Lunch is the best meal of the day.\n%\n", encoding="utf-8")
    assert fortune_sentences(["wisdom", "food"], root=tmp_path) == [
        "A dream will always triumph over reality, once it is given the chance.",  # attribution dropped
        "A fake fortuneteller can be tolerated.",
        "But an authentic soothsayer should be shot on sight.",  # lines joined
        "Cassandra did not get half the kicking around she deserved.",
        "Lunch is the best meal of the day.",  # duplicate (ignoring case) dropped
    ]
    with pytest.raises(DataError, match="install the Debian package 'fortunes'"):
        fortune_sentences(["nosuch"], root=tmp_path)


@pytest.mark.skipif(not (FORTUNES_DIR / "wisdom").is_file(), reason="Debian package 'fortunes' not installed")
def test_installed_fortunes_give_thousands_of_unique_sentences():
    sentences = fortune_sentences()
    assert len(sentences) > 5000 and len({s.lower() for s in sentences}) == len(sentences)
    assert all(is_plain_sentence(s) for s in sentences[:500])
    assert sentences == fortune_sentences()  # deterministic order


def test_normalize_text():
    assert normalize_text("Don't look back, something well-known -- 'quoted' 42 times!") == (
        "DON'T LOOK BACK SOMETHING WELL KNOWN QUOTED 42 TIMES"
    )


def test_phone_set_and_normalisation():
    assert len(PHONES) == 40 and PHONES[0] == "pau" and len(set(PHONES)) == 40
    assert normalize_phone("ax") == "ah" and normalize_phone("AE") == "ae" and normalize_phone("pau") == "pau"
    with pytest.raises(ValueError, match="unknown phone 'xx'"):
        normalize_phone("xx")


def test_fit_alignment_clips_to_shorter_audio():
    # flite kal16: audio ends inside the final pause
    ends = [(0.2, "pau"), (0.5, "ah"), (0.9, "pau")]
    assert fit_alignment(ends, 0.78) == [(0.0, 0.2, "pau"), (0.2, 0.5, "ah"), (0.5, 0.78, "pau")]
    # a segment entirely past the audio is dropped, the one across the end is clipped
    assert fit_alignment([(0.2, "pau"), (0.5, "ah"), (0.6, "s")], 0.45) == [(0.0, 0.2, "pau"), (0.2, 0.45, "ah")]


def test_fit_alignment_labels_trailing_audio_as_pause():
    # festival diphones: audio 20-30 ms past the last segment; last pause extended
    assert fit_alignment([(0.2, "pau"), (0.5, "ah"), (0.7, "pau")], 0.725) == [
        (0.0, 0.2, "pau"),
        (0.2, 0.5, "ah"),
        (0.5, 0.725, "pau"),
    ]
    # no final pause: one is appended
    assert fit_alignment([(0.2, "pau"), (0.5, "ah")], 0.6) == [(0.0, 0.2, "pau"), (0.2, 0.5, "ah"), (0.5, 0.6, "pau")]


def test_fit_alignment_drops_empty_and_merges_pauses():
    ends = [(0.1, "pau"), (0.1, "t"), (0.2, "pau"), (0.4, "ah"), (0.5, "pau")]
    assert fit_alignment(ends, 0.5) == [(0.0, 0.2, "pau"), (0.2, 0.4, "ah"), (0.4, 0.5, "pau")]
