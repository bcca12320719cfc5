"""marts.element_attribution: what the forecast says each visual element is worth, by editing images.

A sample of creatives is edited with OpenCV (creative_dag.attribution.edits), every edit is
encoded by the same block encoders as the originals (shared embedding cache, keyed by the edited
bytes), and the forecast model, fitted on the outcomes known the day after the last metric date,
predicts original and edit alike (creative_dag.attribution.effects).
Where CLIP is available, text probes ("a red background") move each image's CLIP vector along what the
probe's text adds to a neutral prompt and are predicted the same way, reported as edits "probe: <text>".
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from creative_dag.assets.marts import embedding_tables_of
from creative_dag.assets.metadata import table_metadata
from creative_dag.attribution.edits import EDIT_NAMES, EDITS
from creative_dag.attribution.effects import (
    VARIANT_COLUMNS,
    AttributionConfig,
    attribute_edits,
    editable_cases,
    empty_effects,
    known_targets,
    probe_directions,
    probe_info,
    probe_variants,
    sample_creatives,
)
from creative_dag.attribution.variants import (
    VariantIndex,
    cached_in_every_block,
    encode_variants,
    image_items,
    plan_variants,
)
from creative_dag.blocks import CLIP, TEXT
from creative_dag.catalog import (
    CBR_CASE_BASE,
    EMBEDDING_KEYS,
    FEATURES_PRELAUNCH,
    MARTS_ELEMENT_ATTRIBUTION,
    RAW_DAILY_METRICS,
)
from creative_dag.dagster_config import config_from
from creative_dag.forecast.model import LEARNERS
from creative_dag.forecast.targets import KPIS
from creative_dag.resources.models import load_blocks, recorded_encoders
from creative_dag.settings import HomeLayout


class ElementAttributionConfig(config_from(AttributionConfig, "sample_size", "edits", "kpis", "n_models", "confidence",
                                            "min_effect", "learner", "seed", "probes", "probe_baseline",
                                            "probe_strength", "min_train", "min_support")):
    """creative_dag.attribution.effects.AttributionConfig. Encoding the edits is the cost: about
    sample_size x applicable edits images through every image block (OCR ~0.4 s per image on CPU). probes: CLIP
    text probes (needs the clip block; an empty list turns them off)."""

    def to_attribution_config(self) -> AttributionConfig:
        bad = ([e for e in self.edits if e not in EDITS] + [k for k in self.kpis if k not in KPIS]
               + ([self.learner] if self.learner not in LEARNERS else []))
        if bad:
            raise ValueError(f"ElementAttributionConfig: unknown {', '.join(map(repr, bad))}; edits are "
                             f"{', '.join(EDIT_NAMES)}, KPIs {', '.join(KPIS)}, learners {', '.join(LEARNERS)}")
        return self.to_params()


def text_probes(cfg: AttributionConfig, tables: Mapping[str, pd.DataFrame], ids: Sequence[str],
                variant_tables: Mapping[str, pd.DataFrame], encoders: Mapping[str, Any],
                settings: Any, models: Any = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], str | None]:
    """The CLIP text probes' variants (effects.probe_variants), or none with the reason: no probes asked, no
    CLIP vectors, CLIP not loadable now or without a tokenizer."""
    from creative_dag.encoders.base import ModelUnavailable

    none = pd.DataFrame(columns=list(VARIANT_COLUMNS))
    if not cfg.probes:
        return none, {}, None
    if CLIP not in tables or tables[CLIP].empty:
        return none, {}, "CLIP text probes not run: the clip block has no vectors (CLIP unavailable)"
    if variant_tables and CLIP not in variant_tables:
        return none, {}, "CLIP text probes not run: the clip block was not re-encoded for the image edits"
    encoder = encoders.get(CLIP)
    if not hasattr(encoder, "encode_text"):  # a RecordedEncoder (every edit was cached): load the model
        why: list[str] = []
        loaded = load_blocks([CLIP], settings, why.append, models)
        encoder = loaded.get(CLIP)
        if encoder is None:
            return none, {}, f"CLIP text probes not run: {'; '.join(why) or 'CLIP did not load'}"
    try:
        text = encoder.encode_text([cfg.probe_baseline, *cfg.probes])
    except ModelUnavailable as exc:
        return none, {}, f"CLIP text probes not run: {exc.reason}"
    directions = probe_directions(text[1:], text[0])
    frame, probe_tables = probe_variants(tables, ids, dict(zip(cfg.probes, directions, strict=True)),
                                         cfg.probe_strength)
    if variant_tables:  # compare on the blocks the image edits have
        probe_tables = {b: t for b, t in probe_tables.items() if b in variant_tables}
    return frame, probe_tables, None


def with_probes(variant_tables: Mapping[str, pd.DataFrame],
                probe_tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each block's encoded edits plus the probes' rows."""
    blocks = list(dict.fromkeys([*variant_tables, *probe_tables]))
    return {b: pd.concat([t for t in (variant_tables.get(b), probe_tables.get(b)) if t is not None],
                         ignore_index=True) for b in blocks}


