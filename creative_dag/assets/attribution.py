"""marts.element_attribution: what the forecast says each visual element is worth, by editing images.

A sample of matured creatives is edited with OpenCV (creative_dag.attribution.edits), every edit is
encoded by the same block encoders as the originals (shared embedding cache, keyed by the edited
bytes), and the forecast model predicts original and edit alike (creative_dag.attribution.effects).
"""


import dagster as dg

from creative_dag.assets.marts import embedding_tables_of
from creative_dag.assets.metadata import table_metadata
from creative_dag.attribution.edits import EDIT_NAMES, EDITS
from creative_dag.attribution.effects import (
    AttributionConfig,
    attribute_edits,
    empty_effects,
    sample_creatives,
)
from creative_dag.attribution.variants import (
    VariantIndex,
    cached_in_every_block,
    encode_variants,
    image_items,
    make_variants,
)
from creative_dag.blocks import TEXT
from creative_dag.catalog import (
    CBR_CASE_BASE,
    EMBEDDING_KEYS,
    FEATURES_PRELAUNCH,
    MARTS_ELEMENT_ATTRIBUTION,
)
from creative_dag.dagster_config import config_from
from creative_dag.forecast.model import LEARNERS
from creative_dag.forecast.targets import KPIS
from creative_dag.resources.models import load_blocks, recorded_encoders
from creative_dag.settings import HomeLayout


class ElementAttributionConfig(config_from(AttributionConfig, "sample_size", "edits", "kpis", "n_models", "confidence",
                                            "min_effect", "learner", "seed")):
    """creative_dag.attribution.effects.AttributionConfig. Encoding the edits is the cost: about
    sample_size x applicable edits images through every image block (OCR ~0.4 s per image on CPU)."""

    def to_attribution_config(self) -> AttributionConfig:
        bad = ([e for e in self.edits if e not in EDITS] + [k for k in self.kpis if k not in KPIS]
               + ([self.learner] if self.learner not in LEARNERS else []))
        if bad:
            raise ValueError(f"ElementAttributionConfig: unknown {', '.join(map(repr, bad))}; edits are "
                             f"{', '.join(EDIT_NAMES)}, KPIs {', '.join(KPIS)}, learners {', '.join(LEARNERS)}")
        return self.to_params()


@dg.asset(key=MARTS_ELEMENT_ATTRIBUTION.key, deps=[CBR_CASE_BASE.key, FEATURES_PRELAUNCH.key, *EMBEDDING_KEYS],
          group_name="marts", kinds={"duckdb", "python", "opencv", "lightgbm"},
          required_resource_keys={"warehouse", "image_store", "encoders", "embedding_store"}, pool="warehouse",
          description="Per visual edit (hue family, text / CTA / face removed, brightness, contrast, crop) and KPI: "
                      "the forecast's mean relative change when a sample of creatives is edited that way, with a "
                      "95 % interval over creatives and bootstrap refits of the model, n, the share of edits that "
                      "reached the detected attribute, and a sentence a marketer can read.")
def element_attribution(context: dg.AssetExecutionContext, config: ElementAttributionConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    cfg = config.to_attribution_config()
    case_base = warehouse.read_table(CBR_CASE_BASE)
    tables = embedding_tables_of(warehouse)
    image_blocks = [b for b in tables if b != TEXT]
    status, notes = "", []
    effects, index = empty_effects(), None
    if case_base.empty or not image_blocks:
        status = "skipped: " + ("cbr.case_base is empty" if case_base.empty else "no image block has vectors")
    else:
        prelaunch = warehouse.read_table(FEATURES_PRELAUNCH)
        ids = sample_creatives(case_base, cfg.sample_size, cfg.seed)
        settings = context.resources.encoders.settings()
        cache = settings.cache()
        recorded = recorded_encoders(image_blocks, settings, context.resources.embedding_store.get()) \
            if cache is not None else None
        index = VariantIndex.open(HomeLayout.of_database(warehouse.database).cache / "attribution" / "variants.json")
        if index.note:
            context.log.warning(f"element attribution: {index.note}")
        variants = make_variants(image_items(prelaunch, ids), context.resources.image_store.locator().read_bytes,
                                 tables.get("layout"), cfg.edits, index=index,
                                 cached=None if recorded is None else lambda shas: cached_in_every_block(
                                     cache, recorded, shas))
        for cid, why in variants.skipped.items():
            context.log.warning(f"element attribution: creative {cid} not edited: {why}")
        if recorded is not None and not variants.images:
            encoders = recorded
            context.log.info(f"element attribution: all {len(variants.frame)} edited images are in the embedding "
                             "cache; no image edited, no model loaded")
        else:
            encoders = load_blocks(image_blocks, settings,
                                   lambda m: context.log.warning(f"element attribution: {m} of the attribution model"))
        variant_tables = encode_variants(variants, encoders, cache, batch_size=settings.batch_size,
                                         log=context.log.info)
        result = attribute_edits(case_base, tables, prelaunch, variants.frame, variant_tables, cfg,
                                 {k: (e.label, e.element) for k, e in EDITS.items()})
        effects, notes = result.effects, result.notes
        status = f"{len(ids)} creatives sampled, {len(variants.frame)} edited images" if len(effects) else \
            "no effect estimated: " + "; ".join(notes)
    for note in notes:
        context.log.info(f"element attribution: {note}")
    warehouse.write_table(MARTS_ELEMENT_ATTRIBUTION, effects)
    if index is not None:
        index.save()
    claimed = effects[effects["direction"] != "none"]
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_ELEMENT_ATTRIBUTION, effects, preview_rows=30, status=status or "ok",
        findings=dg.MetadataValue.md("\n".join(f"- {s}" for s in claimed["statement"]) or "_no edit moved the "
                                     "forecast beyond its interval_"),
        notes="; ".join(notes) or "none"))

