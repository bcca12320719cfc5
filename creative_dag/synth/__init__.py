"""Synthetic scenario generator: a landing folder with known ground truth.

`generate_scenario(out_dir, ...)` writes `creatives.csv`, `daily_metrics.csv` and
`images/` exactly per the input contract (docs/input-contract.md), plus `ground_truth.json`,
which the pipeline never reads and tests use to measure what it recovers.

Simulation model (parameters in `default_scenario.yaml`, overridable):

* Accounts (default 4) each sell a few products, have a daily budget, an average
  order value and baseline CTR/CVR. Creatives are apportioned to accounts by launch
  velocity; launch days are spread over the whole period by a per-account intensity
  (weekday weights x a slow wave), sampled by stratified inverse CDF.
* Near-duplicate families: a share of creatives are variants of one base creative
  (same element attributes, account, campaign and context), launched within a few
  weeks of it, each with one edit: crop, small hue shift, new headline text, or a
  JPEG re-encode at another quality. Members share latent quality (small jitter).
* Each creative's element attributes (background style and named hue in a
  warm/cool/neutral family, product photo or drawn shape, person with a real face,
  text coverage, CTA button, headline position/font...) are rendered into its image
  (`render.py`) and drive its rates:
      expected CTR = account base CTR x planted element effects (ctr)
                     x context (placement x audience x objective) x latent quality
      expected CVR = likewise with the cvr effects and CVR quality
  Planted effects are multipliers on one metric when an attribute equals a value,
  optionally only in some accounts. Latent quality is a mean-one lognormal pair.
  `latent_quality` in the ground truth = ln(element CTR x element CVR multipliers x
  quality draws): log expected conversions per impression against the account's
  baseline creative in a fixed context (the ranking oracle).
* Each day (`simulate.py`) the account budget (mean-reverting log random walk, weekly
  swing) is split over active creatives by softmax of the platform's shrunken
  estimate of conversions per impression plus a learning boost for new creatives, so
  spend drifts toward what performs. Impressions ~ Poisson(spend / CPM), CPM by
  platform x placement x audience x objective x country with daily jitter; clicks ~
  Binomial(impressions, CTR x fatigue x jitter); conversions ~ Binomial(clicks, CVR x
  jitter); revenue = gamma sum of order values; reach from a daily frequency that
  grows with cumulative impressions over the audience size; 3-second video views for
  video creatives (thumb-stop ratio from its own element effects); likes.
* Fatigue: a planted share of creatives has an onset day; from then on CTR falls to
  floor + (1 - floor) x 2^(-E/H), E the impressions since onset, H a half-life in
  days' worth of its pre-onset delivery. Falling CTR lowers its spend in turn.
* A creative stops at its planned lifespan (lognormal weeks) or when the platform
  has starved it of budget for several days in a row.
* `creatives.csv` also carries the leaky export columns `last_7d_ctr`,
  `lifetime_spend` and `lifetime_roas`, computed from the simulated metrics.

One seed gives byte-identical CSVs and ground truth, and identical images.
"""

from creative_dag.synth.generate import generate_scenario
from creative_dag.synth.scenario import (
    ScenarioError,
    default_scenario,
    resolve_scenario,
)

__all__ = ["ScenarioError", "default_scenario", "generate_scenario", "resolve_scenario"]
