"""`speechrep data ...` commands through the real entry point (exit codes, error lines)."""

import subprocess
import sys

import pytest

from speechrep.cli import main
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_validate_ok_and_problems(data_dir, capsys):
    code, out, _ = _run(["data", "validate", data_dir, "--check-audio"], capsys)
    assert code == 0 and "OK" in out
    (data_dir / "text").write_text("spk1-utt2 b\nspk1-utt1 a\n")
    code, out, err = _run(["data", "validate", data_dir], capsys)
    assert code == 1
    lines = out.splitlines()
    assert f"{data_dir}/text:2: not sorted (C collation): 'spk1-utt1' after 'spk1-utt2'" in lines
    assert f"{data_dir}/utt2spk:3: utterance 'spk2-utt1' missing from text" in lines
    assert len(lines) == 3 and "3 problem(s)" in err


def test_validate_check_audio_exit_code(data_dir, capsys):
    wav = read_kaldi_map(data_dir / "wav.scp")
    (data_dir / "wav.scp").write_text("".join(f"{k} {v}.missing\n" for k, v in wav.items()))
    assert _run(["data", "validate", data_dir], capsys)[0] == 0
    code, out, _ = _run(["data", "validate", data_dir, "--check-audio"], capsys)
    assert code == 1 and out.count("audio file not found") == 4


def test_validate_help_says_pipes_are_shell_code(capsys):
    code, out, _ = _run(["data", "validate", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "/bin/sh" in text and "--no-pipes" in text and "--config" in text


def test_fix_prints_counts(data_dir, capsys):
    (data_dir / "text").write_text("spk1-utt1 a\nspk2-utt2 b\n")
    code, out, _ = _run(["data", "fix", data_dir], capsys)
    assert code == 0
    assert any(line.split() == ["utt2spk", "kept", "2", "dropped", "2"] for line in out.splitlines())
    assert DataDir.load(data_dir).utts == ["spk1-utt1", "spk2-utt2"]


def test_subset_split_combine(data_dir, tmp_path, capsys):
    (tmp_path / "spk").write_text("spk2\n")
    assert _run(["data", "subset", data_dir, tmp_path / "a", "--spk-list", tmp_path / "spk"], capsys)[0] == 0
    assert _run(["data", "subset", data_dir, tmp_path / "b", "--first", 2], capsys)[0] == 0
    (tmp_path / "u").write_text("spk1-utt2\n")
    assert _run(["data", "subset", data_dir, tmp_path / "c", "--utt-list", tmp_path / "u"], capsys)[0] == 0
    assert DataDir.load(tmp_path / "c").utts == ["spk1-utt2"]
    code, out, _ = _run(["data", "combine", tmp_path / "ab", tmp_path / "a", tmp_path / "b"], capsys)
    assert code == 0 and DataDir.load(tmp_path / "ab").utts == DataDir.load(data_dir).utts
    code, out, _ = _run(["data", "split", tmp_path / "ab", 2, "--by-speaker"], capsys)
    assert code == 0 and out.split() == [str(tmp_path / "ab" / "split2" / i) for i in "12"]
    assert DataDir.load(tmp_path / "ab" / "split2" / "2").speakers == ["spk2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "subset", "{d}", "{t}/x", "--first", "9"], "cannot take 9 of 4 utterances"),
        (["data", "subset", "{d}", "{t}/x"], "exactly one of"),
        (["data", "split", "{d}", "5"], "cannot split 4 utterances into 5 parts"),
        (["data", "combine", "{t}/x", "{d}", "{d}"], "utterance 'spk1-utt1' in both"),
        (["data", "fix", "{t}/nope"], "data directory not found"),
    ],
)
def test_errors_one_line_exit_1(data_dir, tmp_path, capsys, args, message):
    code, out, err = _run([a.format(d=data_dir, t=tmp_path) for a in args], capsys)
    assert code == 1
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_console_entry_point(data_dir):
    r = subprocess.run(
        [sys.executable, "-m", "speechrep", "data", "validate", str(data_dir / "nope")], capture_output=True, text=True
    )
    assert r.returncode == 1 and "not a directory" in r.stdout


def test_ctm_textgrid_commands(tmp_path, capsys):
    (tmp_path / "a.ctm").write_text("u1 1 0 0.5 a\nu1 1 0.5 0.25 b\n")
    code, out, _ = _run(["data", "ctm-to-textgrid", tmp_path / "a.ctm", tmp_path / "tg", "--tier", "ph"], capsys)
    assert code == 0 and "1 TextGrids" in out
    code, out, _ = _run(["data", "textgrid-to-ctm", tmp_path / "tg", tmp_path / "b.ctm", "--tier", "ph"], capsys)
    assert code == 0 and (tmp_path / "b.ctm").read_text() == (tmp_path / "a.ctm").read_text()
    code, _, err = _run(["data", "textgrid-to-ctm", tmp_path / "tg", tmp_path / "c.ctm"], capsys)
    assert code == 1 and "no interval tier 'phones'" in err


def test_utt2dur_command(data_dir, capsys):
    (data_dir / "utt2dur").unlink()
    code, out, _ = _run(["data", "utt2dur", data_dir], capsys)
    assert code == 0 and "4 utterances" in out
    assert DataDir.load(data_dir).utt2dur == {u: 0.5 for u in DataDir.load(data_dir).utts}
