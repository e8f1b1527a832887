"""Threads that fit the machine: one decision, from the request, the environment, or the CPUs allowed."""

import pytest

from serving import threads
from training.cli import main


def cgroup(tmp_path, v2=None, v1=None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    return tmp_path


def test_no_quota_means_the_affinity_mask_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 6)
    choice = threads.choose(environ={}, root=cgroup(tmp_path, v2="max 100000\n"))
    assert (choice.threads, choice.source, choice.quota_cpus) == (6, "CPU affinity", None)


def test_a_cgroup_v2_quota_below_the_cores_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    choice = threads.choose(environ={}, root=cgroup(tmp_path, v2="150000 100000\n"))
    assert (choice.threads, choice.source, choice.quota_cpus) == (2, "cgroup CPU quota", 1.5)


def test_a_cgroup_v1_quota_is_read_too(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 4)
    choice = threads.choose(environ={}, root=cgroup(tmp_path, v1=("100000", "100000")))
    assert (choice.threads, choice.source) == (1, "cgroup CPU quota")


def test_a_quota_above_the_affinity_mask_does_not_add_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 2)
    assert threads.choose(environ={}, root=cgroup(tmp_path, v2="800000 100000")).threads == 2


def test_the_environment_overrides_detection_and_the_flag_overrides_both(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    root = cgroup(tmp_path)
    assert threads.choose(environ={"RASID_THREADS": "3"}, root=root).threads == 3
    choice = threads.choose(5, environ={"RASID_THREADS": "3"}, root=root)
    assert (choice.threads, choice.source) == (5, "--threads")


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_environment_value_is_refused_with_its_name(value):
    with pytest.raises(ValueError, match="RASID_THREADS"):
        threads.choose(environ={"RASID_THREADS": value})


def test_every_command_takes_threads_and_a_bad_count_is_a_clear_error(capsys):
    assert main(["split", "--data", "x.jsonl", "--train-out", "a", "--val-out", "b", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_configure_applies_the_choice_to_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        choice = threads.configure(1)
        assert torch.get_num_threads() == 1 and threads.chosen() == choice
    finally:
        torch.set_num_threads(before)


def test_torchrun_processes_on_one_machine_share_its_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    choice = threads.choose(environ={"LOCAL_WORLD_SIZE": "4"}, root=cgroup(tmp_path))
    assert choice.threads == 2 and "torchrun" in choice.source
