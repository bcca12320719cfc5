"""Column descriptions of every warehouse table (the Dagster UI's column table; docs/marts.md explains more)."""

# Conventions: money is in the account's currency (never converted; ALL-scope sums mix currencies),
# rates are fractions (0.012 = 1.2 %), KPI formulas are creative_dag/metrics.py's (CTR = clicks /
# impressions, CVR = conversions / clicks, ROAS = revenue / spend, CPA = spend / conversions) and a
# rate is NULL where its denominator is 0. A key with `*` is an fnmatch pattern for columns named by
# data (creative_dag/catalog/__init__.py); exact names win over patterns, patterns match in order.

# -- shared fragments ------------------------------------------------------------------------------------
_KEYS: dict[str, str] = {
    "creative_id": "Unique creative (ad) key, as landed (text; surrounding spaces trimmed).",
    "account_id": "Advertiser account the creative belongs to.",
    "campaign_id": "Campaign the creative runs in.",
    "launch_date": "First day the creative may serve (DATE); day 0 of its early window.",
    "image_path": "Image file, relative to the landing folder (or an allowed URI); probed into raw.images.",
}
_CONTEXT: dict[str, str] = {
    "platform": "Ad platform (e.g. meta, google, tiktok); prelaunch delivery context.",
    "placement": "Placement (feed, stories, reels, ...); prelaunch delivery context.",
    "format": "Creative format (image, video); prelaunch.",
    "objective": "Campaign objective; prelaunch delivery context.",
    "audience": "Targeted audience; prelaunch delivery context.",
    "country": "Targeted country; prelaunch delivery context.",
    "product_category": "Advertised product category; prelaunch.",
}
_COPY: dict[str, str] = {
    "headline": "Headline copy as set up in the ad; prelaunch.",
    "primary_text": "Primary ad text (body copy) as set up in the ad; prelaunch.",
    "cta": "Call-to-action label chosen in the ad setup (a setting, not detected on the image); prelaunch.",
}
_EARLY: dict[str, str] = {
    "early_impressions": ("Impressions in the early window: days launch_date .. launch_date + N - 1 (N = n_days, "
                          "default 3)."),
    "early_clicks": "Clicks in the early window (first N days after launch).",
    "early_spend": "Spend in the early window, account currency.",
    "early_conversions": "Conversions in the early window.",
    "early_revenue": "Revenue in the early window, account currency.",
    "early_ctr": "early_clicks / early_impressions.",
    "early_cvr": "early_conversions / early_clicks; may exceed 1 (view-through, multi-purchase conversions).",
    "early_cpa": "early_spend / early_conversions, currency per conversion.",
    "early_roas": "early_revenue / early_spend.",
}
_EMBEDDING_KEYS: dict[str, str] = {
    "creative_id": "Creative the row encodes.",
    "sha256": "SHA-256 of the creative's image file (raw.images): the cache key of the image blocks.",
    "launch_date": "The creative's launch date: the daily partition the row belongs to.",
    "model_id": "Model or extractor that produced the row (embeddings.model_status describes it).",
    "model_version": "Hash of the model's weights plus the preprocessing settings that change its output.",
}
_LANDED_EXTRA: dict[str, str] = {
    "unnamed_*": "A landed column without a header name that held data, kept as unnamed_N (N = its position).",
    "*": ("Another column of the landed file, kept as written (number if every cell is numeric, else text); "
          "lifecycle unless registered (features.registry)."),
}
_BLOCK_VECTOR = ("block vector of the case, L2-normalised (after the optional per-block PCA); "
                 "NULL when the block is unavailable or missing for it.")
_OUTCOME = "over the maturity window (launch_date <= date < mature_date); evaluation label, never a decision input."
_NEIGHBOR_OUTCOME = "The neighbour's {} from cbr.case_base (over its maturity window)."
_CANDIDATE_KPIS = {"score": "composite outcome score (log conversions per impression)", "ctr": "CTR",
                   "cvr": "CVR", "roas": "ROAS"}

