"""orgplane instance SDK: make any ASGI app an orgplane org instance (contract v1).

    from orgplane_sdk import OrgInstance
    org = OrgInstance.from_env()
    app = org.wrap(my_asgi_app)   # Host and token checks, probes, heartbeats

See ``sdk/python/README.md`` in the orgplane repository.
"""

from orgplane_sdk.contract import CONTRACT_VERSION, Env, HeartbeatAnswer, HeartbeatBody
from orgplane_sdk.heartbeat import HeartbeatRefused, HeartbeatSender
from orgplane_sdk.instance import ConfigError, InstanceConfig, OrgInstance
from orgplane_sdk.middleware import OrgGuard
from orgplane_sdk.verifier import InvalidToken, TokenVerifier

__all__ = [
    "CONTRACT_VERSION",
    "ConfigError",
    "Env",
    "HeartbeatAnswer",
    "HeartbeatBody",
    "HeartbeatRefused",
    "HeartbeatSender",
    "InstanceConfig",
    "InvalidToken",
    "OrgGuard",
    "OrgInstance",
    "TokenVerifier",
]
