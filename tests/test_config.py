"""Dagster run config comes from the compute dataclasses: a default or a description changed there is
what the launchpad and `--config` see, and a run's config comes back as the dataclass."""

import dataclasses

import dagster as dg
import pytest

from creative_dag.assets.decisions import EarlyDecisionsConfig
from creative_dag.assets.marts import RecommendationsConfig
from creative_dag.dagster_config import config_from, field_descriptions
from creative_dag.marts.early_decisions import EarlyDecisionParams
from creative_dag.marts.recommendations import RecommendationParams


@dataclasses.dataclass(frozen=True)
class Knobs:
    """alpha: the level; beta / gamma: two thresholds
    that share a line break; names: columns used.

    Not a field: this paragraph is prose."""

    alpha: float = 0.2
    beta: int = 3
    gamma: int = 4
    names: tuple[str, ...] = ("a", "b")
    hidden: int = 9


@dataclasses.dataclass(frozen=True)
class Other:
    """delta: another stage's knob."""

    delta: float = 1.5


def test_config_fields_types_defaults_and_descriptions_come_from_the_dataclass():
    class KnobsConfig(config_from(Knobs, "alpha", "beta", "names", also={Other: ("delta",)})):
        """doc"""

        own: str = ""

    @dg.asset
    def uses(config: KnobsConfig) -> float:
        return config.to_params().alpha + config.to_params(Other).delta

    fields = uses.op.config_schema.config_type.fields
    assert set(fields) == {"alpha", "beta", "names", "delta", "own"}
    assert fields["alpha"].default_value == 0.2 and fields["names"].default_value == ["a", "b"]
    assert fields["alpha"].description == "the level"
    assert fields["beta"].description == "two thresholds that share a line break"
    assert fields["delta"].description == "another stage's knob."
    params = KnobsConfig(alpha=0.5, names=["x"], delta=2.0).to_params()
    assert params == Knobs(alpha=0.5, names=("x",))          # tuples restored, unexposed fields default
    assert KnobsConfig(delta=2.0).to_params(Other) == Other(delta=2.0)
    assert KnobsConfig().to_params(beta=7).beta == 7         # the asset's own overrides
    result = dg.materialize([uses], run_config={"ops": {"uses": {"config": {"alpha": 1.0}}}})
    assert result.output_for_node("uses") == 2.5


def test_a_field_the_dataclass_lacks_is_an_error():
    with pytest.raises(TypeError, match="Knobs has no field nope"):
        config_from(Knobs, "alpha", "nope")


def test_descriptions_stop_at_prose_and_skip_words_that_are_not_fields():
    described = field_descriptions(Knobs)
    assert set(described) == {"alpha", "beta", "gamma", "names"}
    assert "prose" not in described["names"]


def test_the_project_configs_have_the_compute_defaults():
    assert EarlyDecisionsConfig().to_params() == EarlyDecisionParams()
    defaults = RecommendationParams()
    config = RecommendationsConfig()
    assert (config.fdr, config.top_n, config.min_stability) == (defaults.fdr, defaults.top_n, defaults.min_stability)
    assert RecommendationsConfig(fdr=0.1).to_params().fdr == 0.1


def test_every_setting_of_the_launchpad_says_what_it_does(tmp_path):
    """25 of the UI launchpad's fields had no description (cbr/backtest's and cbr/case_base's, the ranking's
    weights, the forecast's `workers` that docs/operations.md tells users to set, ...)."""
    from creative_dag.definitions import build_definitions

    defs = build_definitions(tmp_path / "home", tmp_path / "landing")
    fields, missing = 0, []
    for asset in defs.assets:
        schema = asset.node_def.config_schema if isinstance(asset, dg.AssetsDefinition) else None
        if schema is None or schema.config_type is None or schema.config_type.kind.name == "ANY":
            continue
        for name, field in schema.config_type.fields.items():
            fields += 1
            if not (field.description or "").strip():
                missing.append(f"{asset.node_def.name}.{name}")
    assert fields > 80 and missing == []
