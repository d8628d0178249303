"""Launcher options (`sdm.jobspec`, the CLI's --launcher options): refused in one line, naming the
option or the file and what was expected, before anything is submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdm.__main__ import main
from sdm.jobspec import JobSpec, job_spec, time_minutes


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("90", 90),
        ("1:30", 2),  # minutes:seconds, rounded up
        ("4:00:00", 240),
        ("1-12", 2160),
        ("1-00:30", 1470),
        ("2-00:00:01", 2881),
    ],
)
def test_slurm_time_formats_become_minutes(text, minutes):
    assert time_minutes(text) == minutes


@pytest.mark.parametrize("bad", ["", "0", "abc", "1:2:3:4", "-5", "1.5"])
def test_a_bad_time_limit_is_refused(bad):
    with pytest.raises(ValueError, match="time: expected"):
        time_minutes(bad)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("jobs", 0, "jobs: expected an integer >= 1"),
        ("cpus", 0, "cpus-per-job: expected an integer >= 1"),
        ("gpus", -1, "gpus-per-job: expected an integer >= 0"),
        ("jobs", True, "jobs: expected an integer"),
        ("mem", "lots", "mem: expected a size"),
        ("partition", " ", "partition: expected a non-empty name"),
    ],
)
def test_bad_resources_name_the_option(field, value, message):
    with pytest.raises(ValueError, match=message):
        JobSpec(**{field: value})


def test_resources_become_submitit_parameters_and_sbatch_flags():
    spec = JobSpec(jobs=5, partition="gpu", time="12:00:00", cpus=4, gpus=1, mem="16G")
    assert spec.sbatch() == {
        "time": 720,
        "cpus_per_task": 4,
        "gpus_per_node": 1,
        "partition": "gpu",
        "mem": "16G",
    }
    assert spec.sbatch_flags() == [
        "--time=720",
        "--cpus-per-task=4",
        "--gpus-per-node=1",
        "--partition=gpu",
        "--mem=16G",
    ]
    assert spec.device == "cuda" and JobSpec().device == "cpu"


def test_a_file_holds_the_cluster_settings_and_options_win(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text(
        'partition = "gpu"\ntime = "1-00:00:00"\ncpus-per-job = 8\ngpus-per-job = 1\n'
        'setup = ["module load python"]\njobs = 5\n'
    )
    spec = job_spec(path, cpus=2, partition=None)
    assert spec == JobSpec(
        jobs=5, partition="gpu", time="1-00:00:00", cpus=2, gpus=1, setup=("module load python",)
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("partiton = 'gpu'\n", "unknown key 'partiton'; expected some of jobs, partition"),
        ("cpus-per-job = 'four'\n", "cpus-per-job: expected an integer >= 1"),
        ("time = \n", "not valid TOML"),
    ],
)
def test_a_bad_file_names_itself_and_the_key(tmp_path, text, message):
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        job_spec(path)
    assert str(err.value).startswith(str(path))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such launcher configuration file"):
        job_spec(tmp_path / "nope.toml")


def _cli(capsys, args: list[str]) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "2"], "--jobs is an option of --launcher slurm"),
        (["--no-wait"], "--no-wait is an option of --launcher slurm"),
        (["--launcher", "slurm", "--workers", "2"], "--workers is for --launcher local"),
        (["--launcher", "slurm", "--time", "soon"], "time: expected minutes"),
        (["--launcher", "slurm", "--device", "cuda"], "jobs with 0 GPU(s) train on cpu"),
    ],
)
def test_bad_launcher_options_are_one_line_and_status_2(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _cli(capsys, ["train", "--variant", "vae-m32", "--out", str(out), *args])
    assert code == 2 and len(err) == 1, err
    assert message in err[0]
    assert not out.exists()


def test_no_sbatch_on_path_is_one_line_before_anything_is_submitted(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    code, err = _cli(
        capsys,
        ["train", "--variant", "vae-m32", "--out", str(out), "--launcher", "slurm", "--jobs", "2"],
    )
    assert code == 2 and len(err) == 1, err
    assert "`sbatch` is not on PATH" in err[0]
    assert not Path(out).exists()
