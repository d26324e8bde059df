"""The sync settings, defined once: the seed's client options plus the engine's own knobs.

`AgentConfig` (agent/config.py) extends these with what only the agent process needs (data
folder, loopback port, PIN...), and the engine takes them as they are: no field is copied
from one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.tenancy import DEFAULT_TENANT
from protocol.vocabulary import DivergenceStrategy

STRATEGIES: tuple[str, ...] = tuple(s.value for s in DivergenceStrategy)
# Settings of the engine that no settings file or variable sets: the key comes from the OS
# keyring (agent/secrets.py), the others from tests and benches.
ENGINE_ONLY = ("api_key", "push_batch", "clock_skew_ms")


@dataclass(frozen=True)
class SyncSettings:
    """The seed's client options (`initSyncClient`), in milliseconds like the seed."""

    server_url: str = "http://127.0.0.1:3001"
    machine_id: str | None = None  # the agent resolves it before the engine starts
    # The shop (tenant) this PDV belongs to on a server holding several; None: the default
    # shop, which is also what a server without shops serves.
    tenant_id: str | None = None
    auto_sync: bool = True
    interval_ms: int = 5000
    retry_attempts: int = 3
    retry_base_delay_ms: int = 500
    retry_max_delay_ms: int = 5000
    auto_reconcile: bool = True
    reconcile_interval_ms: int = 60000
    divergence_strategy: DivergenceStrategy = DivergenceStrategy.REFRESH_MISMATCHED
    # Never shown (repr) nor compared: settings are logged and compared for changes.
    api_key: str | None = field(default=None, repr=False, compare=False)
    push_batch: int = 500  # events per push; a 413 halves it for the batch at hand
    clock_skew_ms: int = 0  # test hook: pretend the local clock is off

    def __post_init__(self) -> None:
        # Files and variables give the strategy as text: held as the enum when it is one
        # (an unknown word is left for validation to name).
        value = self.divergence_strategy
        if not isinstance(value, DivergenceStrategy) and value in STRATEGIES:
            object.__setattr__(self, "divergence_strategy", DivergenceStrategy(value))
        if self.tenant_id == "":  # a cleared field or an empty value in a file: no shop
            object.__setattr__(self, "tenant_id", None)

    @property
    def tenant(self) -> str:
        """The shop the engine syncs with: the one set, else the default shop."""
        return self.tenant_id or DEFAULT_TENANT
