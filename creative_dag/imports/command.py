"""`creative-dag import`: turn ad platforms' report exports into a landing folder (docs/imports.md)."""

from __future__ import annotations

from pathlib import Path

import click

from creative_dag.imports.platforms import PLATFORMS


@click.command("import")
@click.option("--from", "platform", type=click.Choice(list(PLATFORMS), case_sensitive=False), required=True,
              help="The platform whose ad-level daily report the files are.")
@click.argument("export_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--images", "images_dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the ads' images, named by ad id or ad name (default: LANDING/images).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Landing folder to write creatives.csv, daily_metrics.csv and images/ into.")
@click.option("--account", default=None, help="Account id for exports without an account column.")
@click.option("--currency", default=None, help="Currency code (e.g. EUR) for exports that do not name one.")
@click.option("--append", is_flag=True,
              help="Keep what LANDING already holds (another platform's import) and add these ads to it.")
def import_export(platform: str, export_files: tuple[str, ...], images_dir: str | None, out: str,
                  account: str | None, currency: str | None, append: bool) -> None:
    """Convert Meta, Google Ads or TikTok report exports (CSV or XLSX) into a landing folder.

    Several files of one platform are read together (an ad-day in two files is kept once). Ads
    without an image are left out and listed; the summary is also saved as import_summary.json.
    """
    from creative_dag.imports.convert import (
        ImportFileError,
        convert_exports,
        write_landing,
    )

    out_dir = Path(out)
    try:
        result = convert_exports(list(export_files), platform, Path(images_dir) if images_dir else out_dir / "images",
                                 account=account, currency=currency)
        write_landing(result, out_dir, append=append)
    except ImportFileError as err:
        raise click.ClickException(str(err)) from err
    for line in result.summary.lines():
        click.echo(line)
    click.echo(f"landing folder: {out_dir}")
