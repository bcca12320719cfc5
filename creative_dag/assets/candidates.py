"""New candidates before launch (docs/candidates.md): marts.candidate_assessment and marts.candidate_pairs,
one `candidate_batch` partition per folder `<landing>/candidates/<batch>/`, and marts.pairwise_backtest, the
pairwise choice evaluated on history.

Thin wrappers over creative_dag.candidates: read the history, run the batch, write its partition's rows.
"""


import datetime as dt

import dagster as dg
import pandas as pd
from pydantic import Field

from creative_dag.assets.forecast import observable_oracle
from creative_dag.assets.metadata import table_metadata
from creative_dag.candidates.assess import AssessConfig, History
from creative_dag.candidates.batch import CANDIDATES_DIR, read_batch_folder
from creative_dag.candidates.pairwise import (
    PairConfig,
    confidence_sweep,
    evaluate_pairs,
)
from creative_dag.candidates.run import (
    assess_batch,
    assessment_rows,
    pair_rows,
    read_truth,
    truth_check,
)
from creative_dag.catalog import (
    EMBEDDING_KEYS,
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    MARTS_CANDIDATE_ASSESSMENT,
    MARTS_CANDIDATE_PAIRS,
    MARTS_PAIRWISE_BACKTEST,
    MARTS_PREDICTIONS,
    MARTS_RECOMMENDATIONS,
)
from creative_dag.dagster_config import config_from
from creative_dag.forecast.model import LEARNERS
from creative_dag.partitions import candidate_batch_partitions

CANDIDATES_GROUP = "candidates"


class CandidateAssessmentConfig(config_from(AssessConfig, "learner", "interval", "interval_gamma", "k_similar", "active_days",
                                            also={PairConfig: ("min_confidence",)})):
    """creative_dag.candidates.assess.AssessConfig and pairwise.PairConfig. as_of: ISO launch date the
    candidates are assessed for ("" = the day after the last metric date)."""

    as_of: str = Field("", description='ISO launch date the candidates are assessed for ("" = the day after '
                                       "the last metric date).")

    def configs(self) -> tuple[AssessConfig, PairConfig, dt.date | None]:
        if self.learner not in LEARNERS:
            raise ValueError(f"CandidateAssessmentConfig.learner {self.learner!r}: choose one of {', '.join(LEARNERS)}")
        try:
            as_of = dt.date.fromisoformat(self.as_of) if self.as_of else None
        except ValueError as exc:
            raise ValueError(f"CandidateAssessmentConfig.as_of {self.as_of!r} is not an ISO date YYYY-MM-DD") from exc
        return self.to_params(), self.to_params(PairConfig), as_of


