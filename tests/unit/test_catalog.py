"""The base-env catalog: entries are read, and bad ones are refused with the file named."""

import pytest

from workspace_hub.catalog import CatalogError, load_catalog


def test_the_shipped_catalog():
    catalog = load_catalog()
    assert "python" in catalog
    python = catalog["python"]
    assert (python.device, python.image) == ("cpu", "workspace-hub/python:latest")
    assert python.mem_limit and python.cpu_limit


def test_build_layers_are_not_envs():
    assert not {"base", "workspace"} & set(load_catalog())


@pytest.mark.parametrize(
    "text, message",
    [
        ("id: other\ndisplay_name: x\nframework: x\ndevice: cpu\n", "must equal the folder name"),
        ("id: demo\ndisplay_name: x\nframework: x\ndevice: tpu\n", "device must be 'cpu' or 'gpu'"),
        ("id: demo\n", "missing keys display_name, framework, device"),
        ("id: [unclosed\n", "cannot read the catalog entry"),
    ],
)
def test_bad_entries_name_the_file_and_the_rule(tmp_path, text, message):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "env.yaml").write_text(text)
    with pytest.raises(CatalogError, match=message) as e:
        load_catalog(tmp_path)
    assert "demo/env.yaml" in str(e.value)
