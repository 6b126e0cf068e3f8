"""The task processes a spec implies, and the limit checked when a request arrives."""
from __future__ import annotations

import pytest

from hangar.schemas.classes import EnvironmentClass
from hangar.domain.limits import TaskProcessLimitExceeded, check_task_processes, task_processes
from hangar.schemas.spec import Spec


def spec(**fields) -> Spec:
    return Spec.model_validate({"dags": "/tmp", "airflow_version": "3.3.2", **fields})


def test_local_schedulers_share_the_class_slots_instead_of_multiplying_them():
    # mw1.large: 20 tasks x 10 workers = 200 slots; two schedulers used to run 200 each
    two = spec(environment_class="mw1.large", schedulers=2)
    assert task_processes(two) == (200, "parallelism 100 per scheduler x 2 schedulers")
    assert task_processes(spec(environment_class="small"))[0] == 16


def test_the_issue_s_process_bomb_is_refused_naming_the_limit():
    bomb = spec(environment_class="mw1.2xlarge", schedulers=5, max_workers=25,
                airflow_configuration_options={"core.parallelism": "2000"})
    with pytest.raises(TaskProcessLimitExceeded) as refused:
        check_task_processes(bomb, host_limit=256)
    assert refused.value.message.startswith("mw1.2xlarge with the local executor would run up to 10000 task processes")
    assert "parallelism 2000 per scheduler x 5 schedulers" in refused.value.message
    assert "the limit is 256 (HANGAR_MAX_TASK_PROCESSES" in refused.value.message


def test_celery_counts_workers_times_their_concurrency():
    celery = spec(environment_class="mw1.xlarge", executor="celery", max_workers=10)
    assert task_processes(celery) == (400, "40 tasks per worker x 10 workers")
    with pytest.raises(TaskProcessLimitExceeded, match="up to 400 task processes"):
        check_task_processes(celery, host_limit=256)
    check_task_processes(spec(environment_class="mw1.xlarge", executor="celery", max_workers=6), host_limit=256)
    override = spec(environment_class="mw1.small", executor="celery", max_workers=4,
                    airflow_configuration_options={"celery.worker_concurrency": "100"})
    assert task_processes(override)[0] == 400


def test_the_class_limit_applies_under_a_generous_host():
    # small: 5 tasks per worker on at most 25 workers, whatever the host allows
    with pytest.raises(TaskProcessLimitExceeded, match=r"the limit is 125 \(the most class small runs\)"):
        check_task_processes(spec(environment_class="small", airflow_configuration_options={"core.parallelism": "126"}),
                             host_limit=10_000)
    # a Celery environment of a small class at its test sizes
    check_task_processes(spec(executor="celery", max_workers=4), host_limit=256)
    check_task_processes(spec(executor="celery"), host_limit=256)


@pytest.mark.parametrize("cls", [c for c in EnvironmentClass if c not in (EnvironmentClass.mw1_xlarge,
                                                                       EnvironmentClass.mw1_2xlarge)])
def test_every_class_at_its_defaults_fits_the_default_host_limit(cls):
    check_task_processes(spec(environment_class=cls), host_limit=256)


def test_an_environment_s_own_limits_follow_its_class_and_executor_and_the_host_caps_them():
    from hangar.domain.limits import environment_limits

    small = spec(environment_class="small")
    tasks, memory = environment_limits(small, max_processes=None, memory_mib=None)
    assert tasks == 256 + 8 * 16
    assert memory == int(0.4 * 2**30 * 5 * 2)  # 5 tasks per worker; the rest, and one scheduler
    celery = spec(environment_class="mw1.small", executor="celery", max_workers=4, min_workers=1,
                  schedulers=1)
    assert environment_limits(celery, max_processes=None, memory_mib=None) == (256 + 8 * 20, int(0.4 * 2**30 * 5 * 6))
    assert environment_limits(celery, max_processes=300, memory_mib=1024) == (300, 2**30)
