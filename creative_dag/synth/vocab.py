"""Fixed vocabularies of the synthetic generator: colours, products, copy, fonts.

These are the exact strings that appear in `ground_truth.json` attributes and in
`creatives.csv`; tests and downstream evaluation key on them.
"""

from __future__ import annotations

# Named background hues, grouped into the warm / cool / neutral classes the planted
# effects refer to. RGB is the hue's reference colour (backgrounds jitter around it).
HUES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "red": ("warm", (212, 48, 48)),
    "orange": ("warm", (240, 128, 36)),
    "yellow": ("warm", (244, 196, 48)),
    "pink": ("warm", (232, 96, 150)),
    "blue": ("cool", (36, 96, 212)),
    "teal": ("cool", (24, 150, 150)),
    "green": ("cool", (52, 160, 84)),
    "purple": ("cool", (120, 72, 196)),
    "white": ("neutral", (244, 244, 240)),
    "grey": ("neutral", (140, 142, 146)),
    "black": ("neutral", (26, 26, 30)),
    "beige": ("neutral", (224, 208, 180)),
}
HUE_FAMILIES = ("warm", "cool", "neutral")

BACKGROUND_STYLES = ("solid", "gradient", "texture", "stripes", "dots", "photo", "blurred_photo")
# Real photos (scikit-learn / scikit-image) usable as full-bleed backgrounds.
BACKGROUND_PHOTOS = ("china", "flower", "coffee")

# Product element -> (kind, product_category). Photo products are crops of real
# photos shipped by scikit-image / scikit-learn; shape products are drawn.
PRODUCTS: dict[str, tuple[str, str]] = {
    "coffee": ("photo", "food_beverage"),
    "rocket": ("photo", "toys"),
    "cat": ("photo", "pet_supplies"),
    "china": ("photo", "travel"),
    "flower": ("photo", "home_garden"),
    "bottle": ("shape", "beauty"),
    "giftbox": ("shape", "gifts"),
}

TEXT_COVERAGES = ("none", "light", "medium", "heavy")
HEADLINE_POSITIONS = ("top", "middle", "bottom")
CTA_POSITIONS = ("bottom_center", "bottom_left", "bottom_right")
CTA_COLORS: dict[str, tuple[int, int, int]] = {
    "orange": (245, 124, 0),
    "green": (34, 160, 70),
    "blue": (25, 100, 230),
    "red": (220, 40, 40),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}
CTA_TEXTS = ("Shop Now", "Learn More", "Order Now", "Get Offer", "Sign Up", "Book Now")

# Logical font name -> DejaVu file. matplotlib (a project dependency) bundles these, so
# renders are identical across machines; system fonts, then PIL's scalable default
# font, are the fallbacks.
FONTS: dict[str, str] = {
    "sans_bold": "DejaVuSans-Bold.ttf",
    "sans_bold_oblique": "DejaVuSans-BoldOblique.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
}
SUBLINE_FONTS: dict[str, str] = {
    "sans_bold": "DejaVuSans.ttf",
    "sans_bold_oblique": "DejaVuSans-Oblique.ttf",
    "serif_bold": "DejaVuSerif.ttf",
    "mono_bold": "DejaVuSansMono.ttf",
}

# Short headlines: big, real-looking ad words that OCR reads reliably.
HEADLINES_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "food_beverage": ("Fresh Roast Daily", "Wake Up Better", "Brew Like A Pro", "Coffee 2 For 1", "Morning Deal"),
    "toys": ("Launch The Fun", "Blast Off Sale", "Build Your Rocket", "Ages 8 And Up", "Sky High Deals"),
    "pet_supplies": ("Happy Cat Club", "Treats Cats Love", "Vet Approved", "Purrfect Picks", "Pet Week Sale"),
    "travel": ("Explore Asia", "Flights From $299", "Temple Tours", "Book Now Save 30%", "Your Next Trip"),
    "home_garden": ("Fresh Blooms", "Spring Garden Sale", "Flowers Delivered", "Grow Something", "Bloom Week"),
    "beauty": ("Glow Serum", "Skin Loves This", "New Formula", "Clean Beauty", "Glow Up Sale"),
    "gifts": ("Gift Ideas Inside", "Holiday Gift Sale", "Wrap It Up", "Gifts Under $50", "Surprise Them"),
}
GENERIC_HEADLINES = (
    "Summer Sale", "50% Off Today", "Free Shipping", "New Arrivals", "Last Chance",
    "Best Seller", "Limited Edition", "Shop The Look", "Just Dropped", "Big Savings",
)
SUBLINES = (
    "Free delivery on all orders", "Only this week", "Order today, ships tomorrow",
    "Loved by 10,000 customers", "Limited stock available", "Members save more",
    "Easy returns within 30 days", "New styles every week",
)
# Extra text blocks used only at heavy text coverage.
EXTRA_LINES = (
    "Free returns", "2-year warranty", "Secure checkout", "Price from $29",
    "Rated 4.8 out of 5", "Pay in 4 installments", "Next-day delivery", "Eco packaging",
)

PLATFORMS = ("meta", "tiktok", "google")
PORTRAIT_PLACEMENTS = ("stories", "reels")

# Element attributes a planted effect may reference, with their allowed values.
ELEMENT_ATTRIBUTE_DOMAINS: dict[str, tuple] = {
    "background_style": BACKGROUND_STYLES,
    "background_hue": tuple(HUES),
    "hue_family": HUE_FAMILIES,
    "product": tuple(PRODUCTS),
    "product_kind": ("photo", "shape"),
    "has_face": (True, False),
    "text_coverage": TEXT_COVERAGES,
    "has_cta": (True, False),
    "cta_color": tuple(CTA_COLORS),
    "cta_position": CTA_POSITIONS,
    "headline_position": HEADLINE_POSITIONS,
    "headline_font": tuple(FONTS),
    "orientation": ("square", "portrait"),
    "file_format": ("jpeg", "png"),
}
# Kinds of family variant (one edit per variant). The default scenario mixes only the first four,
# so existing seeds keep their populations; cta_text, reframe and aspect_ratio are opt-in through
# `families.edits` (what people call variants: new headline or CTA label, colour shift, crop or
# reframe, the same design resized to another aspect ratio).
FAMILY_EDITS = ("crop", "hue_shift", "headline", "reencode", "cta_text", "reframe", "aspect_ratio")
