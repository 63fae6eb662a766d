"""Default device names shaped like the LatBench columns."""

from __future__ import annotations

import pytest

from eagle_agent.detect import check_device_name, cpu_model, default_device_name, host_facts, slugify

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-7820X CPU @ 3.60GHz\n"
ARM = "processor\t: 0\nBogoMIPS\t: 38.40\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Intel(R) Core(TM) i7-7820X CPU @ 3.60GHz", "core_i7_7820x"),  # the LatBench desktop CPU column
        ("AMD Ryzen 9 5950X 16-Core Processor", "ryzen_9_5950x"),
        ("AMD EPYC", "amd_epyc"),  # the vendor stays when it would leave one word
        ("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "xeon_gold_6230"),
        ("", "unknown"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_default_name_matches_the_latbench_column_for_the_papers_cpu() -> None:
    assert default_device_name("fp32", cpuinfo=INTEL) == "desktop_cpu_core_i7_7820x_fp32"
    assert default_device_name("int8", cpuinfo=INTEL).endswith("_int8")


def test_cpu_model_falls_back_to_arm_fields() -> None:
    assert cpu_model(ARM) == "Raspberry Pi 4 Model B Rev 1.4"


def test_this_machine_gets_a_valid_name() -> None:
    name = default_device_name()
    assert check_device_name(name) == name and name.startswith("desktop_cpu_")
    assert set(host_facts()) >= {"cpu", "cpus", "os", "python"}


@pytest.mark.parametrize("bad", ["Desktop CPU", "desktop-cpu", "", "_x", "a" * 200])
def test_bad_device_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        check_device_name(bad)


def test_local_is_a_device_name() -> None:
    assert check_device_name("local") == "local"