@dg.multi_asset(
    specs=[dg.AssetSpec(MARTS_CANDIDATE_ASSESSMENT.key, deps=[FEATURES_PRELAUNCH.key, FEATURES_OUTCOMES.key, MARTS_PREDICTIONS.key,
                                                          MARTS_RECOMMENDATIONS.key, *EMBEDDING_KEYS],
                        group_name=CANDIDATES_GROUP, kinds={"duckdb", "python"},
                        description="One row per candidate of a batch (new, unlaunched images in "
                                    "<landing>/candidates/<batch>/): as-of forecast of score, CTR, CVR and ROAS with "
                                    "80 % intervals, rank, the most similar past creatives, repetition risk against "
                                    "the account's running creatives, DO / DON'T rules met or broken; files that "
                                    "could not be assessed are rows with their reason as status."),
           dg.AssetSpec(MARTS_CANDIDATE_PAIRS.key, deps=[FEATURES_PRELAUNCH.key, MARTS_PREDICTIONS.key],
                        group_name=CANDIDATES_GROUP, kinds={"duckdb", "python"},
                        description="Every pair of a batch's candidates: predicted winner, margin, probability, "
                                    "abstain when the evidence does not separate them, and the reasons (attributes, "
                                    "blocks and rules in which they differ, with the account's evidence).")],
    partitions_def=candidate_batch_partitions,
    required_resource_keys={"warehouse", "landing", "encoders", "embedding_store"}, pool="warehouse",
    name="candidate_assessment",
)
def candidate_assessment(context: dg.AssetExecutionContext, config: CandidateAssessmentConfig):
    batch_name = context.partition_key
    assess_config, pair_config, as_of = config.configs()
    folder = context.resources.landing.folder() / CANDIDATES_DIR / batch_name
    if not folder.is_dir():
        raise FileNotFoundError(f"candidate batch folder {folder} does not exist; put the batch's images there "
                                f"(or delete the partition {batch_name!r})")
    warehouse = context.resources.warehouse
    history = History.from_warehouse(warehouse)
    batch = read_batch_folder(folder)
    for p in batch.problems.itertuples(index=False):
        context.log.warning(f"candidate {p.candidate} not assessed: {p.reason}: {p.detail}")
    result = assess_batch(history, batch, context.resources.encoders.settings(), as_of, assess_config, pair_config,
                          log=context.log.info, store=context.resources.embedding_store.get(),
                          models=context.resources.encoders.models())
    candidates, pairs = assessment_rows(result), pair_rows(result)
    warehouse.replace_rows(MARTS_CANDIDATE_ASSESSMENT, candidates, "batch", [batch_name])
    warehouse.replace_rows(MARTS_CANDIDATE_PAIRS, pairs, "batch", [batch_name])
    truth = read_truth(folder)
    checked = truth_check(result, truth) if truth else {}
    for note in result.assessment.notes:
        context.log.info(f"candidates: {note}")
    top = result.ordered.head(1)
    yield dg.MaterializeResult(asset_key=MARTS_CANDIDATE_ASSESSMENT.key, metadata=table_metadata(
        MARTS_CANDIDATE_ASSESSMENT, candidates, preview_rows=20, batch=batch_name, as_of=str(result.assessment.as_of),
        assessed=int((candidates["status"] == "assessed").sum()),
        not_assessed=int((candidates["status"] != "assessed").sum()),
        first_choice=str(top["name"].iloc[0]) if len(top) else "none",
        notes="; ".join(result.assessment.notes) or "none", seconds=round(result.seconds, 1),
        models_loaded=", ".join(result.models_loaded) or "none (every vector cached)",
        **{f"ground truth: {k}": v for k, v in checked.items()}))
    yield dg.MaterializeResult(asset_key=MARTS_CANDIDATE_PAIRS.key, metadata=table_metadata(
        MARTS_CANDIDATE_PAIRS, pairs, preview_rows=20, batch=batch_name,
        decided=int((~pairs["abstain"]).sum()) if len(pairs) else 0,
        abstained=int(pairs["abstain"].sum()) if len(pairs) else 0,
        verdicts=dg.MetadataValue.md("\n".join(f"- {v}" for v in pairs["verdict"]) or "_fewer than two candidates_")))


class PairwiseBacktestConfig(config_from(PairConfig, "margin", "min_confidence")):
    """creative_dag.candidates.pairwise.PairConfig: the historical pairs' margin and the verdicts'
    abstain threshold (as candidate_assessment's)."""


@dg.asset(key=MARTS_PAIRWISE_BACKTEST.key, deps=[MARTS_PREDICTIONS.key], group_name="marts", kinds={"duckdb", "python"},
          required_resource_keys={"warehouse", "landing"}, pool="warehouse",
          description="The pairwise choice on history: for same-account, same-week pairs of matured creatives whose "
                      "outcomes differ by more than a margin, forced-choice accuracy, abstain rate and accuracy on "
                      "decided pairs of the served forecast, the context-only model, a coin flip and (generated "
                      "scenarios) the ground truth, per window, each side forecast as of its own launch.")
def pairwise_backtest(context: dg.AssetExecutionContext, config: PairwiseBacktestConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    predictions = warehouse.read_optional(MARTS_PREDICTIONS)
    pair_config = config.to_params()
    if predictions is None or predictions.empty:
        table = evaluate_pairs(pd.DataFrame(columns=["kpi", "window", "realised", "creative_id", "forecast",
                                                     "account_id", "launch_date"]), None, pair_config)
        status = "skipped: marts.predictions is empty"
        sweep = pd.DataFrame()
    else:
        oracle = (observable_oracle(context.resources.landing.folder()) or {}).get("score")
        table = evaluate_pairs(predictions, oracle, pair_config)
        sweep = confidence_sweep(predictions, margin=config.margin)
        status = "ok"
    warehouse.write_table(MARTS_PAIRWISE_BACKTEST, table)
    test = table[table["window"] == "test"].set_index("method")
    figures = {}
    if "served forecast" in test.index:
        figures = {"test: accuracy on decided pairs (served)": float(test.at["served forecast", "accuracy_decided"]),
                   "test: abstain rate (served)": float(test.at["served forecast", "abstain_rate"])}
    if "oracle (ground truth)" in test.index:
        figures["test: oracle accuracy"] = float(test.at["oracle (ground truth)", "accuracy_decided"])
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_PAIRWISE_BACKTEST, table, preview_rows=20, status=status, **figures,
        table_md=dg.MetadataValue.md(table.round(3).to_markdown(index=False) if len(table) else "_no pairs_"),
        threshold_sweep=dg.MetadataValue.md(sweep.round(3).to_markdown(index=False) if len(sweep) else "_none_")))
