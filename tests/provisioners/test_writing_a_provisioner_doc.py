"""docs/writing-a-provisioner.md stays true to the interface.

Proves: the example backend in the guide compiles against today's ``provisioners`` package,
implements every abstract method (it can be instantiated), and is built the way the registry
builds backends; the entry-point group the guide names is the one the registry reads.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

from provisioners.base import Provisioner, ProvisionerOptions
from provisioners.registry import ENTRY_POINT_GROUP

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-provisioner.md"


async def test_the_example_backend_implements_the_interface() -> None:
    text = GUIDE.read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    module = types.ModuleType("orgplane_nomad")
    exec(compile(code, str(GUIDE), "exec"), module.__dict__)

    backend = module.NomadProvisioner
    assert issubclass(backend, Provisioner)
    assert backend.name == "nomad"
    assert not backend.__abstractmethods__
    made = backend(options=ProvisionerOptions(deployment_id="docs"))
    await made.close()
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in text
