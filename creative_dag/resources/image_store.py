"""The Dagster resource for where creative images are read from (creative_dag.landing.locator)."""

import dagster as dg

from creative_dag.contract import MAX_IMAGE_BYTES
from creative_dag.landing.locator import ImageLocator


class ImageStoreResource(dg.ConfigurableResource):
    """Dagster resource: images under the landing folder (`root`), optional extra URI schemes."""

    root: str
    allowed_schemes: list[str] = ["file"]
    max_image_bytes: int = MAX_IMAGE_BYTES

    def locator(self) -> ImageLocator:
        return ImageLocator(self.root, self.allowed_schemes, self.max_image_bytes)