def _day_after_last_metric(warehouse) -> dt.date | None:
    """The data's tomorrow: the attribution model learns what was known by then."""
    if not warehouse.exists(RAW_DAILY_METRICS):
        return None
    last = warehouse.query(f"SELECT max(date) AS last FROM {RAW_DAILY_METRICS}")["last"].iloc[0]
    return None if pd.isna(last) else pd.Timestamp(last).date() + dt.timedelta(days=1)


@dg.asset(key=MARTS_ELEMENT_ATTRIBUTION.key, deps=[CBR_CASE_BASE.key, FEATURES_PRELAUNCH.key, RAW_DAILY_METRICS.key,
                       *EMBEDDING_KEYS],
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
    as_of = _day_after_last_metric(warehouse)
    known = known_targets(case_base, cfg.kpis, as_of).counts() if len(case_base) else {}
    if case_base.empty or not image_blocks:
        status = "skipped: " + ("cbr.case_base is empty" if case_base.empty else "no image block has vectors")
    elif max(known.values(), default=0) < cfg.min_train:  # ~10 edited images per sampled creative, for nothing
        counts = ", ".join(f"{kpi} {n}" for kpi, n in known.items()) or "none matured"
        status = (f"skipped: by {as_of} no KPI had min_train ({cfg.min_train}) creatives with a known outcome "
                  f"({counts}): no image edited")
    else:
        prelaunch = warehouse.read_table(FEATURES_PRELAUNCH)
        editable = editable_cases(case_base, tables)
        if len(editable) < len(case_base):
            context.log.info(f"element attribution: {len(case_base) - len(editable)} of {len(case_base)} creatives "
                             "have no vector in every image block (image quarantined or unreadable): not sampled")
        ids = sample_creatives(editable, cfg.sample_size, cfg.seed)
        settings = context.resources.encoders.settings()
        cache = settings.cache()
        recorded = recorded_encoders(image_blocks, settings, context.resources.embedding_store.get()) \
            if cache is not None else None
        index = VariantIndex.open(HomeLayout.of_database(warehouse.database).cache / "attribution" / "variants.json")
        if index.note:
            context.log.warning(f"element attribution: {index.note}")
        variants = plan_variants(image_items(prelaunch, ids), context.resources.image_store.locator().read_bytes,
                                 tables.get("layout"), cfg.edits, index=index,
                                 cached=None if recorded is None else lambda shas: cached_in_every_block(
                                     cache, recorded, shas))
        if recorded is not None and not variants.pending:
            encoders = recorded
            context.log.info(f"element attribution: all {len(variants.frame)} edited images are in the embedding "
                             "cache; no image edited, no model loaded")
        else:
            models = context.resources.encoders.models()
            reused = [b for b in image_blocks if models.has(b, settings)]
            if reused:
                context.log.info(f"element attribution: the {', '.join(reused)} model(s) this run's encode steps "
                                 "loaded are reused")
            encoders = load_blocks(image_blocks, settings,
                                   lambda m: context.log.warning(f"element attribution: {m} of the attribution model"),
                                   models)
        variant_tables = encode_variants(variants, encoders, cache, batch_size=settings.batch_size,
                                         log=context.log.info)
        for cid, why in variants.skipped.items():
            context.log.warning(f"element attribution: creative {cid} not edited: {why}")
        probes, probe_tables, probe_note = text_probes(cfg, tables, ids, variant_tables, encoders, settings,
                                                       context.resources.encoders.models())
        if probe_note:  # CLIP's own unavailability is already a warning of the encode step
            context.log.info(f"element attribution: {probe_note}")
        edited = pd.concat([variants.frame, probes], ignore_index=True) if len(probes) else variants.frame
        result = attribute_edits(case_base, tables, prelaunch, edited, with_probes(variant_tables, probe_tables), cfg,
                                 {**{k: (e.label, e.element) for k, e in EDITS.items()}, **probe_info(cfg.probes)},
                                 as_of=as_of)
        effects, notes = result.effects, result.notes
        status = (f"{len(ids)} creatives sampled, {len(variants.frame)} edited images, {len(probes)} CLIP text-probe "
                  "variants") if len(effects) else \
            "no effect estimated: " + "; ".join(notes)
    if status.startswith("skipped"):
        context.log.info(f"element attribution: {status}")
    for note in notes:
        context.log.info(f"element attribution: {note}")
    warehouse.write_table(MARTS_ELEMENT_ATTRIBUTION, effects, types={"trained_through": "DATE"})
    if index is not None:
        index.save()
    claimed = effects[effects["direction"] != "none"]
    return dg.MaterializeResult(metadata=table_metadata(
        MARTS_ELEMENT_ATTRIBUTION, effects, preview_rows=30, status=status or "ok",
        findings=dg.MetadataValue.md("\n".join(f"- {s}" for s in claimed["statement"]) or "_no edit moved the "
                                     "forecast beyond its interval_"),
        notes="; ".join(notes) or "none"))

