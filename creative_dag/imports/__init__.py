"""Import ad platforms' report exports (Meta, Google Ads, TikTok) into the landing contract (docs/imports.md).

- `platforms`: each platform's report column names (one `PlatformSpec` per platform).
- `convert`: `convert_exports(...)` -> `ImportResult`, and `write_landing(result, out)`; plain functions.
- `command`: the `creative-dag import` click command (`import_export`).

Nothing is re-exported here, so that loading the CLI does not load pandas for this command.
"""