COLUMNS: dict[str, dict[str, str]] = {
    # -- raw: the landing folder as accepted (docs/input-contract.md) --------------------------------------
    "raw.creatives": {
        **_KEYS,
        **_CONTEXT,
        **_COPY,
        "currency": "Account currency code (USD, EUR) as `creative-dag import` writes it; spend and revenue are in it.",
        "ad_name": "Ad name from the platform export (written by `creative-dag import`); not a decision input.",
        "last_7d_ctr": "The export's CTR over its last 7 days; lifecycle (known leaky column), never a decision input.",
        "lifetime_spend": "The export's lifetime spend; lifecycle (known leaky column), never a decision input.",
        "lifetime_roas": "The export's lifetime ROAS; lifecycle (known leaky column), never a decision input.",
        **_LANDED_EXTRA,
    },
    "raw.daily_metrics": {
        "creative_id": "Creative the row belongs to (one accepted into raw.creatives).",
        "date": "Metric day (DATE), not before the creative's launch_date.",
        "impressions": "Impressions served that day.",
        "clicks": "Clicks that day (never more than impressions).",
        "spend": "Spend that day, account currency.",
        "conversions": "Conversions that day; may exceed clicks (view-through, several purchases after one click).",
        "revenue": "Conversion revenue that day, account currency.",
        "reach": "Unique people reached that day; NULL when the export does not report it.",
        "frequency": "Impressions per person reached that day; NULL when not reported.",
        "video_3s_views": "3-second video views that day (video creatives); NULL when not reported.",
        "likes": "Likes that day; NULL when not reported.",
        "video_2s_views": "2-second video views (TikTok import), kept apart from video_3s_views; not a decision input.",
        **_LANDED_EXTRA,
    },
    "raw.images": {
        "creative_id": "Creative whose image the row probes (one row per creative, also when creatives share a file).",
        "image_path": "The creative's image_path, as in raw.creatives.",
        "sha256": "SHA-256 of the image file's bytes (hex); NULL when the file could not be read.",
        "width": "Displayed width in px (after EXIF orientation); NULL when the header could not be read.",
        "height": "Displayed height in px (after EXIF orientation); NULL when the header could not be read.",
        "format": "Pillow image format (JPEG, PNG, WEBP, GIF, BMP, TIFF).",
        "mode": "Pillow colour mode as stored (RGB, RGBA, P, CMYK, L, I;16, ...); the encoders convert it to RGB.",
        "byte_size": "File size in bytes.",
        "exif_orientation": "EXIF orientation tag, 1-8 (1 = as stored, also when absent).",
        "decode_status": "'ok', or the image's quarantine reason code (e.g. missing_image_file, truncated_image).",
    },
    "raw.quarantine": {
        "source": "What was rejected: a creatives row, a daily_metrics row or an images file.",
        "key": ("creative_id; 'creative_id|date' for a metric row; 'embeddings.<block>:<creative_id>' for an "
                "encoder's image failure; NULL without an id."),
        "reason": ("Stable reason code (e.g. unparseable_date, negative_value, truncated_image; "
                   "docs/input-contract.md)."),
        "detail": "One sentence naming the file, the row or line, what is wrong and what to do.",
        "raw_value": ("The row exactly as landed, as JSON (cells cut at 2,000 characters); the image path for an "
                      "encoder's image failure."),
    },
    # -- features: stage-filtered decision-time tables and labels (docs/features.md) ------------------------
    "features.registry": {
        "column": "Column the entry is about (a raw column or a derived feature / label).",
        "stage": "Effective stage (id, prelaunch, early, lifecycle): which decision-time tables may carry the column.",
        "source": ("Where the stage comes from: shipped (built-in), landing (the landing registry file) or "
                   "default-deny."),
        "shipped_stage": "The built-in stage a landing entry overrides; NULL when nothing is overridden.",
        "description": "What the column means.",
        "leakage_note": "Why the stage is safe, or how to register an unregistered column.",
        "raw_table": "Raw tables the column was seen in, comma-separated; empty for derived columns.",
    },
    "features.prelaunch": {
        **_KEYS,
        **_CONTEXT,
        **_COPY,
        "*": ("A raw.creatives column the landing feature_registry.json registers as id or prelaunch "
              "(features.registry)."),
    },
    "features.early": {
        **_KEYS,
        **_CONTEXT,
        **_COPY,
        **_EARLY,
        "*": "A raw.creatives column the landing registry registers as id, prelaunch or early (features.registry).",
    },
    "features.outcomes": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "launch_date": _KEYS["launch_date"],
        "impressions": "Lifetime impressions: sum of the creative's raw.daily_metrics rows (label, never an input).",
        "clicks": "Lifetime clicks (sum of raw.daily_metrics).",
        "spend": "Lifetime spend, account currency.",
        "conversions": "Lifetime conversions.",
        "revenue": "Lifetime revenue, account currency.",
        "ctr": "Lifetime CTR = clicks / impressions.",
        "cvr": "Lifetime CVR = conversions / clicks (may exceed 1).",
        "roas": "Lifetime ROAS = revenue / spend.",
        "cpa": "Lifetime CPA = spend / conversions, currency per conversion.",
        "days_active": "Days with impressions > 0.",
        "first_date": "First day with impressions > 0; NULL when never delivered.",
        "last_date": "Last day with impressions > 0; NULL when never delivered.",
        "mature_date": "launch_date + maturity window (default 14 days): the day the outcome counts as known (as-of).",
        "is_mature": "The maturity window lies inside the data (mature_date - 1 <= the last metric date).",
    },
    # -- embeddings: one table per similarity block, plus the model status (docs/attributes.md) ------------
    "embeddings.clip": {
        **_EMBEDDING_KEYS,
        "vector": "CLIP projected image embedding (512-d for ViT-B/32), L2-normalised.",
        "top_tag": "Best-matching of 34 ad concepts by CLIP zero-shot ('a photo of ...'); NULL without a tokenizer.",
        "tags": "The 3 best-matching concepts, best first; NULL when the model folder has no tokenizer.",
        "tag_scores": "Zero-shot probabilities of `tags` (softmax over the 34 concepts), same order.",
    },
    "embeddings.cnn": {
        **_EMBEDDING_KEYS,
        "vector": "Pooled pre-classifier CNN features (1280-d EfficientNet-Lite0, 2048-d ResNet50), L2-normalised.",
        "top_tag": "Most probable ImageNet class of the image (human-readable name).",
        "tags": "The 5 most probable ImageNet classes, most probable first.",
        "tag_scores": "Softmax probabilities (over the 1,000 ImageNet classes) of `tags`, same order.",
    },
    "embeddings.visual": {
        **_EMBEDDING_KEYS,
        "vector": "27 colour / composition features, standardised with fixed scales (clipped to ±4), L2-normalised.",
        "image_width": "Width of the decoded image, px.",
        "image_height": "Height of the decoded image, px.",
        "aspect_ratio": "Width / height (1.0 square, 0.5625 for 9:16 stories).",
        "log_aspect_ratio": "Natural log of aspect_ratio.",
        "dominant_color_name": "Colour name of the largest colour cluster (k-means, k = 5, in CIE Lab).",
        "dominant_hue_family": "Hue family of dominant_color_name: warm, cool or neutral.",
        "dominant_color_hex": "Mean colour of the largest cluster, #rrggbb.",
        "dominant_color_r": "Red channel of the dominant colour, 0-255.",
        "dominant_color_g": "Green channel of the dominant colour, 0-255.",
        "dominant_color_b": "Blue channel of the dominant colour, 0-255.",
        "dominant_color_share": "Pixel share of the largest colour cluster, 0-1.",
        "dominant_color_lab_l": "Dominant colour's CIE Lab lightness L, 0-100.",
        "dominant_color_lab_a": "Dominant colour's CIE Lab a (green - / red +), about -128..127.",
        "dominant_color_lab_b": "Dominant colour's CIE Lab b (blue - / yellow +), about -128..127.",
        "palette": "All colour clusters, largest first: JSON list of {hex, name, share}.",
        "warm_share": "Share of pixels whose colour name is warm (red, orange, yellow, brown, pink, magenta), 0-1.",
        "cool_share": "Share of pixels whose colour name is cool (green, teal, blue, purple), 0-1.",
        "neutral_share": "Share of pixels whose colour name is neutral (black, white, grey, beige), 0-1.",
        "top_color_names": "Up to 3 most frequent pixel colour names, comma-separated.",
        "brightness": "Mean luminance, 0 (black) to 1 (white): mean 8-bit gray / 255.",
        "contrast": "RMS contrast: standard deviation of gray / 255, 0-0.5.",
        "saturation": "Mean HSV saturation, 0-1.",
        "colorfulness": "Hasler-Süsstrunk colourfulness, 0 (gray) to ~150+; above 60 is vivid.",
        "edge_density": "Share of Canny edge pixels (after a 3×3 blur), 0-1.",
        "texture_entropy": "Texture complexity: entropy of neighbouring gray-level pairs at 16 levels, bits, 0-8.",
        "sharpness": "Focus / fine detail: log10(1 + variance of the Laplacian), 0 (flat) to ~5; crisp graphics > 3.",
        "symmetry": "Left-right mirror symmetry, 0-1 (1 = symmetric; photos ~0.7-0.9).",
        "negative_space_ratio": "Share of empty 16 px cells (gray std < 6, no Canny edge), 0-1.",
        "visual_mass_x": "Horizontal centroid of gradient magnitude (where the detail sits), 0 = left to 1 = right.",
        "visual_mass_y": "Vertical centroid of gradient magnitude, 0 = top to 1 = bottom.",
        "thirds_distance": ("Distance of the visual mass from the nearest rule-of-thirds point, 0 (on it) to 1; "
                            "centre 0.5."),
        "salient_area_ratio": "Share of the image that stands out (spectral-residual saliency above 3× its mean), 0-1.",
        "saliency_x": "Horizontal centre of the salient region, 0-1.",
        "saliency_y": "Vertical centre of the salient region, 0-1.",
        "background_color_name": "Most frequent colour name in the border band (outer 6 % of each side).",
        "background_hue_family": "Hue family with the largest share in the border band: warm, cool or neutral.",
        "background_color_hex": "Median colour of the border-band pixels that have the modal colour name, #rrggbb.",
        "background_uniformity": "Share of the border band with the modal colour name, 0-1 (1 = solid background).",
        "background_warm_share": "Share of border-band pixels in the warm family, 0-1.",
        "background_cool_share": "Share of border-band pixels in the cool family, 0-1.",
        "background_neutral_share": "Share of border-band pixels in the neutral family, 0-1.",
        "background_color_lab_l": "Background colour's CIE Lab lightness L, 0-100.",
        "background_color_lab_a": "Background colour's CIE Lab a (green - / red +).",
        "background_color_lab_b": "Background colour's CIE Lab b (blue - / yellow +).",
    },
    "embeddings.layout": {
        **_EMBEDDING_KEYS,
        "vector": "13 text / CTA / face layout features, standardised with fixed scales, L2-normalised.",
        "ocr_text": "All text read on the image (OCR), lines top to bottom; '' = none (confidence < 0.3 dropped).",
        "text_boxes": "Every OCR detection: JSON list of {text, conf, x, y, w, h}, boxes in original pixels.",
        "word_count": "Words in ocr_text (whitespace split).",
        "log_word_count": "log(1 + word_count).",
        "text_present": "Any text was read on the image.",
        "text_line_count": "Lines of text (OCR boxes grouped by vertical centre).",
        "text_area_ratio": "Share of the image covered by text boxes (union), 0-1.",
        "text_position": "Vertical third of the largest (tallest) text, the headline: top, middle, bottom or none.",
        "largest_text_height_ratio": "Height of the tallest text box / image height, 0-1 (headline size).",
        "text_center_x": "Horizontal centre of the largest text, 0-1; NULL without text.",
        "text_center_y": "Vertical centre of the largest text, 0-1 (0 = top); NULL without text.",
        "text_coverage_class": ("Amount of text: none, light (text_area_ratio < 8 %), medium (< 20 %) or heavy (≥ 20 "
                                "%)."),
        "cta_detected": ("A call-to-action button was found: a short CTA phrase (shop, buy, learn, ...) alone on a "
                         "filled shape."),
        "cta_text": "Text of the detected CTA button ('' = none).",
        "cta_position": "Thirds position of the button's centre, e.g. bottom_center; none without a CTA.",
        "cta_box": "CTA button rectangle as JSON [x, y, w, h] in original pixels ('' = none).",
        "cta_center_x": "Horizontal centre of the CTA button, 0-1; NULL without a CTA.",
        "cta_center_y": "Vertical centre of the CTA button, 0-1 (0 = top); NULL without a CTA.",
        "face_count": "Frontal faces found (OpenCV Haar cascade); NULL when the face detector is unavailable.",
        "face_present": "At least one face was found; NULL when the face detector is unavailable.",
        "face_area_ratio": "Share of the image covered by face boxes (union), 0-1.",
        "face_position": "Thirds position of the largest face, e.g. top_center; none without a face.",
        "face_center_x": "Horizontal centre of the largest face, 0-1; NULL without a face.",
        "face_center_y": "Vertical centre of the largest face, 0-1 (0 = top); NULL without a face.",
        "face_box": "Largest face as JSON [x, y, w, h] in original pixels ('' = none).",
    },
    "embeddings.text": {
        **_EMBEDDING_KEYS,
        "sha256": "SHA-256 of the creative's image file (NULL without one); the text itself is keyed by text_sha256.",
        "vector": "Sentence embedding of `text` (all-MiniLM-L6-v2 by default, 384-d, mean-pooled), L2-normalised.",
        "n_tokens": "Tokens the model read, special tokens included (truncated at 256).",
        "text": "The embedded ad text: headline, primary text and OCR text, each once, joined by '. '.",
        "text_sha256": "SHA-256 of `text`: the block's cache key.",
    },
    "embeddings.model_status": {
        "block": "Similarity block: clip, cnn, visual, layout or text.",
        "model_id": "The block's configured model or extractor.",
        "model_version": "Hash of the weights and output-changing settings; NULL when the model did not load.",
        "dim": "Vector length of the block; NULL when unavailable.",
        "device": "Device the model runs on (cpu or cuda), after any fallback.",
        "available": "The model loaded when last tried with these settings.",
        "reason": "Why the model is unavailable ('' when available).",
        "rows": "Rows of embeddings.<block> made by this model_version (0 when unavailable).",
        "checked_at": "When the model was last loaded (or tried) with these settings, UTC.",
    },
    # -- cbr: the case memory (docs/cbr.md) ------------------------------------------------------------------
    "cbr.case_base": {
        "creative_id": "The case: one past or current creative.",
        "account_id": _KEYS["account_id"],
        "campaign_id": _KEYS["campaign_id"],
        "launch_date": _KEYS["launch_date"],
        "mature_date": "launch_date + maturity window (features.outcomes): the day the outcome label counts as known.",
        "available_date": "max(launch_date, mature_date): a query on day t sees the case only if available_date < t.",
        **_CONTEXT,
        "clip": "CLIP " + _BLOCK_VECTOR,
        "cnn": "CNN " + _BLOCK_VECTOR,
        "visual": "Visual (colour / composition) " + _BLOCK_VECTOR,
        "layout": "Layout (text / CTA / face) " + _BLOCK_VECTOR,
        "text": "Text (ad copy + OCR) " + _BLOCK_VECTOR,
        "context": "Context block: one-hot prelaunch context columns, each column weighted equally, L2-normalised.",
        "blocks_present": "Comma-separated blocks this case has a vector for.",
        "outcome_impressions": "Impressions " + _OUTCOME,
        "outcome_clicks": "Clicks " + _OUTCOME,
        "outcome_conversions": "Conversions " + _OUTCOME,
        "outcome_spend": "Spend (account currency) " + _OUTCOME,
        "outcome_revenue": "Revenue (account currency) " + _OUTCOME,
        "outcome_ctr": "CTR over the maturity window (outcome_clicks / outcome_impressions); evaluation label.",
        "outcome_cvr": "CVR over the maturity window (outcome_conversions / outcome_clicks); evaluation label.",
        "outcome_roas": "ROAS over the maturity window (outcome_revenue / outcome_spend); evaluation label.",
        "outcome_cpa": "CPA over the maturity window (outcome_spend / outcome_conversions); evaluation label.",
        "outcome_score": ("Composite label: log shrunk CTR + log shrunk CVR (= log conversions per impression), "
                          "shrunk to the account's pooled rates."),
        "outcome_is_mature": "The maturity window lies inside the data, so the outcome labels are complete.",
    },
    "cbr.neighbors": {
        "creative_id": "Query creative.",
        "launch_date": "Query creative's launch date: neighbours were launched and matured before it.",
        "account_id": "Query creative's account.",
        "neighbor_rank": "1 = most similar; top K per creative (default 10).",
        "neighbor_id": "The similar past creative (case).",
        "similarity": ("Fused similarity: weighted mean of per-block cosines over shared blocks (default weights), "
                       "-1..1."),
        "sim_clip": "Cosine of the two creatives' CLIP vectors; NULL when not both have one.",
        "sim_cnn": "Cosine of the two creatives' CNN vectors; NULL when not both have one.",
        "sim_visual": "Cosine of the two creatives' visual vectors; NULL when not both have one.",
        "sim_layout": "Cosine of the two creatives' layout vectors; NULL when not both have one.",
        "sim_text": "Cosine of the two creatives' text vectors; NULL when not both have one.",
        "sim_context": "Cosine of the two creatives' prelaunch-context vectors; NULL when not both have one.",
        "shared_blocks": "Comma-separated blocks both creatives have: the ones `similarity` averages over.",
        "neighbor_account_id": "The neighbour's account (may differ from the query's).",
        "neighbor_launch_date": "The neighbour's launch date.",
        "neighbor_mature_date": "The neighbour's mature date: always before the query's launch_date.",
        "neighbor_outcome_ctr": _NEIGHBOR_OUTCOME.format("outcome_ctr"),
        "neighbor_outcome_cvr": _NEIGHBOR_OUTCOME.format("outcome_cvr"),
        "neighbor_outcome_roas": _NEIGHBOR_OUTCOME.format("outcome_roas"),
        "neighbor_outcome_cpa": _NEIGHBOR_OUTCOME.format("outcome_cpa"),
        "neighbor_outcome_spend": _NEIGHBOR_OUTCOME.format("outcome_spend"),
        "neighbor_outcome_impressions": _NEIGHBOR_OUTCOME.format("outcome_impressions"),
        "neighbor_outcome_score": _NEIGHBOR_OUTCOME.format("outcome_score (composite label)"),
    },
    "cbr.backtest": {
        "method": ("Predictor: cbr, cbr_learned, account_mean, context_knn, gbm_prelaunch, block:<b> (one block "
                   "alone), without:<b> (all but one), random."),
        "metric": ("spearman, spearman_within_cohort, ndcg@10 (both over account × launch-week cohorts) or "
                   "top_decile_precision."),
        "window": ("validation (first 30 % of post-warm-up launch days; learned weights see only it) or test (the "
                   "rest)."),
        "value": "The metric for this method and window, predicting each creative's outcome_score as of its launch.",
        "n_queries": "Creatives predicted in the window (launched after the 21-day warm-up, with a matured label).",
        "n_cohorts": "Account × launch-week cohorts large enough (≥ 3 creatives) for the within-cohort metrics.",
        "description": "What the method does, in words.",
    },
    # -- marts: the decision tables (docs/marts.md, docs/candidates.md, docs/early-decisions.md) -------------
    "marts.creative_ranking": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "campaign_id": _KEYS["campaign_id"],
        "impressions": "Lifetime impressions (sum of raw.daily_metrics).",
        "clicks": "Lifetime clicks.",
        "spend": "Lifetime spend, account currency.",
        "conversions": "Lifetime conversions.",
        "revenue": "Lifetime revenue, account currency.",
        "ctr": "Raw lifetime CTR = clicks / impressions.",
        "cvr": "Raw lifetime CVR = conversions / clicks.",
        "roas": "Raw lifetime ROAS = revenue / spend.",
        "cpa": "Raw lifetime CPA = spend / conversions.",
        "ctr_expected": ("CTR of the account's typical creative in this creative's delivery context (platform, "
                         "placement, audience, objective, country): the prior mean."),
        "cvr_expected": "CVR of the account's typical creative in the same delivery context: the prior mean.",
        "roas_expected": "ROAS of the account's typical creative in the same delivery context: the prior mean.",
        "cpa_expected": "CPA of the account's typical creative in the same delivery context: the prior mean.",
        "ctr_shrunk": ("Empirical-Bayes CTR: the raw CTR pulled toward ctr_expected, more so the less data the "
                       "creative has."),
        "cvr_shrunk": "Empirical-Bayes CVR: the raw CVR pulled toward cvr_expected; more shrinkage with fewer clicks.",
        "roas_shrunk": ("Empirical-Bayes ROAS: the raw ROAS pulled toward roas_expected; more shrinkage with less "
                        "spend."),
        "cpa_shrunk": "Empirical-Bayes CPA: the raw CPA pulled toward cpa_expected; more shrinkage with less spend.",
        "ctr_lift": "log(ctr_shrunk / ctr_expected): the creative's own CTR multiplier, context removed (0 = typical).",
        "cvr_lift": "log(cvr_shrunk / cvr_expected): the creative's own CVR multiplier, context removed.",
        "roas_lift": "log(roas_shrunk / roas_expected): the creative's own ROAS multiplier, context removed.",
        "cpa_lift": "log(cpa_expected / cpa_shrunk): sign-flipped, positive = cheaper than typical in its context.",
        "score": ("Weighted mean of the lifts (default CTR 1, CVR 1, ROAS 1, CPA 0.5): 0 = the account's typical "
                  "creative in the same context, +0.10 ≈ 10 % better."),
        "rank_in_account": "Rank by score within the account, 1 = best.",
        "rank_in_campaign": "Rank by score within the campaign, 1 = best.",
        "tier": ("LEARNING (< 2,000 impressions or < 10 spend), BEST (account's top 20 % and confidence ≥ 0.8), "
                 "GOOD (confidence ≥ 0.5 or above median), else LOW."),
        "confidence": "Posterior probability (Monte Carlo) that the creative's score beats its account's median score.",
        "spend_share": "The creative's share of its account's lifetime spend, 0-1.",
        "is_winner": "Winner: not LEARNING, at least the account's average spend share, and confidence ≥ 0.5.",
        "explanation": ("The two metrics that drive the score (vs the account, same context) and up to 3 similar "
                        "past creatives."),
    },
    "marts.creative_fatigue_daily": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "date": "Calendar day; days without delivery between the first and last metric day are present with zeros.",
        "age_days": "Days since launch_date (0 = launch day).",
        "impressions": "Impressions that day.",
        "clicks": "Clicks that day.",
        "spend": "Spend that day, account currency.",
        "conversions": "Conversions that day.",
        "ctr": "Daily CTR = clicks / impressions.",
        "cpa": "Daily CPA = spend / conversions.",
        "rolling_ctr": "CTR over the trailing 7 days (sum of clicks / sum of impressions); plot against date.",
        "rolling_cpa": "CPA over the trailing 7 days (sum of spend / sum of conversions).",
        "cumulative_impressions": "Impressions from the first metric day through this day.",
        "cumulative_spend": "Spend from the first metric day through this day, account currency.",
        "frequency": "The export's frequency (impressions per person) that day; NULL when not reported.",
    },
    "marts.creative_fatigue": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "launch_date": _KEYS["launch_date"],
        "age_days": "Days from launch_date to the last date in the data.",
        "first_date": "First day with a metric row.",
        "last_date": "Last day with a metric row.",
        "days_observed": "Days with impressions > 0.",
        "impressions": "Lifetime impressions.",
        "clicks": "Lifetime clicks.",
        "early_peak_ctr": "Best trailing 7-day CTR within the creative's first 14 days: the reference level.",
        "early_peak_date": "Last day of the 7-day window that gave early_peak_ctr.",
        "current_ctr": "CTR over the last 7 days of the creative's series.",
        "current_vs_peak": "current_ctr / early_peak_ctr (1 = holding its early peak).",
        "early_cpa": "CPA over the first 7 days of the creative's series.",
        "current_cpa": "CPA over the last 7 days.",
        "cpa_multiple": ("current_cpa / early_cpa (recent spend / early_cpa without recent conversions); NULL "
                         "unless the first 7 days had >= 5 conversions and the series >= 14 days."),
        "fatigue_onset_date": ("Day the CTR decline began (change point on daily clicks / impressions); NULL without "
                               "an onset."),
        "onset_log_bayes_factor": ("Natural log of the Bayes factor 'flat, then decay' vs constant CTR; an onset needs "
                                   "≥ ln(1/α) (1.6 at α = 0.2)."),
        "onset_window_probability": ("Posterior probability that the true onset is within ±3 days of "
                                     "fatigue_onset_date."),
        "fitted_drop": "Fitted relative CTR drop from the pre-onset level to the last day, 0-1 (an onset needs ≥ 0.1).",
        "cpa_rule_triggered": ("Platform rule: recent 7-day cost per result ≥ 2× its first 7 days' (≥ 5 conversions "
                               "each)."),
        "fatigue_evidence": ("Detector outcome: onset detected, decline not significant, decline below the minimum, "
                             "too little data (< 8 delivery days or < 100 clicks), no delivery; led by 'CPA rule (cost "
                             "per result >= 2x its first 7 days')' when cpa_rule_triggered."),
        "days_to_fatigue": "Days from launch_date to fatigue_onset_date; NULL without an onset.",
        "status": ("fresh (< 7 days, no onset), stable, fatiguing (onset, drop ≥ 10 %), fatigued (≤ 60 % of the "
                   "early peak after an onset, or the CPA rule)."),
    },
    "marts.creative_repetition": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "launch_date": _KEYS["launch_date"],
        "similarity_density": ("Other creatives of the account launched in the 28 days up to this one's launch with "
                               "fused image similarity ≥ 0.85."),
        "max_similarity": ("Highest fused image similarity (embedding blocks, context excluded) to another creative "
                           "of the account."),
        "most_similar_id": "The account's creative with max_similarity.",
        "family_id": ("Creative family: variants of one design in the account (e.g. acc_01-fam003); NULL = no "
                      "variant found."),
        "near_duplicate_cluster": "Same as family_id (kept for existing readers).",
        "cluster_size": "Members of its family (1 = not in a family).",
        "closest_variant_id": "The family member it resembles most (most block evidence).",
        "variant_evidence": ("Mean per-block evidence of that pair: -log10 share of unrelated pairs at least as "
                             "similar, capped at 4 (2 = top 1 %)."),
        "blocks_agree": "Blocks in which the pair agrees (evidence ≥ 2), comma-separated.",
        "blocks_differ": ("Blocks in which the pair differs: what was changed (text: new headline; visual: colour "
                          "shift)."),
        "block_similarity": "JSON {block: cosine} of the creative and its closest variant.",
        "is_repetitive": "In a family, or similarity_density ≥ 3.",
        "vector_status": "ok, or 'no vectors' when the creative has no image embeddings (then not counted as unique).",
    },
    "marts.tired_or_repetitive": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "similarity_density": ("Similar same-account creatives launched in the 28 days before it "
                               "(marts.creative_repetition)."),
        "near_duplicate_cluster": "Its creative family (marts.creative_repetition.family_id); NULL = none.",
        "cluster_size": "Members of its family (1 = not in a family).",
        "is_repetitive": "In a family, or similarity_density ≥ 3.",
        "fatigue_status": "Status from marts.creative_fatigue (fresh, stable, fatiguing, fatigued); NULL when missing.",
        "fatigue_onset_date": "Fatigue onset from marts.creative_fatigue; NULL without an onset.",
        "current_vs_peak": "Last 7 days' CTR / early peak CTR (marts.creative_fatigue).",
        "is_tired": "fatigue_status is fatiguing or fatigued.",
        "tired_or_repetitive": "is_tired or is_repetitive: a creative to refresh.",
        "reason": ("Why, e.g. 'fatigued since 2026-04-02; near-duplicate of 2 other creative(s) (acc_01-fam004)', "
                   "or 'fatigued by the CPA rule (recent CPA 2.4x its first 7 days')' without a CTR onset."),
    },
    "marts.recommendations": {
        "scope": "Where the finding is estimated: an account id, or ALL (every account, account fixed effects).",
        "rank": "Rank within the scope: DO / DON'T by expected_impact, then TEST.",
        "shown": "rank ≤ top_n (10): the default view.",
        "recommendation": "DO (significant lift), DON'T (significant drop) or TEST (promising, unproven, rare lately).",
        "finding_id": "Stable id: the cause's estimated indicator (attribute=value); 'a & b' for a combination.",
        "finding": "The cause in words, e.g. 'Faces in the creative', 'Text coverage: heavy'.",
        "kind": "single (one cause) or combination (what a pair adds beyond both causes).",
        "members": "Indicators that measure the same cause, the estimated one first; '!=' marks the opposite side.",
        "attribute": "Attribute column the effect was estimated on (e.g. face_present).",
        "value": "Its level: a category, true (boolean) or high (above the scope's median).",
        "attribute_b": "Second attribute of a combination; NULL for a single cause.",
        "value_b": "Level of attribute_b; NULL for a single cause.",
        "metric": "Primary metric (smallest p): score (ranking composite), ctr, cvr or roas.",
        "lift": "Relative effect on the primary metric, other findings held equal (+0.20 = +20 %).",
        "ci_low": "Lower bound of the 95 % confidence interval of lift.",
        "ci_high": "Upper bound of the 95 % confidence interval of lift.",
        "p_value": "p-value of the primary metric's effect (standard errors clustered by creative family).",
        "q_value": "Benjamini-Hochberg q of the finding (Simes over its metrics, BH over the scope's findings).",
        "lift_score": "Relative effect on the ranking's composite score, other findings held equal.",
        "lift_ctr": "Relative effect on CTR, other findings held equal.",
        "lift_cvr": "Relative effect on CVR, other findings held equal.",
        "lift_roas": "Relative effect on ROAS, other findings held equal.",
        "significant_metrics": "Metrics on which the finding is significant.",
        "n_with": "Creatives of the scope with the indicator.",
        "n_without": "Creatives of the scope measured without it.",
        "prevalence": "n_with / (n_with + n_without).",
        "spend": "Lifetime spend of the scope's creatives with the indicator.",
        "spend_share": "spend / the scope's total spend.",
        "stability": ("Share of 50 cluster-bootstrap resamples in which it stays significant with the same sign; "
                      "NULL for TEST."),
        "expected_impact": ("|lift| × spend of the creatives that could change (without it for DO / TEST, with it "
                            "for DON'T)."),
        "recent_share": "TEST only: share of the last 28 days' launches with the indicator.",
        "evidence_creatives": "Example creatives: the best (DO / TEST) or worst (DON'T) by score.",
        "sentence": "The finding in one sentence, with effect, interval, support and stability.",
    },
    "marts.account_health": {
        "account_id": _KEYS["account_id"],
        "week_start": "Monday of the week.",
        "creative_velocity": "Creatives of the account launched that week.",
        "active_creatives": "Creatives with a metric row that week.",
        "spend": "The account's spend that week, account currency.",
        "impressions": "The account's impressions that week.",
        "freshness_rate": "Share of the week's spend on creatives at most 6 days old on the day of the spend.",
        "fatigued_spend_share": "Share of the week's spend on fatiguing / fatigued creatives from their onset on.",
        "thumb_stop_ratio": ("3-second video views / impressions over the week's rows that report video views; NULL "
                             "without."),
        "creative_diversity": ("Mean pairwise 1 - fused similarity of the creatives with spend that week; NULL with "
                               "< 2."),
        "winners_spend_share": "Share of the week's spend on winners (marts.creative_ranking.is_winner).",
        "creative_fatigue_rate_days": ("Account level, repeated each week: median days a winner holds its target CPA "
                                       "(median shrunk CPA) before its 7-day CPA exceeds it."),
        "days_covered": ("Days of the week inside the export's date range, 1-7 (the export's first and last weeks "
                         "are usually partial)."),
        "complete_week": ("days_covered = 7. Compare velocity, spend and impressions only between complete weeks: a "
                          "partial last week looks like a drop."),
    },
    "marts.creative_landscape": {
        "creative_id": _KEYS["creative_id"],
        "x": ("Map x of the fused image vectors (UMAP, cosine, fixed seed; see method); only relative positions matter. "
              "Kept from the previous run while few creatives are new."),
        "y": ("Map y of the fused image vectors (UMAP, cosine, fixed seed; see method); only relative positions matter. "
              "Kept from the previous run while few creatives are new."),
        "cluster": ("Cluster of the image vectors (Ward; k-means on the map below 15 creatives), numbered by size and "
                    "kept from the previous run while few creatives are new; -1 = not in a cluster."),
        "method": ("How the map was made: umap, umap-placed (a creative new since the last fit, placed among its most "
                   "similar fitted creatives), pca (fewer than 15 creatives) or single (fewer than 3)."),
        "account_id": _KEYS["account_id"],
        "score": "Composite score from marts.creative_ranking.",
        "tier": "Tier from marts.creative_ranking.",
        "cluster_name": "Its cluster's name from marts.landscape_clusters.",
    },
    "marts.landscape_clusters": {
        "cluster": "Cluster id on the map (-1 = the creatives in no cluster).",
        "cluster_name": ("Up to 3 attribute levels held by ≥ 50 % of the cluster and ≥ 20 points more often than "
                         "elsewhere; unclustered for -1."),
        "size": "Creatives in the cluster.",
        "spend_share": "The cluster's share of the mapped creatives' lifetime spend.",
        "mean_score": "Mean ranking score of its creatives.",
        "median_score": "Median ranking score of its creatives.",
        "share_fatigued": "Share of its creatives that are fatiguing or fatigued.",
        "dominant_attributes": ("Up to 3 indicators most over-represented vs the rest of the map, in words, with "
                                "their share in it, e.g. 'Colour temperature: warm (82%), no faces (100%)'."),
        "example_ids": "Up to 3 of its creatives with the highest score.",
        "x": "Cluster centre on the map: mean x of its creatives.",
        "y": "Cluster centre on the map: mean y of its creatives.",
    },
    "marts.performance_model": {
        "input_set": ("Inputs: context, attributes, block:<b>, context+attributes, all_blocks, all+cbr, cbr (case "
                      "memory), served (the served forecast) or observable oracle."),
        "kpi": "Forecast KPI: score (composite outcome), ctr, cvr or roas.",
        "window": "Evaluation window of cbr.backtest: validation or test.",
        "target": ("normalised (KPI relative to the account's trailing level, cube-rooted) or raw; '' for served / "
                   "oracle."),
        "served": "This row evaluates the forecast served in marts.predictions.",
        "rmse": "Root mean squared error on the reporting scale (score as is, rates cube-rooted).",
        "mae": "Mean absolute error on the reporting scale.",
        "r2": "R² on the reporting scale: 1 - squared error / variance of the realised values.",
        "spearman": "Spearman rank correlation of forecast and realised values over the window.",
        "spearman_within_cohort": "Mean Spearman within account × launch-week cohorts.",
        "interval_coverage": ("Share of realised values inside the 80 % interval, over the n_with_interval creatives "
                              "that have one (served rows only)."),
        "n_with_interval": ("Of n, creatives with an interval (served rows): the first launches after the warm-up have "
                            "too few known residuals to calibrate one, so a validation coverage can rest on a few."),
        "n": "Creatives of the window with both a forecast and a realised value.",
        "n_without_forecast": "Creatives of the window without a forecast.",
        "n_account_level": ("Of n, forecasts that are the account's trailing level because no model could be "
                            "fitted yet (fewer than min_train matured cases before the launch)."),
    },
    "marts.predictions": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "launch_date": _KEYS["launch_date"],
        "kpi": "Forecast KPI: score (composite outcome, log conversions per impression), ctr, cvr or roas.",
        "window": ("validation / test (cbr.backtest's windows), live (not matured yet) or unevaluated (matured, "
                   "no outcome score)."),
        "forecast": "Prelaunch forecast as of launch_date, on the KPI's own scale.",
        "lower": "Lower bound of the 80 % split-conformal interval (level adapted to past misses); NULL until 10 "
                 "past residuals are known.",
        "upper": "Upper bound of the 80 % split-conformal interval (level adapted to past misses); NULL until 10 "
                 "past residuals are known.",
        "realised": ("The KPI over the maturity window once matured (rates only with enough impressions / clicks / "
                     "spend)."),
        "account_level": ("The account's trailing 12-month level of the KPI as of launch (the normalised target's "
                          "base)."),
        "model_trained_through": "Last day the model could see (ISO date), always before launch_date.",
        "n_train": ("Labelled cases the models were fitted on (0 = none yet: fewer than min_train matured cases "
                    "before the launch)."),
        "input_set": ("ensemble (the served mean of models) or 'account level (too little history)': no model yet, "
                      "the account's level averaged with the case memory's neighbour-adjusted level."),
        "evidence_ids": "The 3 most similar as-of neighbours (creative ids).",
        "evidence_top_similarity": "Fused similarity of the most similar as-of neighbour.",
        "context_forecast": ("The context-only model's as-of forecast (score and CTR by default); the pairwise "
                             "baseline."),
    },
    "marts.element_attribution": {
        "edit": ("Image edit: hue_warm / hue_cool / hue_neutral, remove_text / remove_cta / remove_face, brighter / "
                 "darker, more_ / less_contrast, crop_to_subject; or 'probe: <text>', a CLIP text probe (the CLIP "
                 "vector moved toward the text's embedding; only where CLIP is available)."),
        "label": "The edit in words, e.g. 'Removing the face (blurred out)'.",
        "element": ("Attribute family the edit acts on (colour_temperature, text, cta, faces, light, clutter; 'clip text "
                    "probe' for the text probes)."),
        "kpi": "Forecast KPI the effect is on (ctr, cvr by default; roas, score).",
        "effect": ("Relative change of the predicted KPI: sum of (edit - original) / sum of originals over the edited "
                   "creatives (score: mean difference)."),
        "ci_low": "Lower bound of the 95 % interval (spread over creatives plus over bootstrap refits of the model).",
        "ci_high": "Upper bound of the 95 % interval (spread over creatives plus over bootstrap refits of the model).",
        "significant": ("Significant at 5 % family-wise over the run's edits x KPIs (Holm's correction); the statement's "
                        "95 % interval is per effect."),
        "direction": "up / down when significant and |effect| ≥ 2 %, else none.",
        "n": "Edited creatives the effect is averaged over.",
        "reached_share": ("Share of the edits that moved the detected attribute the intended way (e.g. face_present "
                          "false)."),
        "statement": ("The result in one sentence, e.g. 'Removing the face (blurred out): -18 % predicted CTR (95 % "
                      "CI ...)', then what the correction or the support says of it, then the by_origin subgroups "
                      "in words ('from a warm background -17 % (n = 11), ...')."),
        "support": ("Creatives the model learnt from that look like the edit's result (the median over its edited "
                    "images of how many share the detected value it sets: background hue family, text coverage, CTA, "
                    "face); below min_support (10) the edit is not tested. Empty for edits of a continuous quantity."),
        "by_origin": ("JSON list of the effect broken down by the original's value of what the edit changes "
                      "(background hue family for the hue edits, text coverage for removing the text): "
                      "[{origin, effect, ci_low, ci_high, n}], subgroups of 3+ creatives, largest first; each "
                      "interval is the subgroup's own 95 % one (descriptive, not Holm-corrected). Empty for other "
                      "edits."),
        "model_rows": "Matured creatives the attribution model learnt from.",
        "blocks": "Embedding blocks in the model; originals and edits are compared on the same inputs.",
        "trained_through": "Last day whose matured outcomes the model used (ISO date).",
    },
    "marts.pairwise_backtest": {
        "method": ("served forecast, context only, oracle (ground truth; generated scenarios only) or random "
                   "(expected)."),
        "window": "validation or test window of marts.predictions.",
        "n_pairs": "Pairs of matured creatives of one account and launch week whose realised scores differ by > 0.1.",
        "accuracy": ("Forced-choice accuracy: share of pairs in which the higher forecast had the higher realised "
                     "score."),
        "abstain_rate": "Share of pairs the method leaves undecided (confidence below min_confidence).",
        "accuracy_decided": "Accuracy over the decided pairs only.",
        "min_confidence": "Confidence a verdict needs (0.5 = decide every pair).",
        "sigma": "Pair noise σ: RMS of (realised - forecast) score differences on validation pairs; P = Φ(margin / σ).",
    },
    "marts.candidate_assessment": {
        "batch": "Candidate batch: the folder under <landing>/candidates/.",
        "candidate_id": "cand:<batch>/<file stem>; NULL for a file that could not be assessed.",
        "name": "Candidate name: the image file's stem (file name when two stems collide).",
        "status": "assessed, or why not: the image problem code (e.g. truncated_image, duplicate_in_batch).",
        "rank": "Rank by forecast_score within the batch, 1 = best.",
        "account_id": "Account the candidate is meant for.",
        "as_of": "Launch date assessed as of: only creatives launched and metrics dated before it are used.",
        **{f"forecast_{k}": f"Served forecast of the {name} as of as_of." for k, name in _CANDIDATE_KPIS.items()},
        **{f"lower_{k}": f"Lower bound of the 80 % interval of forecast_{k}; NULL with too few past residuals."
           for k in _CANDIDATE_KPIS},
        **{f"upper_{k}": f"Upper bound of the 80 % interval of forecast_{k}; NULL with too few past residuals."
           for k in _CANDIDATE_KPIS},
        "wins": "Decided pairwise verdicts the candidate won (marts.candidate_pairs).",
        "losses": "Decided pairwise verdicts the candidate lost.",
        "similar_ids": "Up to 5 most similar past creatives (launched and matured before as_of), most similar first.",
        "top_similarity": "Fused similarity of the most similar past creative.",
        "repetition_risk": ("vs the account's creatives running in the last 14 days: identical (same bytes), "
                            "near_duplicate (≥ 0.92), similar (≥ 0.85), low; unknown without an account that has "
                            "history (or image vectors) to compare with."),
        "repetition_of": "The account's running creative it resembles most.",
        "repetition_similarity": "Fused image similarity to repetition_of.",
        "identical_to": "A past creative whose image file has exactly the same bytes; NULL when none.",
        "rules_met": "DO findings (marts.recommendations, its account and ALL) the candidate meets.",
        "rules_broken": "DON'T findings (marts.recommendations, its account and ALL) the candidate breaks.",
        "candidate_notes": ("What the memory cannot vouch for (unknown account, unseen context); the problem for a "
                            "rejected file."),
        "n_train": "Cases the score forecast's models learned from.",
        "blocks": "Blocks compared (a block whose model is unavailable now is left out on both sides).",
        "sha256": "SHA-256 of the candidate's image file.",
    },
    "marts.candidate_pairs": {
        "batch": "Candidate batch the pair belongs to.",
        "candidate_a": "First candidate of the pair (a < b by candidate_id).",
        "candidate_b": "Second candidate of the pair.",
        "name_a": "Name of candidate_a.",
        "name_b": "Name of candidate_b.",
        "winner": "candidate_id of the chosen candidate; NULL when the verdict abstains.",
        "predicted_better": "candidate_id with the higher forecast score, even when abstaining; NULL on a tie.",
        "margin": "forecast_score of a - forecast_score of b (difference of log conversions per impression).",
        "relative_margin": ("e^margin - 1: a's predicted conversions per impression relative to b's (+0.10 = 10 % "
                            "more)."),
        "p_a_better": "P(a beats b) = Φ(margin / σ), σ from past same-account, same-week pairs.",
        "confidence": "max(p_a_better, 1 - p_a_better).",
        "abstain": "No verdict: confidence below min_confidence (0.55) or equal forecasts.",
        "reasons": "Attributes in which they differ (with the account's as-of evidence), DO / DON'T rules, blocks.",
        "verdict": "The verdict in one sentence, followed by the reasons.",
    },
    "marts.early_decisions": {
        "creative_id": _KEYS["creative_id"],
        "account_id": _KEYS["account_id"],
        "launch_date": _KEYS["launch_date"],
        "decided_at": "Decision date: launch_date + window_days; NULL while the window is incomplete or too thin.",
        "window_days": "Days of the judged early window (default 2, up to 7 for slow starters); NULL without one.",
        "early_impressions": "Impressions over the judged window (over the days so far while waiting).",
        "early_clicks": "Clicks over the judged window.",
        "early_conversions": "Conversions over the judged window.",
        "early_spend": "Spend over the judged window, account currency.",
        "early_ctr": "early_clicks / early_impressions.",
        "early_cvr": "early_conversions / early_clicks (may exceed 1).",
        "early_ctr_percentile": ("As-of share of the account's creatives (same window) with a lower early CTR: the "
                                 "naive rule."),
        "n_peers": "Matured creatives of the account before decided_at: the reference for bottom / top.",
        "prelaunch_forecast": ("The creative's prelaunch forecast of the composite score (marts.predictions); NULL "
                               "without."),
        "prior_source": "What the posterior combined: account history, or account history + prelaunch forecast.",
        "expected_outcome": ("Posterior predictive mean of its outcome composite (log shrunk conversions per "
                             "impression)."),
        "p_bottom": "Posterior probability of ending in the account's bottom 80 % (bottom_share); NULL for WAIT.",
        "p_top": "Posterior probability of ending in the account's top 20 % (top_share); NULL for WAIT.",
        "decision": "KILL (p_bottom ≥ 0.8), SCALE (p_top ≥ 0.8), KEEP (neither) or WAIT (cannot be judged yet).",
        "reason": "The call's sentence with its evidence, or why it waits and until when.",
        "realised_outcome": "Evaluation only: lifetime outcome composite once the creative is mature.",
        "realised_rank_share": ("Evaluation only: mid-rank share among the account's matured creatives (0 = worst, 1 "
                                "= best)."),
        "realised_bottom": "Evaluation only: realised_rank_share is in the account's bottom 80 %.",
        "realised_top": "Evaluation only: realised_rank_share is in the account's top 20 %.",
        "realised_lifetime_spend": "Evaluation only: lifetime spend, account currency.",
        "realised_post_window_spend": "Evaluation only: spend after decided_at (what a KILL would have saved).",
    },
}
