"""The deploy files name only variables the control plane reads."""

from __future__ import annotations

import dataclasses

from provisioners.base import ProvisionerOptions
from tests.deploy.settings_names import setting_names, unknown


def test_every_provisioner_option_is_a_setting() -> None:
    # The control plane hands settings to the provisioners by field name
    # (ProvisionerOptions.from_mapping): each option must be settable from the environment.
    fields = {f"ORGPLANE_{field.name.upper()}" for field in dataclasses.fields(ProvisionerOptions)}
    derived = {"ORGPLANE_DATA_ROOT", "ORGPLANE_INSTANCE_PORT"}  # from the data dir; contract port
    assert fields - derived - setting_names() == set()


def test_an_unknown_name_is_reported() -> None:
    assert unknown({"ORGPLANE_MODE", "ORGPLANE_KUBERNETES_INGRESS", "ORGPLANE_MODEL"}) == {
        "ORGPLANE_MODEL"
    }
