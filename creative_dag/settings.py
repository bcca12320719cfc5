"""Where data lives: the warehouse home and the landing folder.

One place resolves them, from explicit values or the environment, so the CLI and
`dagster dev` (through `definitions.py`) agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CREATIVE_DAG_HOME"
LANDING_ENV = "CREATIVE_DAG_LANDING"
DEFAULT_HOME = "warehouse"


@dataclass(frozen=True)
class HomeLayout:
    """What the pipeline keeps under its home folder. Assets know only the warehouse file
    (`of_database`); this is the one place that turns it into the folders beside it."""

    home: Path

    @classmethod
    def of_database(cls, database: str | os.PathLike) -> HomeLayout:
        return cls(home=Path(database).resolve().parent)

    @property
    def database(self) -> Path:
        return self.home / "creative.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / ".dagster"

    @property
    def serving(self) -> Path:
        return self.home / "serving"

    @property
    def state(self) -> Path:
        """What the command line keeps between its invocations: the run memo, the watch's lock."""
        return self.home / "state"

    @property
    def run_memo(self) -> Path:
        """The fingerprint of the last successful CLI run per selection (creative_dag/run_memo.py)."""
        return self.state / "last_runs.json"

    @property
    def embedding_store(self) -> Path:
        """Encoder output (per-launch-date Parquet) before it is published to the warehouse."""
        return self.home / "embedding_store"

    @property
    def cache(self) -> Path:
        """Embedding cache (by image hash and model version) and landscape fits."""
        return self.home / "cache"

    @property
    def reports(self) -> Path:
        """Files made for people: the HTML report (creative_memory.html) and the landscape PNG."""
        return self.home / "reports"

    @property
    def case_index(self) -> Path:
        """The persisted FAISS case index of cbr.case_base."""
        return self.home / "index" / "cbr"

    @property
    def models(self) -> Path:
        """Fitted models of the marts (the prelaunch forecast), in their libraries' own formats."""
        return self.home / "models"


@dataclass(frozen=True)
class Locations(HomeLayout):
    """Resolved, absolute locations of one deployment: the home layout plus the landing folder."""

    landing: Path


def resolve_locations(home: str | os.PathLike | None = None,
                      landing: str | os.PathLike | None = None) -> Locations:
    """Explicit argument > environment variable > default (`./warehouse`, the home's `landing/`)."""
    home_value = home or os.environ.get(HOME_ENV) or DEFAULT_HOME
    home_path = Path(home_value).expanduser().resolve()
    landing_value = landing or os.environ.get(LANDING_ENV)
    landing_path = Path(landing_value).expanduser().resolve() if landing_value else home_path / "landing"
    return Locations(home=home_path, landing=landing_path)
