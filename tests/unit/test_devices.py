"""Device specs: every shipped YAML validates, the template is skipped, bad input gets a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.devices import list_devices, load_device
from edgekd.errors import EdgekdError

REPO = Path(__file__).resolve().parents[2]
DEVICES = REPO / "devices"
IDS = ["jetson-agx-orin", "jetson-nano", "jetson-orin-nano", "jetson-orin-nano-super", "jetson-xavier-nx", "rpi4", "rpi5"]


def test_exactly_the_seven_devices_are_listed_and_the_template_is_skipped() -> None:
    assert list_devices(DEVICES) == IDS


@pytest.mark.parametrize("device", IDS)
def test_every_device_yaml_validates_with_sources(device: str) -> None:
    spec = load_device(device, DEVICES)
    assert spec.id == device
    assert spec.cpu.cores.value and spec.sources
    assert all(url.startswith("http") for url in spec.sources.values())


def test_the_template_loads_by_path() -> None:
    assert load_device(DEVICES / "_template.yaml").id == "my-board"


def test_unknown_device_gets_a_suggestion() -> None:
    with pytest.raises(EdgekdError, match="did you mean 'rpi5'"):
        load_device("rpi6", DEVICES)


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "rpi5.yaml"
    text = (DEVICES / "rpi5.yaml").read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_bad_value_names_the_file_and_field(tmp_path: Path) -> None:
    path = _edited(tmp_path, "cores: {value: 4,", "cores: {value: four,")
    with pytest.raises(EdgekdError, match=r"rpi5\.yaml: cpu\.cores\.value"):
        load_device(path)


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    path = _edited(tmp_path, "max_clock_ghz:", "max_clok_ghz:")
    with pytest.raises(EdgekdError, match=r"cpu\.max_clok_ghz: unknown field \(did you mean 'max_clock_ghz'\?\)"):
        load_device(path)


def test_a_figure_without_a_source_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "bandwidth_gbs: {value: 17, source: R2,", "bandwidth_gbs: {value: 17,")
    with pytest.raises(EdgekdError, match=r"memory\.bandwidth_gbs: .*needs a source"):
        load_device(path)


def test_an_unknown_source_tag_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "max_clock_ghz: {value: 2.4, source: R2}", "max_clock_ghz: {value: 2.4, source: ZZ}")
    with pytest.raises(EdgekdError, match="ZZ"):
        load_device(path)


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(EdgekdError, match=r"broken\.yaml: not valid YAML"):
        load_device(path)


def test_a_wheel_install_finds_the_device_specs_it_installed(tmp_path, monkeypatch) -> None:
    """No checkout, no ./devices: the specs a wheel installs under <prefix>/share/edgekd/devices are used."""
    import shutil
    import sys

    from edgekd.devices import loader

    installed = tmp_path / "prefix" / "share" / "edgekd" / "devices"
    shutil.copytree(DEVICES, installed)
    monkeypatch.setattr(loader, "_REPO_DEVICES", tmp_path / "no-checkout" / "devices")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.delenv(loader.ENV_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert loader.devices_dir() == installed
    assert "rpi5" in loader.list_devices() and loader.load_device("rpi5").id == "rpi5"


def test_the_wheel_carries_the_device_specs_and_the_calibration(tmp_path) -> None:
    import subprocess
    import sys
    import zipfile

    import shutil

    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    for name in ("pyproject.toml", "README.md", "edgekd", "devices"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("edgekd-*.whl"))).namelist()
    shipped = {name.split("/share/edgekd/devices/")[1] for name in names if "/share/edgekd/devices/" in name}
    expected = {p.relative_to(DEVICES).as_posix() for p in DEVICES.rglob("*")
                if p.is_file() and p.suffix in (".yaml", ".json", ".md")}
    assert expected and expected <= shipped, expected - shipped
